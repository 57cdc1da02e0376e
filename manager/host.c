/*
 * Hosts (DESIGN §6): one per config real path, a pool of workers, the
 * connections holding it, the linger timer after the last one leaves, crash
 * accounting with backoff and quarantine, restart (new workers ready first, then
 * the old ones drain) and stop. Private VMs are hosts of their own with no
 * config, owned by one connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostid.h"
#include "jshost_defs.h"
#include "log.h"
#include "manager.h"
#include "xmalloc.h"

#define HOST_CRASH_WINDOW_MS 30000
#define HOST_BACKOFF_STEP_MS 100
#define HOST_BACKOFF_MAX_MS 5000
#define HOST_MAX_WORKERS 64

static void host_begin_stop(struct host *h);
static void host_answer_waiters(struct host *h, unsigned kinds,
                                enum proto_errtype type, const char *msg);
static void host_fail_queue(struct host *h, enum proto_errtype type,
                            const char *msg);
static void host_drop(struct host *h);
static void host_fill(struct host *h);
static void host_dispatch(struct host *h);

const char *
host_state_name(enum host_state s)
{
    switch (s) {
    case HOST_STARTING:
        return "starting";
    case HOST_READY:
        return "ready";
    case HOST_STOPPING:
        return "stopping";
    case HOST_STOPPED:
        return "stopped";
    case HOST_QUARANTINED:
        return "quarantined";
    }
    return "unknown";
}

void
host_log(struct host *h, pid_t pid, const char *fmt, ...)
{
    char ts[64], msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_timestamp(ts, sizeof ts);
    if (pid == 0) {
        if (h->logfd >= 0 && !h->is_private)
            dprintf(h->logfd, "%s jshost-manager[%d]: host %s: %s\n", ts,
                    (int)getpid(), h->id, msg);
        log_info("host %s: %s", h->id, msg);
        return;
    }
    if (h->logfd >= 0 && !h->is_private)
        dprintf(h->logfd, "%s jshost-manager[%d]: worker %d: %s\n", ts,
                (int)getpid(), (int)pid, msg);
    log_info("host %s: worker %d: %s", h->id, (int)pid, msg);
}

struct host *
host_find(const char *s)
{
    struct host *h;

    TAILQ_FOREACH(h, &mgr.hosts, entry) {
        if (h->is_private)
            continue;
        if (strcmp(h->id, s) == 0 || strcmp(h->config, s) == 0)
            return h;
    }
    return NULL;
}

static void
host_timer_closed_cb(uv_handle_t *handle)
{
    struct host *h = handle->data;

    if (--h->handles > 0)
        return;
    free(h->holders);
    free(h->config);
    free(h->logfile);
    free(h->priv_cwd);
    free(h->ready_blob);
    free(h->last_crash);
    free(h);
}

static void
host_forget_ctx(struct mctx *x, void *arg)
{
    if (x->host == arg)
        ctx_free(x);
}

static void
host_free(struct host *h)
{
    if (h->freeing)
        return;
    h->freeing = true;
    /* Nobody is left waiting on a host that is gone. */
    host_answer_waiters(h, ~0u, PROTO_ERR_HOST_UNAVAILABLE, "host stopped");
    host_fail_queue(h, PROTO_ERR_HOST_UNAVAILABLE, "host stopped");
    ctx_foreach(host_forget_ctx, h);
    if (h->logfd >= 0 && !h->is_private)
        close(h->logfd);
    h->logfd = -1;
    uv_close((uv_handle_t *)&h->linger_timer, host_timer_closed_cb);
    uv_close((uv_handle_t *)&h->respawn_timer, host_timer_closed_cb);
}

static struct host *
host_alloc(void)
{
    struct host *h = xcalloc(1, sizeof *h);

    TAILQ_INIT(&h->workers);
    TAILQ_INIT(&h->waiters);
    TAILQ_INIT(&h->queue);
    h->logfd = -1;
    h->generation = 1;
    h->nworkers = JSHOST_DEFAULT_WORKERS;
    h->linger_ms = JSHOST_DEFAULT_LINGER_MS;
    h->timeout_ms = JSHOST_DEFAULT_TIMEOUT_MS;
    h->memory_mb = JSHOST_DEFAULT_MEMORY_MB;
    h->created_ms = manager_now();
    uv_timer_init(mgr.loop, &h->linger_timer);
    uv_timer_init(mgr.loop, &h->respawn_timer);
    h->linger_timer.data = h;
    h->respawn_timer.data = h;
    h->handles = 2;
    return h;
}

int
host_get(const char *realpath, struct host **out, char **cause)
{
    struct host *h = host_find(realpath);
    char path[512];

    if (h != NULL) {
        *out = h;
        return 0;
    }
    h = host_alloc();
    /* id and log path as `jshost logs` computes them (common/hostid.c) */
    hostid_make(realpath, h->id);
    h->config = xstrdup(realpath);
    if (hostid_logfile(path, sizeof path, mgr.rundir, realpath) != 0) {
        *cause = xasprintf("log path for host %s too long", h->id);
        h->dropped = true;
        host_free(h);
        return -ENAMETOOLONG;
    }
    h->logfile = xstrdup(path);
    h->logfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (h->logfd < 0) {
        int err = errno;

        *cause = xasprintf("cannot open %s: %s", path, strerror(err));
        h->dropped = true;
        host_free(h);
        return -err;
    }
    h->state = HOST_STARTING;
    TAILQ_INSERT_TAIL(&mgr.hosts, h, entry);
    host_log(h, 0, "new host for %s", h->config);
    host_fill(h);
    *out = h;
    return 0;
}

struct host *
host_new_private(struct client *owner, uint64_t memory_mb,
                 uint64_t timeout_ms, const char *cwd)
{
    static unsigned long next_vm = 1;
    struct host *h = host_alloc();
    struct worker *w;
    char *cause = NULL;

    snprintf(h->id, sizeof h->id, "vm-%lu", next_vm++);
    h->is_private = true;
    h->owner = owner;
    h->priv_memory_mb = memory_mb;
    h->priv_timeout_ms = timeout_ms;
    if (timeout_ms != 0)
        h->timeout_ms = timeout_ms;
    h->priv_cwd = cwd != NULL ? xstrdup(cwd) : NULL;
    h->logfd = log_fd();
    h->logfile = xstrdup(mgr.logpath);
    h->configured = true;
    TAILQ_INSERT_TAIL(&mgr.hosts, h, entry);
    w = worker_spawn(h, &cause);
    if (w == NULL) {
        log_error("private VM: %s", cause);
        free(cause);
        h->state = HOST_QUARANTINED;
        h->last_crash = xstrdup("its worker could not be started");
        return h;
    }
    /* A VM has no config to load: requests wait in its socket meanwhile. */
    w->state = WORKER_READY;
    h->state = HOST_READY;
    return h;
}

static void
host_forget_holders(struct host *h)
{
    size_t i;

    for (i = 0; i < h->nholders; i++)
        client_forget_host(h->holders[i], h);
    h->nholders = 0;
}

/* Out of the host list; freed once its last worker is gone. */
static void
host_drop(struct host *h)
{
    if (h->dropped)
        return;
    h->dropped = true;
    host_forget_holders(h);
    uv_timer_stop(&h->linger_timer);
    uv_timer_stop(&h->respawn_timer);
    TAILQ_REMOVE(&mgr.hosts, h, entry);
    if (h->nlive == 0)
        host_free(h);
    manager_check_idle();
}

static void
host_fail_call(struct call *c, enum proto_errtype type, const char *msg)
{
    struct host *h = c->host;

    if (c->client != NULL)
        client_reply_error(c->client, c->cid, type,
                           h != NULL ? h->logfile : NULL, "%s", msg);
    host__call_done(c);
    call_free(c);
}

static void
host_fail_queue(struct host *h, enum proto_errtype type, const char *msg)
{
    struct call *c;

    while ((c = TAILQ_FIRST(&h->queue)) != NULL) {
        TAILQ_REMOVE(&h->queue, c, qentry);
        host_fail_call(c, type, msg);
    }
}

static void
host_reply_attach(struct host *h, struct client *c, uint32_t msgid)
{
    struct rpcstream_msg om;

    client_reply_begin(&om, msgid);
    msgpack_pack_map(&om.pk, 6);
    pack_cstr(&om.pk, "host");
    pack_cstr(&om.pk, h->id);
    pack_cstr(&om.pk, "config");
    pack_cstr(&om.pk, h->config);
    pack_cstr(&om.pk, "functions");
    if (h->ready_blob != NULL)
        msgpack_sbuffer_write(&om.sb, h->ready_blob, h->ready_functions_len);
    else
        msgpack_pack_array(&om.pk, 0);
    pack_cstr(&om.pk, "workers");
    msgpack_pack_uint32(&om.pk, h->nworkers);
    pack_cstr(&om.pk, "logfile");
    pack_cstr(&om.pk, h->logfile);
    pack_cstr(&om.pk, "extras");
    if (h->ready_blob != NULL)
        msgpack_sbuffer_write(&om.sb, h->ready_blob + h->ready_functions_len,
                              h->ready_blob_len - h->ready_functions_len);
    else
        msgpack_pack_map(&om.pk, 0);
    client_send(c, &om);
}

static void
host_reply_status(struct host *h, struct client *c, uint32_t msgid)
{
    struct rpcstream_msg om;

    client_reply_begin(&om, msgid);
    status_pack_host(&om.pk, h);
    client_send(c, &om);
}

/*
 * Answers the waiters of the given kinds (a mask of 1 << kind): with the
 * attach result / host status, or with an error when type is not NONE.
 */
static void
host_answer_waiters(struct host *h, unsigned kinds, enum proto_errtype type,
                    const char *msg)
{
    struct waiter *wt, *next;

    for (wt = TAILQ_FIRST(&h->waiters); wt != NULL; wt = next) {
        next = TAILQ_NEXT(wt, entry);
        if (!(kinds & (1u << wt->kind)))
            continue;
        TAILQ_REMOVE(&h->waiters, wt, entry);
        if (!wt->client->closed) {
            if (type != PROTO_ERR_NONE)
                client_reply_error(wt->client, wt->msgid, type, h->logfile,
                                   "%s", msg);
            else if (wt->kind == WAIT_ATTACH)
                host_reply_attach(h, wt->client, wt->msgid);
            else
                host_reply_status(h, wt->client, wt->msgid);
        }
        client_unref(wt->client);
        free(wt);
    }
}

static void
host_add_waiter(struct host *h, struct client *c, uint32_t msgid, int kind)
{
    struct waiter *wt = xcalloc(1, sizeof *wt);

    wt->client = c;
    client_ref(c);
    wt->msgid = msgid;
    wt->kind = kind;
    TAILQ_INSERT_TAIL(&h->waiters, wt, entry);
}

static bool
host_holds(struct host *h, struct client *c)
{
    size_t i;

    for (i = 0; i < h->nholders; i++)
        if (h->holders[i] == c)
            return true;
    return false;
}

static void
host_add_holder(struct host *h, struct client *c)
{
    if (host_holds(h, c))
        return;
    h->holders = xrealloc(h->holders, (h->nholders + 1) * sizeof *h->holders);
    h->holders[h->nholders++] = c;
    c->held = xrealloc(c->held, (c->nheld + 1) * sizeof *c->held);
    c->held[c->nheld++] = h;
    if (h->lingering) {
        h->lingering = false;
        uv_timer_stop(&h->linger_timer);
        host_log(h, 0, "linger cancelled: attached again");
    }
}

static void
host_linger_cb(uv_timer_t *t)
{
    struct host *h = t->data;

    h->lingering = false;
    host_log(h, 0, "linger of %llu ms expired: stopping",
             (unsigned long long)h->linger_ms);
    host_stop_now(h);
}

void
host_detach(struct host *h, struct client *c)
{
    size_t i;

    for (i = 0; i < h->nholders; i++) {
        if (h->holders[i] == c) {
            h->holders[i] = h->holders[--h->nholders];
            break;
        }
    }
    client_forget_host(c, h);
    if (h->nholders > 0 || h->dropped)
        return;
    if (h->state == HOST_STOPPED || h->state == HOST_QUARANTINED) {
        host_begin_stop(h);
        return;
    }
    if (h->state == HOST_STOPPING)
        return;
    h->lingering = true;
    h->linger_deadline = manager_now() + h->linger_ms;
    uv_timer_start(&h->linger_timer, host_linger_cb, h->linger_ms, 0);
    host_log(h, 0, "last holder left: lingering %llu ms",
             (unsigned long long)h->linger_ms);
}

void
host_attach(struct host *h, struct client *c, uint32_t msgid)
{
    char msg[512];

    if (h->state == HOST_QUARANTINED) {
        snprintf(msg, sizeof msg,
                 "host %s (%s) is quarantined after repeated crashes (%s); "
                 "restart it",
                 h->id, h->config, h->last_crash ? h->last_crash : "?");
        client_reply_error(c, msgid, PROTO_ERR_HOST_UNAVAILABLE, h->logfile,
                           "%s", msg);
        return;
    }
    if (h->state == HOST_STOPPING) {
        client_reply_error(c, msgid, PROTO_ERR_HOST_UNAVAILABLE, h->logfile,
                           "host %s (%s) is stopping; attach again later",
                           h->id, h->config);
        return;
    }
    if (h->state == HOST_STOPPED) {
        h->state = HOST_STARTING;
        h->configured = false;
        h->generation++;
        host_log(h, 0, "attached again: starting");
        host_fill(h);
    }
    host_add_holder(h, c);
    if (h->state == HOST_READY)
        host_reply_attach(h, c, msgid);
    else
        host_add_waiter(h, c, msgid, WAIT_ATTACH);
}

/* Workers of the current generation that are or will be serving. */
static unsigned
host_live(struct host *h)
{
    struct worker *w;
    unsigned n = 0;

    TAILQ_FOREACH(w, &h->workers, entry)
    if (w->gen == h->generation &&
        (w->state == WORKER_STARTING || w->state == WORKER_READY))
        n++;
    return n;
}

static unsigned
host_crashes_recent(struct host *h)
{
    uint64_t now = manager_now();
    unsigned i, n = 0;

    for (i = 0; i < h->ncrashes && i < HOST_CRASH_WINDOW; i++)
        if (now - h->crashes[i] <= HOST_CRASH_WINDOW_MS)
            n++;
    return n;
}

static void
host_quarantine(struct host *h)
{
    struct worker *w;
    char msg[512];

    h->state = HOST_QUARANTINED;
    h->restarting = false;
    uv_timer_stop(&h->respawn_timer);
    host_log(h, 0, "quarantined after %u crashes in %d s (last: %s)",
             host_crashes_recent(h), HOST_CRASH_WINDOW_MS / 1000,
             h->last_crash ? h->last_crash : "?");
    TAILQ_FOREACH(w, &h->workers, entry)
    worker_stop(w);
    snprintf(msg, sizeof msg,
             "host %s (%s) is quarantined after repeated crashes (%s); "
             "restart it",
             h->id, h->config ? h->config : "private VM",
             h->last_crash ? h->last_crash : "?");
    host_fail_queue(h, PROTO_ERR_HOST_UNAVAILABLE, msg);
    host_answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                        PROTO_ERR_HOST_UNAVAILABLE, msg);
    if (h->nholders == 0)
        host_begin_stop(h);
}

static void
host_respawn_cb(uv_timer_t *t)
{
    host_fill(t->data);
}

/* Brings the current generation up to its pool size. */
static void
host_fill(struct host *h)
{
    char *cause = NULL;
    struct worker *w;

    if (h->is_private || h->dropped ||
        (h->state != HOST_STARTING && h->state != HOST_READY))
        return;
    while (host_live(h) < h->nworkers) {
        w = worker_spawn(h, &cause);
        if (w == NULL) {
            host_log(h, 0, "%s", cause);
            free(h->last_crash);
            h->last_crash = cause;
            cause = NULL;
            h->crashes[h->ncrashes++ % HOST_CRASH_WINDOW] = manager_now();
            h->total_crashes++;
            if (host_crashes_recent(h) >= HOST_CRASH_WINDOW)
                host_quarantine(h);
            else
                uv_timer_start(&h->respawn_timer, host_respawn_cb,
                               HOST_BACKOFF_STEP_MS * host_crashes_recent(h),
                               0);
            return;
        }
    }
}

/*
 * The ready worker with the fewest calls in flight. While a restart brings
 * the new generation up, the old one serves until the switch.
 */
static struct worker *
host_pick(struct host *h)
{
    struct worker *w, *best = NULL, *old = NULL;

    TAILQ_FOREACH(w, &h->workers, entry) {
        if (w->state != WORKER_READY)
            continue;
        if (best == NULL || w->inflight < best->inflight)
            best = w;
        if (w->gen != h->generation &&
            (old == NULL || w->inflight < old->inflight))
            old = w;
    }
    return h->restarting && old != NULL ? old : best;
}

static void
host_dispatch(struct host *h)
{
    struct call *c;
    struct worker *w;

    while ((c = TAILQ_FIRST(&h->queue)) != NULL && (w = host_pick(h)) != NULL) {
        TAILQ_REMOVE(&h->queue, c, qentry);
        worker_forward(w, c);
    }
}

void
host_submit(struct host *h, struct call *c)
{
    struct mctx *x;
    char msg[512];

    c->host = h;
    if (h->dropped) {
        /* A private VM whose worker died, or a host stopped under us. */
        snprintf(msg, sizeof msg, "host %s is gone", h->id);
        host_fail_call(c, PROTO_ERR_HOST_UNAVAILABLE, msg);
        return;
    }
    if (h->state == HOST_QUARANTINED) {
        snprintf(msg, sizeof msg,
                 "host %s is quarantined after repeated crashes (%s); "
                 "restart it",
                 h->id, h->last_crash ? h->last_crash : "?");
        host_fail_call(c, PROTO_ERR_HOST_UNAVAILABLE, msg);
        return;
    }
    if (h->state == HOST_STOPPING || h->state == HOST_STOPPED) {
        snprintf(msg, sizeof msg, "host %s is %s; attach again", h->id,
                 host_state_name(h->state));
        host_fail_call(c, PROTO_ERR_HOST_UNAVAILABLE, msg);
        return;
    }
    if (c->client->inflight >= mgr.max_client_inflight) {
        snprintf(msg, sizeof msg,
                 "this connection has %u calls in flight (the limit)",
                 c->client->inflight);
        host_fail_call(c, PROTO_ERR_OVERLOADED, msg);
        return;
    }
    if (h->inflight >= mgr.max_host_inflight) {
        snprintf(msg, sizeof msg,
                 "host %s has %u calls in flight or queued (the limit)",
                 h->id, h->inflight);
        host_fail_call(c, PROTO_ERR_OVERLOADED, msg);
        return;
    }
    c->counted = true;
    h->inflight++;
    c->client->inflight++;
    if (c->ctx != 0 && c->kind != CALL_CTX_CREATE) {
        x = ctx_find(c->ctx);
        if (x == NULL || x->worker == NULL ||
            (x->worker->state != WORKER_READY &&
             x->worker->state != WORKER_DRAINING)) {
            snprintf(msg, sizeof msg,
                     "context %llu is gone: its worker exited (see %s)",
                     (unsigned long long)c->ctx, h->logfile);
            host_fail_call(c, PROTO_ERR_HOST_CRASHED, msg);
            return;
        }
        worker_forward(x->worker, c);
        return;
    }
    TAILQ_INSERT_TAIL(&h->queue, c, qentry);
    host_dispatch(h);
}

void
host__call_done(struct call *c)
{
    if (!c->counted)
        return;
    c->counted = false;
    if (c->host != NULL)
        c->host->inflight--;
    if (c->client != NULL)
        c->client->inflight--;
}

/* Reads the ready notification's figures (WORKER_PROTOCOL.md). */
static void
host_configure(struct host *h, const msgpack_object *info)
{
    const msgpack_object *fn = proto_map_get(info, "functions");
    const msgpack_object *ex = proto_map_get(info, "extras");
    const msgpack_object *cfg = proto_map_get(info, "config");
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t v;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (fn != NULL && fn->type == MSGPACK_OBJECT_ARRAY)
        msgpack_pack_object(&pk, *fn);
    else
        msgpack_pack_array(&pk, 0);
    h->ready_functions_len = sb.size;
    if (ex != NULL && ex->type == MSGPACK_OBJECT_MAP)
        msgpack_pack_object(&pk, *ex);
    else
        msgpack_pack_map(&pk, 0);
    free(h->ready_blob);
    h->ready_blob_len = sb.size;
    h->ready_blob = msgpack_sbuffer_release(&sb);
    msgpack_sbuffer_destroy(&sb);

    if (cfg != NULL && cfg->type == MSGPACK_OBJECT_MAP) {
        if (proto_opt_uint(cfg, "workers", &v, NULL) == 0 && v > 0)
            h->nworkers = v > HOST_MAX_WORKERS ? HOST_MAX_WORKERS : v;
        if (proto_opt_uint(cfg, "linger", &v, NULL) == 0)
            h->linger_ms = v;
        if (proto_opt_uint(cfg, "timeout", &v, NULL) == 0 && v > 0)
            h->timeout_ms = v;
        if (proto_opt_uint(cfg, "memory", &v, NULL) == 0 && v > 0)
            h->memory_mb = v;
    }
    h->configured = true;
}

static unsigned
host_ready_count(struct host *h, unsigned gen)
{
    struct worker *w;
    unsigned n = 0;

    TAILQ_FOREACH(w, &h->workers, entry)
    if (w->gen == gen && w->state == WORKER_READY)
        n++;
    return n;
}

void
host__worker_ready(struct host *h, struct worker *w,
                   const msgpack_object *info)
{
    struct worker *o;
    bool first = !h->configured || (h->restarting && w->gen == h->generation &&
                                     host_ready_count(h, w->gen) == 1);

    host_log(h, w->pid, "ready");
    if (h->is_private)
        return;
    if (w->gen != h->generation) {
        /* A straggler of a generation already replaced. */
        worker_drain(w);
        return;
    }
    if (first && info->type == MSGPACK_OBJECT_MAP)
        host_configure(h, info);
    if (h->restarting) {
        host_fill(h);
        if (host_ready_count(h, h->generation) < h->nworkers)
            return;
        /* Every new worker serves: switch, and let the old ones drain. */
        h->restarting = false;
        TAILQ_FOREACH(o, &h->workers, entry)
        if (o->gen != h->generation)
            worker_drain(o);
        host_log(h, w->pid, "restart done: %u new workers serve",
                 h->nworkers);
        h->state = HOST_READY;
        host_answer_waiters(h, 1u << WAIT_RESTART | 1u << WAIT_ATTACH,
                            PROTO_ERR_NONE, NULL);
        host_dispatch(h);
        return;
    }
    if (h->state == HOST_STARTING) {
        h->state = HOST_READY;
        host_fill(h);
        host_answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                            PROTO_ERR_NONE, NULL);
    }
    host_dispatch(h);
}

/* The words of a config_error notification: "file:line:column: message". */
static char *
host_config_words(struct host *h, const msgpack_object *err)
{
    char *msg = NULL, *file = NULL, *res;
    uint64_t line = 0, col = 0;
    const msgpack_object *o;

    o = proto_map_get(err, "message");
    if (o != NULL)
        msg = proto_obj_strdup(o);
    o = proto_map_get(err, "file");
    if (o != NULL)
        file = proto_obj_strdup(o);
    proto_opt_uint(err, "line", &line, NULL);
    proto_opt_uint(err, "column", &col, NULL);
    if (file != NULL && line > 0)
        res = xasprintf("%s:%llu:%llu: %s (see %s)", file,
                        (unsigned long long)line, (unsigned long long)col,
                        msg ? msg : "config error", h->logfile);
    else
        res = xasprintf("%s: %s (see %s)", file ? file : h->config,
                        msg ? msg : "config error", h->logfile);
    free(msg);
    free(file);
    return res;
}

/* The config failed to load: no retry until a client asks again. */
static void
host_config_failed(struct host *h, struct worker *w, const char *words)
{
    struct worker *o;

    host_log(h, w->pid, "config error: %s", words);
    if (h->restarting && w->gen == h->generation) {
        /* The old workers keep serving; the restart fails. */
        h->restarting = false;
        TAILQ_FOREACH(o, &h->workers, entry)
        if (o->gen == h->generation)
            worker_stop(o);
        h->generation++;
        /* The old generation is current again for routing and fill. */
        TAILQ_FOREACH(o, &h->workers, entry)
        if (o->state == WORKER_READY)
            o->gen = h->generation;
        host_answer_waiters(h, 1u << WAIT_RESTART, PROTO_ERR_CONFIG, words);
        return;
    }
    host_answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                        PROTO_ERR_CONFIG, words);
    host_fail_queue(h, PROTO_ERR_CONFIG, words);
    TAILQ_FOREACH(o, &h->workers, entry)
    worker_stop(o);
    host_drop(h);
}

void
host__worker_config_error(struct host *h, struct worker *w,
                          const msgpack_object *err)
{
    char *words;

    if (h->dropped || w->state != WORKER_STARTING)
        return;
    words = host_config_words(h, err);
    w->crashed_counted = true; /* its exit 78 is expected now */
    w->state = WORKER_STOPPING;
    host_config_failed(h, w, words);
    free(words);
}

static void
host_forget_worker_ctx(struct mctx *x, void *arg)
{
    if (x->worker == arg)
        x->worker = NULL;
}

void
host__worker_exited(struct host *h, struct worker *w)
{
    char words[160], *msg;
    unsigned n;

    TAILQ_REMOVE(&h->workers, w, entry);
    ctx_foreach(host_forget_worker_ctx, w);
    worker_exit_words(w, words, sizeof words);
    if (h->is_private) {
        host_log(h, w->pid, "%s", words);
        host_drop(h);
        return;
    }
    if (w->crashed_counted || h->dropped) {
        host_log(h, w->pid, "%s", words);
    } else if (w->stop_requested && !w->unresponsive) {
        host_log(h, w->pid, "stopped: %s", words);
    } else if (w->term_signal == 0 && w->exit_status == JSHOST_EXIT_CONFIG) {
        msg = xasprintf("%s: the worker %s (config error; see %s)", h->config,
                        words, h->logfile);
        host_config_failed(h, w, msg);
        free(msg);
    } else if (w->term_signal == 0 &&
               w->exit_status == JSHOST_EXIT_RECYCLE) {
        host_log(h, w->pid, "%s: replacing it", words);
        host_fill(h);
    } else {
        free(h->last_crash);
        h->last_crash = xasprintf("worker %d %s", (int)w->pid, words);
        h->crashes[h->ncrashes++ % HOST_CRASH_WINDOW] = manager_now();
        h->total_crashes++;
        n = host_crashes_recent(h);
        host_log(h, w->pid, "crashed: %s (%u in the last %d s)", words, n,
                 HOST_CRASH_WINDOW_MS / 1000);
        if (n >= HOST_CRASH_WINDOW) {
            host_quarantine(h);
        } else if (h->state == HOST_STARTING || h->state == HOST_READY) {
            uint64_t delay = (uint64_t)(n - 1) * HOST_BACKOFF_STEP_MS;

            if (delay > HOST_BACKOFF_MAX_MS)
                delay = HOST_BACKOFF_MAX_MS;
            host_log(h, 0, "replacing it in %llu ms",
                     (unsigned long long)delay);
            if (delay == 0)
                host_fill(h);
            else
                uv_timer_start(&h->respawn_timer, host_respawn_cb, delay, 0);
        }
    }
    if (TAILQ_EMPTY(&h->workers) && h->state == HOST_STOPPING)
        host__worker_idle(h, NULL);
}

void
host__worker_recycling(struct host *h, struct worker *w)
{
    (void)w;
    host_fill(h);
}

void
host__worker_freed(struct host *h, struct worker *w)
{
    (void)w;
    if (--h->nlive == 0 && h->dropped)
        host_free(h);
}

/* Called when a stopping host has no worker left. */
void
host__worker_idle(struct host *h, struct worker *w)
{
    (void)w;
    if (h->state != HOST_STOPPING || !TAILQ_EMPTY(&h->workers))
        return;
    host_log(h, 0, "stopped");
    h->state = HOST_STOPPED;
    host_answer_waiters(h, 1u << WAIT_STOP, PROTO_ERR_NONE, NULL);
    if (h->nholders == 0 || mgr.shutting_down)
        host_drop(h);
}

static void
host_begin_stop(struct host *h)
{
    struct worker *w, *next;
    char msg[256];

    h->state = HOST_STOPPING;
    h->restarting = false;
    h->lingering = false;
    uv_timer_stop(&h->linger_timer);
    uv_timer_stop(&h->respawn_timer);
    snprintf(msg, sizeof msg, "host %s is stopping",
             h->config ? h->config : h->id);
    host_fail_queue(h, PROTO_ERR_HOST_UNAVAILABLE, msg);
    host_answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                        PROTO_ERR_HOST_UNAVAILABLE, msg);
    for (w = TAILQ_FIRST(&h->workers); w != NULL; w = next) {
        next = TAILQ_NEXT(w, entry);
        worker_drain(w);
    }
    host__worker_idle(h, NULL);
}

void
host_stop(struct host *h, struct client *c, uint32_t msgid)
{
    if (h->state == HOST_STOPPED) {
        host_reply_status(h, c, msgid);
        return;
    }
    host_add_waiter(h, c, msgid, WAIT_STOP);
    if (h->state != HOST_STOPPING) {
        host_log(h, 0, "stop requested");
        host_begin_stop(h);
    }
}

void
host_stop_now(struct host *h)
{
    if (h->dropped)
        return;
    host_forget_holders(h);
    if (h->state == HOST_STOPPED) {
        host_drop(h);
        return;
    }
    if (h->state != HOST_STOPPING)
        host_begin_stop(h);
    else
        host__worker_idle(h, NULL);
}

void
host_restart(struct host *h, struct client *c, uint32_t msgid)
{
    if (h->state == HOST_STOPPING) {
        client_reply_error(c, msgid, PROTO_ERR_HOST_UNAVAILABLE, h->logfile,
                           "host %s is stopping", h->id);
        return;
    }
    host_add_waiter(h, c, msgid, WAIT_RESTART);
    if (h->restarting || h->state == HOST_STARTING)
        return;
    host_log(h, 0, "restart requested");
    h->ncrashes = 0;
    h->generation++;
    if (h->state == HOST_READY) {
        h->restarting = true;
    } else {
        /* Quarantined or stopped: nothing to drain, start afresh and read
         * the config's figures again. */
        h->state = HOST_STARTING;
        h->configured = false;
    }
    host_fill(h);
}

void
host__release_private(struct host *h)
{
    if (h->is_private && !h->dropped)
        host_stop_now(h);
}
