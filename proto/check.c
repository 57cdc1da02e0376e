/* The checkers of every method's params, and the dispatch-table lookup. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "methods.h"
#include "proto_internal.h"

/* Stand in for absent params, and for every object of a message taken as
 * bytes. */
static const msgpack_object nil_object = {.type = MSGPACK_OBJECT_NIL};
static const msgpack_object empty_array = {.type = MSGPACK_OBJECT_ARRAY};
static const struct proto__val nil_val = {.it = {.type = PROTO_T_NIL}};

/* A value param into its two places in proto_params: the object (or
 * `absent` when the message has none) and the bytes. */
static void
publish(const struct proto__val *v, const msgpack_object *absent,
        const msgpack_object **obj, struct proto_span *bytes)
{
    *obj = v->obj != NULL ? v->obj : absent;
    *bytes = v->bytes;
}

/* params[i], or NULL in *pv when absent. */
static int
param_val(const struct proto_msg *msg, uint32_t i, struct proto__val *v,
          const struct proto__val **pv, char *cause)
{
    int r = proto__param(msg, i, v, cause);

    if (r < 0)
        return -EINVAL;
    *pv = r == 1 ? v : NULL;
    return 0;
}

static int
param_wrong(uint32_t i, const char *what, const char *expected,
            const struct proto__val *v, char *cause)
{
    if (v == NULL)
        proto__cause(cause, "params[%u] (%s): missing, expected %s", i, what,
                     expected);
    else
        proto__cause(cause, "params[%u] (%s): expected %s, got %s", i, what,
                     expected, proto_item_kind(&v->it));
    return -EINVAL;
}

/*
 * A str param (nil too when nil_ok: then *s = NULL). An empty str keeps a
 * non-NULL pointer, so that it never reads as nil.
 */
static int
param_str(const struct proto_msg *msg, uint32_t i, const char *what,
          bool nil_ok, const char **s, size_t *len, char *cause)
{
    struct proto__val v;
    const struct proto__val *o;

    if (param_val(msg, i, &v, &o, cause) < 0)
        return -EINVAL;
    if (nil_ok && o != NULL && o->it.type == PROTO_T_NIL) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (o == NULL || o->it.type != PROTO_T_STR)
        return param_wrong(i, what, nil_ok ? "a string or nil" : "a string", o,
                           cause);
    *s = o->it.ptr != NULL ? o->it.ptr : "";
    *len = o->it.len;
    return 0;
}

/* A str that names a file or a host: it must fit a path buffer whole. */
static int
path_ok(uint32_t i, const char *what, const char *s, size_t len, char *cause)
{
    if (s != NULL && (len >= PROTO_PATH_MAX || memchr(s, '\0', len) != NULL)) {
        proto__cause(cause, "params[%u] (%s): too long or not a path", i, what);
        return -EINVAL;
    }
    return 0;
}

static int
param_path(const struct proto_msg *msg, uint32_t i, const char *what,
           bool nil_ok, const char **s, size_t *len, char *cause)
{
    int r = param_str(msg, i, what, nil_ok, s, len, cause);

    return r < 0 ? r : path_ok(i, what, *s, *len, cause);
}

/* params[i]: an unsigned integer. */
static int
param_uint(const struct proto_msg *msg, uint32_t i, const char *what,
           uint64_t *u, char *cause)
{
    struct proto__val v;
    const struct proto__val *o;

    if (param_val(msg, i, &v, &o, cause) < 0)
        return -EINVAL;
    if (o == NULL || o->it.type != PROTO_T_UINT)
        return param_wrong(i, what, "an unsigned integer", o, cause);
    *u = o->it.v.u;
    return 0;
}

/* params[i]: a map, or nil/absent (then *v is nil). */
static int
param_map(const struct proto_msg *msg, uint32_t i, const char *what,
          struct proto__val *v, char *cause)
{
    const struct proto__val *o;

    if (param_val(msg, i, v, &o, cause) < 0)
        return -EINVAL;
    if (o == NULL || o->it.type == PROTO_T_NIL) {
        *v = nil_val;
        return 0;
    }
    if (o->it.type != PROTO_T_MAP)
        return param_wrong(i, what, "a map or nil", o, cause);
    return 0;
}

/* params[i]: an array. */
static int
param_array(const struct proto_msg *msg, uint32_t i, const char *what,
            struct proto__val *v, char *cause)
{
    const struct proto__val *o;

    if (param_val(msg, i, v, &o, cause) < 0)
        return -EINVAL;
    if (o == NULL || o->it.type != PROTO_T_ARRAY)
        return param_wrong(i, what, "an array", o, cause);
    return 0;
}

/* The host param: any value (see struct proto_params). */
static void
param_host(const struct proto_msg *msg, struct proto_params *p)
{
    struct proto__val v;

    if (proto__param(msg, 0, &v, NULL) != 1)
        return;
    publish(&v, &nil_object, &p->host_obj, &p->host_bytes);
    if (v.it.type == PROTO_T_STR) {
        p->host = v.it.ptr != NULL ? v.it.ptr : "";
        p->host_len = v.it.len;
    }
}

/* options[key]: an unsigned integer up to max, or absent/nil (0). */
static int
opt_uint(const struct proto__val *opts, uint32_t i, const char *key,
         uint64_t max, uint64_t *v, char *cause)
{
    struct proto__val o;

    *v = 0;
    if (!proto__map_get(opts, key, &o) || o.it.type == PROTO_T_NIL)
        return 0;
    if (o.it.type != PROTO_T_UINT) {
        proto__cause(cause,
                     "params[%u] (options): %s: expected an unsigned "
                     "integer, got %s",
                     i, key, proto_item_kind(&o.it));
        return -EINVAL;
    }
    if (o.it.v.u > max) {
        proto__cause(cause,
                     "params[%u] (options): %s %llu is too large (at most "
                     "%llu)",
                     i, key, (unsigned long long)o.it.v.u,
                     (unsigned long long)max);
        return -EINVAL;
    }
    *v = o.it.v.u;
    return 0;
}

/* options[key]: a bool, or absent/nil (false). */
static int
opt_bool(const struct proto__val *opts, uint32_t i, const char *key, bool *v,
         char *cause)
{
    struct proto__val o;

    *v = false;
    if (!proto__map_get(opts, key, &o) || o.it.type == PROTO_T_NIL)
        return 0;
    if (o.it.type != PROTO_T_BOOL) {
        proto__cause(cause, "params[%u] (options): %s: expected a bool, got %s",
                     i, key, proto_item_kind(&o.it));
        return -EINVAL;
    }
    *v = o.it.v.b;
    return 0;
}

/* options[key]: a str, or absent/nil (*s = NULL). */
static int
opt_str(const struct proto__val *opts, uint32_t i, const char *key,
        const char **s, size_t *len, char *cause)
{
    struct proto__val o;

    *s = NULL;
    *len = 0;
    if (!proto__map_get(opts, key, &o) || o.it.type == PROTO_T_NIL)
        return 0;
    if (o.it.type != PROTO_T_STR) {
        proto__cause(cause,
                     "params[%u] (options): %s: expected a string, got %s", i,
                     key, proto_item_kind(&o.it));
        return -EINVAL;
    }
    *s = o.it.ptr != NULL ? o.it.ptr : "";
    *len = o.it.len;
    return 0;
}

static int
check_timeout(const struct proto__val *opts, uint32_t index,
              uint32_t *timeout_ms, char *cause)
{
    uint64_t v;
    int r = opt_uint(opts, index, PROTO_K_TIMEOUT_MS, PROTO_TIMEOUT_MAX_MS, &v,
                     cause);

    *timeout_ms = r == 0 ? (uint32_t)v : 0;
    return r;
}

int
proto_check_timeout(const msgpack_object *options, uint32_t index,
                    uint32_t *timeout_ms, char *cause)
{
    struct proto__val v = nil_val;

    if (options != NULL && options->type == MSGPACK_OBJECT_MAP) {
        v.it.type = PROTO_T_MAP;
        v.it.len = options->via.map.size;
        v.obj = options;
    }
    return check_timeout(&v, index, timeout_ms, cause);
}

/* params[i] is the options map (or nil/absent), with its timeout_ms; *opts
 * is the map for the method's other options. */
static int
options_with_timeout(const struct proto_msg *msg, uint32_t i,
                     struct proto_params *p, struct proto__val *opts,
                     char *cause)
{
    if (param_map(msg, i, "options", opts, cause) < 0)
        return -EINVAL;
    publish(opts, &nil_object, &p->options, &p->options_bytes);
    return check_timeout(opts, i, &p->timeout_ms, cause);
}

/* Every checker starts from zero: absent options read as nil. */
static void
params_init(struct proto_params *p)
{
    memset(p, 0, sizeof(*p));
    p->options = &nil_object;
    p->data = &nil_object;
    p->args = &empty_array;
    p->host_obj = &nil_object;
    p->callbacks = &empty_array;
    p->contexts = &empty_array;
    p->paths = &empty_array;
}

static int
param_context(const struct proto_msg *msg, struct proto_params *p, char *cause)
{
    return param_uint(msg, 0, "context", &p->context, cause);
}

int
proto_check_hello(const struct proto_msg *msg, struct proto_params *p,
                  char *cause)
{
    struct proto__val opts, o;
    uint64_t v;

    params_init(p);
    if (proto_params_count(msg, 1, 1, cause) < 0 ||
        param_map(msg, 0, "options", &opts, cause) < 0)
        return -EINVAL;
    publish(&opts, &nil_object, &p->options, &p->options_bytes);
    if (opt_str(&opts, 0, PROTO_K_CLIENT, &p->client, &p->client_len, cause) <
        0)
        return -EINVAL;
    if (!proto__map_get(&opts, PROTO_K_PROTOCOL, &o) ||
        o.it.type == PROTO_T_NIL) {
        /* Without it neither side can tell the other speaks its language. */
        proto__cause(cause, "params[0] (options): %s is missing",
                     PROTO_K_PROTOCOL);
        return -EINVAL;
    }
    if (opt_uint(&opts, 0, PROTO_K_PROTOCOL, UINT64_MAX, &v, cause) < 0)
        return -EINVAL;
    p->protocol = v;
    if (v != PROTO_VERSION) {
        proto__cause(cause,
                     "protocol %llu is not supported: this side speaks "
                     "protocol %d",
                     (unsigned long long)v, PROTO_VERSION);
        return -EPROTONOSUPPORT;
    }
    return 0;
}

int
proto_check_attach(const struct proto_msg *msg, struct proto_params *p,
                   char *cause)
{
    struct proto__val opts;

    params_init(p);
    if (proto_params_count(msg, 1, 2, cause) < 0 ||
        param_path(msg, 0, "config", false, &p->config, &p->config_len, cause) <
            0 ||
        param_map(msg, 1, "options", &opts, cause) < 0)
        return -EINVAL;
    publish(&opts, &nil_object, &p->options, &p->options_bytes);
    return 0;
}

/* detach, restart, stop: [host]. */
static int
check_host_only(const struct proto_msg *msg, struct proto_params *p,
                char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 1, 1, cause) < 0)
        return -EINVAL;
    param_host(msg, p);
    return 0;
}

int
proto_check_detach(const struct proto_msg *msg, struct proto_params *p,
                   char *cause)
{
    return check_host_only(msg, p, cause);
}

int
proto_check_direct(const struct proto_msg *msg, struct proto_params *p,
                   char *cause)
{
    return check_host_only(msg, p, cause);
}

int
proto_check_restart(const struct proto_msg *msg, struct proto_params *p,
                    char *cause)
{
    return check_host_only(msg, p, cause);
}

int
proto_check_stop(const struct proto_msg *msg, struct proto_params *p,
                 char *cause)
{
    return check_host_only(msg, p, cause);
}

int
proto_check_status(const struct proto_msg *msg, struct proto_params *p,
                   char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 0, 1, cause) < 0)
        return -EINVAL;
    param_host(msg, p);
    return 0;
}

/* shutdown, ping, stats: []. */
static int
check_none(const struct proto_msg *msg, struct proto_params *p, char *cause)
{
    params_init(p);
    return proto_params_count(msg, 0, 0, cause) < 0 ? -EINVAL : 0;
}

int
proto_check_drain(const struct proto_msg *msg, struct proto_params *p,
                  char *cause)
{
    (void)p;
    return proto_params_count(msg, 0, 0, cause) < 0 ? -EINVAL : 0;
}

int
proto_check_shutdown(const struct proto_msg *msg, struct proto_params *p,
                     char *cause)
{
    return check_none(msg, p, cause);
}

int
proto_check_ping(const struct proto_msg *msg, struct proto_params *p,
                 char *cause)
{
    return check_none(msg, p, cause);
}

int
proto_check_stats(const struct proto_msg *msg, struct proto_params *p,
                  char *cause)
{
    return check_none(msg, p, cause);
}

/* call's data: any value (nil when absent). */
static int
param_data(const struct proto_msg *msg, struct proto_params *p, char *cause)
{
    struct proto__val v;
    const struct proto__val *o;

    if (param_val(msg, 2, &v, &o, cause) < 0)
        return -EINVAL;
    if (o != NULL)
        publish(o, &nil_object, &p->data, &p->data_bytes);
    return 0;
}

int
proto_check_call(const struct proto_msg *msg, struct proto_params *p,
                 char *cause)
{
    struct proto__val opts;

    params_init(p);
    param_host(msg, p);
    if (proto_params_count(msg, 3, 4, cause) < 0 ||
        param_str(msg, 1, "function", false, &p->function, &p->function_len,
                  cause) < 0 ||
        param_data(msg, p, cause) < 0 ||
        options_with_timeout(msg, 3, p, &opts, cause) < 0)
        return -EINVAL;
    return 0;
}

int
proto_check_context_create(const struct proto_msg *msg, struct proto_params *p,
                           char *cause)
{
    struct proto__val opts;
    uint64_t v;

    params_init(p);
    param_host(msg, p);
    if (proto_params_count(msg, 0, 2, cause) < 0 ||
        options_with_timeout(msg, 1, p, &opts, cause) < 0 ||
        opt_uint(&opts, 1, PROTO_K_MEMORY, PROTO_MEMORY_MAX_MB, &v, cause) <
            0 ||
        opt_uint(&opts, 1, PROTO_K_VM, UINT64_MAX, &p->vm, cause) < 0 ||
        opt_str(&opts, 1, PROTO_K_CWD, &p->cwd, &p->cwd_len, cause) < 0 ||
        path_ok(1, "options: " PROTO_K_CWD, p->cwd, p->cwd_len, cause) < 0)
        return -EINVAL;
    p->memory_mb = (uint32_t)v;
    return 0;
}

int
proto_check_context_eval(const struct proto_msg *msg, struct proto_params *p,
                         char *cause)
{
    struct proto__val opts;

    params_init(p);
    if (proto_params_count(msg, 3, 4, cause) < 0 ||
        param_context(msg, p, cause) < 0 ||
        param_str(msg, 1, "source", false, &p->source, &p->source_len, cause) <
            0 ||
        param_str(msg, 2, "identifier", true, &p->identifier,
                  &p->identifier_len, cause) < 0 ||
        options_with_timeout(msg, 3, p, &opts, cause) < 0 ||
        opt_bool(&opts, 3, PROTO_K_STRING, &p->as_string, cause) < 0)
        return -EINVAL;
    return 0;
}

int
proto_check_context_call(const struct proto_msg *msg, struct proto_params *p,
                         char *cause)
{
    struct proto__val opts, args;

    params_init(p);
    if (proto_params_count(msg, 2, 4, cause) < 0 ||
        param_context(msg, p, cause) < 0 ||
        param_str(msg, 1, "expression", false, &p->expression,
                  &p->expression_len, cause) < 0)
        return -EINVAL;
    if (proto_msg_nparams(msg) > 2) {
        if (param_array(msg, 2, "args", &args, cause) < 0)
            return -EINVAL;
        publish(&args, &empty_array, &p->args, &p->args_bytes);
    }
    if (options_with_timeout(msg, 3, p, &opts, cause) < 0)
        return -EINVAL;
    return 0;
}

/* The array params[i] (in *v, already read as an array): every element
 * passes `ok`, else words with the element's index and kind (max 0: strings,
 * else unsigned integers up to max). */
static int
elements_ok(uint32_t i, const char *what, const struct proto__val *v,
            bool (*ok)(const struct proto__val *, uint64_t), uint64_t max,
            char *cause)
{
    struct proto__iter it;
    struct proto__val e;

    proto__iter_init(&it, v);
    while (proto__iter_next(&it, &e)) {
        if (ok(&e, max))
            continue;
        if (max == 0)
            proto__cause(cause,
                         "params[%u] (%s): element %u is not a string, "
                         "it is %s",
                         i, what, it.k - 1, proto_item_kind(&e.it));
        else
            proto__cause(cause,
                         "params[%u] (%s): element %u is not an unsigned "
                         "%s-bit integer, it is %s",
                         i, what, it.k - 1, max == UINT32_MAX ? "32" : "64",
                         e.it.type == PROTO_T_UINT ? "a larger one"
                                                   : proto_item_kind(&e.it));
        return -EINVAL;
    }
    if (it.k < v->it.len) {
        proto__cause(cause, "params[%u] (%s): not msgpack", i, what);
        return -EINVAL;
    }
    return 0;
}

static bool
is_str(const struct proto__val *e, uint64_t max)
{
    (void)max;
    return e->it.type == PROTO_T_STR;
}

static bool
is_uint_upto(const struct proto__val *e, uint64_t max)
{
    return e->it.type == PROTO_T_UINT && e->it.v.u <= max;
}

int
proto_check_context_load(const struct proto_msg *msg, struct proto_params *p,
                         char *cause)
{
    struct proto__val opts, paths;

    params_init(p);
    if (proto_params_count(msg, 2, 3, cause) < 0 ||
        param_context(msg, p, cause) < 0 ||
        param_array(msg, 1, "paths", &paths, cause) < 0 ||
        options_with_timeout(msg, 2, p, &opts, cause) < 0 ||
        elements_ok(1, "paths", &paths, is_str, 0, cause) < 0)
        return -EINVAL;
    publish(&paths, &empty_array, &p->paths, &p->paths_bytes);
    return 0;
}

int
proto_check_context_destroy(const struct proto_msg *msg, struct proto_params *p,
                            char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 1, 1, cause) < 0 ||
        param_context(msg, p, cause) < 0)
        return -EINVAL;
    return 0;
}

/* params[i]: an unsigned 32-bit integer. */
static int
param_u32(const struct proto_msg *msg, uint32_t i, const char *what,
          uint32_t *v, char *cause)
{
    uint64_t u;

    if (param_uint(msg, i, what, &u, cause) < 0)
        return -EINVAL;
    if (u > UINT32_MAX) {
        proto__cause(cause, "params[%u] (%s): %llu does not fit 32 bits", i,
                     what, (unsigned long long)u);
        return -EINVAL;
    }
    *v = (uint32_t)u;
    return 0;
}

int
proto_check_cancel(const struct proto_msg *msg, struct proto_params *p,
                   char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 1, 1, cause) < 0 ||
        param_u32(msg, 0, "msgid", &p->msgid, cause) < 0)
        return -EINVAL;
    return 0;
}

int
proto_check_release(const struct proto_msg *msg, struct proto_params *p,
                    char *cause)
{
    struct proto__val cbs, ctxs;

    params_init(p);
    if (proto_params_count(msg, 1, 2, cause) < 0 ||
        param_array(msg, 0, "callbacks", &cbs, cause) < 0 ||
        elements_ok(0, "callbacks", &cbs, is_uint_upto, UINT32_MAX, cause) < 0)
        return -EINVAL;
    publish(&cbs, &empty_array, &p->callbacks, &p->callbacks_bytes);
    if (proto_msg_nparams(msg) > 1) {
        if (param_array(msg, 1, "contexts", &ctxs, cause) < 0 ||
            elements_ok(1, "contexts", &ctxs, is_uint_upto, UINT64_MAX, cause) <
                0)
            return -EINVAL;
        publish(&ctxs, &empty_array, &p->contexts, &p->contexts_bytes);
    }
    return 0;
}

/* invoke's owner: {"call": msgid} or {"context": id}, exactly one key. */
static int
param_owner(const struct proto_msg *msg, struct proto_params *p, char *cause)
{
    struct proto__val o, call, ctx;
    const struct proto__val *po, *v;
    bool has_call, has_ctx;
    const char *key;

    if (param_val(msg, 2, &o, &po, cause) < 0)
        return -EINVAL;
    if (po == NULL)
        o = nil_val;
    if (o.it.type != PROTO_T_MAP) {
        proto__cause(cause, "params[2] (owner): expected a map, got %s",
                     proto_item_kind(&o.it));
        return -EINVAL;
    }
    has_call = proto__map_get(&o, PROTO_K_CALL, &call);
    has_ctx = proto__map_get(&o, PROTO_K_CONTEXT, &ctx);
    if (has_call == has_ctx || o.it.len != 1) {
        proto__cause(cause,
                     "params[2] (owner): expected {\"%s\": msgid} or "
                     "{\"%s\": id}",
                     PROTO_K_CALL, PROTO_K_CONTEXT);
        return -EINVAL;
    }
    v = has_call ? &call : &ctx;
    key = has_call ? PROTO_K_CALL : PROTO_K_CONTEXT;
    if (v->it.type != PROTO_T_UINT || v->it.v.u == 0 ||
        (has_call && v->it.v.u > UINT32_MAX)) {
        proto__cause(cause,
                     "params[2] (owner): %s: expected an unsigned %s-bit "
                     "integer above 0, got %s",
                     key, has_call ? "32" : "64",
                     v->it.type == PROTO_T_UINT ? "another one"
                                                : proto_item_kind(&v->it));
        return -EINVAL;
    }
    if (has_call)
        p->owner_call = (uint32_t)v->it.v.u;
    else
        p->owner_context = v->it.v.u;
    return 0;
}

int
proto_check_invoke(const struct proto_msg *msg, struct proto_params *p,
                   char *cause)
{
    struct proto__val args;

    params_init(p);
    if (proto_params_count(msg, 2, 3, cause) < 0 ||
        param_u32(msg, 0, "callback", &p->callback_id, cause) < 0 ||
        param_array(msg, 1, "args", &args, cause) < 0)
        return -EINVAL;
    publish(&args, &empty_array, &p->args, &p->args_bytes);
    if (proto_msg_nparams(msg) > 2 && param_owner(msg, p, cause) < 0)
        return -EINVAL;
    return 0;
}

enum proto_errtype
proto_check_errtype(int rc)
{
    if (rc >= 0)
        return PROTO_ERR_NONE;
    return rc == -EPROTONOSUPPORT ? PROTO_ERR_PROTOCOL
                                  : PROTO_ERR_INVALID_ARGUMENT;
}

const struct proto_method *
proto_method_find(const void *table, size_t n, size_t stride,
                  const struct proto_msg *msg, struct proto_params *p,
                  enum proto_errtype *type, char *cause)
{
    const struct proto_method *m;
    int r;

    for (size_t i = 0; i < n; i++) {
        m = (const struct proto_method *)((const char *)table + i * stride);
        if (!proto_msg_is(msg, m->name))
            continue;
        r = m->check(msg, p, cause);
        if (r < 0) {
            *type = proto_check_errtype(r);
            return NULL;
        }
        *type = PROTO_ERR_NONE;
        return m;
    }
    proto__cause(cause, "no method '%.*s'",
                 (int)(msg->method_len > 64 ? 64 : msg->method_len),
                 msg->method);
    *type = PROTO_ERR_NOT_FOUND;
    return NULL;
}
