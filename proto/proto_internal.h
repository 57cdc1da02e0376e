/* Shared between proto's own files only. */
#ifndef JSHOST_PROTO_INTERNAL_H
#define JSHOST_PROTO_INTERNAL_H

#include "proto.h"

/* "a string", "an integer", ... for causes. */
const char *proto__obj_kind(const msgpack_object *o);

/*
 * A value inside a message, whichever form the message has: its head, and
 * the object (an unpacked message) or its bytes (a message taken as bytes).
 * What lets one checker read both forms.
 */
struct proto__val {
    struct proto_item it;
    const msgpack_object *obj; /* unpacked: the object, else NULL */
    struct proto_span bytes;   /* as bytes: the whole item */
};

/* params[i] into *v: 1, or 0 when the array is shorter, or -EINVAL (cause
 * filled) for a message without params. */
int proto__param(const struct proto_msg *msg, uint32_t i, struct proto__val *v,
                 char *cause);
/* map[key] into *v: true when there (map is a map holding that str key). */
bool proto__map_get(const struct proto__val *map, const char *key,
                    struct proto__val *v);
/* The items of an array, one at a time. */
struct proto__iter {
    const struct proto__val *of;
    uint32_t k;
    struct proto_cur cur;
};
void proto__iter_init(struct proto__iter *i, const struct proto__val *array);
/* The next item into *v: false at the end (or on bytes that end early). */
bool proto__iter_next(struct proto__iter *i, struct proto__val *v);

/* snprintf into a PROTO_CAUSE_MAX buffer; does nothing when cause is NULL. */
void proto__cause(char *cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
