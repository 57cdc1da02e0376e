/*
 * A connection to the worker: the manager's (--fd) or a direct client's
 * (--listen). It is reference-counted: its stream holds one reference until
 * it is closed, every call in flight holds one, so a reply for a connection
 * that closed meanwhile finds a live struct and is dropped. The bytes
 * themselves (reading, batching replies, backpressure on what the peer does
 * not read) are rpcstream's, shared with the manager. A connection that
 * closes cancels its calls and fails the reverse calls sent on it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jshost_defs.h"
#include "log.h"
#include "methods.h"
#include "serve_internal.h"
#include "xmalloc.h"

/* Why a connection's stream is paused besides its own backlog. */
#define SERVE_PAUSE_CALLS RPCSTREAM_PAUSE_OWNER /* too many calls in flight */
#define SERVE_PAUSE_DOOMED (RPCSTREAM_PAUSE_OWNER << 1) /* heap limit hit */

/* What serve_conn_poll reads into a connection's buffer at most while JS
 * runs (past it, a cancel waits for the JS to end by itself). */
#define SERVE_POLL_READ_MAX ((size_t)8 * 1024 * 1024)

/* ---- lifetime ----------------------------------------------------------- */

static void
serve_conn_ref(struct serve_conn *c)
{
    c->refs++;
}

static void
serve_conn_unref(struct serve_conn *c)
{
    struct serve *s = c->serve;

    if (--c->refs > 0)
        return;
    /* Destroying a context may not happen inside an engine callback (this may
     * be one), so the ids wait for a later loop iteration. */
    if (c->ncontexts > 0 && !s->closing)
        serve__reap_contexts(s, c->contexts, c->ncontexts);
    if (!s->closing)
        serve__reap_peer(s, c->id);
    free(c->contexts);
    free(c->precancel.v);
    free(c);
}

static void
serve_conn_on_closed(void *owner)
{
    struct serve_conn *c = owner;
    struct serve *s = c->serve;

    c->stream = NULL;
    c->closing = true;
    if (c->counted) {
        c->counted = false;
        s->nclients--;
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    serve__maybe_drained(s);
    if (c == s->fd_conn) {
        s->fd_conn = NULL;
        /* Without the manager's connection there is nobody left to serve. */
        serve__request_exit(s, s->doomed ? JSHOST_EXIT_RECYCLE : 0);
    }
    log_debug("connection closed (%u calls still in flight)", c->in_flight);
    serve_conn_unref(c);
}

/* Its calls are of no use to anyone now: each is answered Cancelled (the
 * reply dropped), its JS stopped if it runs. */
static void
serve_conn_cancel_calls(struct serve_conn *c)
{
    struct serve *s = c->serve;
    struct serve_call *call, *next;

    if (s->closing)
        return; /* the engine answers everything as it goes */
    /* Answered from the loop, each call leaves the list at once. */
    for (call = c->calls; call != NULL; call = next) {
        next = call->next;
        js_cancel(s->engine, call);
    }
}

void
serve_conn_close(struct serve_conn *c)
{
    struct serve *s = c->serve;

    c->closing = true;
    if (c->handle_closing || c->stream == NULL)
        return;
    c->handle_closing = true;
    rpcstream_close(c->stream);
    serve_conn_cancel_calls(c);
    serve__maybe_exit(s);
}

/* Closes once the calls sent on it are answered and the replies written. */
static void
serve_conn_finish(struct serve_conn *c)
{
    c->closing = true;
    if (c->handle_closing || c->stream == NULL)
        return;
    c->handle_closing = true;
    rpcstream_close_flushed(c->stream);
    serve__maybe_drained(c->serve);
}

void
serve_conn_drain(struct serve_conn *c)
{
    msgpack_packer pk;

    if (c->is_fd || c->closing)
        return;
    if (serve_conn_packer(c, &pk)) {
        proto_write_notification(&pk, PROTO_N_DRAINING, 0);
        serve_conn_replied(c);
    }
    if (c->in_flight == 0)
        serve_conn_finish(c);
}

void
serve_conn_refuse(struct serve_conn *c, const char *cause)
{
    c->closing = true;
    if (c->handle_closing || c->stream == NULL)
        return;
    c->handle_closing = true;
    rpcstream_refuse(c->stream, cause);
}

/* After EOF from the peer: close once every call is answered and written. */
static void
serve_conn_maybe_finish(struct serve_conn *c)
{
    /* Not while paused: whole messages may still wait in the reader (a half
     * message left at EOF will never complete and does not count). */
    if (c->eof && !c->closing && !c->paused && c->in_flight == 0 &&
        rpcstream_backlog(c->stream) == 0)
        serve_conn_close(c);
}

/* ---- backpressure ------------------------------------------------------- */

/* Stops reading a connection that keeps too many calls going (the manager's
 * connection is bounded by the manager's own limits; a backlog of replies
 * the peer does not read pauses the stream by itself). */
static void
serve_conn_maybe_pause(struct serve_conn *c)
{
    if (c->paused || c->is_fd || c->closing ||
        c->in_flight < SERVE_INFLIGHT_MAX)
        return;
    c->paused = true;
    rpcstream_pause(c->stream, SERVE_PAUSE_CALLS);
}

void
serve_conn_maybe_resume(struct serve_conn *c)
{
    if (!c->paused || c->closing || c->in_flight > SERVE_INFLIGHT_MAX / 2)
        return;
    c->paused = false;
    rpcstream_resume(c->stream, SERVE_PAUSE_CALLS);
    serve_conn_maybe_finish(c);
}

void
serve_conn_doom(struct serve_conn *c)
{
    if (!c->closing)
        rpcstream_pause(c->stream, SERVE_PAUSE_DOOMED);
}

bool
serve_conn_writing(const struct serve_conn *c)
{
    return !c->closing && rpcstream_backlog(c->stream) > 0;
}

/* ---- writing ------------------------------------------------------------ */

bool
serve_conn_packer(struct serve_conn *c, msgpack_packer *pk)
{
    if (c->closing)
        return false;
    return rpcstream_begin(c->stream, pk);
}

/* Replies go out at the end of the loop iteration, or early inside a long
 * batch of calls from one read (rpcstream). */
void
serve_conn_replied(struct serve_conn *c)
{
    rpcstream_commit(c->stream);
}

void
serve_conn_flush(struct serve_conn *c)
{
    rpcstream_flush(c->stream);
}

void
serve_conn_reply_error(struct serve_conn *c, uint32_t msgid,
                       enum proto_errtype type, const char *msg)
{
    msgpack_packer pk;

    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_errorf(&pk, msgid, type, "%s", msg);
    serve_conn_replied(c);
}

void
serve_conn_reply_js_error(struct serve_conn *c, uint32_t msgid,
                          const struct js_error *err)
{
    struct proto_error pe;
    msgpack_packer pk;

    if (!serve_conn_packer(c, &pk))
        return;
    js_error_view(err, &pe);
    proto_write_error(&pk, msgid, &pe);
    serve_conn_replied(c);
}

/* ---- calls and contexts ------------------------------------------------- */

void
serve_conn_call_begin(struct serve_conn *c)
{
    serve_conn_ref(c);
    c->in_flight++;
    serve_conn_maybe_pause(c);
}

void
serve_conn_call_end(struct serve_conn *c)
{
    c->in_flight--;
    if (c->paused && !c->closing && c->in_flight <= SERVE_INFLIGHT_MAX / 2)
        serve__resume_later(c->serve);
    if (c->serve->draining && !c->is_fd && c->in_flight == 0)
        serve_conn_finish(c);
    serve__check_doomed(c->serve);
    serve_conn_maybe_finish(c);
    serve_conn_unref(c);
}

void
serve_conn_add_context(struct serve_conn *c, uint32_t id)
{
    if (c->ncontexts == c->contexts_cap) {
        c->contexts_cap = c->contexts_cap ? c->contexts_cap * 2 : 8;
        c->contexts = xrealloc(c->contexts, c->contexts_cap * sizeof(uint32_t));
    }
    c->contexts[c->ncontexts++] = id;
}

bool
serve_conn_has_context(const struct serve_conn *c, uint32_t id)
{
    for (size_t i = 0; i < c->ncontexts; i++)
        if (c->contexts[i] == id)
            return true;
    return false;
}

struct serve_conn *
serve_conn_of_context(struct serve *s, uint32_t id)
{
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next)
        if (!c->closing && serve_conn_has_context(c, id))
            return c;
    return NULL;
}

bool
serve_ids_take(struct serve_ids *ids, uint32_t msgid)
{
    for (size_t i = 0; i < ids->n; i++) {
        if (ids->v[i] == msgid) {
            ids->v[i] = ids->v[--ids->n];
            return true;
        }
    }
    return false;
}

static void
serve_ids_push(struct serve_ids *ids, uint32_t msgid)
{
    if (ids->n == ids->cap) {
        ids->cap = ids->cap ? ids->cap * 2 : 8;
        ids->v = xrealloc(ids->v, ids->cap * sizeof(uint32_t));
    }
    ids->v[ids->n++] = msgid;
}

/* Adds msgid unless it is there. */
static void
serve_ids_add(struct serve_ids *ids, uint32_t msgid)
{
    for (size_t i = 0; i < ids->n; i++)
        if (ids->v[i] == msgid)
            return;
    serve_ids_push(ids, msgid);
}

void
serve_conn_forget_context(struct serve *s, uint32_t id)
{
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next) {
        for (size_t i = 0; i < c->ncontexts; i++) {
            if (c->contexts[i] == id) {
                c->contexts[i] = c->contexts[--c->ncontexts];
                return;
            }
        }
    }
}

/* ---- while JavaScript runs long ----------------------------------------- */

/* What serve_conn_poll has seen in one look at the buffer. */
struct serve_scan {
    struct serve_conn *conn;
    uint32_t *requests; /* msgids of calls not yet read */
    size_t n, cap;
    unsigned early;                /* pings and stats seen so far */
    struct serve_ids pongs, stats; /* to answer once the scan is done */
};

static bool
raw_is(const struct proto_raw *raw, const char *method)
{
    size_t n = strlen(method);

    return raw->method_len == n && memcmp(raw->method, method, n) == 0;
}

/* params[0] of a message as an unsigned integer. */
static bool
raw_param_uint(const struct proto_raw *raw, uint64_t *v)
{
    struct proto_cur cur;
    struct proto_item it;

    if (raw->nparams < 1)
        return false;
    proto_cur_init(&cur, raw->bytes + raw->param_at[0],
                   raw->size - raw->param_at[0]);
    if (proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_UINT)
        return false;
    *v = it.v.u;
    return true;
}

static bool
raw_is_call(const struct proto_raw *raw)
{
    return raw_is(raw, PROTO_M_CALL) || raw_is(raw, PROTO_M_CONTEXT_EVAL) ||
           raw_is(raw, PROTO_M_CONTEXT_CALL) ||
           raw_is(raw, PROTO_M_CONTEXT_LOAD);
}

bool
serve_conn_is_early_kind(enum proto_kind kind, uint32_t nparams, bool ping,
                         bool stats)
{
    return kind == PROTO_REQUEST && nparams == 0 && (ping || stats);
}

/* One message waiting in the buffer, seen before its turn. */
static bool
serve_conn_scan_msg(void *arg, const struct proto_raw *raw)
{
    struct serve_scan *sc = arg;
    struct serve_conn *c = sc->conn;
    struct serve_call *call;
    uint64_t v;

    if (raw->kind == PROTO_REQUEST && raw_is_call(raw)) {
        if (sc->n == sc->cap) {
            sc->cap = sc->cap ? sc->cap * 2 : 16;
            sc->requests = xrealloc(sc->requests, sc->cap * sizeof(uint32_t));
        }
        sc->requests[sc->n++] = raw->msgid;
    } else if (raw->kind == PROTO_REQUEST &&
               raw_is(raw, PROTO_M_CONTEXT_DESTROY) &&
               raw_param_uint(raw, &v) && v <= UINT32_MAX &&
               serve_conn_has_context(c, (uint32_t)v)) {
        js_context_interrupt(c->serve->engine, (uint32_t)v);
    } else if (serve_conn_is_early_kind(raw->kind, raw->nparams,
                                        raw_is(raw, PROTO_M_PING),
                                        raw_is(raw, PROTO_M_STATS))) {
        /* Alive and busy: said now, not after the run (docs/protocol.md,
         * "Liveness"); those before were answered by an earlier look. */
        if (sc->early++ >= c->early)
            serve_ids_push(raw_is(raw, PROTO_M_PING) ? &sc->pongs : &sc->stats,
                           raw->msgid);
    } else if (raw->kind == PROTO_NOTIFICATION && c->is_fd &&
               raw_is(raw, PROTO_N_DRAIN)) {
        /* Read once the run ends; a stop before that is past the grace. */
        js_engine_stop_cancels(c->serve->engine);
    } else if (raw->kind == PROTO_NOTIFICATION && raw_is(raw, PROTO_N_CANCEL) &&
               raw_param_uint(raw, &v) && v <= UINT32_MAX) {
        for (call = c->calls; call != NULL; call = call->next) {
            if (call->msgid == (uint32_t)v) {
                js_cancel(c->serve->engine, call);
                return true;
            }
        }
        /* Cancelled before it was read: it will be answered, not run. */
        for (size_t i = 0; i < sc->n; i++)
            if (sc->requests[i] == (uint32_t)v)
                serve_ids_add(&c->precancel, (uint32_t)v);
    }
    return true;
}

void
serve_conn_poll(struct serve_conn *c)
{
    struct serve *s = c->serve;
    struct serve_scan sc = {.conn = c};
    int r;

    if (c->closing || c->stream == NULL)
        return;
    r = rpcstream_read_now(c->stream, SERVE_POLL_READ_MAX);
    if (r == 1) {
        if (c->is_fd) {
            /* The manager is gone: nobody is left to answer. */
            js_engine_stop(s->engine);
            return;
        }
        /* Its peer is gone: what it asked for is of no use any more. */
        for (struct serve_call *call = c->calls; call != NULL;
             call = call->next)
            js_cancel(s->engine, call);
        for (size_t i = 0; i < c->ncontexts; i++)
            js_context_interrupt(s->engine, c->contexts[i]);
        return;
    }
    rpcstream_scan(c->stream, serve_conn_scan_msg, &sc);
    free(sc.requests);
    c->early = sc.early;
    if (sc.pongs.n + sc.stats.n > 0) {
        /* The loop does not turn while JavaScript runs: written now. */
        serve_conn_ref(c);
        for (size_t i = 0; i < sc.pongs.n; i++)
            serve_method_pong(c, sc.pongs.v[i]);
        for (size_t i = 0; i < sc.stats.n; i++)
            serve_method_stats(c, sc.stats.v[i]);
        if (!c->closing)
            serve_conn_flush(c);
        serve_conn_unref(c);
    }
    free(sc.pongs.v);
    free(sc.stats.v);
}

/* ---- the stream's callbacks -------------------------------------------- */

static void
serve_conn_on_msg(void *owner, struct proto_msg *msg)
{
    struct serve_conn *c = owner;

    serve_method_dispatch(c, msg);
    proto_msg_release(msg);
    serve__check_doomed(c->serve);
}

static void
serve_conn_on_end(void *owner, int err, const char *cause)
{
    struct serve_conn *c = owner;

    if (rpcstream_closing(c->stream)) {
        /* It broke: the stream refused it and closes once that is written. */
        log_warn("closing a connection whose stream broke: %s", cause);
        c->closing = true;
        serve__maybe_exit(c->serve);
        return;
    }
    if (c->is_fd) {
        /* The manager is gone: nobody is left to answer. */
        log_info("the manager's connection ended (%s)",
                 err == 0 ? "EOF" : cause);
        serve_conn_close(c);
        return;
    }
    if (err != 0) {
        log_debug("connection failed: %s", cause);
        serve_conn_close(c);
        return;
    }
    /* A peer that closed the connection cancels what it asked; one that
     * only shut down its sending side is answered, then closed. */
    if (rpcstream_peer_gone(c->stream)) {
        log_debug("connection closed by the peer");
        serve_conn_close(c);
        return;
    }
    c->eof = true;
    serve_conn_maybe_finish(c);
}

/* A write completed: the last one may finish a connection or a doomed
 * worker. */
static void
serve_conn_on_drain(void *owner)
{
    struct serve_conn *c = owner;

    serve_conn_maybe_finish(c);
    serve__maybe_exit(c->serve);
}

static const struct rpcstream_cbs serve_conn_stream_cbs = {
    .on_msg = serve_conn_on_msg,
    /* Values are converted from the reader's buffer before any JS runs (only
     * JS polls the socket and moves that buffer): no tree, no copy. */
    .take_bytes = true,
    .on_end = serve_conn_on_end,
    .on_drain = serve_conn_on_drain,
    .on_closed = serve_conn_on_closed,
};

void
serve_conn_start(struct serve_conn *c)
{
    int r = rpcstream_start(c->stream);

    if (r < 0) {
        log_warn("cannot read a connection: %s", uv_strerror(r));
        serve_conn_close(c);
    }
}

struct serve_conn *
serve_conn_new(struct serve *s)
{
    struct serve_conn *c = xcalloc(1, sizeof(*c));

    c->serve = s;
    c->id = ++s->next_conn_id;
    c->refs = 1;
    if (rpcstream_new(s->loop, 0, &serve_conn_stream_cbs, c, &c->stream) < 0) {
        free(c);
        return NULL;
    }
    rpcstream_set_backlog(c->stream, SERVE_WRITE_HIGH_WATER,
                          SERVE_WRITE_HIGH_WATER / 2);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    return c;
}
