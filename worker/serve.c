/*
 * serve: connections, request validation and dispatch to the engine
 * (WORKER_PROTOCOL.md). A connection is reference-counted: its stream holds
 * one reference until it is closed, every run in flight holds one, so a reply
 * for a connection that closed meanwhile finds a live struct and is dropped.
 * The bytes themselves (reading, batching replies, backpressure on what the
 * peer does not read) are rpcstream's, shared with the manager.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "jshost_defs.h"
#include "log.h"
#include "rpcstream.h"
#include "rundir.h"
#include "serve.h"
#include "xmalloc.h"

/* How long a doomed worker waits for its replies to drain before exiting anyway
 * (a peer that stopped reading must not keep a recycled worker alive). */
#define SERVE_DOOM_GRACE_MS 5000
/* Runs in flight on a direct client's connection past which it is not read
 * (the manager's connection is bounded by the manager's own limits). */
#define SERVE_INFLIGHT_MAX 4096
/* Why a connection's stream is paused besides its own backlog. */
#define SERVE_PAUSE_RUNS RPCSTREAM_PAUSE_OWNER /* too many runs in flight */
#define SERVE_PAUSE_DOOMED (RPCSTREAM_PAUSE_OWNER << 1) /* heap limit hit */

struct serve_conn {
    struct rpcstream *stream; /* NULL once closed */
    struct serve *serve;
    unsigned refs;
    unsigned in_flight;
    bool is_fd;
    bool paused;  /* SERVE_PAUSE_RUNS: not read until runs finish */
    bool eof;     /* the peer finished sending; close once answered */
    bool closing; /* no more reading or replies */
    bool handle_closing;
    uint32_t *contexts; /* contexts this connection made, destroyed with it */
    size_t ncontexts, contexts_cap;
    struct serve_conn *prev, *next;
};

struct serve_run {
    struct serve_conn *conn;
    uint32_t msgid;
};

struct serve {
    uv_loop_t *loop;
    js_engine *engine;
    char *config_realpath;
    serve_exit_cb on_exit;
    void *arg;
    uv_pipe_t listener;
    bool listener_open;
    char *listen_path;
    struct serve_conn *conns;
    struct serve_conn *fd_conn;
    uv_timer_t doom_timer;
    uv_timer_t reap_timer;
    uv_timer_t resume_timer; /* reads paused connections again, outside
                                engine callbacks */
    /* Contexts of closed connections, destroyed by reap_timer. */
    uint32_t *dead_contexts;
    size_t ndead, dead_cap;
    bool closing;
    bool doomed;
    bool exit_requested;
};

static void conn_close(struct serve_conn *c);
static void serve_check_doomed(struct serve *s);
static void serve_maybe_exit(struct serve *s);
static void serve_reap_cb(uv_timer_t *t);
static void serve_resume_cb(uv_timer_t *t);
static void conn_maybe_resume(struct serve_conn *c);
static void conn_maybe_pause(struct serve_conn *c);
static void dispatch(struct serve_conn *c, const struct proto_msg *msg);

static void
serve_request_exit(struct serve *s, int status)
{
    if (s->exit_requested || s->closing)
        return;
    s->exit_requested = true;
    s->on_exit(s->arg, status);
}

/* ---- connection lifetime ---------------------------------------------- */

static void
conn_ref(struct serve_conn *c)
{
    c->refs++;
}

static void
conn_unref(struct serve_conn *c)
{
    struct serve *s = c->serve;

    if (--c->refs > 0)
        return;
    /* Destroying a context may not happen inside an engine callback (this may
     * be one), so the ids wait for reap_timer. */
    if (c->ncontexts > 0 && !s->closing) {
        for (size_t i = 0; i < c->ncontexts; i++) {
            if (s->ndead == s->dead_cap) {
                s->dead_cap = s->dead_cap ? s->dead_cap * 2 : 16;
                s->dead_contexts =
                    xrealloc(s->dead_contexts, s->dead_cap * sizeof(uint32_t));
            }
            s->dead_contexts[s->ndead++] = c->contexts[i];
        }
        uv_timer_start(&s->reap_timer, serve_reap_cb, 0, 0);
    }
    free(c->contexts);
    free(c);
}

static void
conn_on_closed(void *owner)
{
    struct serve_conn *c = owner;
    struct serve *s = c->serve;

    c->stream = NULL;
    c->closing = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c == s->fd_conn) {
        s->fd_conn = NULL;
        /* Without the manager's connection there is nobody left to serve. */
        serve_request_exit(s, s->doomed ? JSHOST_EXIT_RECYCLE : 0);
    }
    log_debug("connection closed (%u runs still in flight)", c->in_flight);
    conn_unref(c);
}

/* Closes at once; replies still owed are dropped. */
static void
conn_close(struct serve_conn *c)
{
    struct serve *s = c->serve;

    c->closing = true;
    if (c->handle_closing || c->stream == NULL)
        return;
    c->handle_closing = true;
    rpcstream_close(c->stream);
    serve_maybe_exit(s);
}

/* After EOF from the peer: close once every run is answered and written. */
static void
conn_maybe_finish(struct serve_conn *c)
{
    /* Not while paused: whole messages may still wait in the reader (a half
     * message left at EOF will never complete and does not count). */
    if (c->eof && !c->closing && !c->paused && c->in_flight == 0 &&
        rpcstream_backlog(c->stream) == 0)
        conn_close(c);
}

/* ---- backpressure ------------------------------------------------------- */

/* Stops reading a connection that keeps too many runs going (the manager's
 * connection is bounded by the manager's own limits; a backlog of replies
 * the peer does not read pauses the stream by itself). */
static void
conn_maybe_pause(struct serve_conn *c)
{
    if (c->paused || c->is_fd || c->closing ||
        c->in_flight < SERVE_INFLIGHT_MAX)
        return;
    c->paused = true;
    rpcstream_pause(c->stream, SERVE_PAUSE_RUNS);
}

/* Takes the messages left in the reader, then reads again. Not from inside
 * an engine callback (it starts runs). */
static void
conn_maybe_resume(struct serve_conn *c)
{
    if (!c->paused || c->closing || c->in_flight > SERVE_INFLIGHT_MAX / 2)
        return;
    c->paused = false;
    rpcstream_resume(c->stream, SERVE_PAUSE_RUNS);
    conn_maybe_finish(c);
}

/* ---- writing ------------------------------------------------------------ */

/* A packer on the connection's outgoing bytes; false when replies are
 * dropped. Every reply packed is followed by conn_replied. */
static bool
conn_packer(struct serve_conn *c, msgpack_packer *pk)
{
    if (c->closing)
        return false;
    return rpcstream_begin(c->stream, pk);
}

/* Replies go out at the end of the loop iteration, or early inside a long
 * batch of runs from one read (rpcstream). */
static void
conn_replied(struct serve_conn *c)
{
    rpcstream_commit(c->stream);
}

static void
reply_error(struct serve_conn *c, uint32_t msgid, enum proto_errtype type,
            const char *msg)
{
    msgpack_packer pk;

    if (!conn_packer(c, &pk))
        return;
    proto_write_errorf(&pk, msgid, type, "%s", msg);
    conn_replied(c);
}

static void
reply_invalid(struct serve_conn *c, uint32_t msgid, const char *cause)
{
    reply_error(c, msgid, PROTO_ERR_INVALID_ARGUMENT, cause);
}

static void
reply_js_error(struct serve_conn *c, uint32_t msgid, const struct js_error *err)
{
    struct proto_error pe;
    msgpack_packer pk;

    if (!conn_packer(c, &pk))
        return;
    js_error_view(err, &pe);
    proto_write_error(&pk, msgid, &pe);
    conn_replied(c);
}

/* An engine failure reported through its return value. */
static void
reply_engine_failure(struct serve_conn *c, uint32_t msgid, int r,
                     const struct js_error *err)
{
    char msg[PROTO_CAUSE_MAX];

    if (err->type != PROTO_ERR_NONE) {
        reply_js_error(c, msgid, err);
        return;
    }
    snprintf(msg, sizeof(msg), "%s",
             err->message ? err->message : strerror(-r));
    reply_error(c, msgid,
                r == -ENOENT ? PROTO_ERR_NOT_FOUND : PROTO_ERR_HOST_UNAVAILABLE,
                msg);
}

/* ---- runs --------------------------------------------------------------- */

static struct serve_run *
run_new(struct serve_conn *c, uint32_t msgid)
{
    struct serve_run *run = xmalloc(sizeof(*run));

    run->conn = c;
    run->msgid = msgid;
    conn_ref(c);
    c->in_flight++;
    conn_maybe_pause(c);
    return run;
}

static void
run_done(void *arg, const char *value, size_t len, const struct js_error *err)
{
    struct serve_run *run = arg;
    struct serve_conn *c = run->conn;
    msgpack_packer pk;

    if (err != NULL) {
        reply_js_error(c, run->msgid, err);
    } else if (conn_packer(c, &pk)) {
        proto_write_result(&pk, run->msgid);
        if (value != NULL && len > 0)
            pk.callback(pk.data, value, len);
        else
            msgpack_pack_nil(&pk);
        conn_replied(c);
    }
    free(run);
    c->in_flight--;
    if (c->paused && !c->closing && c->in_flight <= SERVE_INFLIGHT_MAX / 2)
        uv_timer_start(&c->serve->resume_timer, serve_resume_cb, 0, 0);
    serve_check_doomed(c->serve);
    conn_maybe_finish(c);
    conn_unref(c);
}

/* ---- request helpers ---------------------------------------------------- */

/* The options map's timeout_ms (0 when absent = the engine's default). */
static int
opt_timeout(const msgpack_object *opts, uint32_t index, uint32_t *timeout_ms,
            char *cause)
{
    uint64_t v;
    int r;

    *timeout_ms = 0;
    r = proto_opt_uint(opts, "timeout_ms", &v, cause);
    if (r < 0)
        return r;
    if (r == 0) {
        if (v > UINT32_MAX) {
            snprintf(cause, PROTO_CAUSE_MAX,
                     "params[%u] (options): timeout_ms %llu is too large",
                     index, (unsigned long long)v);
            return -EINVAL;
        }
        *timeout_ms = (uint32_t)v;
    }
    return 0;
}

/* A context id param: a uint; out of range ids are simply unknown (0). */
static int
param_context(const struct proto_msg *msg, uint32_t index, uint32_t *id,
              char *cause)
{
    uint64_t v;
    int r = proto_param_uint(msg, index, "context", &v, cause);

    if (r < 0)
        return r;
    *id = v > UINT32_MAX ? 0 : (uint32_t)v;
    return 0;
}

static void
conn_add_context(struct serve_conn *c, uint32_t id)
{
    if (c->ncontexts == c->contexts_cap) {
        c->contexts_cap = c->contexts_cap ? c->contexts_cap * 2 : 8;
        c->contexts = xrealloc(c->contexts, c->contexts_cap * sizeof(uint32_t));
    }
    c->contexts[c->ncontexts++] = id;
}

static void
serve_forget_context(struct serve *s, uint32_t id)
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

static uint64_t
rss_bytes(void)
{
    unsigned long long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void
pack_stats(struct serve *s, msgpack_packer *pk)
{
    struct js_stats st;

    js_engine_stats(s->engine, &st);
    msgpack_pack_map(pk, 9);
    proto_pack_cstr(pk, "pid");
    msgpack_pack_int64(pk, getpid());
    proto_pack_cstr(pk, "heap_used");
    msgpack_pack_uint64(pk, st.heap_used);
    proto_pack_cstr(pk, "heap_limit");
    msgpack_pack_uint64(pk, st.heap_limit);
    proto_pack_cstr(pk, "calls");
    msgpack_pack_uint64(pk, st.calls);
    proto_pack_cstr(pk, "errors");
    msgpack_pack_uint64(pk, st.errors);
    proto_pack_cstr(pk, "in_flight");
    msgpack_pack_uint64(pk, st.in_flight);
    proto_pack_cstr(pk, "contexts");
    msgpack_pack_uint64(pk, st.contexts);
    proto_pack_cstr(pk, "uptime_s");
    msgpack_pack_double(pk, st.uptime_s);
    proto_pack_cstr(pk, "rss");
    msgpack_pack_uint64(pk, rss_bytes());
}

static void
pack_functions(struct serve *s, msgpack_packer *pk)
{
    const char *const *names;
    size_t n = js_engine_functions(s->engine, &names);

    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        proto_pack_cstr(pk, names[i]);
}

static void
pack_extras(struct serve *s, msgpack_packer *pk)
{
    msgpack_sbuffer tmp;
    msgpack_packer tpk;

    /* Into a scratch buffer first: a failure must not leave half a value. */
    msgpack_sbuffer_init(&tmp);
    msgpack_packer_init(&tpk, &tmp, msgpack_sbuffer_write);
    if (js_engine_pack_extras(s->engine, &tpk) == 0 && tmp.size > 0)
        pk->callback(pk->data, tmp.data, tmp.size);
    else
        msgpack_pack_map(pk, 0);
    msgpack_sbuffer_destroy(&tmp);
}

/* ---- methods ------------------------------------------------------------ */

typedef void (*method_fn)(struct serve_conn *c, const struct proto_msg *msg,
                          char *cause);

static void
m_ping(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    msgpack_packer pk;

    (void)cause;
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    proto_pack_cstr(&pk, "pong");
    conn_replied(c);
}

static void
m_hello(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    const msgpack_object *opts;
    msgpack_packer pk;
    uint64_t version;
    int r;

    if (proto_params_count(msg, 1, 1, cause) < 0 ||
        proto_param_map(msg, 0, "options", &opts, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    r = proto_opt_uint(opts, "protocol", &version, cause);
    if (r != 0) {
        if (r > 0)
            snprintf(cause, PROTO_CAUSE_MAX,
                     "params[0] (options): protocol is missing");
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (version != PROTO_VERSION) {
        snprintf(
            cause, PROTO_CAUSE_MAX,
            "protocol %llu is not supported: this worker speaks protocol %d",
            (unsigned long long)version, PROTO_VERSION);
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 3);
    proto_pack_cstr(&pk, "server");
    proto_pack_cstr(&pk, JSHOST_VERSION);
    proto_pack_cstr(&pk, "protocol");
    msgpack_pack_int(&pk, PROTO_VERSION);
    proto_pack_cstr(&pk, "pid");
    msgpack_pack_int64(&pk, getpid());
    conn_replied(c);
}

static void
m_attach(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    struct serve *s = c->serve;
    const msgpack_object *opts;
    const char *path;
    size_t len;
    char *cpath, *real;
    msgpack_packer pk;

    if (proto_params_count(msg, 1, 2, cause) < 0 ||
        proto_param_str(msg, 0, "config", &path, &len, cause) < 0 ||
        proto_param_map(msg, 1, "options", &opts, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (s->config_realpath == NULL) {
        reply_error(c, msg->msgid, PROTO_ERR_NOT_FOUND,
                    "this worker serves no config (a private VM)");
        return;
    }
    cpath = xstrndup(path, len);
    real = realpath(cpath, NULL);
    if (real == NULL || strcmp(real, s->config_realpath) != 0) {
        snprintf(cause, PROTO_CAUSE_MAX, "config %s: %s", cpath,
                 real == NULL ? strerror(errno)
                              : "not the config this worker serves");
        reply_error(c, msg->msgid, PROTO_ERR_NOT_FOUND, cause);
        free(cpath);
        free(real);
        return;
    }
    free(cpath);
    free(real);
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 6);
    proto_pack_cstr(&pk, "host");
    proto_pack_cstr(&pk, "local");
    proto_pack_cstr(&pk, "config");
    proto_pack_cstr(&pk, s->config_realpath);
    proto_pack_cstr(&pk, "functions");
    pack_functions(s, &pk);
    proto_pack_cstr(&pk, "workers");
    msgpack_pack_int(&pk, 1);
    proto_pack_cstr(&pk, "logfile");
    msgpack_pack_nil(&pk);
    proto_pack_cstr(&pk, "extras");
    pack_extras(s, &pk);
    conn_replied(c);
}

static void
m_detach(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    msgpack_packer pk;

    if (proto_params_count(msg, 0, 1, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 1);
    proto_pack_cstr(&pk, "linger_ms");
    msgpack_pack_int(&pk, 0);
    conn_replied(c);
}

static void
m_call(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    const msgpack_object *data, *opts;
    const char *name;
    size_t name_len;
    uint32_t timeout_ms;

    if (proto_params_count(msg, 3, 4, cause) < 0 ||
        proto_param_str(msg, 1, "function", &name, &name_len, cause) < 0 ||
        proto_param_any(msg, 2, &data, cause) < 0 ||
        proto_param_map(msg, 3, "options", &opts, cause) < 0 ||
        opt_timeout(opts, 3, &timeout_ms, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    js_call(c->serve->engine, name, name_len, data, timeout_ms, run_done,
            run_new(c, msg->msgid));
}

static void
m_context_create(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    const msgpack_object *opts, *cwdobj;
    struct js_error err;
    msgpack_packer pk;
    char *cwd = NULL;
    uint32_t id;
    int r;

    if (proto_params_count(msg, 0, 2, cause) < 0 ||
        proto_param_map(msg, 1, "options", &opts, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    cwdobj = proto_map_get(opts, "cwd");
    if (cwdobj != NULL && cwdobj->type != MSGPACK_OBJECT_NIL) {
        if (cwdobj->type != MSGPACK_OBJECT_STR) {
            reply_invalid(c, msg->msgid,
                          "params[1] (options): cwd must be a string");
            return;
        }
        cwd = xstrndup(cwdobj->via.str.ptr, cwdobj->via.str.size);
    }
    memset(&err, 0, sizeof(err));
    r = js_context_create(c->serve->engine, cwd, &id, &err);
    free(cwd);
    if (r < 0) {
        reply_engine_failure(c, msg->msgid, r, &err);
        js_error_free(&err);
        return;
    }
    js_error_free(&err);
    conn_add_context(c, id);
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_uint32(&pk, id);
    conn_replied(c);
}

static void
m_context_eval(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    const msgpack_object *opts;
    const char *source, *ident;
    size_t source_len, ident_len;
    uint32_t id, timeout_ms;

    if (proto_params_count(msg, 2, 4, cause) < 0 ||
        param_context(msg, 0, &id, cause) < 0 ||
        proto_param_str(msg, 1, "source", &source, &source_len, cause) < 0 ||
        proto_param_str_or_nil(msg, 2, "identifier", &ident, &ident_len,
                               cause) < 0 ||
        proto_param_map(msg, 3, "options", &opts, cause) < 0 ||
        opt_timeout(opts, 3, &timeout_ms, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (ident == NULL || ident_len == 0) {
        ident = "<eval>";
        ident_len = strlen(ident);
    }
    js_context_eval(c->serve->engine, id, source, source_len, ident, ident_len,
                    timeout_ms, run_done, run_new(c, msg->msgid));
}

static void
m_context_call(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    static const msgpack_object no_args = {.type = MSGPACK_OBJECT_ARRAY};
    const msgpack_object *args = &no_args, *opts;
    const char *expr;
    size_t expr_len;
    uint32_t id, timeout_ms;

    if (proto_params_count(msg, 2, 4, cause) < 0 ||
        param_context(msg, 0, &id, cause) < 0 ||
        proto_param_str(msg, 1, "expression", &expr, &expr_len, cause) < 0 ||
        (msg->params.via.array.size > 2 &&
         proto_param_array(msg, 2, "args", &args, cause) < 0) ||
        proto_param_map(msg, 3, "options", &opts, cause) < 0 ||
        opt_timeout(opts, 3, &timeout_ms, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    js_context_call(c->serve->engine, id, expr, expr_len, args, timeout_ms,
                    run_done, run_new(c, msg->msgid));
}

static void
m_context_load(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    const msgpack_object *paths, *opts;
    uint32_t id, timeout_ms;

    if (proto_params_count(msg, 2, 3, cause) < 0 ||
        param_context(msg, 0, &id, cause) < 0 ||
        proto_param_array(msg, 1, "paths", &paths, cause) < 0 ||
        proto_param_map(msg, 2, "options", &opts, cause) < 0 ||
        opt_timeout(opts, 2, &timeout_ms, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    for (uint32_t i = 0; i < paths->via.array.size; i++) {
        if (paths->via.array.ptr[i].type != MSGPACK_OBJECT_STR) {
            snprintf(cause, PROTO_CAUSE_MAX,
                     "params[1] (paths): element %u is not a string", i);
            reply_invalid(c, msg->msgid, cause);
            return;
        }
    }
    js_context_load(c->serve->engine, id, paths, timeout_ms, run_done,
                    run_new(c, msg->msgid));
}

static void
m_context_destroy(struct serve_conn *c, const struct proto_msg *msg,
                  char *cause)
{
    msgpack_packer pk;
    uint32_t id;

    if (proto_params_count(msg, 1, 1, cause) < 0 ||
        param_context(msg, 0, &id, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (id == 0 || js_context_destroy(c->serve->engine, id) < 0) {
        snprintf(cause, PROTO_CAUSE_MAX, "no context %u", id);
        reply_error(c, msg->msgid, PROTO_ERR_NOT_FOUND, cause);
        return;
    }
    serve_forget_context(c->serve, id);
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_nil(&pk);
    conn_replied(c);
}

static void
m_stats(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    msgpack_packer pk;

    if (proto_params_count(msg, 0, 1, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    pack_stats(c->serve, &pk);
    conn_replied(c);
}

static void
m_status(struct serve_conn *c, const struct proto_msg *msg, char *cause)
{
    struct serve *s = c->serve;
    msgpack_packer pk;

    if (proto_params_count(msg, 0, 1, cause) < 0) {
        reply_invalid(c, msg->msgid, cause);
        return;
    }
    if (!conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 4);
    proto_pack_cstr(&pk, "pid");
    msgpack_pack_int64(&pk, getpid());
    proto_pack_cstr(&pk, "config");
    proto_pack_cstr(&pk, s->config_realpath);
    proto_pack_cstr(&pk, "functions");
    pack_functions(s, &pk);
    proto_pack_cstr(&pk, "stats");
    pack_stats(s, &pk);
    conn_replied(c);
}

static const struct {
    const char *name;
    method_fn fn;
} methods[] = {
    {"call", m_call},
    {"ping", m_ping},
    {"context.eval", m_context_eval},
    {"context.call", m_context_call},
    {"context.create", m_context_create},
    {"context.destroy", m_context_destroy},
    {"context.load", m_context_load},
    {"hello", m_hello},
    {"attach", m_attach},
    {"detach", m_detach},
    {"stats", m_stats},
    {"status", m_status},
};

static void
dispatch(struct serve_conn *c, const struct proto_msg *msg)
{
    char cause[PROTO_CAUSE_MAX];

    if (msg->kind != PROTO_REQUEST) {
        /* Nothing is asked of a peer, and no notification is defined yet. */
        log_debug("ignored a %s from a peer",
                  msg->kind == PROTO_RESPONSE ? "response" : "notification");
        return;
    }
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (proto_msg_is(msg, methods[i].name)) {
            cause[0] = '\0';
            methods[i].fn(c, msg, cause);
            return;
        }
    }
    snprintf(cause, sizeof(cause), "no method '%.*s'",
             (int)(msg->method_len > 64 ? 64 : msg->method_len), msg->method);
    reply_error(c, msg->msgid, PROTO_ERR_NOT_FOUND, cause);
}

/* ---- the stream's callbacks -------------------------------------------- */

static void
conn_on_msg(void *owner, struct proto_msg *msg)
{
    struct serve_conn *c = owner;

    dispatch(c, msg);
    proto_msg_release(msg);
    serve_check_doomed(c->serve);
}

static void
conn_on_end(void *owner, int err, const char *cause)
{
    struct serve_conn *c = owner;

    if (rpcstream_closing(c->stream)) {
        /* It broke: the stream refused it and closes once that is written. */
        log_warn("closing a connection whose stream broke: %s", cause);
        c->closing = true;
        serve_maybe_exit(c->serve);
        return;
    }
    if (c->is_fd) {
        /* The manager is gone: nobody is left to answer. */
        log_info("the manager's connection ended (%s)",
                 err == 0 ? "EOF" : cause);
        conn_close(c);
        return;
    }
    if (err != 0) {
        log_debug("connection failed: %s", cause);
        conn_close(c);
        return;
    }
    /* The peer may have only shut down its sending side: answer what it
     * asked, then close. */
    c->eof = true;
    conn_maybe_finish(c);
}

/* A write completed: the last one may finish a connection or a doomed
 * worker. */
static void
conn_on_drain(void *owner)
{
    struct serve_conn *c = owner;

    conn_maybe_finish(c);
    serve_maybe_exit(c->serve);
}

static const struct rpcstream_cbs conn_stream_cbs = {
    .on_msg = conn_on_msg,
    .on_end = conn_on_end,
    .on_drain = conn_on_drain,
    .on_closed = conn_on_closed,
};

static void
conn_read_start(struct serve_conn *c)
{
    int r = rpcstream_start(c->stream);

    if (r < 0) {
        log_warn("cannot read a connection: %s", uv_strerror(r));
        conn_close(c);
    }
}

static struct serve_conn *
conn_new(struct serve *s)
{
    struct serve_conn *c = xcalloc(1, sizeof(*c));

    c->serve = s;
    c->refs = 1;
    if (rpcstream_new(s->loop, 0, &conn_stream_cbs, c, &c->stream) < 0) {
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

/* ---- the server --------------------------------------------------------- */

static void
serve_reap_cb(uv_timer_t *t)
{
    struct serve *s = t->data;

    for (size_t i = 0; i < s->ndead; i++)
        js_context_destroy(s->engine, s->dead_contexts[i]);
    s->ndead = 0;
}

static void
serve_resume_cb(uv_timer_t *t)
{
    struct serve *s = t->data;

    for (struct serve_conn *c = s->conns; c != NULL; c = c->next)
        conn_maybe_resume(c);
}

static void
serve_doom_cb(uv_timer_t *t)
{
    struct serve *s = t->data;

    log_warn("replies did not drain in %d ms; exiting anyway",
             SERVE_DOOM_GRACE_MS);
    serve_request_exit(s, JSHOST_EXIT_RECYCLE);
}

static void
serve_maybe_exit(struct serve *s)
{
    if (!s->doomed)
        return;
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next) {
        if (!c->closing && rpcstream_backlog(c->stream) > 0)
            return;
    }
    serve_request_exit(s, JSHOST_EXIT_RECYCLE);
}

static void
serve_listener_close_cb(uv_handle_t *h)
{
    (void)h;
}

static void
serve_check_doomed(struct serve *s)
{
    if (s->doomed || s->closing || !js_engine_doomed(s->engine))
        return;
    s->doomed = true;
    log_warn("the heap limit was hit: answering what is owed, then exiting "
             "with status %d",
             JSHOST_EXIT_RECYCLE);
    if (s->listener_open) {
        s->listener_open = false;
        uv_close((uv_handle_t *)&s->listener, serve_listener_close_cb);
    }
    /* What is owed is still written; nothing more is read. */
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next) {
        if (!c->closing)
            rpcstream_pause(c->stream, SERVE_PAUSE_DOOMED);
    }
    uv_timer_start(&s->doom_timer, serve_doom_cb, SERVE_DOOM_GRACE_MS, 0);
    serve_maybe_exit(s);
}

int
serve_new(uv_loop_t *loop, const struct serve_options *opts, struct serve **out)
{
    struct serve *s = xcalloc(1, sizeof(*s));

    s->loop = loop;
    s->engine = opts->engine;
    s->config_realpath =
        opts->config_realpath ? xstrdup(opts->config_realpath) : NULL;
    s->on_exit = opts->on_exit;
    s->arg = opts->arg;
    rpcstream_setup(loop);
    uv_timer_init(loop, &s->doom_timer);
    s->doom_timer.data = s;
    uv_timer_init(loop, &s->reap_timer);
    s->reap_timer.data = s;
    uv_timer_init(loop, &s->resume_timer);
    s->resume_timer.data = s;
    *out = s;
    return 0;
}

int
serve_fd(struct serve *s, int fd, char **cause)
{
    struct serve_conn *c = conn_new(s);
    int r;

    if (c == NULL) {
        *cause = xasprintf("fd %d: out of memory", fd);
        return -ENOMEM;
    }
    r = rpcstream_open(c->stream, fd);
    if (r < 0) {
        *cause = xasprintf("fd %d: %s", fd, uv_strerror(r));
        conn_close(c);
        return r;
    }
    c->is_fd = true;
    s->fd_conn = c;
    conn_read_start(c);
    return 0;
}

int
serve_notify_ready(struct serve *s)
{
    struct serve_conn *c = s->fd_conn;
    struct js_config cfg;
    msgpack_packer pk;

    if (c == NULL || !conn_packer(c, &pk))
        return -ENOTCONN;
    js_engine_config(s->engine, &cfg);
    proto_write_notification(&pk, "ready", 1);
    msgpack_pack_map(&pk, 4);
    proto_pack_cstr(&pk, "pid");
    msgpack_pack_int64(&pk, getpid());
    proto_pack_cstr(&pk, "functions");
    pack_functions(s, &pk);
    proto_pack_cstr(&pk, "extras");
    pack_extras(s, &pk);
    proto_pack_cstr(&pk, "config");
    msgpack_pack_map(&pk, 4);
    proto_pack_cstr(&pk, "workers");
    msgpack_pack_uint32(&pk, cfg.workers);
    proto_pack_cstr(&pk, "timeout");
    msgpack_pack_uint32(&pk, cfg.timeout_ms);
    proto_pack_cstr(&pk, "memory");
    msgpack_pack_uint32(&pk, cfg.memory_mb);
    proto_pack_cstr(&pk, "linger");
    msgpack_pack_uint32(&pk, cfg.linger_ms);
    conn_replied(c);
    rpcstream_flush(c->stream);
    return 0;
}

/* True when the peer runs as our uid (DESIGN §2: other users are refused). */
static bool
peer_is_us(const struct rpcstream *p)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int fd;

    if (rpcstream_fileno(p, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == getuid();
}

static void
serve_connection_cb(uv_stream_t *server, int status)
{
    struct serve *s = server->data;
    struct serve_conn *c;
    int r;

    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    c = conn_new(s);
    if (c == NULL) {
        log_warn("accept: out of memory");
        return;
    }
    r = rpcstream_accept(c->stream, server);
    if (r < 0) {
        log_warn("accept: %s", uv_strerror(r));
        conn_close(c);
        return;
    }
    if (!peer_is_us(c->stream)) {
        log_warn("refused a connection from another user");
        conn_close(c);
        return;
    }
    log_debug("connection accepted");
    conn_read_start(c);
}

/* Removes a socket file left by a worker that died, refusing a live one. */
static int
clear_stale_socket(const char *path, char **cause)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, r;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        r = -errno;
        *cause = xasprintf("%s: %s", path, strerror(errno));
        return r;
    }
    if (!S_ISSOCK(st.st_mode)) {
        *cause = xasprintf("%s: exists and is not a socket", path);
        return -EEXIST;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        *cause = xasprintf("socket: %s", strerror(errno));
        return r;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (r == 0) {
        *cause = xasprintf("%s: another process is serving on it", path);
        return -EADDRINUSE;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        r = -errno;
        *cause = xasprintf("%s: cannot remove the stale socket: %s", path,
                           strerror(errno));
        return r;
    }
    return 0;
}

int
serve_listen(struct serve *s, const char *path, char **cause)
{
    mode_t old;
    int r;

    r = rundir_check_sockpath(path, cause);
    if (r < 0)
        return r;
    r = clear_stale_socket(path, cause);
    if (r < 0)
        return r;
    uv_pipe_init(s->loop, &s->listener, 0);
    s->listener.data = s;
    s->listener_open = true;
    /* Created 0600 from the start: no window where others could connect. */
    old = umask(0177);
    r = uv_pipe_bind(&s->listener, path);
    umask(old);
    if (r < 0) {
        *cause = xasprintf("%s: %s", path, uv_strerror(r));
        return r;
    }
    s->listen_path = xstrdup(path);
    r = uv_listen((uv_stream_t *)&s->listener, 128, serve_connection_cb);
    if (r < 0) {
        *cause = xasprintf("%s: listen: %s", path, uv_strerror(r));
        return r;
    }
    return 0;
}

static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};

                poll(&pfd, 1, 1000);
                continue;
            }
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

const char *
serve_config_message(const struct js_error *err)
{
    const char *m = err->message;
    size_t n;

    if (m == NULL)
        return "the config failed";
    if (err->file == NULL || strncmp(m, err->file, n = strlen(err->file)) != 0)
        return m;
    m += n;
    /* ":line" and ":column", each optional */
    for (int i = 0; i < 2 && m[0] == ':' && m[1] >= '0' && m[1] <= '9'; i++) {
        m++;
        while (*m >= '0' && *m <= '9')
            m++;
    }
    if (m[0] != ':' || m[1] != ' ')
        return err->message;
    return m + 2;
}

int
serve_write_config_error(int fd, const struct js_error *err)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_notification(&pk, "config_error", 1);
    msgpack_pack_map(&pk, 8);
    proto_pack_cstr(&pk, "type");
    proto_pack_cstr(&pk, proto_errtype_name(PROTO_ERR_CONFIG));
    proto_pack_cstr(&pk, "message");
    proto_pack_cstr(&pk, serve_config_message(err));
    proto_pack_cstr(&pk, "name");
    msgpack_pack_nil(&pk);
    proto_pack_cstr(&pk, "stack");
    proto_pack_cstr(&pk, err->stack);
    proto_pack_cstr(&pk, "logfile");
    msgpack_pack_nil(&pk);
    proto_pack_cstr(&pk, "file");
    proto_pack_cstr(&pk, err->file ? err->file : "");
    proto_pack_cstr(&pk, "line");
    msgpack_pack_int(&pk, err->line);
    proto_pack_cstr(&pk, "column");
    msgpack_pack_int(&pk, err->column);
    r = write_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static void
serve_timer_close_cb(uv_handle_t *h)
{
    (void)h;
}

void
serve_close(struct serve *s)
{
    struct serve_conn *c, *next;

    if (s->closing)
        return;
    s->closing = true;
    if (s->listener_open) {
        s->listener_open = false;
        uv_close((uv_handle_t *)&s->listener, serve_listener_close_cb);
    }
    if (s->listen_path != NULL)
        unlink(s->listen_path);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
    uv_close((uv_handle_t *)&s->doom_timer, serve_timer_close_cb);
    uv_close((uv_handle_t *)&s->reap_timer, serve_timer_close_cb);
    uv_close((uv_handle_t *)&s->resume_timer, serve_timer_close_cb);
    rpcstream_teardown();
}

void
serve_free(struct serve *s)
{
    if (s == NULL)
        return;
    free(s->config_realpath);
    free(s->listen_path);
    free(s->dead_contexts);
    free(s);
}
