/*
 * What the worker answers (docs/protocol.md): a dispatch table of the same
 * shape as the manager's (name, checker from proto/check.c, handler), one
 * handler per method, and the calls handed to the engine, answered as they
 * complete, in any order; the notifications (cancel, release) and the
 * reverse calls (invoke) out to the owners of callables, whose answers come
 * back as responses.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "methods.h"
#include "serve_internal.h"
#include "xmalloc.h"

/* ---- calls -------------------------------------------------------------- */

static struct serve_call *
serve_call_new(struct serve_conn *c, uint32_t msgid)
{
    struct serve_call *call = xmalloc(sizeof(*call));

    call->conn = c;
    call->msgid = msgid;
    call->start_ns = uv_hrtime();
    call->prev = NULL;
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    serve_conn_call_begin(c);
    return call;
}

/* The engine's answer: the reply goes back on the call's connection (dropped
 * when that closed meanwhile). */
static void
serve_call_done(void *arg, const char *value, size_t len,
                const struct js_error *err)
{
    struct serve_call *call = arg;
    struct serve_conn *c = call->conn;
    msgpack_packer pk;

    if (err != NULL) {
        serve_conn_reply_js_error(c, call->msgid, err);
    } else if (serve_conn_packer(c, &pk)) {
        proto_write_result(&pk, call->msgid);
        if (value != NULL && len > 0)
            pk.callback(pk.data, value, len);
        else
            msgpack_pack_nil(&pk);
        serve_conn_replied(c);
    }
    serve__record_latency(c->serve, call->start_ns);
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    free(call);
    serve_conn_call_end(c);
}

/* A call cancelled before it was read is answered so, and not run. */
static bool
serve_call_precancelled(struct serve_conn *c, const struct proto_msg *msg)
{
    if (c->precancel.n == 0 || !serve_ids_take(&c->precancel, msg->msgid))
        return false;
    serve_conn_reply_error(c, msg->msgid, PROTO_ERR_CANCELLED,
                           "cancelled before it ran");
    return true;
}

/* ---- reverse calls ------------------------------------------------------ */

/* [0, id, "invoke", [callback, args]] on the connection that owns the
 * callable; on the manager's, the owner as a third param (the manager
 * routes by it). */
int
serve_method_invoke(void *arg, struct js_invoke *inv)
{
    struct serve *s = arg;
    struct serve_call *call = inv->call_arg;
    struct serve_conn *c;
    msgpack_packer pk;

    c = call != NULL ? call->conn : serve_conn_of_context(s, inv->context);
    if (c == NULL || !serve_conn_packer(c, &pk))
        return -ENOTCONN;
    proto_write_request(&pk, inv->id, PROTO_M_INVOKE, c->is_fd ? 3 : 2);
    msgpack_pack_uint32(&pk, inv->callback_id);
    pk.callback(pk.data, inv->args, inv->args_len);
    if (c->is_fd) {
        msgpack_pack_map(&pk, 1);
        proto_pack_cstr(&pk, call != NULL ? PROTO_K_CALL : PROTO_K_CONTEXT);
        msgpack_pack_uint32(&pk, call != NULL ? call->msgid : inv->context);
    }
    serve_conn_replied(c);
    inv->peer = c->id;
    return 0;
}

/* ---- replies ------------------------------------------------------------ */

/* An engine failure reported through its return value. */
static void
reply_engine_failure(struct serve_conn *c, uint32_t msgid, int r,
                     const struct js_error *err)
{
    char msg[PROTO_CAUSE_MAX];

    if (err->type != PROTO_ERR_NONE) {
        serve_conn_reply_js_error(c, msgid, err);
        return;
    }
    snprintf(msg, sizeof(msg), "%s",
             err->message ? err->message : strerror(-r));
    serve_conn_reply_error(
        c, msgid,
        r == -ENOENT ? PROTO_ERR_NOT_FOUND : PROTO_ERR_HOST_UNAVAILABLE, msg);
}

static void
reply_nil(struct serve_conn *c, uint32_t msgid)
{
    msgpack_packer pk;

    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msgid);
    msgpack_pack_nil(&pk);
    serve_conn_replied(c);
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
    double p50, p99;

    js_engine_stats(s->engine, &st);
    serve__latency(s, &p50, &p99);
    msgpack_pack_map(pk, 11);
    proto_pack_cstr(pk, PROTO_K_PID);
    msgpack_pack_int64(pk, getpid());
    proto_pack_cstr(pk, PROTO_K_HEAP_USED);
    msgpack_pack_uint64(pk, st.heap_used);
    proto_pack_cstr(pk, PROTO_K_HEAP_LIMIT);
    msgpack_pack_uint64(pk, st.heap_limit);
    proto_pack_cstr(pk, PROTO_K_CALLS);
    msgpack_pack_uint64(pk, st.calls);
    proto_pack_cstr(pk, PROTO_K_ERRORS);
    msgpack_pack_uint64(pk, st.errors);
    proto_pack_cstr(pk, PROTO_K_IN_FLIGHT);
    msgpack_pack_uint64(pk, st.in_flight);
    proto_pack_cstr(pk, PROTO_K_CONTEXTS);
    msgpack_pack_uint64(pk, st.contexts);
    proto_pack_cstr(pk, PROTO_K_UPTIME_S);
    msgpack_pack_double(pk, st.uptime_s);
    proto_pack_cstr(pk, PROTO_K_RSS);
    msgpack_pack_uint64(pk, rss_bytes());
    proto_pack_cstr(pk, PROTO_K_P50_MS);
    msgpack_pack_double(pk, p50);
    proto_pack_cstr(pk, PROTO_K_P99_MS);
    msgpack_pack_double(pk, p99);
}

void
serve_method_pack_functions(struct serve *s, msgpack_packer *pk)
{
    const char *const *names;
    size_t n = js_engine_functions(s->engine, &names);

    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        proto_pack_cstr(pk, names[i]);
}

void
serve_method_pack_extras(struct serve *s, msgpack_packer *pk)
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

/* A context id as the engine knows it: ids past 32 bits are simply unknown
 * (0). */
static uint32_t
engine_context(uint64_t id)
{
    return id > UINT32_MAX ? 0 : (uint32_t)id;
}

/* ---- methods ------------------------------------------------------------ */

typedef void (*serve_method_fn)(struct serve_conn *c,
                                const struct proto_msg *msg,
                                const struct proto_params *p);

void
serve_method_pong(struct serve_conn *c, uint32_t msgid)
{
    msgpack_packer pk;

    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msgid);
    proto_pack_cstr(&pk, PROTO_PONG);
    serve_conn_replied(c);
}

static void
m_ping(struct serve_conn *c, const struct proto_msg *msg,
       const struct proto_params *p)
{
    (void)p;
    serve_method_pong(c, msg->msgid);
}

static void
m_hello(struct serve_conn *c, const struct proto_msg *msg,
        const struct proto_params *p)
{
    msgpack_packer pk;

    (void)p;
    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 3);
    proto_pack_cstr(&pk, PROTO_K_SERVER);
    proto_pack_cstr(&pk, JSHOST_VERSION);
    proto_pack_cstr(&pk, PROTO_K_PROTOCOL);
    msgpack_pack_int(&pk, PROTO_VERSION);
    proto_pack_cstr(&pk, PROTO_K_PID);
    msgpack_pack_int64(&pk, getpid());
    serve_conn_replied(c);
}

/* A direct client attaches to the one config this worker serves. */
static void
m_attach(struct serve_conn *c, const struct proto_msg *msg,
         const struct proto_params *p)
{
    struct serve *s = c->serve;
    char cause[PROTO_CAUSE_MAX];
    char *cpath, *real;
    msgpack_packer pk;

    if (s->config_realpath == NULL) {
        serve_conn_reply_error(c, msg->msgid, PROTO_ERR_NOT_FOUND,
                               "this worker serves no config (a private VM)");
        return;
    }
    cpath = xstrndup(p->config, p->config_len);
    real = realpath(cpath, NULL);
    if (real == NULL || strcmp(real, s->config_realpath) != 0) {
        snprintf(cause, sizeof(cause), "config %s: %s", cpath,
                 real == NULL ? strerror(errno)
                              : "not the config this worker serves");
        serve_conn_reply_error(c, msg->msgid, PROTO_ERR_NOT_FOUND, cause);
        free(cpath);
        free(real);
        return;
    }
    free(cpath);
    free(real);
    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 6);
    proto_pack_cstr(&pk, PROTO_K_HOST);
    proto_pack_cstr(&pk, "local");
    proto_pack_cstr(&pk, PROTO_K_CONFIG);
    proto_pack_cstr(&pk, s->config_realpath);
    proto_pack_cstr(&pk, PROTO_K_FUNCTIONS);
    serve_method_pack_functions(s, &pk);
    proto_pack_cstr(&pk, PROTO_K_WORKERS);
    msgpack_pack_int(&pk, 1);
    proto_pack_cstr(&pk, PROTO_K_LOGFILE);
    msgpack_pack_nil(&pk);
    proto_pack_cstr(&pk, PROTO_K_EXTRAS);
    serve_method_pack_extras(s, &pk);
    serve_conn_replied(c);
}

/* Nothing lingers on a worker: it serves until it is stopped. */
static void
m_detach(struct serve_conn *c, const struct proto_msg *msg,
         const struct proto_params *p)
{
    msgpack_packer pk;

    (void)p;
    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 1);
    proto_pack_cstr(&pk, PROTO_K_LINGER_MS);
    msgpack_pack_int(&pk, 0);
    serve_conn_replied(c);
}

static void
m_call(struct serve_conn *c, const struct proto_msg *msg,
       const struct proto_params *p)
{
    if (serve_call_precancelled(c, msg))
        return;
    js_call(c->serve->engine, p->function, p->function_len, p->data_bytes,
            p->timeout_ms, serve_call_done, serve_call_new(c, msg->msgid));
}

static void
m_context_create(struct serve_conn *c, const struct proto_msg *msg,
                 const struct proto_params *p)
{
    struct js_error err;
    msgpack_packer pk;
    char *cwd = NULL;
    uint32_t id;
    int r;

    if (p->cwd != NULL)
        cwd = xstrndup(p->cwd, p->cwd_len);
    memset(&err, 0, sizeof(err));
    r = js_context_create(c->serve->engine, cwd, &id, &err);
    free(cwd);
    if (r < 0) {
        reply_engine_failure(c, msg->msgid, r, &err);
        js_error_free(&err);
        return;
    }
    js_error_free(&err);
    serve_conn_add_context(c, id);
    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_uint32(&pk, id);
    serve_conn_replied(c);
}

static void
m_context_eval(struct serve_conn *c, const struct proto_msg *msg,
               const struct proto_params *p)
{
    const char *ident = p->identifier;
    size_t ident_len = p->identifier_len;

    if (ident == NULL || ident_len == 0) {
        ident = "<eval>";
        ident_len = strlen(ident);
    }
    if (serve_call_precancelled(c, msg))
        return;
    js_context_eval(c->serve->engine, engine_context(p->context), p->source,
                    p->source_len, ident, ident_len, p->timeout_ms,
                    p->as_string ? JS_EVAL_STRING : 0, serve_call_done,
                    serve_call_new(c, msg->msgid));
}

static void
m_context_call(struct serve_conn *c, const struct proto_msg *msg,
               const struct proto_params *p)
{
    if (serve_call_precancelled(c, msg))
        return;
    js_context_call(c->serve->engine, engine_context(p->context), p->expression,
                    p->expression_len, p->args_bytes, p->timeout_ms,
                    serve_call_done, serve_call_new(c, msg->msgid));
}

static void
m_context_load(struct serve_conn *c, const struct proto_msg *msg,
               const struct proto_params *p)
{
    if (serve_call_precancelled(c, msg))
        return;
    js_context_load(c->serve->engine, engine_context(p->context),
                    p->paths_bytes, p->timeout_ms, serve_call_done,
                    serve_call_new(c, msg->msgid));
}

static void
m_context_destroy(struct serve_conn *c, const struct proto_msg *msg,
                  const struct proto_params *p)
{
    uint32_t id = engine_context(p->context);
    char cause[PROTO_CAUSE_MAX];

    if (id == 0 || js_context_destroy(c->serve->engine, id) < 0) {
        snprintf(cause, sizeof(cause), "no context %llu",
                 (unsigned long long)p->context);
        serve_conn_reply_error(c, msg->msgid, PROTO_ERR_NOT_FOUND, cause);
        return;
    }
    serve_conn_forget_context(c->serve, id);
    reply_nil(c, msg->msgid);
}

void
serve_method_stats(struct serve_conn *c, uint32_t msgid)
{
    msgpack_packer pk;

    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msgid);
    pack_stats(c->serve, &pk);
    serve_conn_replied(c);
}

static void
m_stats(struct serve_conn *c, const struct proto_msg *msg,
        const struct proto_params *p)
{
    (void)p;
    serve_method_stats(c, msg->msgid);
}

static void
m_status(struct serve_conn *c, const struct proto_msg *msg,
         const struct proto_params *p)
{
    struct serve *s = c->serve;
    msgpack_packer pk;

    (void)p;
    if (!serve_conn_packer(c, &pk))
        return;
    proto_write_result(&pk, msg->msgid);
    msgpack_pack_map(&pk, 4);
    proto_pack_cstr(&pk, PROTO_K_PID);
    msgpack_pack_int64(&pk, getpid());
    proto_pack_cstr(&pk, PROTO_K_CONFIG);
    proto_pack_cstr(&pk, s->config_realpath);
    proto_pack_cstr(&pk, PROTO_K_FUNCTIONS);
    serve_method_pack_functions(s, &pk);
    proto_pack_cstr(&pk, PROTO_K_STATS);
    pack_stats(s, &pk);
    serve_conn_replied(c);
}

/* ---- notifications ------------------------------------------------------ */

/* cancel [msgid]: that call of this connection, if it is still unanswered. */
static void
n_cancel(struct serve_conn *c, const struct proto_msg *msg,
         const struct proto_params *p)
{
    (void)msg;
    if (serve_ids_take(&c->precancel, p->msgid))
        return; /* answered already, when it was read */
    for (struct serve_call *call = c->calls; call != NULL; call = call->next) {
        if (call->msgid == p->msgid) {
            js_cancel(c->serve->engine, call);
            return;
        }
    }
}

/* release [[callback ids], [contexts]]: withdrawn in those contexts of this
 * connection (without the second param: in all of them). */
static void
n_release(struct serve_conn *c, const struct proto_msg *msg,
          const struct proto_params *p)
{
    struct proto_cur cur;
    struct proto_item it;
    uint32_t *ids, n;

    /* The checker saw arrays of unsigned integers (32-bit ones for the
     * callbacks). */
    proto_cur_init(&cur, p->callbacks_bytes.ptr, p->callbacks_bytes.len);
    n = proto_cur_next(&cur, &it) == 0 ? it.len : 0;
    ids = xmalloc((n ? n : 1) * sizeof(*ids));
    for (uint32_t i = 0; i < n; i++)
        ids[i] = proto_cur_next(&cur, &it) == 0 ? (uint32_t)it.v.u : 0;
    if (proto_msg_nparams(msg) < 2) {
        for (size_t i = 0; i < c->ncontexts; i++)
            js_context_release(c->serve->engine, c->contexts[i], ids, n);
    } else {
        uint32_t nctx;

        proto_cur_init(&cur, p->contexts_bytes.ptr, p->contexts_bytes.len);
        nctx = proto_cur_next(&cur, &it) == 0 ? it.len : 0;
        for (uint32_t i = 0; i < nctx; i++) {
            if (proto_cur_next(&cur, &it) != 0)
                break;
            if (it.v.u <= UINT32_MAX &&
                serve_conn_has_context(c, (uint32_t)it.v.u))
                js_context_release(c->serve->engine, (uint32_t)it.v.u, ids, n);
        }
    }
    free(ids);
}

/* ---- dispatch ----------------------------------------------------------- */

struct serve_method {
    struct proto_method m; /* first: proto_method_find reads it */
    serve_method_fn fn;
};

static const struct serve_method serve_methods[] = {
    {{PROTO_M_CALL, proto_check_call}, m_call},
    {{PROTO_M_PING, proto_check_ping}, m_ping},
    {{PROTO_M_CONTEXT_EVAL, proto_check_context_eval}, m_context_eval},
    {{PROTO_M_CONTEXT_CALL, proto_check_context_call}, m_context_call},
    {{PROTO_M_CONTEXT_CREATE, proto_check_context_create}, m_context_create},
    {{PROTO_M_CONTEXT_DESTROY, proto_check_context_destroy}, m_context_destroy},
    {{PROTO_M_CONTEXT_LOAD, proto_check_context_load}, m_context_load},
    {{PROTO_M_HELLO, proto_check_hello}, m_hello},
    {{PROTO_M_ATTACH, proto_check_attach}, m_attach},
    {{PROTO_M_DETACH, proto_check_detach}, m_detach},
    {{PROTO_M_STATS, proto_check_stats}, m_stats},
    {{PROTO_M_STATUS, proto_check_status}, m_status},
};

/* The manager's drain (a restart, stop or recycle): direct clients are told
 * to go (docs/protocol.md, "Direct connections"). */
static void
n_drain(struct serve_conn *c, const struct proto_msg *msg,
        const struct proto_params *p)
{
    (void)msg;
    (void)p;
    if (c->is_fd)
        serve__drain(c->serve);
}

static const struct serve_method serve_notifications[] = {
    {{PROTO_N_CANCEL, proto_check_cancel}, n_cancel},
    {{PROTO_N_RELEASE, proto_check_release}, n_release},
    {{PROTO_N_DRAIN, proto_check_drain}, n_drain},
};

/* A notification gets no answer: one that is not understood is logged. */
static void
serve_notification(struct serve_conn *c, const struct proto_msg *msg)
{
    const struct serve_method *e;
    struct proto_params p;
    enum proto_errtype type;
    char cause[PROTO_CAUSE_MAX];

    e = (const struct serve_method *)proto_method_find(
        serve_notifications,
        sizeof(serve_notifications) / sizeof(serve_notifications[0]),
        sizeof(serve_notifications[0]), msg, &p, &type, cause);
    if (e == NULL) {
        log_debug("ignored a notification: %s", cause);
        return;
    }
    e->fn(c, msg, &p);
}

void
serve_method_dispatch(struct serve_conn *c, const struct proto_msg *msg)
{
    const struct serve_method *e;
    struct proto_params p;
    enum proto_errtype type;
    char cause[PROTO_CAUSE_MAX];

    if (msg->kind == PROTO_RESPONSE) {
        /* The answer to a reverse call sent on this connection. */
        if (js_invoke_settle(c->serve->engine, msg->msgid, c->id,
                             proto_msg_error_bytes(msg),
                             proto_msg_result_bytes(msg)) < 0)
            log_debug("ignored a response to %u: no reverse call of this "
                      "connection waits for it",
                      msg->msgid);
        return;
    }
    if (msg->kind == PROTO_NOTIFICATION) {
        serve_notification(c, msg);
        return;
    }
    if (c->early > 0 &&
        serve_conn_is_early_kind(msg->kind, proto_msg_nparams(msg),
                                 proto_msg_is(msg, PROTO_M_PING),
                                 proto_msg_is(msg, PROTO_M_STATS))) {
        c->early--;
        return; /* answered while JavaScript ran (serve_conn_poll) */
    }
    e = (const struct serve_method *)proto_method_find(
        serve_methods, sizeof(serve_methods) / sizeof(serve_methods[0]),
        sizeof(serve_methods[0]), msg, &p, &type, cause);
    if (e == NULL) {
        serve_conn_reply_error(c, msg->msgid, type, cause);
        return;
    }
    e->fn(c, msg, &p);
}
