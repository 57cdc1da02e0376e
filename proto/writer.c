/* Writers for the three message kinds and the error map. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "proto.h"

/* Packer results pass through unchanged; stop at the first failure. */
#define TRY(expr)                                                              \
    do {                                                                       \
        int try_rc_ = (expr);                                                  \
        if (try_rc_ != 0)                                                      \
            return try_rc_;                                                    \
    } while (0)

int
proto_pack_strn(msgpack_packer *pk, const char *s, size_t len)
{
    /* msgpack's str32 holds at most 4 GiB - 1. */
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    TRY(msgpack_pack_str(pk, len));
    if (len == 0)
        return 0;
    return msgpack_pack_str_body(pk, s, len);
}

int
proto_pack_raw(msgpack_packer *pk, const char *bytes, size_t len)
{
    return len == 0 ? 0 : pk->callback(pk->data, bytes, len);
}

int
proto_pack_cstr(msgpack_packer *pk, const char *s)
{
    if (s == NULL)
        return msgpack_pack_nil(pk);
    return proto_pack_strn(pk, s, strlen(s));
}

/* A str of an error field: NULL is nil, a 0 length means strlen. */
static int
pack_field(msgpack_packer *pk, const char *s, size_t len)
{
    if (s == NULL)
        return msgpack_pack_nil(pk);
    return proto_pack_strn(pk, s, len ? len : strlen(s));
}

static int
pack_key(msgpack_packer *pk, const char *key)
{
    return proto_pack_strn(pk, key, strlen(key));
}

int
proto_write_request(msgpack_packer *pk, uint32_t msgid, const char *method,
                    uint32_t nparams)
{
    TRY(msgpack_pack_array(pk, 4));
    TRY(msgpack_pack_uint8(pk, PROTO_REQUEST));
    TRY(msgpack_pack_uint32(pk, msgid));
    TRY(proto_pack_strn(pk, method, strlen(method)));
    return msgpack_pack_array(pk, nparams);
}

int
proto_write_notification(msgpack_packer *pk, const char *method,
                         uint32_t nparams)
{
    TRY(msgpack_pack_array(pk, 3));
    TRY(msgpack_pack_uint8(pk, PROTO_NOTIFICATION));
    TRY(proto_pack_strn(pk, method, strlen(method)));
    return msgpack_pack_array(pk, nparams);
}

int
proto_write_result(msgpack_packer *pk, uint32_t msgid)
{
    TRY(msgpack_pack_array(pk, 4));
    TRY(msgpack_pack_uint8(pk, PROTO_RESPONSE));
    TRY(msgpack_pack_uint32(pk, msgid));
    return msgpack_pack_nil(pk);
}

/* A packer's writer into a fixed buffer (struct proto_head). */
static int
head_write(void *data, const char *buf, size_t len)
{
    struct proto_head *h = data;

    if (len > sizeof h->bytes - h->len)
        return -1;
    memcpy(h->bytes + h->len, buf, len);
    h->len += len;
    return 0;
}

void
proto_response_head(struct proto_head *h, uint32_t msgid)
{
    msgpack_packer pk;

    h->len = 0;
    msgpack_packer_init(&pk, h, head_write);
    /* 1 + 1 + 5 bytes at most: it always fits. */
    (void)msgpack_pack_array(&pk, 4);
    (void)msgpack_pack_uint8(&pk, PROTO_RESPONSE);
    (void)msgpack_pack_uint32(&pk, msgid);
}

int
proto_request_head(struct proto_head *h, uint32_t msgid, const char *method)
{
    msgpack_packer pk;

    h->len = 0;
    msgpack_packer_init(&pk, h, head_write);
    if (msgpack_pack_array(&pk, 4) != 0 ||
        msgpack_pack_uint8(&pk, PROTO_REQUEST) != 0 ||
        msgpack_pack_uint32(&pk, msgid) != 0 ||
        proto_pack_strn(&pk, method, strlen(method)) != 0)
        return -ENOSPC;
    return 0;
}

int
proto_pack_error(msgpack_packer *pk, const struct proto_error *err)
{
    const char *type = proto_errtype_name(err->type);

    TRY(msgpack_pack_map(pk, 5));
    TRY(pack_key(pk, PROTO_K_TYPE));
    /* PROTO_ERR_NONE has no name; a reader takes a nil type as ProtocolError.
     */
    TRY(proto_pack_cstr(pk, type));
    TRY(pack_key(pk, PROTO_K_MESSAGE));
    TRY(pack_field(pk, err->message, err->message_len));
    TRY(pack_key(pk, PROTO_K_NAME));
    TRY(pack_field(pk, err->name, err->name_len));
    TRY(pack_key(pk, PROTO_K_STACK));
    TRY(pack_field(pk, err->stack, err->stack_len));
    TRY(pack_key(pk, PROTO_K_LOGFILE));
    return pack_field(pk, err->logfile, err->logfile_len);
}

int
proto_write_error(msgpack_packer *pk, uint32_t msgid,
                  const struct proto_error *err)
{
    TRY(msgpack_pack_array(pk, 4));
    TRY(msgpack_pack_uint8(pk, PROTO_RESPONSE));
    TRY(msgpack_pack_uint32(pk, msgid));
    TRY(proto_pack_error(pk, err));
    return msgpack_pack_nil(pk);
}

int
proto_write_errorf(msgpack_packer *pk, uint32_t msgid, enum proto_errtype type,
                   const char *fmt, ...)
{
    char small[512];
    char *text = small;
    struct proto_error err = {.type = type};
    va_list ap;
    int n;
    int rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        small[0] = '\0';
        n = 0;
    }
    if ((size_t)n >= sizeof(small)) {
        /* Too long for the stack: take the heap, or keep the cut version. */
        char *big = malloc((size_t)n + 1);
        if (big != NULL) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            text = big;
        } else {
            n = sizeof(small) - 1;
        }
    }
    err.message = text;
    err.message_len = (size_t)n;
    if (n == 0)
        err.message = "";
    rc = proto_write_error(pk, msgid, &err);
    if (text != small)
        free(text);
    return rc;
}

int
proto_write_protocol_error(msgpack_packer *pk, const char *cause)
{
    struct proto_error err = {
        .type = PROTO_ERR_PROTOCOL,
        .message = cause != NULL ? cause : "protocol error",
    };

    TRY(proto_write_notification(pk, PROTO_N_ERROR, 1));
    return proto_pack_error(pk, &err);
}
