/*
 * A pull reader over msgpack bytes: one item's head at a time, no allocation,
 * no copy. The manager uses it to read the few header fields it needs from a
 * message it forwards as bytes; the reader validates messages with it.
 */
#include <errno.h>
#include <string.h>

#include "proto.h"

void
proto_cur_init(struct proto_cur *c, const char *buf, size_t len)
{
    c->p = (const uint8_t *)buf;
    /* An empty span may have no pointer: NULL + 0 is not C. */
    c->end = len > 0 ? c->p + len : c->p;
}

static uint64_t
cur_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Takes n bytes of head fields; -EPROTO when the buffer ends first. */
static int
cur_take(struct proto_cur *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n)
        return -EPROTO;
    *out = c->p;
    c->p += n;
    return 0;
}

static int
cur_payload(struct proto_cur *c, struct proto_item *it, uint64_t len)
{
    if ((uint64_t)(c->end - c->p) < len)
        return -EPROTO;
    it->ptr = (const char *)c->p;
    it->len = (uint32_t)len;
    c->p += len;
    return 0;
}

static int
cur_uint(struct proto_cur *c, struct proto_item *it, unsigned n)
{
    const uint8_t *q;

    if (cur_take(c, n, &q) != 0)
        return -EPROTO;
    it->type = PROTO_T_UINT;
    it->v.u = cur_be(q, n);
    return 0;
}

/* Signed encodings of values >= 0 read as unsigned, as msgpack-c does. */
static int
cur_int(struct proto_cur *c, struct proto_item *it, unsigned n)
{
    const uint8_t *q;
    uint64_t u;
    int64_t v;

    if (cur_take(c, n, &q) != 0)
        return -EPROTO;
    u = cur_be(q, n);
    if (n < 8 && (u >> (n * 8 - 1)) != 0)
        u |= ~(uint64_t)0 << (n * 8); /* sign-extend */
    memcpy(&v, &u, sizeof v);
    if (v >= 0) {
        it->type = PROTO_T_UINT;
        it->v.u = (uint64_t)v;
    } else {
        it->type = PROTO_T_INT;
        it->v.i = v;
    }
    return 0;
}

static int
cur_ext(struct proto_cur *c, struct proto_item *it, unsigned lenbytes,
        uint64_t fixed)
{
    const uint8_t *q;
    uint64_t len = fixed;

    if (cur_take(c, lenbytes + 1, &q) != 0)
        return -EPROTO;
    if (lenbytes > 0)
        len = cur_be(q, lenbytes);
    it->type = PROTO_T_EXT;
    it->ext_type = (int8_t)q[lenbytes];
    return cur_payload(c, it, len);
}

int
proto__cur_next(struct proto_cur *c, struct proto_item *it)
{
    const uint8_t *q;
    uint8_t b;

    memset(it, 0, sizeof *it);
    if (c->p >= c->end)
        return -EPROTO;
    b = *c->p++;
    if (b <= 0x7f) {
        it->type = PROTO_T_UINT;
        it->v.u = b;
        return 0;
    }
    if (b >= 0xe0) {
        it->type = PROTO_T_INT;
        it->v.i = (int8_t)b;
        return 0;
    }
    if (b <= 0x8f) {
        it->type = PROTO_T_MAP;
        it->len = b & 0x0f;
        return 0;
    }
    if (b <= 0x9f) {
        it->type = PROTO_T_ARRAY;
        it->len = b & 0x0f;
        return 0;
    }
    if (b <= 0xbf) {
        it->type = PROTO_T_STR;
        return cur_payload(c, it, b & 0x1f);
    }
    switch (b) {
    case 0xc0:
        it->type = PROTO_T_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        it->type = PROTO_T_BOOL;
        it->v.b = b == 0xc3;
        return 0;
    case 0xc4:
    case 0xc5:
    case 0xc6:
    case 0xd9:
    case 0xda:
    case 0xdb: {
        unsigned n = b == 0xc4 || b == 0xd9   ? 1
                     : b == 0xc5 || b == 0xda ? 2
                                              : 4;

        if (cur_take(c, n, &q) != 0)
            return -EPROTO;
        it->type = b <= 0xc6 ? PROTO_T_BIN : PROTO_T_STR;
        return cur_payload(c, it, cur_be(q, n));
    }
    case 0xc7:
        return cur_ext(c, it, 1, 0);
    case 0xc8:
        return cur_ext(c, it, 2, 0);
    case 0xc9:
        return cur_ext(c, it, 4, 0);
    case 0xca: {
        float f;
        uint32_t u;

        if (cur_take(c, 4, &q) != 0)
            return -EPROTO;
        u = (uint32_t)cur_be(q, 4);
        memcpy(&f, &u, sizeof f);
        it->type = PROTO_T_FLOAT32;
        it->v.f = f;
        return 0;
    }
    case 0xcb: {
        uint64_t u;

        if (cur_take(c, 8, &q) != 0)
            return -EPROTO;
        u = cur_be(q, 8);
        memcpy(&it->v.f, &u, sizeof it->v.f);
        it->type = PROTO_T_FLOAT64;
        return 0;
    }
    case 0xcc:
        return cur_uint(c, it, 1);
    case 0xcd:
        return cur_uint(c, it, 2);
    case 0xce:
        return cur_uint(c, it, 4);
    case 0xcf:
        return cur_uint(c, it, 8);
    case 0xd0:
        return cur_int(c, it, 1);
    case 0xd1:
        return cur_int(c, it, 2);
    case 0xd2:
        return cur_int(c, it, 4);
    case 0xd3:
        return cur_int(c, it, 8);
    case 0xd4:
        return cur_ext(c, it, 0, 1);
    case 0xd5:
        return cur_ext(c, it, 0, 2);
    case 0xd6:
        return cur_ext(c, it, 0, 4);
    case 0xd7:
        return cur_ext(c, it, 0, 8);
    case 0xd8:
        return cur_ext(c, it, 0, 16);
    case 0xdc:
    case 0xde:
        if (cur_take(c, 2, &q) != 0)
            return -EPROTO;
        it->type = b == 0xdc ? PROTO_T_ARRAY : PROTO_T_MAP;
        it->len = (uint32_t)cur_be(q, 2);
        return 0;
    case 0xdd:
    case 0xdf:
        if (cur_take(c, 4, &q) != 0)
            return -EPROTO;
        it->type = b == 0xdd ? PROTO_T_ARRAY : PROTO_T_MAP;
        it->len = (uint32_t)cur_be(q, 4);
        return 0;
    }
    return -EPROTO; /* 0xc1, never used */
}

int
proto_cur_skip(struct proto_cur *c)
{
    struct proto_item it;
    uint64_t due = 1;

    /* No stack needed: a container just adds its items to what is due. */
    while (due > 0) {
        if (proto_cur_next(c, &it) != 0)
            return -EPROTO;
        due--;
        if (it.type == PROTO_T_ARRAY)
            due += it.len;
        else if (it.type == PROTO_T_MAP)
            due += (uint64_t)it.len * 2;
        /* Every item takes a byte: more due than bytes left is a lie. */
        if (due > (uint64_t)(c->end - c->p))
            return -EPROTO;
    }
    return 0;
}

const char *
proto_item_kind(const struct proto_item *it)
{
    switch (it->type) {
    case PROTO_T_NIL:
        return "nil";
    case PROTO_T_BOOL:
        return "a boolean";
    case PROTO_T_UINT:
        return "an integer";
    case PROTO_T_INT:
        return "a negative integer";
    case PROTO_T_FLOAT32:
    case PROTO_T_FLOAT64:
        return "a float";
    case PROTO_T_STR:
        return "a string";
    case PROTO_T_BIN:
        return "a binary";
    case PROTO_T_ARRAY:
        return "an array";
    case PROTO_T_MAP:
        return "a map";
    case PROTO_T_EXT:
        return "an extension";
    }
    return "an unknown type";
}
