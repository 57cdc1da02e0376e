/* Params, maps and error objects of messages already read; error type names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "proto.h"
#include "proto_internal.h"

static const char *const errtype_names[] = {
    [PROTO_ERR_JS] = "JSError",
    [PROTO_ERR_TIMEOUT] = "TimeoutError",
    [PROTO_ERR_MEMORY] = "MemoryError",
    [PROTO_ERR_NOT_FOUND] = "NotFound",
    [PROTO_ERR_INVALID_ARGUMENT] = "InvalidArgument",
    [PROTO_ERR_CONFIG] = "ConfigError",
    [PROTO_ERR_HOST_CRASHED] = "HostCrashed",
    [PROTO_ERR_HOST_UNAVAILABLE] = "HostUnavailable",
    [PROTO_ERR_OVERLOADED] = "Overloaded",
    [PROTO_ERR_PROTOCOL] = "ProtocolError",
    [PROTO_ERR_CANCELLED] = "Cancelled",
};

#define ERRTYPE_COUNT (sizeof(errtype_names) / sizeof(errtype_names[0]))

/* Stands in for an absent optional param. */
static const msgpack_object nil_object = {.type = MSGPACK_OBJECT_NIL};

const char *
proto_errtype_name(enum proto_errtype type)
{
    if ((unsigned)type >= ERRTYPE_COUNT)
        return NULL;
    return errtype_names[type];
}

enum proto_errtype
proto_errtype_parse(const char *s, size_t len)
{
    if (s == NULL)
        return PROTO_ERR_NONE;
    for (size_t i = 1; i < ERRTYPE_COUNT; i++) {
        if (strlen(errtype_names[i]) == len &&
            memcmp(errtype_names[i], s, len) == 0)
            return (enum proto_errtype)i;
    }
    return PROTO_ERR_NONE;
}

/* The params array of a request or notification; -EINVAL for a response. */
static int
params_of(const struct proto_msg *msg, const msgpack_object_array **a,
          char *cause)
{
    if (msg->kind == PROTO_RESPONSE ||
        msg->params.type != MSGPACK_OBJECT_ARRAY) {
        proto__cause(
            cause,
            "params: the message has none (not a request or notification)");
        return -EINVAL;
    }
    *a = &msg->params.via.array;
    return 0;
}

int
proto_params_count(const struct proto_msg *msg, uint32_t min, uint32_t max,
                   char *cause)
{
    const msgpack_object_array *a;

    if (params_of(msg, &a, cause) < 0)
        return -EINVAL;
    if (a->size >= min && a->size <= max)
        return 0;
    if (min == max)
        proto__cause(cause, "params: expected %u parameter%s, got %u", min,
                     min == 1 ? "" : "s", a->size);
    else
        proto__cause(cause, "params: expected %u to %u parameters, got %u", min,
                     max, a->size);
    return -EINVAL;
}

/* The param at index, or NULL when the array is shorter. */
static int
param_at(const struct proto_msg *msg, uint32_t index, const msgpack_object **o,
         char *cause)
{
    const msgpack_object_array *a;

    if (params_of(msg, &a, cause) < 0)
        return -EINVAL;
    *o = index < a->size ? &a->ptr[index] : NULL;
    return 0;
}

static int
param_wrong(uint32_t index, const char *what, const char *expected,
            const msgpack_object *o, char *cause)
{
    if (o == NULL)
        proto__cause(cause, "params[%u] (%s): missing, expected %s", index,
                     what, expected);
    else
        proto__cause(cause, "params[%u] (%s): expected %s, got %s", index, what,
                     expected, proto__obj_kind(o));
    return -EINVAL;
}

int
proto_param_str(const struct proto_msg *msg, uint32_t index, const char *what,
                const char **s, size_t *len, char *cause)
{
    const msgpack_object *o;

    if (param_at(msg, index, &o, cause) < 0)
        return -EINVAL;
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return param_wrong(index, what, "a string", o, cause);
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
}

int
proto_param_str_or_nil(const struct proto_msg *msg, uint32_t index,
                       const char *what, const char **s, size_t *len,
                       char *cause)
{
    const msgpack_object *o;

    if (param_at(msg, index, &o, cause) < 0)
        return -EINVAL;
    if (o != NULL && o->type == MSGPACK_OBJECT_NIL) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return param_wrong(index, what, "a string or nil", o, cause);
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
}

int
proto_param_uint(const struct proto_msg *msg, uint32_t index, const char *what,
                 uint64_t *v, char *cause)
{
    const msgpack_object *o;

    if (param_at(msg, index, &o, cause) < 0)
        return -EINVAL;
    if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return param_wrong(index, what, "an unsigned integer", o, cause);
    *v = o->via.u64;
    return 0;
}

int
proto_param_any(const struct proto_msg *msg, uint32_t index,
                const msgpack_object **o, char *cause)
{
    const msgpack_object *p;

    if (param_at(msg, index, &p, cause) < 0)
        return -EINVAL;
    *o = p != NULL ? p : &nil_object;
    return 0;
}

int
proto_param_map(const struct proto_msg *msg, uint32_t index, const char *what,
                const msgpack_object **o, char *cause)
{
    const msgpack_object *p;

    if (param_at(msg, index, &p, cause) < 0)
        return -EINVAL;
    if (p == NULL || p->type == MSGPACK_OBJECT_NIL) {
        *o = &nil_object;
        return 0;
    }
    if (p->type != MSGPACK_OBJECT_MAP)
        return param_wrong(index, what, "a map or nil", p, cause);
    *o = p;
    return 0;
}

int
proto_param_array(const struct proto_msg *msg, uint32_t index, const char *what,
                  const msgpack_object **o, char *cause)
{
    const msgpack_object *p;

    if (param_at(msg, index, &p, cause) < 0)
        return -EINVAL;
    if (p == NULL || p->type != MSGPACK_OBJECT_ARRAY)
        return param_wrong(index, what, "an array", p, cause);
    *o = p;
    return 0;
}

bool
proto_obj_streq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o != NULL && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

const msgpack_object *
proto_map_get(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (proto_obj_streq(&kv->key, key))
            return &kv->val;
    }
    return NULL;
}

int
proto_opt_uint(const msgpack_object *map, const char *key, uint64_t *v,
               char *cause)
{
    const msgpack_object *o = proto_map_get(map, key);

    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return 1;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        proto__cause(cause, "options.%s: expected an unsigned integer, got %s",
                     key, proto__obj_kind(o));
        return -EINVAL;
    }
    *v = o->via.u64;
    return 0;
}

char *
proto_obj_strdup(const msgpack_object *o)
{
    const char *p;
    size_t n;
    char *s;

    if (o == NULL)
        return NULL;
    if (o->type == MSGPACK_OBJECT_STR) {
        p = o->via.str.ptr;
        n = o->via.str.size;
    } else if (o->type == MSGPACK_OBJECT_BIN) {
        p = o->via.bin.ptr;
        n = o->via.bin.size;
    } else {
        return NULL;
    }
    s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* A str field of an error map into (ptr, len); anything else is nil. */
static void
error_field(const msgpack_object *map, const char *key, const char **s,
            size_t *len)
{
    const msgpack_object *o = proto_map_get(map, key);

    if (o != NULL && o->type == MSGPACK_OBJECT_STR) {
        /* An empty str may come with no pointer; it is still not nil. */
        *s = o->via.str.ptr != NULL ? o->via.str.ptr : "";
        *len = o->via.str.size;
    } else {
        *s = NULL;
        *len = 0;
    }
}

int
proto_error_from_object(const msgpack_object *obj, struct proto_error *err)
{
    const char *type;
    size_t type_len;

    memset(err, 0, sizeof(*err));
    if (obj == NULL || obj->type != MSGPACK_OBJECT_MAP)
        return -EPROTO;
    error_field(obj, PROTO_K_TYPE, &type, &type_len);
    err->type = proto_errtype_parse(type, type_len);
    if (err->type == PROTO_ERR_NONE)
        err->type = PROTO_ERR_PROTOCOL;
    error_field(obj, PROTO_K_MESSAGE, &err->message, &err->message_len);
    error_field(obj, PROTO_K_NAME, &err->name, &err->name_len);
    error_field(obj, PROTO_K_STACK, &err->stack, &err->stack_len);
    error_field(obj, PROTO_K_LOGFILE, &err->logfile, &err->logfile_len);
    return 0;
}
