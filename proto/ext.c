/* The ext types' codecs (ext.h): timestamp, bigint, callable. */
#include "ext.h"

#include <errno.h>
#include <string.h>

#include "proto_internal.h"

static uint32_t
load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static uint64_t
load_be64(const unsigned char *p)
{
    return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

static void
store_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void
store_be64(unsigned char *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

/* ------------------------------------------------------------ timestamp */

int
proto_ext_timestamp_decode(const char *p, size_t n, int64_t *sec,
                           uint32_t *nsec, char *cause)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t v;

    switch (n) {
    case 4:
        *sec = load_be32(b);
        *nsec = 0;
        return 0;
    case 8:
        v = load_be64(b);
        *nsec = (uint32_t)(v >> 34);
        *sec = (int64_t)(v & 0x3ffffffffULL);
        break;
    case 12:
        *nsec = load_be32(b);
        *sec = (int64_t)load_be64(b + 4);
        break;
    default:
        proto__cause(cause, "timestamp of a size other than 4, 8 or 12 bytes");
        return -EINVAL;
    }
    if (*nsec > PROTO_EXT_NSEC_MAX) {
        proto__cause(cause, "timestamp with more than 999999999 nanoseconds");
        return -EINVAL;
    }
    return 0;
}

size_t
proto_ext_timestamp_encode(int64_t sec, uint32_t nsec,
                           unsigned char out[PROTO_EXT_TIMESTAMP_MAX])
{
    uint64_t v;

    if (nsec > PROTO_EXT_NSEC_MAX)
        return 0;
    /* The 4- and 8-byte forms hold 34 unsigned bits of seconds. */
    if (sec >= 0 && ((uint64_t)sec >> 34) == 0) {
        v = (uint64_t)nsec << 34 | (uint64_t)sec;
        if ((v >> 32) == 0) {
            store_be32(out, (uint32_t)v);
            return 4;
        }
        store_be64(out, v);
        return 8;
    }
    store_be32(out, nsec);
    store_be64(out + 4, (uint64_t)sec);
    return 12;
}

int
proto_ext_timestamp_pack(msgpack_packer *pk, int64_t sec, uint32_t nsec)
{
    unsigned char buf[PROTO_EXT_TIMESTAMP_MAX];
    size_t n = proto_ext_timestamp_encode(sec, nsec, buf);
    int r;

    if (n == 0)
        return -EINVAL;
    if ((r = msgpack_pack_ext(pk, n, PROTO_EXT_TIMESTAMP)) != 0)
        return r;
    return msgpack_pack_ext_body(pk, buf, n);
}

/* --------------------------------------------------------------- bigint */

int
proto_ext_bigint_decode(const char *p, size_t n, bool *neg, unsigned char *mag,
                        size_t *mag_len, char *cause)
{
    const unsigned char *b = (const unsigned char *)p;
    unsigned carry = 1;
    size_t i, skip = 0;

    if (n >= 2 &&
        ((b[0] == 0x00 && !(b[1] & 0x80)) || (b[0] == 0xff && (b[1] & 0x80)))) {
        proto__cause(cause, "bigint with a redundant sign byte");
        return -EINVAL;
    }
    *neg = n > 0 && (b[0] & 0x80);
    if (!*neg) {
        if (n > 0)
            memcpy(mag, b, n);
    } else {
        /* |x| = ~x + 1, from the least significant byte up. */
        for (i = n; i-- > 0;) {
            carry += (unsigned char)~b[i];
            mag[i] = (unsigned char)carry;
            carry >>= 8;
        }
    }
    while (skip < n && mag[skip] == 0)
        skip++;
    if (skip > 0)
        memmove(mag, mag + skip, n - skip);
    *mag_len = n - skip;
    return 0;
}

int
proto_ext_bigint_pack(msgpack_packer *pk, bool neg, const unsigned char *mag,
                      size_t len)
{
    unsigned char chunk[256];
    size_t i, last, fill = 0;
    uint64_t u = 0;
    bool low_zero = true, extra;
    int r;

    while (len > 0 && mag[0] == 0) {
        mag++;
        len--;
    }
    if (len <= 8) {
        for (i = 0; i < len; i++)
            u = u << 8 | mag[i];
        if (!neg || u == 0)
            return msgpack_pack_uint64(pk, u);
        if (u <= (uint64_t)INT64_MAX)
            return msgpack_pack_int64(pk, -(int64_t)u);
        if (u == (uint64_t)INT64_MAX + 1)
            return msgpack_pack_int64(pk, INT64_MIN);
    }
    for (i = 1; i < len; i++)
        low_zero = low_zero && mag[i] == 0;
    /* A sign byte is needed when the top byte's own bit would say otherwise;
     * -2^(8k-1) is the one negative whose k bytes need none. */
    extra = neg ? mag[0] > 0x80 || (mag[0] == 0x80 && !low_zero)
                : (mag[0] & 0x80) != 0;
    if (len + extra > UINT32_MAX)
        return -E2BIG;
    if ((r = msgpack_pack_ext(pk, len + extra, PROTO_EXT_BIGINT)) != 0)
        return r;
    if (extra)
        chunk[fill++] = neg ? 0xff : 0x00;
    if (!neg) {
        if (fill > 0 && (r = msgpack_pack_ext_body(pk, chunk, fill)) != 0)
            return r;
        return msgpack_pack_ext_body(pk, mag, len);
    }
    /* ~x + 1 written from the top: the bytes above the lowest non-zero one
     * are inverted, that one negated, the zeros below it stay zero. */
    for (last = len - 1; mag[last] == 0; last--)
        ;
    for (i = 0; i < len; i++) {
        chunk[fill++] = i < last    ? (unsigned char)~mag[i]
                        : i == last ? (unsigned char)(0x100 - mag[i])
                                    : 0;
        if (fill == sizeof(chunk)) {
            if ((r = msgpack_pack_ext_body(pk, chunk, fill)) != 0)
                return r;
            fill = 0;
        }
    }
    return fill > 0 ? msgpack_pack_ext_body(pk, chunk, fill) : 0;
}

/* ------------------------------------------------------------- callable */

int
proto_ext_callable_decode(const char *p, size_t n, uint32_t *id, char *cause)
{
    if (n != 4) {
        proto__cause(cause, "callable of a size other than 4 bytes");
        return -EINVAL;
    }
    *id = load_be32((const unsigned char *)p);
    return 0;
}

int
proto_ext_callable_pack(msgpack_packer *pk, uint32_t id)
{
    unsigned char buf[4];
    int r;

    store_be32(buf, id);
    if ((r = msgpack_pack_ext(pk, sizeof(buf), PROTO_EXT_CALLABLE)) != 0)
        return r;
    return msgpack_pack_ext_body(pk, buf, sizeof(buf));
}
