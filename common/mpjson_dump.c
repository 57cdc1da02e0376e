/*
 * msgpack → JSON: a small emitter of our own (jansson's integers stop at int64
 * and its strings refuse invalid UTF-8, and msgpack carries both). bin,
 * timestamps, bigints and other exts print in their JSON forms
 * (mpjson_forms.c).
 */
#include "mpjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext.h"
#include "mpjson_internal.h"

#define MPJSON_DUMP_MAX_DEPTH 64

/* ------------------------------------------------------ msgpack → JSON */

struct mpjson__out {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
    int flags;
    int key_depth; /* how many non-str keys this text is inside */
};

static void
mpjson__put(struct mpjson__out *o, const char *s, size_t n)
{
    char *nb;
    size_t nc;

    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        nc = o->cap ? o->cap : 64;
        while (nc < o->len + n + 1)
            nc *= 2;
        nb = realloc(o->buf, nc);
        if (nb == NULL) {
            o->failed = true;
            return;
        }
        o->buf = nb;
        o->cap = nc;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void
mpjson__puts(struct mpjson__out *o, const char *s)
{
    mpjson__put(o, s, strlen(s));
}

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t
mpjson__utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len, i;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void
mpjson__put_string(struct mpjson__out *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run, k;
    char esc[8];

    mpjson__put(o, "\"", 1);
    while (i < n) {
        run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' &&
               s[run] != '\\')
            run++;
        mpjson__put(o, str + i, run - i);
        i = run;
        if (i >= n)
            break;
        if (s[i] >= 0x80) {
            k = mpjson__utf8_len(s + i, n - i);
            if (k == 0) {
                mpjson__puts(o, "\\ufffd");
                i++;
            } else {
                mpjson__put(o, str + i, k);
                i += k;
            }
            continue;
        }
        switch (s[i]) {
        case '"':
            mpjson__puts(o, "\\\"");
            break;
        case '\\':
            mpjson__puts(o, "\\\\");
            break;
        case '\n':
            mpjson__puts(o, "\\n");
            break;
        case '\r':
            mpjson__puts(o, "\\r");
            break;
        case '\t':
            mpjson__puts(o, "\\t");
            break;
        case '\b':
            mpjson__puts(o, "\\b");
            break;
        case '\f':
            mpjson__puts(o, "\\f");
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", s[i]);
            mpjson__puts(o, esc);
        }
        i++;
    }
    mpjson__put(o, "\"", 1);
}

static void
mpjson__put_b64(struct mpjson__out *o, const unsigned char *p, size_t n)
{
    char q[4];
    size_t i;
    uint32_t v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = mpjson__b64[v >> 18];
        q[1] = mpjson__b64[(v >> 12) & 63];
        q[2] = mpjson__b64[(v >> 6) & 63];
        q[3] = mpjson__b64[v & 63];
        mpjson__put(o, q, 4);
    }
    if (n - i == 1) {
        v = (uint32_t)p[i] << 16;
        q[0] = mpjson__b64[v >> 18];
        q[1] = mpjson__b64[(v >> 12) & 63];
        q[2] = q[3] = '=';
        mpjson__put(o, q, 4);
    } else if (n - i == 2) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        q[0] = mpjson__b64[v >> 18];
        q[1] = mpjson__b64[(v >> 12) & 63];
        q[2] = mpjson__b64[(v >> 6) & 63];
        q[3] = '=';
        mpjson__put(o, q, 4);
    }
}

/* The shortest %g form that reads back as the same double, always with a '.'
 * or an exponent so it reads back as a real, not an integer. */
static void
mpjson__put_double(struct mpjson__out *o, double d, bool single)
{
    char buf[40];
    int prec;

    if (isnan(d) || isinf(d)) {
        mpjson__puts(o, "null");
        return;
    }
    for (prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (single ? (float)strtod(buf, NULL) == (float)d
                   : strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".e") == NULL)
        strcat(buf, ".0");
    mpjson__puts(o, buf);
}

static void
mpjson__newline(struct mpjson__out *o, int depth)
{
    int i;

    if (!(o->flags & MPJSON_PRETTY))
        return;
    mpjson__put(o, "\n", 1);
    for (i = 0; i < depth; i++)
        mpjson__put(o, "  ", 2);
}

static int mpjson__dump(struct mpjson__out *o, const msgpack_object *obj,
                        int depth);

static int
mpjson__dump_ext(struct mpjson__out *o, const msgpack_object *obj)
{
    const char *p = obj->via.ext.ptr;
    size_t n = obj->via.ext.size;
    unsigned char *mag;
    char buf[64], *dec;
    int64_t sec;
    uint32_t nsec;
    bool neg;

    /* A timestamp no date text can say, or an ext its codec refuses, goes
     * out as {"$ext": ...}, which packs back to the same bytes. */
    if (obj->via.ext.type == PROTO_EXT_TIMESTAMP &&
        proto_ext_timestamp_decode(p, n, &sec, &nsec, NULL) == 0 &&
        mpjson__format_date(sec, nsec, buf, sizeof buf) == 0) {
        mpjson__puts(o, "{\"$date\":");
        if (o->flags & MPJSON_PRETTY)
            mpjson__put(o, " ", 1);
        mpjson__put_string(o, buf, strlen(buf));
        mpjson__puts(o, "}");
        return 0;
    }
    if (obj->via.ext.type == PROTO_EXT_BIGINT) {
        mag = malloc(n + 1);
        if (mag == NULL)
            return -ENOMEM;
        if (proto_ext_bigint_decode(p, n, &neg, mag, &n, NULL) == 0) {
            dec = mpjson__bigint_to_dec(neg, mag, n);
            free(mag);
            if (dec == NULL)
                return -ENOMEM;
            mpjson__puts(o, (o->flags & MPJSON_PRETTY) ? "{\"$bigint\": "
                                                       : "{\"$bigint\":");
            mpjson__put_string(o, dec, strlen(dec));
            mpjson__puts(o, "}");
            free(dec);
            return 0;
        }
        free(mag);
        n = obj->via.ext.size;
    }
    snprintf(buf, sizeof buf,
             (o->flags & MPJSON_PRETTY) ? "{\"$ext\": [%d, \""
                                        : "{\"$ext\":[%d,\"",
             obj->via.ext.type);
    mpjson__puts(o, buf);
    mpjson__put_b64(o, (const unsigned char *)p, n);
    mpjson__puts(o, "\"]}");
    return 0;
}

/* A map key: str as it is, anything else as its compact JSON text. That text
 * is escaped once more for each key it sits in, which doubles its length: a
 * map keyed by a map keyed by a map ... would make 40 bytes of msgpack into
 * gigabytes of JSON. So keys inside keys stop at MPJSON_DUMP_MAX_KEY_DEPTH
 * (at most 2^8 times the input). */
#define MPJSON_DUMP_MAX_KEY_DEPTH 8
static int
mpjson__dump_key(struct mpjson__out *o, const msgpack_object *key, int depth)
{
    struct mpjson__out k = {0};
    int r;

    if (key->type == MSGPACK_OBJECT_STR) {
        mpjson__put_string(o, key->via.str.ptr, key->via.str.size);
        return 0;
    }
    if (o->key_depth >= MPJSON_DUMP_MAX_KEY_DEPTH)
        return -ELOOP;
    k.key_depth = o->key_depth + 1;
    r = mpjson__dump(&k, key, depth);
    if (r == 0 && k.failed)
        r = -ENOMEM;
    if (r == 0)
        mpjson__put_string(o, k.buf, k.len);
    free(k.buf);
    return r;
}

static int
mpjson__dump(struct mpjson__out *o, const msgpack_object *obj, int depth)
{
    char buf[32];
    uint32_t i;
    int r;

    switch (obj->type) {
    case MSGPACK_OBJECT_NIL:
        mpjson__puts(o, "null");
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        mpjson__puts(o, obj->via.boolean ? "true" : "false");
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, sizeof buf, "%" PRIu64, obj->via.u64);
        mpjson__puts(o, buf);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, sizeof buf, "%" PRId64, obj->via.i64);
        mpjson__puts(o, buf);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
        mpjson__put_double(o, obj->via.f64, true);
        return 0;
    case MSGPACK_OBJECT_FLOAT64:
        mpjson__put_double(o, obj->via.f64, false);
        return 0;
    case MSGPACK_OBJECT_STR:
        mpjson__put_string(o, obj->via.str.ptr, obj->via.str.size);
        return 0;
    case MSGPACK_OBJECT_BIN:
        mpjson__puts(o, (o->flags & MPJSON_PRETTY) ? "{\"$bin\": \""
                                                   : "{\"$bin\":\"");
        mpjson__put_b64(o, (const unsigned char *)obj->via.bin.ptr,
                        obj->via.bin.size);
        mpjson__puts(o, "\"}");
        return 0;
    case MSGPACK_OBJECT_EXT:
        return mpjson__dump_ext(o, obj);
    case MSGPACK_OBJECT_ARRAY:
        if (depth >= MPJSON_DUMP_MAX_DEPTH)
            return -ELOOP;
        mpjson__put(o, "[", 1);
        for (i = 0; i < obj->via.array.size; i++) {
            if (i > 0)
                mpjson__put(o, ",", 1);
            mpjson__newline(o, depth + 1);
            r = mpjson__dump(o, &obj->via.array.ptr[i], depth + 1);
            if (r != 0)
                return r;
        }
        if (obj->via.array.size > 0)
            mpjson__newline(o, depth);
        mpjson__put(o, "]", 1);
        return 0;
    case MSGPACK_OBJECT_MAP:
        if (depth >= MPJSON_DUMP_MAX_DEPTH)
            return -ELOOP;
        mpjson__put(o, "{", 1);
        for (i = 0; i < obj->via.map.size; i++) {
            if (i > 0)
                mpjson__put(o, ",", 1);
            mpjson__newline(o, depth + 1);
            r = mpjson__dump_key(o, &obj->via.map.ptr[i].key, depth + 1);
            if (r != 0)
                return r;
            mpjson__puts(o, (o->flags & MPJSON_PRETTY) ? ": " : ":");
            r = mpjson__dump(o, &obj->via.map.ptr[i].val, depth + 1);
            if (r != 0)
                return r;
        }
        if (obj->via.map.size > 0)
            mpjson__newline(o, depth);
        mpjson__put(o, "}", 1);
        return 0;
    }
    return -EINVAL;
}

char *
mpjson_dump(const msgpack_object *obj, int flags)
{
    struct mpjson__out o = {0};

    o.flags = flags;
    if (mpjson__dump(&o, obj, 0) != 0 || o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}

static uint64_t
mpjson__be(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * Whether buf can hold one msgpack value: every container's count fits in
 * the bytes left after its header (each element takes at least one byte).
 * msgpack-c reserves room for a container's elements as soon as it reads the
 * count, so without this a 5-byte array32 header asks for ~100 GB. No
 * allocation, no recursion: one count of the items still due.
 */
static bool
mpjson__plausible(const unsigned char *p, size_t len)
{
    size_t pos = 0;
    uint64_t due = 1, items, skip;
    unsigned c, head, n;

    while (due > 0) {
        if (pos >= len)
            return false;
        c = p[pos++];
        due--;
        items = skip = 0;
        head = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
            ; /* fixint, nil, bool */
        else if (c <= 0x8f)
            items = 2u * (c & 0x0f); /* fixmap */
        else if (c <= 0x9f)
            items = c & 0x0f; /* fixarray */
        else if (c <= 0xbf)
            skip = c & 0x1f;                          /* fixstr */
        else if (c == 0xc4 || c == 0xc5 || c == 0xc6) /* bin 8/16/32 */
            head = 1u << (c - 0xc4);
        else if (c == 0xd9 || c == 0xda || c == 0xdb) /* str 8/16/32 */
            head = 1u << (c - 0xd9);
        else if (c == 0xc7 || c == 0xc8 || c == 0xc9) { /* ext: + type */
            head = 1u << (c - 0xc7);
            skip = 1;
        } else if (c == 0xca || c == 0xcb) /* float 32/64 */
            skip = c == 0xca ? 4 : 8;
        else if (c >= 0xcc && c <= 0xd3) /* uint, int 8..64 */
            skip = 1u << ((c - 0xcc) & 3);
        else if (c >= 0xd4 && c <= 0xd8) /* fixext 1..16: + type */
            skip = 1 + (1u << (c - 0xd4));
        else if (c >= 0xdc && c <= 0xdf) { /* array, map 16/32 */
            n = (c & 1) ? 4 : 2;
            if (len - pos < n)
                return false;
            items = mpjson__be(p + pos, n) * (c >= 0xde ? 2 : 1);
            pos += n;
        } else
            return false; /* 0xc1, never used */
        if (head > 0) {
            if (len - pos < head)
                return false;
            skip += mpjson__be(p + pos, head);
            pos += head;
        }
        if (skip > len - pos)
            return false;
        pos += (size_t)skip;
        due += items;
        if (due > len - pos)
            return false;
    }
    return pos == len;
}

char *
mpjson_dump_bytes(const char *buf, size_t len, int flags)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    char *s = NULL;

    if (!mpjson__plausible((const unsigned char *)buf, len))
        return NULL;
    if (!msgpack_zone_init(&zone, 2048))
        return NULL;
    if (msgpack_unpack(buf, len, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS)
        s = mpjson_dump(&obj, flags);
    msgpack_zone_destroy(&zone);
    return s;
}
