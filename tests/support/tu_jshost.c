/* tu_jshost (tu_jshost.h): libjshost calls with JSON in and out. */
#include "tu_jshost.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

char *
tu_jshost_call(jshost *c, const char *host, const char *fn, const char *json,
               int timeout_ms)
{
    jshost_value d = {0}, r = {0};
    char err[256], *s = NULL;

    if (jshost_json_pack(json, strlen(json), &d, err, sizeof err) != 0)
        fail_msg("tu_jshost_call %s: data %s: %s", fn, json, err);
    if (jshost_call(c, host, fn, d.data, d.len, timeout_ms, &r) == 0)
        s = jshost_json_dump(r.data, r.len, 0);
    jshost_value_free(&d);
    jshost_value_free(&r);
    return s;
}

int64_t
tu_jshost_int(const void *data, size_t len)
{
    msgpack_unpacked u;
    int64_t v = -1;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, data, len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            v = (int64_t)u.data.via.u64;
        else if (u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            v = u.data.via.i64;
    }
    msgpack_unpacked_destroy(&u);
    return v;
}
