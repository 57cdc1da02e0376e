/*
 * Client connections: every request is checked before dispatch (a typed
 * error for bad params or an unknown method: proto/check.c, through the
 * same table shape as the worker's), call and context.* go to a host,
 * cancel and release (notifications) to the calls and workers they name,
 * answers to reverse calls back to their workers (invoke.c), and closing a
 * connection for any reason releases what it held: hosts, its calls (each
 * cancelled), its contexts, its private VMs, its reverse calls. A
 * connection is freed only when its socket is closed and nothing refers to
 * it any more (calls in flight, waiters).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "unixsock.h"
#include "xmalloc.h"

/* Past this many unwritten bytes a client's requests wait (a slow reader). */
#define CLIENT_BACKLOG_HIGH (8u * 1024 * 1024)

void
client_ref(struct client *c)
{
    c->refs++;
}

void
client_unref(struct client *c)
{
    if (--c->refs > 0)
        return;
    free(c->held);
    free(c->invokes);
    free(c);
}

void
client_reply_begin(struct rpcstream_msg *om, uint32_t msgid)
{
    rpcstream_msg_init(om);
    proto_write_result(&om->pk, msgid);
}

void
client_send(struct client *c, struct rpcstream_msg *om)
{
    if (c->closed) {
        msgpack_sbuffer_destroy(&om->sb);
        return;
    }
    rpcstream_send(c->stream, om);
}

void
client_reply_error(struct client *c, uint32_t msgid, enum proto_errtype type,
                   const char *logfile, const char *fmt, ...)
{
    struct proto_error err;
    struct rpcstream_msg om;
    char msg[1024];
    va_list ap;

    if (c->closed)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memset(&err, 0, sizeof err);
    err.type = type;
    err.message = msg;
    err.logfile = logfile;
    rpcstream_msg_init(&om);
    proto_write_error(&om.pk, msgid, &err);
    client_send(c, &om);
}

static void
client_reply_nil(struct client *c, uint32_t msgid)
{
    struct rpcstream_msg om;

    client_reply_begin(&om, msgid);
    msgpack_pack_nil(&om.pk);
    client_send(c, &om);
}

void
client_forget_host(struct client *c, struct host *h)
{
    size_t i;

    for (i = 0; i < c->nheld; i++) {
        if (c->held[i] == h) {
            c->held[i] = c->held[--c->nheld];
            return;
        }
    }
}

static bool
client_holds(struct client *c, struct host *h)
{
    size_t i;

    for (i = 0; i < c->nheld; i++)
        if (c->held[i] == h)
            return true;
    return false;
}

/*
 * The host a param names: by id, or by config path (its real path taken
 * when it is a file). NULL with words in cause when it names none (or is
 * not a string at all: it cannot name a host).
 */
static struct host *
client_find_host(const struct proto_params *p, char *cause)
{
    char name[PATH_MAX], real[PATH_MAX];
    struct host *h;

    if (p->host == NULL || p->host_len >= sizeof name ||
        memchr(p->host, '\0', p->host_len) != NULL) {
        snprintf(cause, PROTO_CAUSE_MAX,
                 "params[0] (host): %s names no host (attach first)",
                 p->host == NULL ? (p->host_obj->type == MSGPACK_OBJECT_NIL
                                        ? "nil"
                                        : "a value that is not a string")
                                 : "that string");
        return NULL;
    }
    memcpy(name, p->host, p->host_len);
    name[p->host_len] = '\0';
    h = host_find(name);
    if (h == NULL && realpath(name, real) != NULL)
        h = host_find(real);
    if (h == NULL)
        snprintf(cause, PROTO_CAUSE_MAX, "no host %.200s (attach first)", name);
    return h;
}

/* The host named, or a NotFound answer (and NULL). */
static struct host *
client_host_or_reply(struct client *c, const struct proto_msg *m,
                     const struct proto_params *p)
{
    char cause[PROTO_CAUSE_MAX];
    struct host *h = client_find_host(p, cause);

    if (h == NULL)
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL, "%s", cause);
    return h;
}

static void
client_hello(struct client *c, struct proto_msg *m,
             const struct proto_params *p)
{
    struct rpcstream_msg om;

    (void)p;
    client_reply_begin(&om, m->msgid);
    msgpack_pack_map(&om.pk, 3);
    proto_pack_cstr(&om.pk, PROTO_K_SERVER);
    proto_pack_cstr(&om.pk, JSHOST_VERSION);
    proto_pack_cstr(&om.pk, PROTO_K_PROTOCOL);
    msgpack_pack_int(&om.pk, PROTO_VERSION);
    proto_pack_cstr(&om.pk, PROTO_K_PID);
    msgpack_pack_int(&om.pk, (int)getpid());
    client_send(c, &om);
}

static void
client_attach(struct client *c, struct proto_msg *m,
              const struct proto_params *p)
{
    char path[PROTO_PATH_MAX], real[PATH_MAX], *why = NULL;
    struct host *h;
    int rc;

    memcpy(path, p->config, p->config_len);
    path[p->config_len] = '\0';
    if (realpath(path, real) == NULL) {
        client_reply_error(c, m->msgid, PROTO_ERR_CONFIG, NULL,
                           "config file %s: %s", path, strerror(errno));
        return;
    }
    rc = host_get(real, c->pid, &h, &why);
    if (rc != 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_HOST_UNAVAILABLE, NULL, "%s",
                           why);
        free(why);
        return;
    }
    host_attach(h, c, m->msgid);
}

static void
client_detach(struct client *c, struct proto_msg *m,
              const struct proto_params *p)
{
    struct host *h;
    struct rpcstream_msg om;
    uint64_t linger;

    h = client_host_or_reply(c, m, p);
    if (h == NULL)
        return;
    if (!client_holds(c, h)) {
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL,
                           "this connection does not hold that host");
        return;
    }
    linger = host_detach(h, c, false) ? h->linger_ms : 0;
    client_reply_begin(&om, m->msgid);
    msgpack_pack_map(&om.pk, 1);
    proto_pack_cstr(&om.pk, PROTO_K_LINGER_MS);
    msgpack_pack_uint64(&om.pk, linger);
    client_send(c, &om);
}

/* The methods a client's call may carry to a worker, by their static names
 * (a call keeps its method's name while it waits). */
enum {
    FWD_CALL,
    FWD_CONTEXT_EVAL,
    FWD_CONTEXT_CALL,
    FWD_CONTEXT_LOAD,
    FWD_CONTEXT_DESTROY,
    FWD_CONTEXT_CREATE,
};
static const char *const client_forwarded[] = {
    [FWD_CALL] = PROTO_M_CALL,
    [FWD_CONTEXT_EVAL] = PROTO_M_CONTEXT_EVAL,
    [FWD_CONTEXT_CALL] = PROTO_M_CONTEXT_CALL,
    [FWD_CONTEXT_LOAD] = PROTO_M_CONTEXT_LOAD,
    [FWD_CONTEXT_DESTROY] = PROTO_M_CONTEXT_DESTROY,
    [FWD_CONTEXT_CREATE] = PROTO_M_CONTEXT_CREATE,
};

static const char *
client_forwarded_name(const char *method, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof client_forwarded / sizeof client_forwarded[0]; i++) {
        if (strlen(client_forwarded[i]) == len &&
            memcmp(client_forwarded[i], method, len) == 0)
            return client_forwarded[i];
    }
    return NULL;
}

/* A call from a request read whole (the slow path: its params re-packed). */
/* A client going direct asks again where the host's workers are (after a
 * drain, or a worker's death). */
static void
client_direct(struct client *c, struct proto_msg *m,
              const struct proto_params *p)
{
    struct host *h = client_host_or_reply(c, m, p);
    struct rpcstream_msg om;
    uint32_t nexits = 0, i;

    if (h == NULL)
        return;

    for (i = 0; i < HOST_EXITS; i++)
        nexits += h->exits[i].path != NULL;
    client_reply_begin(&om, m->msgid);
    msgpack_pack_map(&om.pk, 4);
    proto_pack_cstr(&om.pk, PROTO_K_TIMEOUT_MS);
    msgpack_pack_uint64(&om.pk, h->timeout_ms);
    proto_pack_cstr(&om.pk, PROTO_K_LOGFILE);
    proto_pack_cstr(&om.pk, h->logfile);
    proto_pack_cstr(&om.pk, PROTO_K_DIRECT);
    worker_pack_direct(&om.pk, h);
    proto_pack_cstr(&om.pk, PROTO_K_EXITS);
    msgpack_pack_map(&om.pk, nexits);
    for (i = 0; i < HOST_EXITS; i++) {
        if (h->exits[i].path == NULL)
            continue;
        proto_pack_cstr(&om.pk, h->exits[i].path);
        proto_pack_cstr(&om.pk, h->exits[i].words);
    }
    client_send(c, &om);
}

static struct call *
client_take_call(struct client *c, struct proto_msg *m, enum call_kind kind)
{
    struct call *call = call_new(kind, c, m->msgid);

    call_set_params(call, client_forwarded_name(m->method, m->method_len),
                    &m->params);
    return call;
}

static void
client_call(struct client *c, struct proto_msg *m, const struct proto_params *p)
{
    struct host *h;
    struct call *call;

    h = client_host_or_reply(c, m, p);
    if (h == NULL)
        return;
    call = client_take_call(c, m, CALL_FORWARD);
    call->timeout_ms = p->timeout_ms;
    host_pool_submit(h, call);
}

static void
client_context_create(struct client *c, struct proto_msg *m,
                      const struct proto_params *p)
{
    struct host *h;
    struct context *x;
    char *cwd = NULL;

    if (p->host_obj->type == MSGPACK_OBJECT_NIL && p->vm != 0) {
        /* Another context on the private VM of an existing context. */
        x = context_find(p->vm);
        if (x == NULL || x->owner != c || !x->host->is_private ||
            x->worker == NULL) {
            client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL,
                               "no private VM context %llu (or its worker is "
                               "gone)",
                               (unsigned long long)p->vm);
            return;
        }
        h = x->host;
    } else if (p->host_obj->type == MSGPACK_OBJECT_NIL) {
        unsigned mine = client_private_vms(c), all = client_private_vms(NULL);

        /* Each is a worker process with its own heap: bounded. */
        if (mine >= mgr.max_client_vms || all >= mgr.max_vms) {
            bool own = mine >= mgr.max_client_vms;

            client_reply_error(
                c, m->msgid, PROTO_ERR_OVERLOADED, NULL,
                "%s has %u private VMs (the limit); destroy one first",
                own ? "this connection" : "the manager", own ? mine : all);
            return;
        }
        if (p->cwd != NULL)
            cwd = xstrndup(p->cwd, p->cwd_len);
        h = host_new_private(c, p->memory_mb, p->timeout_ms, cwd);
        free(cwd);
    } else {
        h = client_host_or_reply(c, m, p);
        if (h == NULL)
            return;
    }
    host_pool_submit(h, client_take_call(c, m, CALL_CONTEXT_CREATE));
}

/* context.eval, .call, .load and .destroy: to the context's own worker. */
static void
client_context_op(struct client *c, struct proto_msg *m,
                  const struct proto_params *p, enum call_kind kind)
{
    struct context *x;
    struct call *call;

    x = context_find(p->context);
    if (x == NULL || x->owner != c) {
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL,
                           "no context %llu", (unsigned long long)p->context);
        return;
    }
    call = client_take_call(c, m, kind);
    call->context = p->context;
    call->timeout_ms = p->timeout_ms;
    host_pool_submit(x->host, call);
}

static void
client_context_run(struct client *c, struct proto_msg *m,
                   const struct proto_params *p)
{
    client_context_op(c, m, p, CALL_FORWARD);
}

static void
client_context_destroy(struct client *c, struct proto_msg *m,
                       const struct proto_params *p)
{
    client_context_op(c, m, p, CALL_CONTEXT_DESTROY);
}

static void
client_status(struct client *c, struct proto_msg *m,
              const struct proto_params *p)
{
    struct host *h = NULL;

    if (p->host_obj->type != MSGPACK_OBJECT_NIL) {
        h = client_host_or_reply(c, m, p);
        if (h == NULL)
            return;
    }
    status_request(c, m->msgid, h);
}

static void
client_restart(struct client *c, struct proto_msg *m,
               const struct proto_params *p)
{
    struct host *h = client_host_or_reply(c, m, p);

    if (h != NULL)
        host_restart(h, c, m->msgid);
}

static void
client_stop(struct client *c, struct proto_msg *m, const struct proto_params *p)
{
    struct host *h = client_host_or_reply(c, m, p);

    if (h != NULL)
        host_stop(h, c, m->msgid);
}

static void
client_shutdown(struct client *c, struct proto_msg *m,
                const struct proto_params *p)
{
    (void)p;
    client_reply_nil(c, m->msgid);
    log_info("shutdown requested by client %llu", (unsigned long long)c->id);
    manager_shutdown();
}

static void
client_ping(struct client *c, struct proto_msg *m, const struct proto_params *p)
{
    struct rpcstream_msg om;

    (void)p;
    client_reply_begin(&om, m->msgid);
    proto_pack_cstr(&om.pk, PROTO_PONG);
    client_send(c, &om);
}

/* cancel [cid]: the client's call of that msgid, if still in flight. */
static void
client_cancel(struct client *c, struct proto_msg *m,
              const struct proto_params *p)
{
    struct call *call;

    (void)m;
    TAILQ_FOREACH(call, &c->calls, centry)
    {
        if (call->cid == p->msgid && call->kind == CALL_FORWARD) {
            host_pool_cancel(call, true);
            return;
        }
    }
}

/* The workers holding this client's contexts, each with the ids of its. */
struct client_release {
    struct client *client;
    struct worker **workers;
    uint64_t **ids;
    size_t *nids;
    size_t n;
};

static void
client_release_collect(struct context *x, void *arg)
{
    struct client_release *r = arg;
    size_t i;

    if (x->owner != r->client || x->worker == NULL)
        return;
    for (i = 0; i < r->n && r->workers[i] != x->worker; i++)
        ;
    if (i == r->n) {
        r->n++;
        r->workers = xrealloc(r->workers, r->n * sizeof *r->workers);
        r->ids = xrealloc(r->ids, r->n * sizeof *r->ids);
        r->nids = xrealloc(r->nids, r->n * sizeof *r->nids);
        r->workers[i] = x->worker;
        r->ids[i] = NULL;
        r->nids[i] = 0;
    }
    r->ids[i] = xrealloc(r->ids[i], (r->nids[i] + 1) * sizeof **r->ids);
    r->ids[i][r->nids[i]++] = x->worker_context;
}

/* release [[ids]]: to every worker that holds a context of this client, as
 * [[ids], [its contexts]] (callables are only ever set in contexts). */
static void
client_release(struct client *c, struct proto_msg *m,
               const struct proto_params *p)
{
    struct client_release r = {.client = c};
    struct rpcstream_msg om;
    size_t i, k;

    (void)m;
    context_foreach(client_release_collect, &r);
    for (i = 0; i < r.n; i++) {
        rpcstream_msg_init(&om);
        proto_write_notification(&om.pk, PROTO_N_RELEASE, 2);
        msgpack_pack_object(&om.pk, *p->callbacks);
        msgpack_pack_array(&om.pk, (uint32_t)r.nids[i]);
        for (k = 0; k < r.nids[i]; k++)
            msgpack_pack_uint64(&om.pk, r.ids[i][k]);
        worker_send(r.workers[i], &om);
        free(r.ids[i]);
    }
    free(r.workers);
    free(r.ids);
    free(r.nids);
}

/* A handler may take the message over (its zone) for a call. */
typedef void (*client_method_fn)(struct client *c, struct proto_msg *m,
                                 const struct proto_params *p);

struct client_method {
    struct proto_method m; /* first: proto_method_find reads it */
    client_method_fn fn;
};

static const struct client_method client_methods[] = {
    {{PROTO_M_CALL, proto_check_call}, client_call},
    {{PROTO_M_CONTEXT_EVAL, proto_check_context_eval}, client_context_run},
    {{PROTO_M_CONTEXT_CALL, proto_check_context_call}, client_context_run},
    {{PROTO_M_CONTEXT_LOAD, proto_check_context_load}, client_context_run},
    {{PROTO_M_CONTEXT_DESTROY, proto_check_context_destroy},
     client_context_destroy},
    {{PROTO_M_CONTEXT_CREATE, proto_check_context_create},
     client_context_create},
    {{PROTO_M_HELLO, proto_check_hello}, client_hello},
    {{PROTO_M_ATTACH, proto_check_attach}, client_attach},
    {{PROTO_M_DETACH, proto_check_detach}, client_detach},
    {{PROTO_M_DIRECT, proto_check_direct}, client_direct},
    {{PROTO_M_STATUS, proto_check_status}, client_status},
    {{PROTO_M_RESTART, proto_check_restart}, client_restart},
    {{PROTO_M_STOP, proto_check_stop}, client_stop},
    {{PROTO_M_SHUTDOWN, proto_check_shutdown}, client_shutdown},
    {{PROTO_M_PING, proto_check_ping}, client_ping},
};

static const struct client_method client_notifications[] = {
    {{PROTO_N_CANCEL, proto_check_cancel}, client_cancel},
    {{PROTO_N_RELEASE, proto_check_release}, client_release},
};

/* A notification gets no answer: one that is not understood is logged. */
static void
client_notification(struct client *c, struct proto_msg *m)
{
    const struct client_method *e;
    struct proto_params p;
    enum proto_errtype type;
    char cause[PROTO_CAUSE_MAX];

    e = (const struct client_method *)proto_method_find(
        client_notifications,
        sizeof client_notifications / sizeof client_notifications[0],
        sizeof client_notifications[0], m, &p, &type, cause);
    if (e == NULL) {
        log_debug("client %llu: ignored a notification: %s",
                  (unsigned long long)c->id, cause);
        return;
    }
    e->fn(c, m, &p);
}

static void
client_request(struct client *c, struct proto_msg *m)
{
    const struct client_method *e;
    struct proto_params p;
    enum proto_errtype type;
    char cause[PROTO_CAUSE_MAX];

    e = (const struct client_method *)proto_method_find(
        client_methods, sizeof client_methods / sizeof client_methods[0],
        sizeof client_methods[0], m, &p, &type, cause);
    if (e == NULL) {
        client_reply_error(c, m->msgid, type, NULL, "%s", cause);
        return;
    }
    e->fn(c, m, &p);
}

/*
 * The fast path of docs/protocol.md's "the manager forwards, it does not
 * translate": a call or a context's eval/call/load whose routing is in order
 * goes to its worker as the bytes it came in, behind a new head, without
 * being unpacked. Anything else (a bad param, an unknown host or context)
 * takes the slow path, whose checker gives the typed error; a param the
 * manager does not route by is checked by the worker, with the same checker.
 */
static bool
client_on_raw(void *owner, const struct proto_raw *raw)
{
    static msgpack_zone zone;
    static bool zone_up;
    struct client *c = owner;
    const char *method;
    struct proto_cur cur;
    struct proto_item it;
    struct host *h = NULL;
    struct context *x = NULL;
    struct call *call;
    char name[PATH_MAX], cause[PROTO_CAUSE_MAX];
    uint32_t opts_at, tmo = 0;
    bool is_call;

    if (raw->kind == PROTO_RESPONSE) {
        /* The answer to a reverse call: to its worker, as it came. */
        if (!c->closed)
            invoke_answer(c, raw);
        return true;
    }
    if (raw->kind != PROTO_REQUEST || c->closed || raw->nparams < 2)
        return false;
    method = client_forwarded_name(raw->method, raw->method_len);
    if (method == NULL || method == client_forwarded[FWD_CONTEXT_DESTROY] ||
        method == client_forwarded[FWD_CONTEXT_CREATE])
        return false;
    is_call = method == client_forwarded[FWD_CALL];
    /* Where the options sit: params[3] (call, eval, call), params[2] (load). */
    opts_at = method == client_forwarded[FWD_CONTEXT_LOAD] ? 2 : 3;
    if (raw->nparams > opts_at + 1 || raw->nparams > PROTO_RAW_PARAMS)
        return false;
    proto_cur_init(&cur, raw->bytes + raw->param_at[0],
                   raw->size - raw->param_at[0]);
    if (proto_cur_next(&cur, &it) != 0)
        return false;
    if (is_call) {
        if (it.type != PROTO_T_STR || it.len >= sizeof name ||
            memchr(it.ptr, '\0', it.len) != NULL)
            return false;
        memcpy(name, it.ptr, it.len);
        name[it.len] = '\0';
        if ((h = host_find(name)) == NULL)
            return false;
    } else {
        if (it.type != PROTO_T_UINT)
            return false;
        x = context_find(it.v.u);
        if (x == NULL || x->owner != c)
            return false;
        h = x->host;
    }
    if (raw->nparams == opts_at + 1) {
        /* The options are the last param: the one timeout reader reads
         * them, unpacked on their own (a few bytes). */
        msgpack_object opts;
        size_t off = 0, at = raw->param_at[opts_at];
        int rc;

        if (!zone_up) {
            msgpack_zone_init(&zone, 1024);
            zone_up = true;
        }
        rc =
            msgpack_unpack(raw->bytes + at, raw->size - at, &off, &zone, &opts);
        rc = rc == MSGPACK_UNPACK_SUCCESS
                 ? proto_check_timeout(&opts, opts_at, &tmo, cause)
                 : -EINVAL;
        msgpack_zone_clear(&zone);
        if (rc != 0)
            return false;
    }
    call = call_new(CALL_FORWARD, c, raw->msgid);
    call->method = method;
    call->params = raw->bytes + raw->params_at;
    call->params_len = raw->size - raw->params_at;
    call->rest_at = raw->param_at[1] - raw->params_at;
    call->nparams = raw->nparams;
    call->timeout_ms = tmo;
    if (x != NULL)
        call->context = x->id;
    host_pool_submit(h, call);
    return true;
}

static void
client_on_msg(void *owner, struct proto_msg *m)
{
    struct client *c = owner;

    if (m->kind == PROTO_REQUEST && !c->closed)
        client_request(c, m);
    else if (m->kind == PROTO_NOTIFICATION && !c->closed)
        client_notification(c, m);
    if (m->zone != NULL)
        proto_msg_release(m);
}

static void
client_on_end(void *owner, int err, const char *cause)
{
    struct client *c = owner;

    if (err != 0 && err != UV_ECONNRESET && err != UV_EPIPE)
        log_info("client %llu: %s", (unsigned long long)c->id, cause);
    client_close(c);
}

static void
client_on_closed(void *owner)
{
    struct client *c = owner;

    c->stream = NULL;
    client_unref(c);
}

/* Contexts die with their connection; a worker still alive is told so. */
static void
client_drop_context(struct context *x, void *arg)
{
    struct call *d;

    if (x->owner != arg)
        return;
    if (!x->host->is_private && x->worker != NULL &&
        (x->worker->state == WORKER_READY ||
         x->worker->state == WORKER_DRAINING)) {
        d = call_new(CALL_IGNORE, NULL, 0);
        d->host = x->host;
        worker_request(x->worker, d, PROTO_M_CONTEXT_DESTROY,
                       x->worker_context);
    }
    context_free(x);
}

void
client_close(struct client *c)
{
    struct host *h, *next;
    struct call *call;

    if (c->closed)
        return;
    c->closed = true;
    TAILQ_REMOVE(&mgr.clients, c, entry);
    mgr.nclients--;
    /* What it asked is of no use now: queued calls go, running ones are
     * cancelled on their workers (their answers are dropped). */
    while ((call = TAILQ_FIRST(&c->calls)) != NULL) {
        TAILQ_REMOVE(&c->calls, call, centry);
        call->in_client = false;
        host_pool_cancel(call, false);
    }
    invoke_client_closed(c);
    while (c->nheld > 0)
        host_detach(c->held[c->nheld - 1], c, true);
    context_foreach(client_drop_context, c);
    for (h = TAILQ_FIRST(&mgr.hosts); h != NULL; h = next) {
        next = TAILQ_NEXT(h, entry);
        if (h->is_private && h->owner == c)
            host_stop_now(h);
    }
    rpcstream_close_flushed(c->stream);
    mgr.trim_due = true;
    manager_check_idle();
}

unsigned
client_private_vms(const struct client *c)
{
    const struct host *h;
    unsigned n = 0;

    /* One that is stopping is on its way out: it makes room already. */
    TAILQ_FOREACH(h, &mgr.hosts, entry)
    if (h->is_private && !h->dropped && h->state != HOST_STOPPING &&
        h->state != HOST_STOPPED && (c == NULL || h->owner == c))
        n++;
    return n;
}

struct client *
client_accept(uv_stream_t *server)
{
    static const struct rpcstream_cbs cbs = {
        .on_raw = client_on_raw,
        .on_msg = client_on_msg,
        .on_end = client_on_end,
        .on_closed = client_on_closed,
    };
    struct client *c = xcalloc(1, sizeof *c);
    char *cause = NULL;
    int fd;

    if (rpcstream_new(mgr.loop, mgr.max_message, &cbs, c, &c->stream) != 0) {
        free(c);
        return NULL;
    }
    c->refs = 1; /* the socket's */
    c->id = ++mgr.next_client_id;
    TAILQ_INIT(&c->calls);
    /* Reading resumes once the backlog falls under a quarter of the mark. */
    rpcstream_set_backlog(c->stream, CLIENT_BACKLOG_HIGH,
                          CLIENT_BACKLOG_HIGH / 4);
    if (rpcstream_accept(c->stream, server) != 0) {
        c->closed = true;
        rpcstream_close(c->stream);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&mgr.clients, c, entry);
    mgr.nclients++;
    manager_check_idle();
    if (rpcstream_fileno(c->stream, &fd) != 0 ||
        unixsock_check_peer(fd, &c->uid, &c->pid, &cause) != 0) {
        log_warn("refused a connection: %s", cause ? cause : "no peer");
        rpcstream_refuse(c->stream, cause ? cause : "peer unknown");
        free(cause);
        client_close(c);
        return NULL;
    }
    if (mgr.nclients > mgr.max_clients) {
        char why[128];

        snprintf(why, sizeof why,
                 "too many connections: %llu are open (the limit)",
                 (unsigned long long)mgr.max_clients);
        log_warn("refused a connection: %s", why);
        rpcstream_refuse(c->stream, why);
        client_close(c);
        return NULL;
    }
    /* What a peer may hold in an unfinished message is bounded
     * (rpcstream_set_partial_limits). */
    rpcstream_limit_partial(c->stream);
    rpcstream_start(c->stream);
    return c;
}
