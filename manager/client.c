/*
 * Client connections: every request is validated before dispatch (a typed
 * error for bad params or an unknown method), call and context.* go to a host,
 * and closing a connection for any reason releases what it held: hosts, its
 * contexts, its private VMs. A connection is freed only when its socket is
 * closed and nothing refers to it any more (calls in flight, waiters).
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

/* A NUL-terminated copy of a str param (they are not terminated in msgs). */
static int
client_param_cstr(const struct proto_msg *m, uint32_t i, const char *what,
                  char *buf, size_t len, char *cause)
{
    const char *s;
    size_t n;
    int rc = proto_param_str(m, i, what, &s, &n, cause);

    if (rc != 0)
        return rc;
    if (n >= len || memchr(s, '\0', n) != NULL) {
        snprintf(cause, PROTO_CAUSE_MAX, "params[%u] (%s): too long or not "
                 "a path", i, what);
        return -EINVAL;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static void
client_hello(struct client *c, struct proto_msg *m, char *cause)
{
    const msgpack_object *opts;
    uint64_t proto = 0;
    struct rpcstream_msg om;

    if (proto_params_count(m, 0, 1, cause) != 0 ||
        proto_param_map(m, 0, "hello", &opts, cause) != 0 ||
        proto_opt_uint(opts, "protocol", &proto, cause) < 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    if (proto != 0 && proto != PROTO_VERSION) {
        client_reply_error(c, m->msgid, PROTO_ERR_PROTOCOL, NULL,
                           "protocol %llu is not spoken here (the manager "
                           "speaks %d)",
                           (unsigned long long)proto, PROTO_VERSION);
        return;
    }
    client_reply_begin(&om, m->msgid);
    msgpack_pack_map(&om.pk, 3);
    pack_cstr(&om.pk, "server");
    pack_cstr(&om.pk, JSHOST_VERSION);
    pack_cstr(&om.pk, "protocol");
    msgpack_pack_int(&om.pk, PROTO_VERSION);
    pack_cstr(&om.pk, "pid");
    msgpack_pack_int(&om.pk, (int)getpid());
    client_send(c, &om);
}

static void
client_attach(struct client *c, struct proto_msg *m, char *cause)
{
    char path[PATH_MAX], real[PATH_MAX], *why = NULL;
    struct host *h;
    int rc;

    if (proto_params_count(m, 1, 2, cause) != 0 ||
        client_param_cstr(m, 0, "config_path", path, sizeof path, cause) !=
            0) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    if (realpath(path, real) == NULL) {
        client_reply_error(c, m->msgid, PROTO_ERR_CONFIG, NULL,
                           "config file %s: %s", path, strerror(errno));
        return;
    }
    rc = host_get(real, &h, &why);
    if (rc != 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_HOST_UNAVAILABLE, NULL,
                           "%s", why);
        free(why);
        return;
    }
    host_attach(h, c, m->msgid);
}

/* A host named by id or config path (real path taken when it is a file). */
static struct host *
client_find_host(const struct proto_msg *m, uint32_t i, char *cause)
{
    char name[PATH_MAX], real[PATH_MAX];
    struct host *h;

    if (client_param_cstr(m, i, "host", name, sizeof name, cause) != 0)
        return NULL;
    h = host_find(name);
    if (h == NULL && realpath(name, real) != NULL)
        h = host_find(real);
    if (h == NULL)
        snprintf(cause, PROTO_CAUSE_MAX, "no host %.200s (attach first)",
                 name);
    return h;
}

static void
client_detach(struct client *c, struct proto_msg *m, char *cause)
{
    struct host *h;
    struct rpcstream_msg om;
    uint64_t linger;

    if (proto_params_count(m, 1, 1, cause) != 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    h = client_find_host(m, 0, cause);
    if (h == NULL || !client_holds(c, h)) {
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL, "%s",
                           h == NULL ? cause
                                     : "this connection does not hold that "
                                       "host");
        return;
    }
    linger = h->nholders == 1 ? h->linger_ms : 0;
    host_detach(h, c);
    client_reply_begin(&om, m->msgid);
    msgpack_pack_map(&om.pk, 1);
    pack_cstr(&om.pk, "linger_ms");
    msgpack_pack_uint64(&om.pk, linger);
    client_send(c, &om);
}

static struct call *
client_take_call(struct client *c, struct proto_msg *m, enum call_kind kind)
{
    struct call *call = call_new(kind, c, m->msgid);

    call->msg = *m;
    call->has_msg = true;
    m->zone = NULL; /* the call owns it now */
    return call;
}

static int
client_timeout_opt(const struct proto_msg *m, uint32_t i, uint64_t *tmo,
                   char *cause)
{
    const msgpack_object *opts;

    *tmo = 0;
    if (proto_param_map(m, i, "options", &opts, cause) != 0)
        return -EINVAL;
    if (proto_opt_uint(opts, "timeout_ms", tmo, cause) < 0)
        return -EINVAL;
    return 0;
}

static void
client_call(struct client *c, struct proto_msg *m, char *cause)
{
    const char *fn;
    size_t fnlen;
    uint64_t tmo;
    struct host *h;
    struct call *call;

    if (proto_params_count(m, 3, 4, cause) != 0 ||
        proto_param_str(m, 1, "function", &fn, &fnlen, cause) != 0 ||
        client_timeout_opt(m, 3, &tmo, cause) != 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    h = client_find_host(m, 0, cause);
    if (h == NULL) {
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL, "%s",
                           cause);
        return;
    }
    call = client_take_call(c, m, CALL_FORWARD);
    call->timeout_ms = tmo;
    host_submit(h, call);
}

static void
client_ctx_create(struct client *c, struct proto_msg *m, char *cause)
{
    const msgpack_object *host, *opts, *o;
    uint64_t mem = 0, tmo = 0, vm = 0;
    struct host *h;
    struct mctx *x;
    char *cwd = NULL;

    if (proto_params_count(m, 1, 2, cause) != 0 ||
        proto_param_any(m, 0, &host, cause) != 0 ||
        proto_param_map(m, 1, "options", &opts, cause) != 0 ||
        proto_opt_uint(opts, "memory", &mem, cause) < 0 ||
        proto_opt_uint(opts, "timeout_ms", &tmo, cause) < 0 ||
        proto_opt_uint(opts, "vm", &vm, cause) < 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    if (host->type == MSGPACK_OBJECT_NIL && vm != 0) {
        /* Another context on the private VM of an existing context. */
        x = ctx_find(vm);
        if (x == NULL || x->owner != c || !x->host->is_private ||
            x->worker == NULL) {
            client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL,
                               "no private VM context %llu (or its worker is gone)",
                               (unsigned long long)vm);
            return;
        }
        h = x->host;
    } else if (host->type == MSGPACK_OBJECT_NIL) {
        o = proto_map_get(opts, "cwd");
        if (o != NULL && o->type == MSGPACK_OBJECT_STR)
            cwd = proto_obj_strdup(o);
        h = host_new_private(c, mem, tmo, cwd);
        free(cwd);
    } else {
        h = client_find_host(m, 0, cause);
        if (h == NULL) {
            client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL, "%s",
                               cause);
            return;
        }
    }
    host_submit(h, client_take_call(c, m, CALL_CTX_CREATE));
}

static void
client_ctx_op(struct client *c, struct proto_msg *m, char *cause,
              uint32_t min, uint32_t max, enum call_kind kind)
{
    uint64_t id;
    struct mctx *x;
    struct call *call;
    uint64_t tmo = 0;

    if (proto_params_count(m, min, max, cause) != 0 ||
        proto_param_uint(m, 0, "context", &id, cause) != 0 ||
        (max == 4 && client_timeout_opt(m, 3, &tmo, cause) != 0)) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    x = ctx_find(id);
    if (x == NULL || x->owner != c) {
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL,
                           "no context %llu", (unsigned long long)id);
        return;
    }
    call = client_take_call(c, m, kind);
    call->ctx = id;
    call->timeout_ms = tmo;
    host_submit(x->host, call);
}

static void
client_status(struct client *c, struct proto_msg *m, char *cause)
{
    const msgpack_object *o;
    struct host *h = NULL;

    if (proto_params_count(m, 0, 1, cause) != 0 ||
        proto_param_any(m, 0, &o, cause) != 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    if (o->type != MSGPACK_OBJECT_NIL) {
        h = client_find_host(m, 0, cause);
        if (h == NULL) {
            client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL, "%s",
                               cause);
            return;
        }
    }
    status_request(c, m->msgid, h);
}

static void
client_lifecycle(struct client *c, struct proto_msg *m, char *cause,
                 bool restart)
{
    struct host *h;

    if (proto_params_count(m, 1, 1, cause) != 0) {
        client_reply_error(c, m->msgid, PROTO_ERR_INVALID_ARGUMENT, NULL, "%s",
                           cause);
        return;
    }
    h = client_find_host(m, 0, cause);
    if (h == NULL) {
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL, "%s",
                           cause);
        return;
    }
    if (restart)
        host_restart(h, c, m->msgid);
    else
        host_stop(h, c, m->msgid);
}

static void
client_request(struct client *c, struct proto_msg *m)
{
    char cause[PROTO_CAUSE_MAX] = "";
    struct rpcstream_msg om;

    if (proto_msg_is(m, "call"))
        client_call(c, m, cause);
    else if (proto_msg_is(m, "context.eval") ||
             proto_msg_is(m, "context.call"))
        client_ctx_op(c, m, cause, 3, 4, CALL_FORWARD);
    else if (proto_msg_is(m, "context.load"))
        client_ctx_op(c, m, cause, 2, 3, CALL_FORWARD);
    else if (proto_msg_is(m, "context.destroy"))
        client_ctx_op(c, m, cause, 1, 1, CALL_CTX_DESTROY);
    else if (proto_msg_is(m, "context.create"))
        client_ctx_create(c, m, cause);
    else if (proto_msg_is(m, "hello"))
        client_hello(c, m, cause);
    else if (proto_msg_is(m, "attach"))
        client_attach(c, m, cause);
    else if (proto_msg_is(m, "detach"))
        client_detach(c, m, cause);
    else if (proto_msg_is(m, "status"))
        client_status(c, m, cause);
    else if (proto_msg_is(m, "restart"))
        client_lifecycle(c, m, cause, true);
    else if (proto_msg_is(m, "stop"))
        client_lifecycle(c, m, cause, false);
    else if (proto_msg_is(m, "shutdown")) {
        client_reply_nil(c, m->msgid);
        log_info("shutdown requested by client %llu",
                 (unsigned long long)c->id);
        manager_shutdown();
    } else if (proto_msg_is(m, "ping")) {
        client_reply_begin(&om, m->msgid);
        pack_cstr(&om.pk, "pong");
        client_send(c, &om);
    } else
        client_reply_error(c, m->msgid, PROTO_ERR_NOT_FOUND, NULL,
                           "unknown method '%.*s'", (int)m->method_len,
                           m->method);
}

static void
client_on_msg(void *owner, struct proto_msg *m)
{
    struct client *c = owner;

    if (m->kind == PROTO_REQUEST && !c->closed)
        client_request(c, m);
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
client_drop_ctx(struct mctx *x, void *arg)
{
    struct call *d;

    if (x->owner != arg)
        return;
    if (!x->host->is_private && x->worker != NULL &&
        (x->worker->state == WORKER_READY ||
         x->worker->state == WORKER_DRAINING)) {
        d = call_new(CALL_IGNORE, NULL, 0);
        d->host = x->host;
        worker_request(x->worker, d, "context.destroy", x->wctx);
    }
    ctx_free(x);
}

void
client_close(struct client *c)
{
    struct host *h, *next;

    if (c->closed)
        return;
    c->closed = true;
    TAILQ_REMOVE(&mgr.clients, c, entry);
    mgr.nclients--;
    while (c->nheld > 0)
        host_detach(c->held[c->nheld - 1], c);
    ctx_foreach(client_drop_ctx, c);
    for (h = TAILQ_FIRST(&mgr.hosts); h != NULL; h = next) {
        next = TAILQ_NEXT(h, entry);
        if (h->is_private && h->owner == c)
            host_stop_now(h);
    }
    rpcstream_close_flushed(c->stream);
    manager_check_idle();
}

struct client *
client_accept(uv_stream_t *server)
{
    static const struct rpcstream_cbs cbs = {
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
        server_check_peer(fd, &c->uid, &c->pid, &cause) != 0) {
        log_warn("refused a connection: %s", cause ? cause : "no peer");
        rpcstream_refuse(c->stream, cause ? cause : "peer unknown");
        free(cause);
        client_close(c);
        return NULL;
    }
    rpcstream_start(c->stream);
    return c;
}
