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

/* A tree object's head, as the pull reader gives one. */
static void
obj_item(const msgpack_object *o, struct proto_item *it)
{
    memset(it, 0, sizeof *it);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        it->type = PROTO_T_NIL;
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        it->type = PROTO_T_BOOL;
        it->v.b = o->via.boolean;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        it->type = PROTO_T_UINT;
        it->v.u = o->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        it->type = PROTO_T_INT;
        it->v.i = o->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
        it->type = PROTO_T_FLOAT32;
        it->v.f = o->via.f64;
        break;
    case MSGPACK_OBJECT_FLOAT64:
        it->type = PROTO_T_FLOAT64;
        it->v.f = o->via.f64;
        break;
    case MSGPACK_OBJECT_STR:
        it->type = PROTO_T_STR;
        it->ptr = o->via.str.ptr;
        it->len = o->via.str.size;
        break;
    case MSGPACK_OBJECT_BIN:
        it->type = PROTO_T_BIN;
        it->ptr = o->via.bin.ptr;
        it->len = o->via.bin.size;
        break;
    case MSGPACK_OBJECT_ARRAY:
        it->type = PROTO_T_ARRAY;
        it->len = o->via.array.size;
        break;
    case MSGPACK_OBJECT_MAP:
        it->type = PROTO_T_MAP;
        it->len = o->via.map.size;
        break;
    case MSGPACK_OBJECT_EXT:
        it->type = PROTO_T_EXT;
        it->ext_type = o->via.ext.type;
        it->ptr = o->via.ext.ptr;
        it->len = o->via.ext.size;
        break;
    }
}

static void
val_of_obj(const msgpack_object *o, struct proto__val *v)
{
    obj_item(o, &v->it);
    v->obj = o;
    v->bytes.ptr = NULL;
    v->bytes.len = 0;
}

/* One whole item at the cursor, containers included. */
static int
val_of_cur(struct proto_cur *c, struct proto__val *v)
{
    const uint8_t *start = c->p;

    v->obj = NULL;
    if (proto_cur_next(c, &v->it) != 0)
        return -EPROTO;
    if (v->it.type == PROTO_T_ARRAY || v->it.type == PROTO_T_MAP) {
        c->p = start;
        if (proto_cur_skip(c) != 0)
            return -EPROTO;
    }
    v->bytes.ptr = (const char *)start;
    v->bytes.len = (size_t)(c->p - start);
    return 0;
}

uint32_t
proto_msg_nparams(const struct proto_msg *msg)
{
    if (msg->raw.bytes != NULL)
        return msg->raw.nparams;
    return msg->params.type == MSGPACK_OBJECT_ARRAY ? msg->params.via.array.size
                                                    : 0;
}

/* A request or notification; -EINVAL for a response. */
static int
params_of(const struct proto_msg *msg, char *cause)
{
    if (msg->kind == PROTO_RESPONSE ||
        (msg->raw.bytes == NULL && msg->params.type != MSGPACK_OBJECT_ARRAY)) {
        proto__cause(
            cause,
            "params: the message has none (not a request or notification)");
        return -EINVAL;
    }
    return 0;
}

int
proto__param(const struct proto_msg *msg, uint32_t i, struct proto__val *v,
             char *cause)
{
    const struct proto_raw *raw = &msg->raw;
    struct proto_cur c;
    size_t at;

    if (params_of(msg, cause) < 0)
        return -EINVAL;
    if (raw->bytes == NULL) {
        if (i >= msg->params.via.array.size)
            return 0;
        val_of_obj(&msg->params.via.array.ptr[i], v);
        return 1;
    }
    if (i >= raw->nparams)
        return 0;
    if (i < PROTO_RAW_PARAMS) {
        at = raw->param_at[i];
        /* Where it ends is known without walking it: where the next param
         * starts, or the message's end (the params come last). */
        if (i + 1 == raw->nparams || i + 1 < PROTO_RAW_PARAMS) {
            size_t end =
                i + 1 == raw->nparams ? raw->size : raw->param_at[i + 1];

            proto_cur_init(&c, raw->bytes + at, end - at);
            if (proto_cur_next(&c, &v->it) != 0)
                goto bad;
            v->obj = NULL;
            v->bytes.ptr = raw->bytes + at;
            v->bytes.len = end - at;
            return 1;
        }
        proto_cur_init(&c, raw->bytes + at, raw->size - at);
    } else {
        at = raw->param_at[PROTO_RAW_PARAMS - 1];
        proto_cur_init(&c, raw->bytes + at, raw->size - at);
        for (uint32_t k = PROTO_RAW_PARAMS - 1; k < i; k++)
            if (proto_cur_skip(&c) != 0)
                goto bad;
    }
    if (val_of_cur(&c, v) == 0)
        return 1;
bad:
    /* The reader saw well-formed bytes: only a hand-made message gets here. */
    proto__cause(cause, "params[%u]: not msgpack", i);
    return -EINVAL;
}

int
proto_span_map_get(struct proto_span map, const char *key,
                   struct proto_span *val)
{
    struct proto_cur c;
    struct proto_item it;
    struct proto__val k, v;
    size_t klen = strlen(key);

    proto_cur_init(&c, map.ptr, map.len);
    if (map.len == 0)
        return 0;
    if (proto_cur_next(&c, &it) != 0)
        return -EPROTO;
    if (it.type != PROTO_T_MAP)
        return 0;
    for (uint32_t i = 0; i < it.len; i++) {
        if (val_of_cur(&c, &k) != 0 || val_of_cur(&c, &v) != 0)
            return -EPROTO;
        if (k.it.type == PROTO_T_STR && k.it.len == klen &&
            (klen == 0 || memcmp(k.it.ptr, key, klen) == 0)) {
            *val = v.bytes;
            return 1;
        }
    }
    return 0;
}

bool
proto__map_get(const struct proto__val *map, const char *key,
               struct proto__val *v)
{
    struct proto_cur c;
    struct proto_span s;

    if (map->it.type != PROTO_T_MAP)
        return false;
    if (map->obj != NULL) {
        const msgpack_object *o = proto_map_get(map->obj, key);

        if (o == NULL)
            return false;
        val_of_obj(o, v);
        return true;
    }
    if (proto_span_map_get(map->bytes, key, &s) != 1)
        return false;
    proto_cur_init(&c, s.ptr, s.len);
    if (proto_cur_next(&c, &v->it) != 0)
        return false;
    v->obj = NULL;
    v->bytes = s;
    return true;
}

void
proto__iter_init(struct proto__iter *i, const struct proto__val *array)
{
    struct proto_item head;

    i->of = array;
    i->k = 0;
    proto_cur_init(&i->cur, array->bytes.ptr, array->bytes.len);
    if (array->obj == NULL && proto_cur_next(&i->cur, &head) != 0)
        i->k = array->it.len; /* nothing to read */
}

bool
proto__iter_next(struct proto__iter *i, struct proto__val *v)
{
    if (i->of->it.type != PROTO_T_ARRAY || i->k >= i->of->it.len)
        return false;
    if (i->of->obj != NULL)
        val_of_obj(&i->of->obj->via.array.ptr[i->k], v);
    else if (val_of_cur(&i->cur, v) != 0)
        return false;
    i->k++;
    return true;
}

int
proto_params_count(const struct proto_msg *msg, uint32_t min, uint32_t max,
                   char *cause)
{
    uint32_t n;

    if (params_of(msg, cause) < 0)
        return -EINVAL;
    n = proto_msg_nparams(msg);
    if (n >= min && n <= max)
        return 0;
    if (min == max)
        proto__cause(cause, "params: expected %u parameter%s, got %u", min,
                     min == 1 ? "" : "s", n);
    else
        proto__cause(cause, "params: expected %u to %u parameters, got %u", min,
                     max, n);
    return -EINVAL;
}

static int
param_wrong(uint32_t index, const char *what, const char *expected,
            const struct proto__val *v, char *cause)
{
    if (v == NULL)
        proto__cause(cause, "params[%u] (%s): missing, expected %s", index,
                     what, expected);
    else
        proto__cause(cause, "params[%u] (%s): expected %s, got %s", index, what,
                     expected, proto_item_kind(&v->it));
    return -EINVAL;
}

/* params[index], NULL in *pv when absent. */
static int
param_get(const struct proto_msg *msg, uint32_t index, struct proto__val *v,
          const struct proto__val **pv, char *cause)
{
    int r = proto__param(msg, index, v, cause);

    if (r < 0)
        return -EINVAL;
    *pv = r == 1 ? v : NULL;
    return 0;
}

int
proto_param_str(const struct proto_msg *msg, uint32_t index, const char *what,
                const char **s, size_t *len, char *cause)
{
    struct proto__val v;
    const struct proto__val *o;

    if (param_get(msg, index, &v, &o, cause) < 0)
        return -EINVAL;
    if (o == NULL || o->it.type != PROTO_T_STR)
        return param_wrong(index, what, "a string", o, cause);
    *s = o->it.ptr;
    *len = o->it.len;
    return 0;
}

int
proto_param_str_or_nil(const struct proto_msg *msg, uint32_t index,
                       const char *what, const char **s, size_t *len,
                       char *cause)
{
    struct proto__val v;
    const struct proto__val *o;

    if (param_get(msg, index, &v, &o, cause) < 0)
        return -EINVAL;
    if (o != NULL && o->it.type == PROTO_T_NIL) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (o == NULL || o->it.type != PROTO_T_STR)
        return param_wrong(index, what, "a string or nil", o, cause);
    *s = o->it.ptr;
    *len = o->it.len;
    return 0;
}

int
proto_param_uint(const struct proto_msg *msg, uint32_t index, const char *what,
                 uint64_t *v, char *cause)
{
    struct proto__val val;
    const struct proto__val *o;

    if (param_get(msg, index, &val, &o, cause) < 0)
        return -EINVAL;
    if (o == NULL || o->it.type != PROTO_T_UINT)
        return param_wrong(index, what, "an unsigned integer", o, cause);
    *v = o->it.v.u;
    return 0;
}

/* What the object-returning helpers hand out: the object, or for a message
 * taken as bytes (which has none) a stand-in of the same type. */
static const msgpack_object *
val_obj(const struct proto__val *v)
{
    static const msgpack_object empty_array = {.type = MSGPACK_OBJECT_ARRAY};
    static const msgpack_object empty_map = {.type = MSGPACK_OBJECT_MAP};

    if (v->obj != NULL)
        return v->obj;
    return v->it.type == PROTO_T_ARRAY ? &empty_array
           : v->it.type == PROTO_T_MAP ? &empty_map
                                       : &nil_object;
}

int
proto_param_any(const struct proto_msg *msg, uint32_t index,
                const msgpack_object **o, char *cause)
{
    struct proto__val v;
    const struct proto__val *p;

    if (param_get(msg, index, &v, &p, cause) < 0)
        return -EINVAL;
    *o = p != NULL ? val_obj(p) : &nil_object;
    return 0;
}

int
proto_param_map(const struct proto_msg *msg, uint32_t index, const char *what,
                const msgpack_object **o, char *cause)
{
    struct proto__val v;
    const struct proto__val *p;

    if (param_get(msg, index, &v, &p, cause) < 0)
        return -EINVAL;
    if (p == NULL || p->it.type == PROTO_T_NIL) {
        *o = &nil_object;
        return 0;
    }
    if (p->it.type != PROTO_T_MAP)
        return param_wrong(index, what, "a map or nil", p, cause);
    *o = val_obj(p);
    return 0;
}

int
proto_param_array(const struct proto_msg *msg, uint32_t index, const char *what,
                  const msgpack_object **o, char *cause)
{
    struct proto__val v;
    const struct proto__val *p;

    if (param_get(msg, index, &v, &p, cause) < 0)
        return -EINVAL;
    if (p == NULL || p->it.type != PROTO_T_ARRAY)
        return param_wrong(index, what, "an array", p, cause);
    *o = val_obj(p);
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
