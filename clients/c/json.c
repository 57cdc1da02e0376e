/* JSON helpers for the CLI and for callers without a msgpack library: thin
 * wrappers over common/mpjson (jansson) so the rules live in one place. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jshost_priv.h"
#include "mpjson.h"

int
jshost_json_pack(const char *json, size_t len, jshost_value *out, char *errbuf,
                 size_t errbuf_len)
{
    char cause[256] = "";
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    out->data = NULL;
    out->len = 0;
    if (json == NULL) {
        if (errbuf != NULL && errbuf_len > 0)
            snprintf(errbuf, errbuf_len, "no JSON given");
        return -1;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = mpjson_pack(&pk, json, len, cause);
    if (r < 0) {
        msgpack_sbuffer_destroy(&sb);
        if (errbuf != NULL && errbuf_len > 0)
            snprintf(errbuf, errbuf_len, "%s", cause[0] ? cause : strerror(-r));
        return -1;
    }
    out->data = sb.data;
    out->len = sb.size;
    return 0;
}

char *
jshost_json_dump(const char *data, size_t len, int flags)
{
    if (data == NULL || len == 0)
        return NULL;
    return mpjson_dump_bytes(data, len,
                             (flags & JSHOST_JSON_PRETTY) ? MPJSON_PRETTY : 0);
}
