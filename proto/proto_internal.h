/* Shared between proto's own files only. */
#ifndef JSHOST_PROTO_INTERNAL_H
#define JSHOST_PROTO_INTERNAL_H

#include "proto.h"

/* "a string", "an integer", ... for causes. */
const char *proto__obj_kind(const msgpack_object *o);

/* snprintf into a PROTO_CAUSE_MAX buffer; does nothing when cause is NULL. */
void proto__cause(char *cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
