/*
 * tu_jshost: calls through libjshost with JSON in and out, for the tests of
 * the client library and its command. Apart from the rest of tu because it
 * links libjshost, which the daemons' tests must not need.
 */
#ifndef JSHOST_TU_JSHOST_H
#define JSHOST_TU_JSHOST_H

#include "jshost.h"
#include "tu.h"

/*
 * jshost_call of host's function fn with data given as JSON; the result as
 * JSON (malloc'd), or NULL with c->err and c->errstr saying why.
 */
char *tu_jshost_call(jshost *c, const char *host, const char *fn,
                     const char *json, int timeout_ms);
/* A result or reply value as an integer (-1 when it is none). */
int64_t tu_jshost_int(const void *data, size_t len);

#endif
