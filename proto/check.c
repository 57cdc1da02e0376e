/* The checkers of every method's params, and the dispatch-table lookup. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "methods.h"
#include "proto_internal.h"

/* Stand in for absent params. */
static const msgpack_object nil_object = {.type = MSGPACK_OBJECT_NIL};
static const msgpack_object empty_array = {.type = MSGPACK_OBJECT_ARRAY};

/*
 * A str param (nil too when nil_ok: then *s = NULL). An empty str keeps a
 * non-NULL pointer, so that it never reads as nil.
 */
static int
param_str(const struct proto_msg *msg, uint32_t i, const char *what,
          bool nil_ok, const char **s, size_t *len, char *cause)
{
    const msgpack_object *o;
    int r;

    r = nil_ok ? proto_param_str_or_nil(msg, i, what, s, len, cause)
               : proto_param_str(msg, i, what, s, len, cause);
    if (r < 0)
        return r;
    if (*s == NULL && proto_param_any(msg, i, &o, NULL) == 0 &&
        o->type == MSGPACK_OBJECT_STR)
        *s = "";
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

/* The host param: any value (see struct proto_params). */
static void
param_host(const struct proto_msg *msg, struct proto_params *p)
{
    if (proto_param_any(msg, 0, &p->host_obj, NULL) < 0)
        return;
    if (p->host_obj->type == MSGPACK_OBJECT_STR) {
        p->host =
            p->host_obj->via.str.ptr != NULL ? p->host_obj->via.str.ptr : "";
        p->host_len = p->host_obj->via.str.size;
    }
}

/* options[key]: an unsigned integer up to max, or absent/nil (0). */
static int
opt_uint(const msgpack_object *opts, uint32_t i, const char *key, uint64_t max,
         uint64_t *v, char *cause)
{
    const msgpack_object *o = proto_map_get(opts, key);

    *v = 0;
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        proto__cause(cause,
                     "params[%u] (options): %s: expected an unsigned "
                     "integer, got %s",
                     i, key, proto__obj_kind(o));
        return -EINVAL;
    }
    if (o->via.u64 > max) {
        proto__cause(cause,
                     "params[%u] (options): %s %llu is too large (at most "
                     "%llu)",
                     i, key, (unsigned long long)o->via.u64,
                     (unsigned long long)max);
        return -EINVAL;
    }
    *v = o->via.u64;
    return 0;
}

/* options[key]: a bool, or absent/nil (false). */
static int
opt_bool(const msgpack_object *opts, uint32_t i, const char *key, bool *v,
         char *cause)
{
    const msgpack_object *o = proto_map_get(opts, key);

    *v = false;
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (o->type != MSGPACK_OBJECT_BOOLEAN) {
        proto__cause(cause, "params[%u] (options): %s: expected a bool, got %s",
                     i, key, proto__obj_kind(o));
        return -EINVAL;
    }
    *v = o->via.boolean;
    return 0;
}

/* options[key]: a str, or absent/nil (*s = NULL). */
static int
opt_str(const msgpack_object *opts, uint32_t i, const char *key, const char **s,
        size_t *len, char *cause)
{
    const msgpack_object *o = proto_map_get(opts, key);

    *s = NULL;
    *len = 0;
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (o->type != MSGPACK_OBJECT_STR) {
        proto__cause(cause,
                     "params[%u] (options): %s: expected a string, got %s", i,
                     key, proto__obj_kind(o));
        return -EINVAL;
    }
    *s = o->via.str.ptr != NULL ? o->via.str.ptr : "";
    *len = o->via.str.size;
    return 0;
}

int
proto_check_timeout(const msgpack_object *options, uint32_t index,
                    uint32_t *timeout_ms, char *cause)
{
    uint64_t v;
    int r = opt_uint(options, index, PROTO_K_TIMEOUT_MS, PROTO_TIMEOUT_MAX_MS,
                     &v, cause);

    *timeout_ms = r == 0 ? (uint32_t)v : 0;
    return r;
}

/* params[i] is the options map (or nil/absent), with its timeout_ms. */
static int
options_with_timeout(const struct proto_msg *msg, uint32_t i,
                     struct proto_params *p, char *cause)
{
    if (proto_param_map(msg, i, "options", &p->options, cause) < 0)
        return -EINVAL;
    return proto_check_timeout(p->options, i, &p->timeout_ms, cause);
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
}

static int
param_context(const struct proto_msg *msg, struct proto_params *p, char *cause)
{
    return proto_param_uint(msg, 0, "context", &p->context, cause);
}

int
proto_check_hello(const struct proto_msg *msg, struct proto_params *p,
                  char *cause)
{
    const msgpack_object *o;
    uint64_t v;

    params_init(p);
    if (proto_params_count(msg, 1, 1, cause) < 0 ||
        proto_param_map(msg, 0, "options", &p->options, cause) < 0 ||
        opt_str(p->options, 0, PROTO_K_CLIENT, &p->client, &p->client_len,
                cause) < 0)
        return -EINVAL;
    o = proto_map_get(p->options, PROTO_K_PROTOCOL);
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
        /* Without it neither side can tell the other speaks its language. */
        proto__cause(cause, "params[0] (options): %s is missing",
                     PROTO_K_PROTOCOL);
        return -EINVAL;
    }
    if (opt_uint(p->options, 0, PROTO_K_PROTOCOL, UINT64_MAX, &v, cause) < 0)
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
    params_init(p);
    if (proto_params_count(msg, 1, 2, cause) < 0 ||
        param_path(msg, 0, "config", false, &p->config, &p->config_len, cause) <
            0 ||
        proto_param_map(msg, 1, "options", &p->options, cause) < 0)
        return -EINVAL;
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

int
proto_check_call(const struct proto_msg *msg, struct proto_params *p,
                 char *cause)
{
    params_init(p);
    param_host(msg, p);
    if (proto_params_count(msg, 3, 4, cause) < 0 ||
        param_str(msg, 1, "function", false, &p->function, &p->function_len,
                  cause) < 0 ||
        proto_param_any(msg, 2, &p->data, cause) < 0 ||
        options_with_timeout(msg, 3, p, cause) < 0)
        return -EINVAL;
    return 0;
}

int
proto_check_context_create(const struct proto_msg *msg, struct proto_params *p,
                           char *cause)
{
    uint64_t v;

    params_init(p);
    param_host(msg, p);
    if (proto_params_count(msg, 0, 2, cause) < 0 ||
        options_with_timeout(msg, 1, p, cause) < 0 ||
        opt_uint(p->options, 1, PROTO_K_MEMORY, PROTO_MEMORY_MAX_MB, &v,
                 cause) < 0 ||
        opt_uint(p->options, 1, PROTO_K_VM, UINT64_MAX, &p->vm, cause) < 0 ||
        opt_str(p->options, 1, PROTO_K_CWD, &p->cwd, &p->cwd_len, cause) < 0 ||
        path_ok(1, "options: " PROTO_K_CWD, p->cwd, p->cwd_len, cause) < 0)
        return -EINVAL;
    p->memory_mb = (uint32_t)v;
    return 0;
}

int
proto_check_context_eval(const struct proto_msg *msg, struct proto_params *p,
                         char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 3, 4, cause) < 0 ||
        param_context(msg, p, cause) < 0 ||
        param_str(msg, 1, "source", false, &p->source, &p->source_len, cause) <
            0 ||
        param_str(msg, 2, "identifier", true, &p->identifier,
                  &p->identifier_len, cause) < 0 ||
        options_with_timeout(msg, 3, p, cause) < 0 ||
        opt_bool(p->options, 3, PROTO_K_STRING, &p->as_string, cause) < 0)
        return -EINVAL;
    return 0;
}

int
proto_check_context_call(const struct proto_msg *msg, struct proto_params *p,
                         char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 2, 4, cause) < 0 ||
        param_context(msg, p, cause) < 0 ||
        param_str(msg, 1, "expression", false, &p->expression,
                  &p->expression_len, cause) < 0 ||
        (msg->params.via.array.size > 2 &&
         proto_param_array(msg, 2, "args", &p->args, cause) < 0) ||
        options_with_timeout(msg, 3, p, cause) < 0)
        return -EINVAL;
    return 0;
}

int
proto_check_context_load(const struct proto_msg *msg, struct proto_params *p,
                         char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 2, 3, cause) < 0 ||
        param_context(msg, p, cause) < 0 ||
        proto_param_array(msg, 1, "paths", &p->paths, cause) < 0 ||
        options_with_timeout(msg, 2, p, cause) < 0)
        return -EINVAL;
    for (uint32_t i = 0; i < p->paths->via.array.size; i++) {
        if (p->paths->via.array.ptr[i].type != MSGPACK_OBJECT_STR) {
            proto__cause(cause,
                         "params[1] (paths): element %u is not a string, "
                         "it is %s",
                         i, proto__obj_kind(&p->paths->via.array.ptr[i]));
            return -EINVAL;
        }
    }
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

/* params[i]: an array of unsigned integers up to max. */
static int
param_uint_array(const struct proto_msg *msg, uint32_t i, const char *what,
                 uint64_t max, const msgpack_object **o, char *cause)
{
    if (proto_param_array(msg, i, what, o, cause) < 0)
        return -EINVAL;
    for (uint32_t k = 0; k < (*o)->via.array.size; k++) {
        const msgpack_object *e = &(*o)->via.array.ptr[k];

        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 > max) {
            proto__cause(cause,
                         "params[%u] (%s): element %u is not an unsigned "
                         "%s-bit integer, it is %s",
                         i, what, k, max == UINT32_MAX ? "32" : "64",
                         e->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                             ? "a larger one"
                             : proto__obj_kind(e));
            return -EINVAL;
        }
    }
    return 0;
}

/* params[i]: an unsigned 32-bit integer. */
static int
param_u32(const struct proto_msg *msg, uint32_t i, const char *what,
          uint32_t *v, char *cause)
{
    uint64_t u;

    if (proto_param_uint(msg, i, what, &u, cause) < 0)
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
    params_init(p);
    if (proto_params_count(msg, 1, 2, cause) < 0 ||
        param_uint_array(msg, 0, "callbacks", UINT32_MAX, &p->callbacks,
                         cause) < 0 ||
        (msg->params.via.array.size > 1 &&
         param_uint_array(msg, 1, "contexts", UINT64_MAX, &p->contexts, cause) <
             0))
        return -EINVAL;
    return 0;
}

/* invoke's owner: {"call": msgid} or {"context": id}, exactly one key. */
static int
param_owner(const struct proto_msg *msg, struct proto_params *p, char *cause)
{
    const msgpack_object *o, *call, *ctx, *v;
    const char *key;

    if (proto_param_any(msg, 2, &o, cause) < 0)
        return -EINVAL;
    if (o->type != MSGPACK_OBJECT_MAP) {
        proto__cause(cause, "params[2] (owner): expected a map, got %s",
                     proto__obj_kind(o));
        return -EINVAL;
    }
    call = proto_map_get(o, PROTO_K_CALL);
    ctx = proto_map_get(o, PROTO_K_CONTEXT);
    if ((call == NULL) == (ctx == NULL) || o->via.map.size != 1) {
        proto__cause(cause,
                     "params[2] (owner): expected {\"%s\": msgid} or "
                     "{\"%s\": id}",
                     PROTO_K_CALL, PROTO_K_CONTEXT);
        return -EINVAL;
    }
    v = call != NULL ? call : ctx;
    key = call != NULL ? PROTO_K_CALL : PROTO_K_CONTEXT;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0 ||
        (call != NULL && v->via.u64 > UINT32_MAX)) {
        proto__cause(cause,
                     "params[2] (owner): %s: expected an unsigned %s-bit "
                     "integer above 0, got %s",
                     key, call != NULL ? "32" : "64",
                     v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                         ? "another one"
                         : proto__obj_kind(v));
        return -EINVAL;
    }
    if (call != NULL)
        p->owner_call = (uint32_t)v->via.u64;
    else
        p->owner_context = v->via.u64;
    return 0;
}

int
proto_check_invoke(const struct proto_msg *msg, struct proto_params *p,
                   char *cause)
{
    params_init(p);
    if (proto_params_count(msg, 2, 3, cause) < 0 ||
        param_u32(msg, 0, "callback", &p->callback_id, cause) < 0 ||
        proto_param_array(msg, 1, "args", &p->args, cause) < 0 ||
        (msg->params.via.array.size > 2 && param_owner(msg, p, cause) < 0))
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
