/*
 * The streaming reader. Bytes land in one msgpack_unpacker's buffer, but the
 * unpacker only ever sees whole messages: a small scanner walks every incoming
 * byte first, without allocating, to find where each message ends. That is what
 * lets the reader refuse a message while it is still arriving (a header
 * announcing 4 GiB, an array count no message under the limit can hold, a 33rd
 * level of nesting) before msgpack-c allocates anything for it: msgpack-c
 * reserves room for a container's elements as soon as it reads the count, so a
 * 5-byte array32 header would otherwise cost gigabytes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "proto_internal.h"

/* A whole message the scanner found: its size and where its parts start. */
struct frame {
    size_t size;
    size_t at1[4];                /* the root array's first four items */
    size_t at2[PROTO_RAW_PARAMS]; /* items of the root's latest container */
    uint32_t n1, n2;
    /* Announced by a size hint: the hint's bytes come first (in size), the
     * message's were not read, and at1/at2 are found when it is looked at. */
    bool hinted;
};

/* Where the scanner is inside the current message. */
struct scan {
    uint32_t depth;                 /* open containers */
    uint64_t left[PROTO_MAX_DEPTH]; /* items still due in each */
    uint8_t head[9];                /* a header being assembled */
    uint8_t head_have;
    uint8_t head_need;
    uint64_t skip;   /* payload bytes still due */
    uint64_t unread; /* bytes of a hinted message still due */
    size_t bytes;    /* bytes of the current message so far */
    struct frame cur;
};

struct proto_reader {
    msgpack_unpacker up;
    size_t max_message;
    struct scan sc;
    /* Whole messages in the buffer, not yet handed out: a ring of `ready`
     * frames from `first`. */
    struct frame *frames;
    size_t first, ready, cap;
    bool peeked; /* the first frame was validated by proto_reader_peek */
    bool hints;  /* takes size hints (proto_reader_take_hints) */
    int err;     /* the stream broke after those `ready` messages */
    char cause[PROTO_CAUSE_MAX];
};

void
proto__cause(char *cause, const char *fmt, ...)
{
    va_list ap;

    if (cause == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(cause, PROTO_CAUSE_MAX, fmt, ap);
    va_end(ap);
}

const char *
proto__obj_kind(const msgpack_object *o)
{
    static const enum proto_item_type as_item[] = {
        [MSGPACK_OBJECT_NIL] = PROTO_T_NIL,
        [MSGPACK_OBJECT_BOOLEAN] = PROTO_T_BOOL,
        [MSGPACK_OBJECT_POSITIVE_INTEGER] = PROTO_T_UINT,
        [MSGPACK_OBJECT_NEGATIVE_INTEGER] = PROTO_T_INT,
        [MSGPACK_OBJECT_FLOAT32] = PROTO_T_FLOAT32,
        [MSGPACK_OBJECT_FLOAT64] = PROTO_T_FLOAT64,
        [MSGPACK_OBJECT_STR] = PROTO_T_STR,
        [MSGPACK_OBJECT_ARRAY] = PROTO_T_ARRAY,
        [MSGPACK_OBJECT_MAP] = PROTO_T_MAP,
        [MSGPACK_OBJECT_BIN] = PROTO_T_BIN,
        [MSGPACK_OBJECT_EXT] = PROTO_T_EXT,
    };
    struct proto_item it = {.type = PROTO_T_NIL};

    if ((size_t)o->type < sizeof as_item / sizeof as_item[0])
        it.type = as_item[o->type];
    else
        return "an unknown type";
    return proto_item_kind(&it);
}

struct proto_reader *
proto_reader_new(size_t max_message)
{
    struct proto_reader *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    if (!msgpack_unpacker_init(&r->up, MSGPACK_UNPACKER_INIT_BUFFER_SIZE)) {
        free(r);
        return NULL;
    }
    r->max_message = max_message ? max_message : PROTO_MAX_MESSAGE_DEFAULT;
    return r;
}

void
proto_reader_take_hints(struct proto_reader *r)
{
    r->hints = true;
}

/* A size hint's bytes before its count: [2, "size", [uint32 */
static const uint8_t hint_head[PROTO_HINT_BYTES - 4] = {
    0x93, 0x02, 0xa4, 's', 'i', 'z', 'e', 0x91, 0xce,
};

void
proto_size_hint(char hint[PROTO_HINT_BYTES], uint32_t n)
{
    memcpy(hint, hint_head, sizeof hint_head);
    hint[9] = (char)(n >> 24);
    hint[10] = (char)(n >> 16);
    hint[11] = (char)(n >> 8);
    hint[12] = (char)n;
}

void
proto_reader_free(struct proto_reader *r)
{
    if (r == NULL)
        return;
    msgpack_unpacker_destroy(&r->up);
    free(r->frames);
    free(r);
}

static void reader_fail(struct proto_reader *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reader_fail(struct proto_reader *r, int err, const char *fmt, ...)
{
    va_list ap;

    r->err = err;
    va_start(ap, fmt);
    vsnprintf(r->cause, sizeof(r->cause), fmt, ap);
    va_end(ap);
}

static uint64_t
be_uint(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Files the message the scanner just finished. On no memory the stream
 * breaks there (its bytes are not kept). */
static int
frame_push(struct proto_reader *r)
{
    struct frame *nf;
    size_t i, ncap;

    if (r->ready == r->cap) {
        ncap = r->cap ? r->cap * 2 : 16; /* a power of two: & for % */
        nf = malloc(ncap * sizeof *nf);
        if (nf == NULL) {
            reader_fail(r, -ENOMEM, "out of memory reading messages");
            return -1;
        }
        for (i = 0; i < r->ready; i++)
            nf[i] = r->frames[(r->first + i) & (r->cap - 1)];
        free(r->frames);
        r->frames = nf;
        r->first = 0;
        r->cap = ncap;
    }
    r->frames[(r->first + r->ready) & (r->cap - 1)] = r->sc.cur;
    r->ready++;
    return 0;
}

static void
frame_pop(struct proto_reader *r)
{
    r->first = (r->first + 1) & (r->cap - 1);
    r->ready--;
    r->peeked = false;
}

/* An item starts at this byte: note where, for the first levels. */
static inline void
scan_mark(struct scan *sc)
{
    struct frame *f = &sc->cur;

    if (sc->depth == 0) {
        f->n1 = f->n2 = 0;
    } else if (sc->depth == 1) {
        if (f->n1 < 4)
            f->at1[f->n1] = sc->bytes;
        f->n1++;
        f->n2 = 0;
    } else if (sc->depth == 2) {
        if (f->n2 < PROTO_RAW_PARAMS)
            f->at2[f->n2] = sc->bytes;
        f->n2++;
    }
}

/* One item (scalar or a container's last element) ended. -1 when the
 * message it ended could not be filed. */
static inline int
scan_item_done(struct proto_reader *r)
{
    struct scan *sc = &r->sc;

    for (;;) {
        if (sc->depth == 0) {
            sc->cur.size = sc->bytes;
            sc->bytes = 0;
            return frame_push(r);
        }
        if (--sc->left[sc->depth - 1] > 0)
            return 0;
        sc->depth--;
    }
}

/* Room the current message still has under the limit. */
static uint64_t
scan_room(const struct proto_reader *r)
{
    return r->max_message - r->sc.bytes;
}

static int
scan_container(struct proto_reader *r, uint64_t items)
{
    struct scan *sc = &r->sc;

    /* msgpack-c 4.0 refuses a 33rd level even for an empty container (and calls
     * it NOMEM); refuse it here first, so it is a protocol error. */
    if (sc->depth >= PROTO_MAX_DEPTH) {
        reader_fail(r, -EPROTO, "nesting deeper than %d levels",
                    PROTO_MAX_DEPTH);
        return -1;
    }
    /* Every item takes at least one byte. */
    if (items > scan_room(r)) {
        reader_fail(r, -EMSGSIZE,
                    "a container of %llu items cannot fit in the %zu-byte "
                    "message limit",
                    (unsigned long long)items, r->max_message);
        return -1;
    }
    if (items == 0)
        return scan_item_done(r);
    sc->left[sc->depth++] = items;
    return 0;
}

static int
scan_payload(struct proto_reader *r, uint64_t len)
{
    if (len > scan_room(r)) {
        reader_fail(
            r, -EMSGSIZE,
            "an item of %llu bytes cannot fit in the %zu-byte message limit",
            (unsigned long long)len, r->max_message);
        return -1;
    }
    if (len == 0)
        return scan_item_done(r);
    r->sc.skip = len;
    return 0;
}

/* Extra header bytes after the first byte b (its length or count fields). */
static uint8_t
scan_head_extra(uint8_t b)
{
    switch (b) {
    case 0xc4:
    case 0xd9:
        return 1; /* bin8, str8: 1-byte length */
    case 0xc5:
    case 0xda:
    case 0xdc:
    case 0xde:
        return 2;
    case 0xc6:
    case 0xdb:
    case 0xdd:
    case 0xdf:
        return 4;
    case 0xc7:
        return 2; /* ext8: length, type */
    case 0xc8:
        return 3;
    case 0xc9:
        return 5;
    default:
        return 0;
    }
}

/* The whole size of an item that its first byte tells, header and data:
 * fixints, fixstr, nil, booleans, numbers, fixext. 0 for the rest. */
static inline size_t
whole_size(uint8_t b)
{
    /* 0xc0..0xdf: nil, booleans, float32/64, (u)int8..64, fixext 1..16
     * (type + data); 0 where the size is in the bytes after or it is a
     * container. */
    static const uint8_t kC0[32] = {
        1, 0, 1, 1, 0, 0, 0, 0,  0,  0, 5, 9, 2, 3, 5, 9,
        2, 3, 5, 9, 3, 4, 6, 10, 18, 0, 0, 0, 0, 0, 0, 0,
    };

    if (b <= 0x7f || b >= 0xe0)
        return 1;
    if (b >= 0xc0)
        return kC0[b - 0xc0];
    if (b >= 0xa0)
        return 1 + (size_t)(b & 0x1f);
    return 0;
}

/* A whole header is at h (in sc->head, or in place in the input): decide
 * what follows. */
static int
scan_header(struct proto_reader *r, const uint8_t *h)
{
    uint8_t b = h[0];
    size_t whole = whole_size(b);

    if (whole > 0) /* sized by this byte: what follows it is data */
        return scan_payload(r, whole - 1);
    if (b <= 0x8f)
        return scan_container(r, (uint64_t)(b & 0x0f) * 2);
    if (b <= 0x9f)
        return scan_container(r, b & 0x0f);
    switch (b) {
    case 0xc1:
        reader_fail(r, -EPROTO, "not msgpack (byte 0xc1)");
        return -1;
    case 0xc4:
    case 0xd9:
        return scan_payload(r, h[1]);
    case 0xc5:
    case 0xda:
        return scan_payload(r, be_uint(h + 1, 2));
    case 0xc6:
    case 0xdb:
        return scan_payload(r, be_uint(h + 1, 4));
    /* ext8/16/32: the type byte came with the header; the length is data. */
    case 0xc7:
        return scan_payload(r, h[1]);
    case 0xc8:
        return scan_payload(r, be_uint(h + 1, 2));
    case 0xc9:
        return scan_payload(r, be_uint(h + 1, 4));
    case 0xdc:
        return scan_container(r, be_uint(h + 1, 2));
    case 0xdd:
        return scan_container(r, be_uint(h + 1, 4));
    case 0xde:
        return scan_container(r, be_uint(h + 1, 2) * 2);
    case 0xdf:
        return scan_container(r, be_uint(h + 1, 4) * 2);
    }
    reader_fail(r, -EPROTO, "not msgpack (byte 0x%02x)", b);
    return -1;
}

/*
 * The common run of items inside a message, read in place from p[*pi..len):
 * scalars, fixstr with its bytes and fixmap/fixarray headers, with the state
 * in locals. Stops at anything else (scan_header reads it), at the end of
 * the message (filed here), when a header might not be wholly there, or near
 * the size limit (the byte-wise path says which byte passed it). -1 when the
 * message it ended could not be filed.
 */
static int
scan_run(struct proto_reader *r, const uint8_t *p, size_t *pi, size_t len)
{
    struct scan *sc = &r->sc;
    uint32_t depth = sc->depth;
    size_t bytes = sc->bytes, i = *pi;
    int rc = 0;

    while (depth > 0 && len - i >= 40 && bytes + 40 <= r->max_message) {
        uint8_t b = p[i];
        size_t n = whole_size(b);

        if (n == 0 &&
            (b < 0x81 || b > 0x9f || b == 0x90 || depth >= PROTO_MAX_DEPTH))
            break;
        if (depth <= 2) {
            sc->depth = depth;
            sc->bytes = bytes;
            scan_mark(sc);
        }
        if (n == 0) { /* a fixmap or fixarray with items */
            sc->left[depth++] = b <= 0x8f ? (uint64_t)(b & 0x0f) * 2 : b & 0x0f;
            i++;
            bytes++;
            continue;
        }
        i += n;
        bytes += n;
        /* The item ended: close the containers it completed. */
        while (--sc->left[depth - 1] == 0 && --depth > 0)
            ;
        if (depth == 0) {
            sc->cur.size = bytes;
            bytes = 0;
            rc = frame_push(r);
            break;
        }
    }
    sc->depth = depth;
    sc->bytes = bytes;
    *pi = i;
    return rc;
}

/*
 * Walks len new bytes. Returns how many belong to the stream: all of them, or,
 * when the stream broke, those up to the end of the last whole message (the
 * rest will never be parsed, so they need not be kept).
 */
static size_t
scan(struct proto_reader *r, const uint8_t *p, size_t len)
{
    struct scan *sc = &r->sc;
    size_t i = 0;
    size_t kept = 0;

    if (r->err)
        return 0;
    while (i < len) {
        size_t take;
        uint64_t n;

        if (sc->unread > 0) {
            /* A hinted message: counted, not read. */
            take = len - i < sc->unread ? len - i : (size_t)sc->unread;
            sc->unread -= take;
            sc->bytes += take;
            i += take;
            if (sc->unread == 0) {
                sc->cur.size = sc->bytes;
                sc->bytes = 0;
                if (frame_push(r) < 0)
                    return kept;
                sc->cur.hinted = false;
            }
        } else if (r->hints && sc->bytes == 0 && len - i >= PROTO_HINT_BYTES &&
                   memcmp(p + i, hint_head, sizeof hint_head) == 0 &&
                   (n = be_uint(p + i + sizeof hint_head, 4)) > 0) {
            if (n > r->max_message) {
                reader_fail(r, -EMSGSIZE,
                            "a size hint announced %llu bytes, past the "
                            "%zu-byte message limit",
                            (unsigned long long)n, r->max_message);
                return kept;
            }
            sc->cur.hinted = true;
            sc->unread = n;
            sc->bytes = PROTO_HINT_BYTES;
            i += PROTO_HINT_BYTES;
        } else if (sc->skip > 0) {
            take = len - i < sc->skip ? len - i : (size_t)sc->skip;
            sc->skip -= take;
            sc->bytes += take;
            i += take;
            if (sc->skip == 0 && scan_item_done(r) < 0)
                return kept;
        } else if (sc->head_have == 0 && len - i >= sizeof sc->head) {
            /* The whole header is here: read it in place. */
            const uint8_t *h;

            if (sc->depth > 0) {
                if (scan_run(r, p, &i, len) < 0)
                    return kept;
                if (sc->depth == 0 || len - i < sizeof sc->head)
                    goto next;
            }
            h = p + i;
            if (sc->depth <= 2)
                scan_mark(sc);
            take = 1 + (size_t)scan_head_extra(h[0]);
            sc->bytes += take;
            i += take;
            if (sc->bytes > r->max_message) {
                reader_fail(r, -EMSGSIZE, "a message passed the %zu-byte limit",
                            r->max_message);
                return kept;
            }
            if (scan_header(r, h) < 0)
                return kept;
        } else {
            if (sc->head_have == 0) {
                if (sc->depth <= 2)
                    scan_mark(sc);
                sc->head[0] = p[i];
                sc->head_need = 1 + scan_head_extra(p[i]);
            } else {
                sc->head[sc->head_have] = p[i];
            }
            sc->head_have++;
            sc->bytes++;
            i++;
            if (sc->bytes > r->max_message) {
                reader_fail(r, -EMSGSIZE, "a message passed the %zu-byte limit",
                            r->max_message);
                return kept;
            }
            if (sc->head_have < sc->head_need)
                continue;
            sc->head_have = 0;
            if (scan_header(r, sc->head) < 0)
                return kept;
        }
    next:
        if (sc->bytes == 0)
            kept = i;
    }
    return len;
}

int
proto_reader_feed(struct proto_reader *r, const char *buf, size_t len)
{
    size_t ready = r->ready;
    size_t n;

    if (len == 0 || r->err)
        return 0;
    /* Scan before copying, so the bytes of a refused message are never kept. */
    n = scan(r, (const uint8_t *)buf, len);
    if (n == 0)
        return 0;
    if (!msgpack_unpacker_reserve_buffer(&r->up, n)) {
        /* Messages these bytes completed are not in the buffer after all. */
        r->ready = ready;
        r->peeked = r->peeked && ready > 0;
        reader_fail(r, -ENOMEM, "out of memory buffering %zu bytes", n);
        return -ENOMEM;
    }
    memcpy(msgpack_unpacker_buffer(&r->up), buf, n);
    msgpack_unpacker_buffer_consumed(&r->up, n);
    return 0;
}

int
proto_reader_buffer(struct proto_reader *r, size_t want, char **buf,
                    size_t *len)
{
    if (want == 0)
        want = 1;
    /* A hinted message's size is known: room for all of it now, rather
     * than a buffer that doubles, copying, while it arrives. */
    if (r->sc.unread > want && !r->err)
        want = (size_t)r->sc.unread;
    /* A broken stream keeps nothing more; the existing room is reused. */
    if (r->err && msgpack_unpacker_buffer_capacity(&r->up) >= want) {
        *buf = msgpack_unpacker_buffer(&r->up);
        *len = msgpack_unpacker_buffer_capacity(&r->up);
        return 0;
    }
    /* Every byte handed out: start again at the front. msgpack-c rewinds
     * only when it must grow, so a big message would else land behind the
     * last one and be copied whole when it reached the buffer's end (once
     * per message: 8% of the manager's CPU relaying 1 MiB results). */
    if (r->up.used == r->up.off) {
        if (!msgpack_unpacker_expand_buffer(&r->up, want))
            return -ENOMEM;
    } else if (!msgpack_unpacker_reserve_buffer(&r->up, want)) {
        return -ENOMEM;
    }
    *buf = msgpack_unpacker_buffer(&r->up);
    *len = msgpack_unpacker_buffer_capacity(&r->up);
    return 0;
}

void
proto_reader_fill(struct proto_reader *r, size_t n)
{
    size_t cap = msgpack_unpacker_buffer_capacity(&r->up);

    if (n > cap)
        n = cap;
    if (n == 0 || r->err)
        return;
    n = scan(r, (const uint8_t *)msgpack_unpacker_buffer(&r->up), n);
    msgpack_unpacker_buffer_consumed(&r->up, n);
}

size_t
proto_reader_pending(const struct proto_reader *r)
{
    return r->up.used - r->up.off;
}

size_t
proto_reader_partial(const struct proto_reader *r)
{
    return r->err ? 0 : r->sc.bytes;
}

void
proto_msg_release(struct proto_msg *msg)
{
    if (msg == NULL)
        return;
    if (msg->zone != NULL)
        msgpack_zone_free(msg->zone);
    memset(msg, 0, sizeof(*msg));
}

bool
proto_msg_is(const struct proto_msg *msg, const char *method)
{
    size_t n = strlen(method);

    return msg->method != NULL && msg->method_len == n &&
           memcmp(msg->method, method, n) == 0;
}

/* Reads one head at offset `at` of a message. */
static int
raw_item(const char *bytes, size_t size, size_t at, struct proto_item *it)
{
    struct proto_cur c;

    proto_cur_init(&c, bytes + at, size - at);
    return proto_cur_next(&c, it);
}

/*
 * Checks that a whole message is a msgpack-RPC message and fills *raw. The one
 * validator of the head, for messages unpacked or forwarded as bytes; the
 * scanner has already checked that the bytes are well-formed msgpack.
 */
static int
raw_validate(const struct frame *f, const char *bytes, struct proto_raw *raw,
             char *cause)
{
    struct proto_item root, it;
    uint64_t kind;
    uint32_t n, want, mi, i;

    raw->bytes = bytes;
    raw->size = f->size;
    raw->method = NULL;
    raw->method_len = 0;
    raw->msgid = 0;
    raw->nparams = 0;
    if (raw_item(bytes, f->size, 0, &root) != 0)
        return -EPROTO;
    if (root.type != PROTO_T_ARRAY) {
        proto__cause(cause, "message: expected an array, got %s",
                     proto_item_kind(&root));
        return -EPROTO;
    }
    n = root.len;
    if (n == 0) {
        proto__cause(cause,
                     "message: expected 3 or 4 elements, got an empty array");
        return -EPROTO;
    }
    if (raw_item(bytes, f->size, f->at1[0], &it) != 0)
        return -EPROTO;
    if (it.type != PROTO_T_UINT || it.v.u > 2) {
        proto__cause(cause, "message[0] (kind): expected 0, 1 or 2, got %s",
                     it.type == PROTO_T_UINT ? "another integer"
                                             : proto_item_kind(&it));
        return -EPROTO;
    }
    kind = it.v.u;
    want = kind == PROTO_NOTIFICATION ? 3u : 4u;
    if (n != want) {
        proto__cause(cause, "message: a %s has %u elements, got %u",
                     kind == PROTO_REQUEST    ? "request"
                     : kind == PROTO_RESPONSE ? "response"
                                              : "notification",
                     want, n);
        return -EPROTO;
    }
    raw->kind = (enum proto_kind)kind;
    if (kind != PROTO_NOTIFICATION) {
        if (raw_item(bytes, f->size, f->at1[1], &it) != 0)
            return -EPROTO;
        if (it.type != PROTO_T_UINT || it.v.u > UINT32_MAX) {
            proto__cause(cause,
                         "message[1] (msgid): expected an unsigned 32-bit "
                         "integer, got %s",
                         it.type == PROTO_T_UINT ? "one above 4294967295"
                                                 : proto_item_kind(&it));
            return -EPROTO;
        }
        raw->msgid = (uint32_t)it.v.u;
    }
    if (kind == PROTO_RESPONSE) {
        if (raw_item(bytes, f->size, f->at1[2], &it) != 0)
            return -EPROTO;
        if (it.type != PROTO_T_NIL && it.type != PROTO_T_MAP) {
            proto__cause(cause,
                         "message[2] (error): expected a map or nil, got %s",
                         proto_item_kind(&it));
            return -EPROTO;
        }
        raw->error_at = f->at1[2];
        raw->result_at = f->at1[3];
        return 0;
    }
    /* Request and notification: method and params sit one place apart. */
    mi = kind == PROTO_REQUEST ? 2 : 1;
    if (raw_item(bytes, f->size, f->at1[mi], &it) != 0)
        return -EPROTO;
    if (it.type != PROTO_T_STR) {
        proto__cause(cause, "message[%u] (method): expected a string, got %s",
                     mi, proto_item_kind(&it));
        return -EPROTO;
    }
    raw->method = it.ptr;
    raw->method_len = it.len;
    if (raw_item(bytes, f->size, f->at1[mi + 1], &it) != 0)
        return -EPROTO;
    if (it.type != PROTO_T_ARRAY) {
        proto__cause(cause, "message[%u] (params): expected an array, got %s",
                     mi + 1, proto_item_kind(&it));
        return -EPROTO;
    }
    raw->params_at = f->at1[mi + 1];
    raw->nparams = it.len;
    /* The params are the root's last container: the scanner noted their
     * starts. */
    for (i = 0; i < raw->nparams && i < PROTO_RAW_PARAMS && i < f->n2; i++)
        raw->param_at[i] = f->at2[i];
    return 0;
}

/*
 * Where a hinted message's parts start, found by reading only its head: the
 * root's items up to the last (a response's result, a request's params), and
 * the first params. Those before the last are skipped item by item, so this
 * stays small for the messages a worker hints (results, invoke's args).
 */
static int
hinted_head(struct frame *f, const char *bytes)
{
    struct proto_cur c;
    struct proto_item root, it;
    uint32_t k, last;

    proto_cur_init(&c, bytes, f->size);
    if (proto_cur_next(&c, &root) != 0 || root.type != PROTO_T_ARRAY ||
        root.len == 0 || root.len > 4)
        return -EPROTO;
    f->n1 = root.len;
    f->n2 = 0;
    for (k = 0; k < root.len; k++) {
        f->at1[k] = (size_t)((const char *)c.p - bytes);
        if (k + 1 < root.len && proto_cur_skip(&c) != 0)
            return -EPROTO;
    }
    if (f->at1[root.len - 1] >= f->size)
        return -EPROTO; /* the last item is missing */
    /* Requests and notifications: where their first params start. */
    if ((uint8_t)bytes[f->at1[0]] == PROTO_RESPONSE)
        return 0;
    if (proto_cur_next(&c, &it) != 0)
        return -EPROTO;
    if (it.type != PROTO_T_ARRAY)
        return 0; /* raw_validate says what is wrong */
    last = it.len < PROTO_RAW_PARAMS ? it.len : PROTO_RAW_PARAMS;
    for (k = 0; k < last; k++) {
        f->at2[k] = (size_t)((const char *)c.p - bytes);
        if (k + 1 < last && proto_cur_skip(&c) != 0)
            return -EPROTO;
    }
    f->n2 = last;
    return 0;
}

/* raw_validate for any frame at `at`: a hinted one past its hint. */
static int
frame_raw(const struct frame *f, const char *at, struct proto_raw *raw,
          char *cause)
{
    struct frame h;

    raw->hinted = f->hinted;
    if (!f->hinted)
        return raw_validate(f, at, raw, cause);
    h = *f;
    h.size -= PROTO_HINT_BYTES;
    if (hinted_head(&h, at + PROTO_HINT_BYTES) < 0) {
        proto__cause(cause, "a message announced by a size hint is not a "
                            "msgpack-RPC message");
        return -EPROTO;
    }
    return raw_validate(&h, at + PROTO_HINT_BYTES, raw, cause);
}

/* A hint read as a message of its own (it came split across reads, or said
 * 0): nothing to hand out. */
static bool
frame_is_hint(const struct proto_reader *r, const struct frame *f,
              const char *at)
{
    return r->hints && !f->hinted && f->size == PROTO_HINT_BYTES &&
           memcmp(at, hint_head, sizeof hint_head) == 0;
}

/*
 * A hinted message is about to be unpacked: the scanner reads it now as it
 * would have on arrival, so that msgpack-c still only sees messages it
 * checked. 0, or the error the stream breaks with.
 */
static int
hinted_check(struct proto_reader *r, const struct frame *f, const char *at)
{
    struct proto_reader t;
    size_t n = f->size - PROTO_HINT_BYTES;
    int err = 0;

    memset(&t, 0, sizeof t);
    t.max_message = r->max_message;
    scan(&t, (const uint8_t *)at + PROTO_HINT_BYTES, n);
    if (t.err != 0)
        reader_fail(r, err = t.err, "a message announced by a size hint: %s",
                    t.cause);
    else if (t.ready != 1 || t.sc.bytes != 0)
        reader_fail(r, err = -EPROTO,
                    "a size hint announced %zu bytes, not one whole message",
                    n);
    free(t.frames);
    return err;
}

/* The stream broke at the first whole message: nothing more is handed out. */
static int
reader_broken_at_first(struct proto_reader *r, int err, char *cause)
{
    r->ready = 0;
    r->peeked = false;
    r->err = err;
    proto__cause(cause, "%s", r->cause);
    return err;
}

int
proto_reader_peek(struct proto_reader *r, struct proto_raw *raw, char *cause)
{
    const struct frame *f;
    int err;

    while (r->ready > 0 &&
           frame_is_hint(r, &r->frames[r->first], r->up.buffer + r->up.off)) {
        r->up.off += PROTO_HINT_BYTES;
        frame_pop(r);
    }
    if (r->ready == 0) {
        if (r->err)
            proto__cause(cause, "%s", r->cause);
        return r->err;
    }
    f = &r->frames[r->first];
    err = frame_raw(f, r->up.buffer + r->up.off, raw, r->cause);
    if (err < 0)
        return reader_broken_at_first(r, err, cause);
    r->peeked = true;
    return 1;
}

void
proto_reader_skip(struct proto_reader *r)
{
    if (r->ready == 0 || !r->peeked)
        return;
    r->up.off += r->frames[r->first].size;
    frame_pop(r);
}

size_t
proto_reader_scan(struct proto_reader *r, proto_scan_fn fn, void *arg)
{
    const struct frame *f;
    const char *base = r->up.buffer + r->up.off;
    char cause[PROTO_CAUSE_MAX];
    struct proto_raw raw;
    size_t i, seen = 0, off = 0;

    for (i = 0; i < r->ready; i++, off += f->size) {
        f = &r->frames[(r->first + i) & (r->cap - 1)];
        if (frame_is_hint(r, f, base + off))
            continue;
        if (frame_raw(f, base + off, &raw, cause) < 0)
            break;
        seen++;
        if (!fn(arg, &raw))
            break;
    }
    return seen;
}

int
proto_reader_next(struct proto_reader *r, struct proto_msg *msg, char *cause)
{
    msgpack_unpacked up;
    msgpack_unpack_return ret;
    struct proto_raw raw;
    const msgpack_object *e;
    size_t size = 0;
    int rc;

    memset(msg, 0, sizeof(*msg));
    rc = proto_reader_peek(r, &raw, cause);
    if (rc <= 0)
        return rc;
    if (r->frames[r->first].hinted) {
        if (hinted_check(r, &r->frames[r->first], r->up.buffer + r->up.off) < 0)
            return reader_broken_at_first(r, r->err, cause);
        r->up.off += PROTO_HINT_BYTES;
    }
    msgpack_unpacked_init(&up);
    ret = msgpack_unpacker_next_with_size(&r->up, &up, &size);
    if (ret != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&up);
        /* The scanner saw a whole, well-formed message; only memory can fail.
         */
        if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
            reader_fail(r, -ENOMEM, "out of memory unpacking a message");
        else
            reader_fail(r, -EPROTO, "not msgpack (unpacker said %d)", (int)ret);
        return reader_broken_at_first(r, r->err, cause);
    }
    /* An array always allocates, so an array without a zone means msgpack-c
     * could not hand over its zone: out of memory. */
    if (up.zone == NULL && up.data.type == MSGPACK_OBJECT_ARRAY) {
        reader_fail(r, -ENOMEM, "out of memory unpacking a message");
        return reader_broken_at_first(r, r->err, cause);
    }
    frame_pop(r);
    /* The message takes its zone: the next unpack must not free it. msgpack-c
     * creates a zone only when the message needs one, so it may be NULL. */
    msg->zone = msgpack_unpacked_release_zone(&up);
    msg->root = up.data;
    msg->size = size;
    /* raw_validate checked the shape: the objects have it too. */
    e = msg->root.via.array.ptr;
    msg->kind = raw.kind;
    msg->msgid = raw.msgid;
    if (raw.kind == PROTO_RESPONSE) {
        msg->error = e[2];
        msg->result = e[3];
    } else {
        unsigned mi = raw.kind == PROTO_REQUEST ? 2 : 1;

        msg->method = e[mi].via.str.ptr;
        msg->method_len = e[mi].via.str.size;
        msg->params = e[mi + 1];
    }
    return 1;
}

int
proto_reader_take(struct proto_reader *r, struct proto_msg *msg, char *cause)
{
    int rc;

    memset(msg, 0, sizeof(*msg));
    rc = proto_reader_peek(r, &msg->raw, cause);
    if (rc <= 0)
        return rc;
    msg->kind = msg->raw.kind;
    msg->msgid = msg->raw.msgid;
    msg->method = msg->raw.method;
    msg->method_len = msg->raw.method_len;
    msg->size = msg->raw.size;
    /* Dropped from the reader, not from its buffer: the bytes stay where
     * they are until more are added. */
    proto_reader_skip(r);
    return 1;
}

struct proto_span
proto_msg_error_bytes(const struct proto_msg *msg)
{
    struct proto_span s = {NULL, 0};

    if (msg->raw.bytes != NULL && msg->kind == PROTO_RESPONSE) {
        s.ptr = msg->raw.bytes + msg->raw.error_at;
        s.len = msg->raw.result_at - msg->raw.error_at;
    }
    return s;
}

struct proto_span
proto_msg_result_bytes(const struct proto_msg *msg)
{
    struct proto_span s = {NULL, 0};

    if (msg->raw.bytes != NULL && msg->kind == PROTO_RESPONSE) {
        s.ptr = msg->raw.bytes + msg->raw.result_at;
        s.len = msg->raw.size - msg->raw.result_at;
    }
    return s;
}
