/*
 * A host's pool of workers (docs/lifecycle.md, "Pools" and "Crashes"): fill
 * it to the config's size, hand each call to the ready worker with the
 * fewest in flight, hold each call to its deadline, read the figures of the
 * first ready, and decide what a worker's end means: a config error (no
 * retry), a heap-limit recycle (replaced; too many in a minute count as
 * crashes), or a crash (replaced; one of a worker that died young counts,
 * and enough of those for the pool's size quarantine the host for a while
 * that doubles each time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jshost_defs.h"
#include "manager.h"
#include "xmalloc.h"

/* The window young crashes are counted in, and recycles. */
#define HOST_CRASH_WINDOW_MS 30000
#define HOST_RECYCLE_WINDOW_MS 60000
#define HOST_BACKOFF_STEP_MS 100
#define HOST_BACKOFF_MAX_MS 5000
/* The manager answers a call past its deadline this much after it, so that
 * a worker alive enough to end the call itself answers first (its words say
 * what ran). */
#define HOST_DEADLINE_SLACK_MS 100

/* Workers of the current generation that are or will be serving. */
static unsigned
host_pool_live(struct host *h)
{
    struct worker *w;
    unsigned n = 0;

    TAILQ_FOREACH(w, &h->workers, entry)
    if (w->gen == h->generation &&
        (w->state == WORKER_STARTING || w->state == WORKER_READY))
        n++;
    return n;
}

/* Forgets events older than the window; how many are left. */
static unsigned
host_events_recent(struct host_events *ev, uint64_t window_ms)
{
    uint64_t now = manager_now();
    unsigned i = 0;

    while (i < ev->n && now - ev->at[i] > window_ms)
        i++;
    if (i > 0) {
        memmove(ev->at, ev->at + i, (ev->n - i) * sizeof *ev->at);
        ev->n -= i;
    }
    return ev->n;
}

static unsigned
host_events_add(struct host_events *ev, uint64_t window_ms)
{
    host_events_recent(ev, window_ms);
    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? ev->cap * 2 : 8;
        ev->at = xrealloc(ev->at, ev->cap * sizeof *ev->at);
    }
    ev->at[ev->n++] = manager_now();
    return ev->n;
}

/* Young crashes in the window that quarantine the host: so many per worker
 * of its pool. */
static unsigned
host_pool_crash_threshold(const struct host *h)
{
    uint64_t n = mgr.crash_limit * (h->nworkers ? h->nworkers : 1);

    return n > 0 && n < 1000000 ? (unsigned)n : 1;
}

void
host__quarantine_words(const struct host *h, char *buf, size_t len)
{
    uint64_t now = manager_now();

    if (h->quarantine_until_ms > now)
        snprintf(buf, len,
                 "host %s (%s) is quarantined after repeated crashes (%s); "
                 "%llu ms left (restart lifts it now)",
                 h->id, h->config ? h->config : "private VM",
                 h->last_crash ? h->last_crash : "?",
                 (unsigned long long)(h->quarantine_until_ms - now));
    else
        snprintf(buf, len,
                 "host %s (%s) is quarantined after repeated crashes (%s); "
                 "it is over and the host starts again",
                 h->id, h->config ? h->config : "private VM",
                 h->last_crash ? h->last_crash : "?");
}

static void host_pool_quarantine_over_cb(uv_timer_t *t);

/*
 * Too many young crashes: no worker for a while, everyone waiting told so.
 * The while doubles when the host is quarantined again soon after the last
 * one ended (it came back and crashed again), from quarantine_ms up to
 * quarantine_max_ms; a restart lifts it.
 */
static void
host_pool_quarantine(struct host *h)
{
    struct worker *w;
    uint64_t now = manager_now(), ms = mgr.quarantine_ms;
    unsigned i;
    char msg[512];

    if (h->quarantines > 0 &&
        now - h->quarantine_over_ms > HOST_CRASH_WINDOW_MS + ms)
        h->quarantines = 0;
    for (i = 0; i < h->quarantines && ms < mgr.quarantine_max_ms; i++)
        ms *= 2;
    if (ms > mgr.quarantine_max_ms)
        ms = mgr.quarantine_max_ms;
    h->quarantines++;
    h->quarantine_until_ms = now + ms;
    h->state = HOST_QUARANTINED;
    h->restarting = false;
    h->reloading = h->reload_pending = false;
    uv_timer_stop(&h->respawn_timer);
    host_log(h, 0,
             "quarantined after %u crashes in %d s (last: %s): for %llu ms",
             h->young.n, HOST_CRASH_WINDOW_MS / 1000,
             h->last_crash ? h->last_crash : "?", (unsigned long long)ms);
    /* One that exited already and is not finished yet goes as stopped
     * too: its end is part of this, not one more crash. */
    TAILQ_FOREACH(w, &h->workers, entry)
    {
        w->stop_requested = true;
        worker_stop(w);
    }
    host__quarantine_words(h, msg, sizeof msg);
    host__fail_queue(h, PROTO_ERR_HOST_UNAVAILABLE, msg);
    host__answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                         PROTO_ERR_HOST_UNAVAILABLE, msg);
    if (h->nholders == 0) {
        host__begin_stop(h);
        return;
    }
    uv_timer_start(&h->respawn_timer, host_pool_quarantine_over_cb, ms, 0);
}

/* The quarantine is over: the host starts afresh (its config read again). */
static void
host_pool_quarantine_over_cb(uv_timer_t *t)
{
    struct host *h = t->data;

    if (h->state != HOST_QUARANTINED || h->dropped)
        return;
    host_log(h, 0, "quarantine over: starting again");
    h->quarantine_over_ms = manager_now();
    h->young.n = 0;
    h->recycles.n = 0;
    h->state = HOST_STARTING;
    h->configured = false;
    h->generation++;
    host_pool_fill(h);
}

static void
host_pool_respawn_cb(uv_timer_t *t)
{
    host_pool_fill(t->data);
}

/*
 * A crash that counts: replaced after a backoff that grows with the count
 * in the window, or the host is quarantined when the count reaches the
 * pool's threshold.
 */
static void
host_pool_count_crash(struct host *h)
{
    unsigned n = host_events_add(&h->young, HOST_CRASH_WINDOW_MS);
    uint64_t delay;

    if (n >= host_pool_crash_threshold(h)) {
        host_pool_quarantine(h);
        return;
    }
    if (h->state != HOST_STARTING && h->state != HOST_READY)
        return;
    delay = (uint64_t)(n - 1) * HOST_BACKOFF_STEP_MS;
    if (delay > HOST_BACKOFF_MAX_MS)
        delay = HOST_BACKOFF_MAX_MS;
    host_log(h, 0, "replacing it in %llu ms", (unsigned long long)delay);
    if (delay == 0)
        host_pool_fill(h);
    else
        uv_timer_start(&h->respawn_timer, host_pool_respawn_cb, delay, 0);
}

void
host_pool_fill(struct host *h)
{
    char *cause = NULL;
    struct worker *w;

    if (h->is_private || h->dropped ||
        (h->state != HOST_STARTING && h->state != HOST_READY))
        return;
    while (host_pool_live(h) < h->nworkers) {
        w = worker_spawn(h, &cause);
        if (w == NULL) {
            unsigned n;

            host_log(h, 0, "%s", cause);
            free(h->last_crash);
            h->last_crash = cause;
            cause = NULL;
            h->total_crashes++;
            n = host_events_add(&h->young, HOST_CRASH_WINDOW_MS);
            if (n >= host_pool_crash_threshold(h))
                host_pool_quarantine(h);
            else
                uv_timer_start(&h->respawn_timer, host_pool_respawn_cb,
                               HOST_BACKOFF_STEP_MS * n, 0);
            return;
        }
    }
}

/* A worker's load for picking: calls in flight, and any it is late with
 * puts it behind every worker that is not. */
static uint64_t
host_pool_load(const struct worker *w)
{
    return (w->late > 0 ? (uint64_t)1 << 32 : 0) + w->inflight;
}

/*
 * The ready worker with the fewest calls in flight. While a restart brings
 * the new generation up, the old one serves until the switch.
 */
static struct worker *
host_pool_pick(struct host *h)
{
    struct worker *w, *best = NULL, *old = NULL;

    TAILQ_FOREACH(w, &h->workers, entry)
    {
        if (w->state != WORKER_READY)
            continue;
        if (best == NULL || host_pool_load(w) < host_pool_load(best))
            best = w;
        if (w->gen != h->generation &&
            (old == NULL || host_pool_load(w) < host_pool_load(old)))
            old = w;
    }
    return h->restarting && old != NULL ? old : best;
}

void
host_pool_call_deadline(struct call *c)
{
    uint64_t tmo = c->timeout_ms != 0 ? c->timeout_ms : c->host->timeout_ms;

    c->deadline.fire = host_pool_call_late;
    deadline_arm(&c->deadline, c->received_ms + tmo + HOST_DEADLINE_SLACK_MS);
}

/*
 * A call's deadline passed and nobody answered it: a call still waiting for
 * a worker goes; one at a worker is answered TimeoutError here, stays filed
 * (the worker's answer, if it comes, is dropped) and the worker is watched:
 * if it says nothing more within its patience it is killed as hung.
 */
void
host_pool_call_late(struct deadline *d)
{
    struct call *c =
        (struct call *)((char *)d - offsetof(struct call, deadline));
    struct host *h = c->host;
    struct worker *w = c->worker;
    uint64_t tmo = c->timeout_ms != 0 ? c->timeout_ms : h->timeout_ms;
    const char *what = c->method != NULL ? c->method : "call";
    char msg[512];

    if (w == NULL) {
        TAILQ_REMOVE(&h->queue, c, qentry);
        snprintf(msg, sizeof msg,
                 "%s did not finish within %llu ms: no worker of host %s "
                 "was ready to take it (see %s)",
                 what, (unsigned long long)tmo, h->id,
                 h->logfile ? h->logfile : "its log");
        host__fail_call(c, PROTO_ERR_TIMEOUT, msg);
        return;
    }
    c->answered = true;
    if (c->client != NULL && !c->client->closed)
        client_reply_error(c->client, c->cid, PROTO_ERR_TIMEOUT, h->logfile,
                           "%s did not finish within %llu ms: worker %d gave "
                           "no answer by then (see %s)",
                           what, (unsigned long long)tmo, (int)w->pid,
                           h->logfile ? h->logfile : "its log");
    host_pool_call_done(c);
    host_log(h, w->pid, "%s: no answer within %llu ms: TimeoutError", what,
             (unsigned long long)tmo);
    worker_call_late(w, c);
}

void
host_pool_dispatch(struct host *h)
{
    struct call *c;
    struct worker *w;

    while ((c = TAILQ_FIRST(&h->queue)) != NULL &&
           (w = host_pool_pick(h)) != NULL) {
        TAILQ_REMOVE(&h->queue, c, qentry);
        worker_forward(w, c);
    }
}

void
host_pool_submit(struct host *h, struct call *c)
{
    struct context *x;
    struct worker *w;
    char msg[512];

    c->host = h;
    c->received_ms = manager_now();
    if (h->dropped) {
        /* A private VM whose worker died, or a host stopped under us. */
        snprintf(msg, sizeof msg, "host %s is gone", h->id);
        host__fail_call(c, PROTO_ERR_HOST_UNAVAILABLE, msg);
        return;
    }
    if (h->state == HOST_QUARANTINED) {
        host__quarantine_words(h, msg, sizeof msg);
        host__fail_call(c, PROTO_ERR_HOST_UNAVAILABLE, msg);
        return;
    }
    if (h->state == HOST_STOPPING || h->state == HOST_STOPPED) {
        snprintf(msg, sizeof msg, "host %s is %s; attach again", h->id,
                 host_state_name(h->state));
        host__fail_call(c, PROTO_ERR_HOST_UNAVAILABLE, msg);
        return;
    }
    if (c->client->inflight >= mgr.max_client_inflight) {
        snprintf(msg, sizeof msg,
                 "this connection has %u calls in flight (the limit)",
                 c->client->inflight);
        host__fail_call(c, PROTO_ERR_OVERLOADED, msg);
        return;
    }
    if (h->inflight >= mgr.max_host_inflight) {
        snprintf(msg, sizeof msg,
                 "host %s has %u calls in flight or queued (the limit)", h->id,
                 h->inflight);
        host__fail_call(c, PROTO_ERR_OVERLOADED, msg);
        return;
    }
    c->counted = true;
    h->inflight++;
    c->client->inflight++;
    TAILQ_INSERT_TAIL(&c->client->calls, c, centry);
    c->in_client = true;
    if (c->context != 0 && c->kind != CALL_CONTEXT_CREATE) {
        x = context_find(c->context);
        if (x == NULL || x->worker == NULL ||
            (x->worker->state != WORKER_READY &&
             x->worker->state != WORKER_DRAINING)) {
            snprintf(msg, sizeof msg,
                     "context %llu is gone: its worker exited (see %s)",
                     (unsigned long long)c->context, h->logfile);
            host__fail_call(c, PROTO_ERR_HOST_CRASHED, msg);
            return;
        }
        worker_forward(x->worker, c);
        return;
    }
    /* Straight to a worker when none waits before it; else it waits, and
     * its request bytes must outlive the read buffer they are in. */
    if (TAILQ_EMPTY(&h->queue) && (w = host_pool_pick(h)) != NULL) {
        worker_forward(w, c);
        return;
    }
    call_keep(c);
    TAILQ_INSERT_TAIL(&h->queue, c, qentry);
    host_pool_call_deadline(c);
    host_pool_dispatch(h);
}

void
host_pool_call_done(struct call *c)
{
    if (c->in_client) {
        TAILQ_REMOVE(&c->client->calls, c, centry);
        c->in_client = false;
    }
    if (!c->counted)
        return;
    c->counted = false;
    if (c->host != NULL)
        c->host->inflight--;
    if (c->client != NULL)
        c->client->inflight--;
}

void
host_pool_cancel(struct call *c, bool answer)
{
    if (c->worker == NULL) {
        /* Still in the host's queue: it never runs. */
        TAILQ_REMOVE(&c->host->queue, c, qentry);
        if (answer) {
            host__fail_call(c, PROTO_ERR_CANCELLED, "cancelled before it ran");
        } else {
            host_pool_call_done(c);
            call_free(c);
        }
        return;
    }
    if (c->kind == CALL_FORWARD && !c->cancelled)
        worker_cancel(c->worker, c);
}

/* Reads the ready notification's figures (docs/protocol.md, "ready"). */
static void
host_pool_configure(struct host *h, const msgpack_object *info)
{
    const msgpack_object *fn = proto_map_get(info, PROTO_K_FUNCTIONS);
    const msgpack_object *ex = proto_map_get(info, PROTO_K_EXTRAS);
    const msgpack_object *cfg = proto_map_get(info, PROTO_K_CONFIG);
    const msgpack_object *warn = proto_map_get(info, PROTO_K_WARNINGS);
    const msgpack_object *rl;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t v;
    uint32_t i;

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
        if (proto_opt_uint(cfg, PROTO_K_WORKERS, &v, NULL) == 0 && v > 0)
            h->nworkers = v > HOST_POOL_MAX_WORKERS ? HOST_POOL_MAX_WORKERS : v;
        if (proto_opt_uint(cfg, PROTO_K_LINGER, &v, NULL) == 0)
            h->linger_ms = v;
        if (proto_opt_uint(cfg, PROTO_K_TIMEOUT, &v, NULL) == 0 && v > 0)
            h->timeout_ms = v;
        if (proto_opt_uint(cfg, PROTO_K_MEMORY, &v, NULL) == 0 && v > 0)
            h->memory_mb = v;
        rl = proto_map_get(cfg, PROTO_K_RELOAD);
        h->reload_setting = rl != NULL && rl->type == MSGPACK_OBJECT_BOOLEAN
                                ? rl->via.boolean
                                : -1;
    }
    host__free_warnings(h);
    if (warn != NULL && warn->type == MSGPACK_OBJECT_ARRAY) {
        h->warnings = xcalloc(warn->via.array.size + 1, sizeof *h->warnings);
        for (i = 0; i < warn->via.array.size; i++)
            if (warn->via.array.ptr[i].type == MSGPACK_OBJECT_STR)
                h->warnings[h->nwarnings++] =
                    proto_obj_strdup(&warn->via.array.ptr[i]);
    }
    host_reload_watch(h, proto_map_get(info, PROTO_K_FILES));
    h->configured = true;
}

static unsigned
host_pool_ready_count(struct host *h, unsigned gen)
{
    struct worker *w;
    unsigned n = 0;

    TAILQ_FOREACH(w, &h->workers, entry)
    if (w->gen == gen && w->state == WORKER_READY)
        n++;
    return n;
}

void
host_pool_worker_ready(struct host *h, struct worker *w,
                       const msgpack_object *info)
{
    struct worker *o;
    bool first = !h->configured || (h->restarting && w->gen == h->generation &&
                                    host_pool_ready_count(h, w->gen) == 1);

    host_log(h, w->pid, "ready");
    if (h->is_private)
        return;
    if (w->gen != h->generation) {
        /* A straggler of a generation already replaced. */
        worker_drain(w);
        return;
    }
    if (first && info->type == MSGPACK_OBJECT_MAP)
        host_pool_configure(h, info);
    if (h->restarting) {
        host_pool_fill(h);
        if (host_pool_ready_count(h, h->generation) < h->nworkers)
            return;
        /* Every new worker serves: switch, and let the old ones drain. */
        h->restarting = false;
        TAILQ_FOREACH(o, &h->workers, entry)
        if (o->gen != h->generation)
            worker_drain(o);
        host_log(h, w->pid, "restart done: %u new workers serve", h->nworkers);
        h->state = HOST_READY;
        host__answer_waiters(h, 1u << WAIT_RESTART | 1u << WAIT_ATTACH,
                             PROTO_ERR_NONE, NULL);
        host_pool_dispatch(h);
        host_reload_finished(h, NULL);
        return;
    }
    if (h->state == HOST_STARTING) {
        h->state = HOST_READY;
        host_pool_fill(h);
        host__answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                             PROTO_ERR_NONE, NULL);
        host_pool_dispatch(h);
        host_reload_finished(h, NULL);
        return;
    }
    host_pool_dispatch(h);
}

/* The words of a config_error notification: "file:line:column: message". */
static char *
host_pool_config_words(struct host *h, const msgpack_object *err)
{
    char *msg = NULL, *file = NULL, *res;
    uint64_t line = 0, col = 0;
    const msgpack_object *o;

    o = proto_map_get(err, PROTO_K_MESSAGE);
    if (o != NULL)
        msg = proto_obj_strdup(o);
    o = proto_map_get(err, PROTO_K_FILE);
    if (o != NULL)
        file = proto_obj_strdup(o);
    proto_opt_uint(err, PROTO_K_LINE, &line, NULL);
    proto_opt_uint(err, PROTO_K_COLUMN, &col, NULL);
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
host_pool_config_failed(struct host *h, struct worker *w, const char *words)
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
        host__answer_waiters(h, 1u << WAIT_RESTART, PROTO_ERR_CONFIG, words);
        host_reload_finished(h, words);
        return;
    }
    host__answer_waiters(h, 1u << WAIT_ATTACH | 1u << WAIT_RESTART,
                         PROTO_ERR_CONFIG, words);
    host__fail_queue(h, PROTO_ERR_CONFIG, words);
    TAILQ_FOREACH(o, &h->workers, entry)
    worker_stop(o);
    host__drop(h);
}

void
host_pool_worker_config_error(struct host *h, struct worker *w,
                              const msgpack_object *err)
{
    char *words;

    if (h->dropped || w->state != WORKER_STARTING)
        return;
    words = host_pool_config_words(h, err);
    w->crashed_counted = true; /* its exit 78 is expected now */
    w->state = WORKER_STOPPING;
    host_pool_config_failed(h, w, words);
    free(words);
}

static void
host_pool_forget_worker_context(struct context *x, void *arg)
{
    if (x->worker == arg)
        x->worker = NULL;
}

/* Died before it served a call, or soon after it was ready. */
static bool
host_pool_young(const struct worker *w)
{
    return w->ready_ms == 0 || !w->served ||
           manager_now() - w->ready_ms < mgr.young_ms;
}

void
host_pool_worker_exited(struct host *h, struct worker *w)
{
    char words[160], *msg;
    unsigned n;

    TAILQ_REMOVE(&h->workers, w, entry);
    context_foreach(host_pool_forget_worker_context, w);
    worker_exit_words(w, words, sizeof words);
    if (h->is_private) {
        host_log(h, w->pid, "%s", words);
        host__drop(h);
        return;
    }
    if (w->crashed_counted || h->dropped) {
        host_log(h, w->pid, "%s", words);
    } else if (w->stop_requested && !w->unresponsive) {
        host_log(h, w->pid, "stopped: %s", words);
    } else if (w->term_signal == 0 && w->exit_status == JSHOST_EXIT_CONFIG) {
        msg = xasprintf("%s: the worker %s (config error; see %s)", h->config,
                        words, h->logfile);
        host_pool_config_failed(h, w, msg);
        free(msg);
    } else if (w->term_signal == 0 && w->exit_status == JSHOST_EXIT_RECYCLE) {
        n = host_events_add(&h->recycles, HOST_RECYCLE_WINDOW_MS);
        if (n <= mgr.recycle_limit * h->nworkers) {
            host_log(h, w->pid, "%s: replacing it", words);
            host_pool_fill(h);
        } else {
            /* Recycled again and again (a timer that allocates forever):
             * each one more counts as a crash. */
            free(h->last_crash);
            h->last_crash = xasprintf(
                "worker %d recycled for its heap limit %u times in a minute",
                (int)w->pid, n);
            host_log(h, w->pid, "%s", h->last_crash);
            host_pool_count_crash(h);
        }
    } else {
        bool young = host_pool_young(w);

        free(h->last_crash);
        h->last_crash = xasprintf("worker %d %s", (int)w->pid, words);
        h->total_crashes++;
        if (young) {
            host_log(h, w->pid,
                     "crashed: %s (young: %u in the last %d s count)", words,
                     host_events_recent(&h->young, HOST_CRASH_WINDOW_MS) + 1,
                     HOST_CRASH_WINDOW_MS / 1000);
            host_pool_count_crash(h);
        } else {
            host_log(h, w->pid,
                     "crashed: %s (after it served; not counted towards "
                     "quarantine): replacing it",
                     words);
            if (h->state == HOST_STARTING || h->state == HOST_READY)
                host_pool_fill(h);
        }
    }
    if (TAILQ_EMPTY(&h->workers) && h->state == HOST_STOPPING)
        host__worker_idle(h);
}

/* Its MemoryError came before its exit: the replacement starts now, unless
 * recycles come so often that its exit will count as a crash (and the
 * replacement wait its backoff). */
void
host_pool_worker_recycling(struct host *h, struct worker *w)
{
    (void)w;
    if (host_events_recent(&h->recycles, HOST_RECYCLE_WINDOW_MS) <
        mgr.recycle_limit * h->nworkers)
        host_pool_fill(h);
}
