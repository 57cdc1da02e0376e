/*
 * Hosts (docs/lifecycle.md): one per config real path, the connections
 * holding it, the linger timer after the last one leaves, the waiters of
 * attach/restart/stop, restart (new workers ready first, then the old ones
 * drain) and stop, and the host's log. Private VMs are hosts of their own
 * with no config, owned by one connection. The pool of workers and what a
 * crash does to it are host_pool.c's.
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
#include "rundir.h"
#include "xmalloc.h"

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
    char msg[1024], text[1100];
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pid == 0) {
        log_info("host %s: %s", h->id, msg);
        n = snprintf(text, sizeof text, "manager: host %s: %s", h->id, msg);
    } else {
        log_info("host %s: worker %d: %s", h->id, (int)pid, msg);
        n = snprintf(text, sizeof text, "manager: worker %d: %s", (int)pid,
                     msg);
    }
    /* A private VM's log is manager.log itself: said once above. The
     * host's events are written at once, as manager.log's are. */
    if (h->log != NULL && logfile_fd(h->log) >= 0 && n > 0)
        log_line(logfile_fd(h->log), "info", text,
                 (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

struct host *
host_find(const char *s)
{
    struct host *h;

    TAILQ_FOREACH(h, &mgr.hosts, entry)
    {
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
    free(h->holds);
    free(h->young.at);
    free(h->recycles.at);
    free(h->config);
    free(h->logfile);
    free(h->priv_cwd);
    free(h->env);
    free(h->ready_blob);
    free(h->last_crash);
    for (unsigned i = 0; i < HOST_EXITS; i++) {
        free(h->exits[i].path);
        free(h->exits[i].words);
    }
    host__free_warnings(h);
    free(h->reload_error);
    free(h);
}

static void
host_forget_context(struct context *x, void *arg)
{
    if (x->host == arg)
        context_free(x);
}

static void
host_free(struct host *h)
{
    if (h->freeing)
        return;
    h->freeing = true;
    /* Nobody is left waiting on a host that is gone. */
    host__answer_waiters(h, ~0u, PROTO_ERR_HOST_UNAVAILABLE, "host stopped");
    host__fail_queue(h, PROTO_ERR_HOST_UNAVAILABLE, "host stopped");
    context_foreach(host_forget_context, h);
    host_reload_stop(h);
    if (h->log != NULL)
        logfile_close(h->log);
    h->log = NULL;
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
    h->reload_setting = -1;
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
host_get(const char *realpath, pid_t client_pid, struct host **out,
         char **cause)
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
    worker_env_of(client_pid, &h->env, &h->env_len);
    if (hostid_logfile(path, sizeof path, mgr.rundir, realpath) != 0) {
        *cause = xasprintf("log path for host %s too long", h->id);
        h->dropped = true;
        host_free(h);
        return -ENAMETOOLONG;
    }
    h->logfile = xstrdup(path);
    /* A log that cannot be opened is reported and retried; the host serves
     * all the same. */
    h->log = logfile_open(path, false);
    h->state = HOST_STARTING;
    TAILQ_INSERT_TAIL(&mgr.hosts, h, entry);
    host_log(h, 0, "new host for %s", h->config);
    host_pool_fill(h);
    *out = h;
    return 0;
}

struct host *
host_new_private(struct client *owner, uint64_t memory_mb, uint64_t timeout_ms,
                 const char *cwd)
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
    worker_env_of(owner->pid, &h->env, &h->env_len);
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
void
host__drop(struct host *h)
{
    if (h->dropped)
        return;
    h->dropped = true;
    host_forget_holders(h);
    host_reload_stop(h);
    uv_timer_stop(&h->linger_timer);
    uv_timer_stop(&h->respawn_timer);
    TAILQ_REMOVE(&mgr.hosts, h, entry);
    if (h->nlive == 0)
        host_free(h);
    manager_check_idle();
}

void
host__fail_call(struct call *c, enum proto_errtype type, const char *msg)
{
    struct host *h = c->host;

    if (c->client != NULL)
        client_reply_error(c->client, c->cid, type,
                           h != NULL ? h->logfile : NULL, "%s", msg);
    host_pool_call_done(c);
    call_free(c);
}

void
host__fail_queue(struct host *h, enum proto_errtype type, const char *msg)
{
    struct call *c;

    while ((c = TAILQ_FIRST(&h->queue)) != NULL) {
        TAILQ_REMOVE(&h->queue, c, qentry);
        host__fail_call(c, type, msg);
    }
}

static void
host_reply_attach(struct host *h, struct client *c, uint32_t msgid)
{
    struct rpcstream_msg om;

    client_reply_begin(&om, msgid);
    msgpack_pack_map(&om.pk, 9);
    proto_pack_cstr(&om.pk, PROTO_K_HOST);
    proto_pack_cstr(&om.pk, h->id);
    proto_pack_cstr(&om.pk, PROTO_K_CONFIG);
    proto_pack_cstr(&om.pk, h->config);
    proto_pack_cstr(&om.pk, PROTO_K_FUNCTIONS);
    if (h->ready_blob != NULL)
        msgpack_sbuffer_write(&om.sb, h->ready_blob, h->ready_functions_len);
    else
        msgpack_pack_array(&om.pk, 0);
    proto_pack_cstr(&om.pk, PROTO_K_WORKERS);
    msgpack_pack_uint32(&om.pk, h->nworkers);
    proto_pack_cstr(&om.pk, PROTO_K_LOGFILE);
    proto_pack_cstr(&om.pk, h->logfile);
    proto_pack_cstr(&om.pk, PROTO_K_TIMEOUT_MS);
    msgpack_pack_uint64(&om.pk, h->timeout_ms);
    proto_pack_cstr(&om.pk, PROTO_K_DIRECT);
    worker_pack_direct(&om.pk, h);
    proto_pack_cstr(&om.pk, PROTO_K_EXTRAS);
    if (h->ready_blob != NULL)
        msgpack_sbuffer_write(&om.sb, h->ready_blob + h->ready_functions_len,
                              h->ready_blob_len - h->ready_functions_len);
    else
        msgpack_pack_map(&om.pk, 0);
    /* What the config warned about, and a reload that failed. */
    proto_pack_cstr(&om.pk, PROTO_K_WARNINGS);
    msgpack_pack_array(&om.pk, h->nwarnings + (h->reload_error != NULL));
    for (size_t i = 0; i < h->nwarnings; i++)
        proto_pack_cstr(&om.pk, h->warnings[i]);
    if (h->reload_error != NULL)
        proto_pack_cstr(&om.pk, h->reload_error);
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

void
host__answer_waiters(struct host *h, unsigned kinds, enum proto_errtype type,
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

/* c's place among h's holders, or -1. */
static ssize_t
host_holder_index(const struct host *h, const struct client *c)
{
    size_t i;

    for (i = 0; i < h->nholders; i++)
        if (h->holders[i] == c)
            return (ssize_t)i;
    return -1;
}

/* Each attach is a hold (jshost.h: "attach counts"); a connection is among
 * the holders once, with its count. */
static void
host_add_holder(struct host *h, struct client *c)
{
    ssize_t i = host_holder_index(h, c);

    if (i >= 0) {
        h->holds[i]++;
        return;
    }
    h->holders = xrealloc(h->holders, (h->nholders + 1) * sizeof *h->holders);
    h->holds = xrealloc(h->holds, (h->nholders + 1) * sizeof *h->holds);
    h->holds[h->nholders] = 1;
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

bool
host_detach(struct host *h, struct client *c, bool all)
{
    ssize_t i = host_holder_index(h, c);

    if (i < 0)
        return false;
    if (!all && --h->holds[i] > 0)
        return false;
    h->nholders--;
    h->holders[i] = h->holders[h->nholders];
    h->holds[i] = h->holds[h->nholders];
    client_forget_host(c, h);
    if (h->nholders > 0 || h->dropped)
        return false;
    if (h->state == HOST_STOPPED || h->state == HOST_QUARANTINED) {
        host__begin_stop(h);
        return true;
    }
    if (h->state == HOST_STOPPING)
        return true;
    h->lingering = true;
    h->linger_deadline = manager_now() + h->linger_ms;
    uv_timer_start(&h->linger_timer, host_linger_cb, h->linger_ms, 0);
    host_log(h, 0, "last holder left: lingering %llu ms",
             (unsigned long long)h->linger_ms);
    return true;
}

void
host_attach(struct host *h, struct client *c, uint32_t msgid)
{
    char msg[512];

    if (h->state == HOST_QUARANTINED) {
        host__quarantine_words(h, msg, sizeof msg);
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
        /* Started again: by this client, with its environment. */
        free(h->env);
        worker_env_of(c->pid, &h->env, &h->env_len);
        h->state = HOST_STARTING;
        h->configured = false;
        h->generation++;
        host_log(h, 0, "attached again: starting");
        host_pool_fill(h);
    }
    host_add_holder(h, c);
    if (h->state == HOST_READY)
        host_reply_attach(h, c, msgid);
    else
        host_add_waiter(h, c, msgid, WAIT_ATTACH);
}

/* The last worker freed lets a dropped host go. */
void
host_worker_freed(struct host *h)
{
    if (--h->nlive == 0 && h->dropped)
        host_free(h);
}

void
host__worker_idle(struct host *h)
{
    if (h->state != HOST_STOPPING || !TAILQ_EMPTY(&h->workers))
        return;
    host_log(h, 0, "stopped");
    h->state = HOST_STOPPED;
    host__answer_waiters(h, 1u << WAIT_STOP, PROTO_ERR_NONE, NULL);
    if (h->nholders == 0 || mgr.shutting_down)
        host__drop(h);
}

void
host__begin_stop(struct host *h)
{
    struct worker *w, *next;
    char msg[256];

    h->state = HOST_STOPPING;
    h->restarting = false;
    h->reloading = h->reload_pending = false;
    host_reload_stop(h);
    h->lingering = false;
    uv_timer_stop(&h->linger_timer);
    uv_timer_stop(&h->respawn_timer);
    snprintf(msg, sizeof msg, "host %s is stopping",
             h->config ? h->config : h->id);
    host__fail_queue(h, PROTO_ERR_HOST_UNAVAILABLE, msg);
    host__answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                         PROTO_ERR_HOST_UNAVAILABLE, msg);
    for (w = TAILQ_FIRST(&h->workers); w != NULL; w = next) {
        next = TAILQ_NEXT(w, entry);
        worker_drain(w);
    }
    host__worker_idle(h);
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
        host__begin_stop(h);
    }
}

void
host_stop_now(struct host *h)
{
    if (h->dropped)
        return;
    host_forget_holders(h);
    if (h->state == HOST_STOPPED) {
        host__drop(h);
        return;
    }
    if (h->state != HOST_STOPPING)
        host__begin_stop(h);
    else
        host__worker_idle(h);
}

/* New workers for h: they take the calls once every one is ready, and the
 * old ones drain. Shared by restart and the reload. */
static void
host_restart_begin(struct host *h)
{
    /* A fresh start: the crash window, the recycles and the quarantine's
     * backoff start over. */
    h->young.n = 0;
    h->recycles.n = 0;
    h->quarantines = 0;
    h->quarantine_until_ms = 0;
    uv_timer_stop(&h->respawn_timer);
    h->generation++;
    if (h->state == HOST_READY) {
        h->restarting = true;
    } else {
        /* Quarantined or stopped: nothing to drain, start afresh and read
         * the config's figures again. */
        h->state = HOST_STARTING;
        h->configured = false;
    }
    host_pool_fill(h);
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
    host_restart_begin(h);
}

void
host__reload(struct host *h, const char *changed)
{
    if (h->dropped || h->is_private || h->state == HOST_STOPPING ||
        h->state == HOST_STOPPED)
        return;
    if (h->restarting || h->state == HOST_STARTING) {
        h->reload_pending = true;
        return;
    }
    host_log(h, 0, "%s changed: reloading", changed);
    h->reloading = true;
    host_restart_begin(h);
}

void
host__free_warnings(struct host *h)
{
    for (size_t i = 0; i < h->nwarnings; i++)
        free(h->warnings[i]);
    free(h->warnings);
    h->warnings = NULL;
    h->nwarnings = 0;
}

void
host__release_private(struct host *h)
{
    if (h->is_private && !h->dropped)
        host_stop_now(h);
}
