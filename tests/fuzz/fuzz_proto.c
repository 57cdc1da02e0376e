/*
 * libFuzzer target for the proto reader. The input is a byte stream plus two
 * leading control bytes: the first picks the message size limit, the second
 * seeds the read sizes the stream is cut into. Each message that comes out goes
 * through every param helper and proto_error_from_object, is packed again with
 * msgpack_pack_object and must read back the same. The same stream fed whole
 * must give the same messages and the same end as when fed in pieces.
 * Every message is also looked at as bytes first (proto_reader_peek, what the
 * manager forwards): its head and the starts of its params must agree with
 * the unpacked message, and in the piecewise pass some messages are skipped
 * as a relay skips them and unpacked from their bytes instead, and some are
 * taken as bytes (proto_reader_take, what the worker does): every checker
 * must read the bytes form as it reads the unpacked one (same result, same
 * words, values whose bytes unpack to the same objects); the bytes of
 * the message still arriving (proto_reader_partial) are all that is kept
 * between messages. Then size hints (what a worker sends the manager): the
 * same messages, each announced by a right hint, read by a reader that takes
 * hints must come out the same; announced by wrong hints, the reader must
 * still end cleanly, with a documented error that sticks. Anything
 * inconsistent aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_proto: check failed: %s (line %d)\n", #cond, \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

struct outcome {
    size_t messages;
    size_t bytes;    /* sum of message sizes */
    uint64_t digest; /* over the re-packed messages, in order */
    int end;         /* 0 or the error the stream ended with */
    char cause[PROTO_CAUSE_MAX];
};

static uint64_t
fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 0x100000001b3ULL;
    return h;
}

static void
touch_object(const msgpack_object *o)
{
    struct proto_error e;
    uint64_t v;
    char cause[PROTO_CAUSE_MAX];
    char *dup;

    if (proto_error_from_object(o, &e) == 0) {
        CHECK(e.type != PROTO_ERR_NONE);
        CHECK(proto_errtype_name(e.type) != NULL);
        if (e.message != NULL)
            (void)fnv(0, e.message, e.message_len);
        if (e.stack != NULL)
            (void)fnv(0, e.stack, e.stack_len);
    } else {
        CHECK(o->type != MSGPACK_OBJECT_MAP);
    }
    (void)proto_map_get(o, "type");
    (void)proto_opt_uint(o, "timeout_ms", &v, cause);
    (void)proto_obj_streq(o, "call");
    dup = proto_obj_strdup(o);
    free(dup);
}

static void
touch_params(const struct proto_msg *m)
{
    char cause[PROTO_CAUSE_MAX];
    const msgpack_object *o;
    const char *s;
    size_t len;
    uint64_t v;

    (void)proto_params_count(m, 1, 3, cause);
    (void)proto_msg_is(m, "call");
    for (uint32_t i = 0; i < 5; i++) {
        int rc;

        cause[0] = '\0';
        rc = proto_param_str(m, i, "s", &s, &len, cause);
        CHECK(rc == 0 || (rc == -EINVAL && cause[0] != '\0'));
        (void)proto_param_str_or_nil(m, i, "s", &s, &len, cause);
        (void)proto_param_uint(m, i, "u", &v, cause);
        (void)proto_param_array(m, i, "a", &o, cause);
        if (proto_param_map(m, i, "m", &o, cause) == 0)
            touch_object(o);
        if (proto_param_any(m, i, &o, cause) == 0)
            touch_object(o);
    }
}

/* Packs the message again and reads it back: it must come out the same. */
static uint64_t
repack(const struct proto_msg *m, size_t max_message, uint64_t h)
{
    msgpack_sbuffer a;
    msgpack_sbuffer b;
    msgpack_packer pk;
    struct proto_reader *r;
    struct proto_msg back;
    char cause[PROTO_CAUSE_MAX];

    msgpack_sbuffer_init(&a);
    msgpack_packer_init(&pk, &a, msgpack_sbuffer_write);
    CHECK(msgpack_pack_object(&pk, m->root) == 0);
    /* The packer writes the shortest forms, so it never grows. */
    CHECK(a.size <= m->size);
    r = proto_reader_new(max_message);
    CHECK(r != NULL);
    CHECK(proto_reader_feed(r, a.data, a.size) == 0);
    CHECK(proto_reader_next(r, &back, cause) == 1);
    CHECK(back.kind == m->kind && back.msgid == m->msgid);
    CHECK(back.size == a.size);
    msgpack_sbuffer_init(&b);
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    CHECK(msgpack_pack_object(&pk, back.root) == 0);
    CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
    h = fnv(h, a.data, a.size);
    proto_msg_release(&back);
    CHECK(proto_reader_next(r, &back, cause) == 0); /* nothing else */
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    return h;
}

static uint32_t
next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* The packed form of o, for comparing with bytes. */
static void
pack_obj(const msgpack_object *o, msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    CHECK(msgpack_pack_object(&pk, *o) == 0);
}

/* The item at `at` of raw's bytes, unpacked and packed again, equals o. */
static void
check_item(const struct proto_raw *raw, size_t at, const msgpack_object *o)
{
    struct proto_cur c;
    msgpack_zone z;
    msgpack_object got;
    msgpack_sbuffer a, b;
    size_t off = 0, len;

    CHECK(at < raw->size);
    proto_cur_init(&c, raw->bytes + at, raw->size - at);
    CHECK(proto_cur_skip(&c) == 0);
    len = (size_t)((const char *)c.p - (raw->bytes + at));
    msgpack_zone_init(&z, 256);
    CHECK(msgpack_unpack(raw->bytes + at, len, &off, &z, &got) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(off == len);
    pack_obj(&got, &a);
    pack_obj(o, &b);
    CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    msgpack_zone_destroy(&z);
}

/* What peek said agrees with the message unpacked. */
static void
check_raw(const struct proto_raw *raw, const struct proto_msg *m)
{
    uint32_t i;

    CHECK(raw->size == m->size);
    CHECK(raw->kind == m->kind && raw->msgid == m->msgid);
    if (m->kind == PROTO_RESPONSE) {
        check_item(raw, raw->error_at, &m->error);
        check_item(raw, raw->result_at, &m->result);
        return;
    }
    CHECK(raw->method_len == m->method_len);
    CHECK(m->method_len == 0 ||
          memcmp(raw->method, m->method, m->method_len) == 0);
    CHECK(raw->nparams == m->params.via.array.size);
    check_item(raw, raw->params_at, &m->params);
    for (i = 0; i < raw->nparams && i < PROTO_RAW_PARAMS; i++)
        check_item(raw, raw->param_at[i], &m->params.via.array.ptr[i]);
}

/* Unpacks a peeked message from its bytes, as if the reader had. */
static int
unpack_raw(const struct proto_raw *raw, struct proto_msg *m)
{
    size_t off = 0;

    memset(m, 0, sizeof *m);
    m->zone = msgpack_zone_new(256);
    CHECK(m->zone != NULL);
    CHECK(msgpack_unpack(raw->bytes, raw->size, &off, m->zone, &m->root) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(off == raw->size);
    m->kind = raw->kind;
    m->msgid = raw->msgid;
    m->size = raw->size;
    if (m->kind == PROTO_RESPONSE) {
        m->error = m->root.via.array.ptr[2];
        m->result = m->root.via.array.ptr[3];
    } else {
        unsigned mi = m->kind == PROTO_REQUEST ? 2 : 1;

        m->method = m->root.via.array.ptr[mi].via.str.ptr;
        m->method_len = m->root.via.array.ptr[mi].via.str.size;
        m->params = m->root.via.array.ptr[mi + 1];
    }
    return 1;
}

/* The bytes of a value param hold what the object does (an absent one: a
 * nil or empty stand-in). */
static void
same_value(const msgpack_object *o, struct proto_span b)
{
    msgpack_zone z;
    msgpack_object got;
    msgpack_sbuffer x, y;
    size_t off = 0;

    if (b.len == 0) {
        CHECK(o->type == MSGPACK_OBJECT_NIL ||
              (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0));
        return;
    }
    msgpack_zone_init(&z, 256);
    CHECK(msgpack_unpack(b.ptr, b.len, &off, &z, &got) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(off == b.len);
    pack_obj(&got, &x);
    pack_obj(o, &y);
    CHECK(x.size == y.size && memcmp(x.data, y.data, x.size) == 0);
    msgpack_sbuffer_destroy(&x);
    msgpack_sbuffer_destroy(&y);
    msgpack_zone_destroy(&z);
}

static bool
same_text(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL)
        return a == b;
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static const proto_check_fn checkers[] = {
    proto_check_hello,        proto_check_attach,
    proto_check_detach,       proto_check_status,
    proto_check_direct,       proto_check_restart,
    proto_check_stop,         proto_check_shutdown,
    proto_check_call,         proto_check_context_create,
    proto_check_context_eval, proto_check_context_call,
    proto_check_context_load, proto_check_context_destroy,
    proto_check_ping,         proto_check_stats,
    proto_check_drain,        proto_check_cancel,
    proto_check_release,      proto_check_invoke,
};

/* A message taken as bytes (b) reads as its unpacked self (t): every
 * checker and helper gives the same answer, words and values. */
static void
check_taken(const struct proto_msg *t, const struct proto_msg *b)
{
    char ct[PROTO_CAUSE_MAX], cb[PROTO_CAUSE_MAX];
    struct proto_params pt, pb;
    const char *st, *sb;
    size_t lt, lb;
    uint64_t ut, ub;

    CHECK(b->raw.bytes != NULL && b->zone == NULL);
    CHECK(b->kind == t->kind && b->msgid == t->msgid && b->size == t->size);
    /* (msgpack-c may give an empty str no pointer) */
    CHECK(b->method_len == t->method_len &&
          (t->method_len == 0 ||
           memcmp(b->method, t->method, t->method_len) == 0));
    if (t->kind == PROTO_RESPONSE) {
        struct proto_span e = proto_msg_error_bytes(b), v;
        const msgpack_object *o;

        same_value(&t->error, e);
        same_value(&t->result, proto_msg_result_bytes(b));
        for (size_t k = 0; k < 5; k++) {
            static const char *const keys[] = {"type", "message", "name",
                                               "stack", "logfile"};
            int rc = proto_span_map_get(e, keys[k], &v);

            o = proto_map_get(&t->error, keys[k]);
            CHECK(rc == (o != NULL));
            if (o != NULL)
                same_value(o, v);
        }
        return;
    }
    CHECK(proto_msg_nparams(b) == proto_msg_nparams(t));
    for (size_t k = 0; k < sizeof checkers / sizeof checkers[0]; k++) {
        int rt, rb;

        memset(&pt, 0, sizeof pt);
        memset(&pb, 0, sizeof pb);
        ct[0] = cb[0] = '\0';
        rt = checkers[k](t, &pt, ct);
        rb = checkers[k](b, &pb, cb);
        CHECK(rt == rb && strcmp(ct, cb) == 0);
        if (rt != 0 || checkers[k] == proto_check_drain)
            continue;
        CHECK(same_text(pt.host, pt.host_len, pb.host, pb.host_len));
        CHECK(same_text(pt.config, pt.config_len, pb.config, pb.config_len));
        CHECK(same_text(pt.function, pt.function_len, pb.function,
                        pb.function_len));
        CHECK(same_text(pt.source, pt.source_len, pb.source, pb.source_len));
        CHECK(same_text(pt.identifier, pt.identifier_len, pb.identifier,
                        pb.identifier_len));
        CHECK(same_text(pt.expression, pt.expression_len, pb.expression,
                        pb.expression_len));
        CHECK(same_text(pt.cwd, pt.cwd_len, pb.cwd, pb.cwd_len));
        CHECK(same_text(pt.client, pt.client_len, pb.client, pb.client_len));
        CHECK(pt.context == pb.context && pt.timeout_ms == pb.timeout_ms &&
              pt.memory_mb == pb.memory_mb && pt.vm == pb.vm &&
              pt.as_string == pb.as_string && pt.protocol == pb.protocol &&
              pt.msgid == pb.msgid && pt.callback_id == pb.callback_id &&
              pt.owner_call == pb.owner_call &&
              pt.owner_context == pb.owner_context);
        same_value(pt.host_obj, pb.host_bytes);
        same_value(pt.data, pb.data_bytes);
        same_value(pt.args, pb.args_bytes);
        same_value(pt.paths, pb.paths_bytes);
        same_value(pt.options, pb.options_bytes);
        same_value(pt.callbacks, pb.callbacks_bytes);
        same_value(pt.contexts, pb.contexts_bytes);
    }
    for (uint32_t i = 0; i < 8; i++) {
        int rt, rb;

        ct[0] = cb[0] = '\0';
        rt = proto_param_str(t, i, "s", &st, &lt, ct);
        rb = proto_param_str(b, i, "s", &sb, &lb, cb);
        CHECK(rt == rb && strcmp(ct, cb) == 0);
        CHECK(rt != 0 || (lt == lb && (lt == 0 || memcmp(st, sb, lt) == 0)));
        ct[0] = cb[0] = '\0';
        rt = proto_param_uint(t, i, "u", &ut, ct);
        rb = proto_param_uint(b, i, "u", &ub, cb);
        CHECK(rt == rb && strcmp(ct, cb) == 0 && (rt != 0 || ut == ub));
        ct[0] = cb[0] = '\0';
        rt = proto_params_count(t, i, i + 1, ct);
        rb = proto_params_count(b, i, i + 1, cb);
        CHECK(rt == rb && strcmp(ct, cb) == 0);
    }
}

/* Takes every message available; returns the reader's last answer. When
 * skip_seed is not NULL, some messages are skipped as bytes. */
static int
drain(struct proto_reader *r, size_t max_message, struct outcome *out,
      uint32_t *skip_seed)
{
    struct proto_msg m;
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX];
    char pcause[PROTO_CAUSE_MAX];
    uint32_t way;
    int rc;

    for (;;) {
        pcause[0] = cause[0] = '\0';
        rc = proto_reader_peek(r, &raw, pcause);
        way = rc == 1 && skip_seed != NULL ? next_rand(skip_seed) % 3 : 0;
        if (way == 1) {
            rc = unpack_raw(&raw, &m);
            check_raw(&raw, &m);
            proto_reader_skip(r);
        } else if (way == 2) {
            struct proto_msg b;

            /* Taken as bytes: what peek said, then read as unpacked. */
            rc = proto_reader_take(r, &b, cause);
            CHECK(rc == 1 && b.raw.bytes == raw.bytes &&
                  b.raw.size == raw.size);
            rc = unpack_raw(&b.raw, &m);
            check_raw(&b.raw, &m);
            check_taken(&m, &b);
            proto_msg_release(&b);
        } else {
            int prc = rc;

            rc = proto_reader_next(r, &m, cause);
            /* Peeking changes nothing: next says what peek said. */
            CHECK(rc == prc && strcmp(cause, pcause) == 0);
            if (rc == 1)
                check_raw(&raw, &m);
        }
        if (rc != 1)
            break;
        CHECK(m.size > 0 && m.size <= max_message);
        CHECK(m.kind == PROTO_REQUEST || m.kind == PROTO_RESPONSE ||
              m.kind == PROTO_NOTIFICATION);
        if (m.kind == PROTO_RESPONSE)
            touch_object(&m.error);
        else
            touch_params(&m);
        out->messages++;
        out->bytes += m.size;
        out->digest = repack(&m, max_message, out->digest);
        proto_msg_release(&m);
    }
    if (rc < 0) {
        /* Only the documented errors; and never memory on inputs this small:
         * that would mean the scanner let msgpack-c see something it refuses.
         */
        CHECK(rc == -EPROTO || rc == -EMSGSIZE);
        CHECK(strstr(cause, "unpacker said") == NULL);
        CHECK(cause[0] != '\0');
        if (out->end == 0) {
            out->end = rc;
            memcpy(out->cause, cause, sizeof(cause));
        } else {
            /* Sticky: the same error, the same words. */
            CHECK(rc == out->end && strcmp(cause, out->cause) == 0);
        }
    }
    return rc;
}

/* For wrong hints: whatever is peeked, skipped, taken or unpacked, the
 * reader answers with a documented result, and an error sticks. */
static void
drain_loose(struct proto_reader *r, size_t max_message, uint32_t *seed)
{
    char cause[PROTO_CAUSE_MAX], again[PROTO_CAUSE_MAX];
    struct proto_raw raw;
    struct proto_msg m;
    int rc;

    for (;;) {
        cause[0] = '\0';
        switch (next_rand(seed) % 3) {
        case 0:
            rc = proto_reader_peek(r, &raw, cause);
            if (rc == 1) {
                CHECK(raw.size > 0 && raw.size <= max_message);
                proto_reader_skip(r);
            }
            break;
        case 1:
            rc = proto_reader_take(r, &m, cause);
            if (rc == 1)
                proto_msg_release(&m);
            break;
        default:
            rc = proto_reader_next(r, &m, cause);
            if (rc == 1) {
                CHECK(m.size > 0 && m.size <= max_message);
                if (m.kind == PROTO_RESPONSE)
                    touch_object(&m.error);
                else
                    touch_params(&m);
                proto_msg_release(&m);
            }
            break;
        }
        if (rc != 1)
            break;
    }
    if (rc < 0) {
        CHECK(rc == -EPROTO || rc == -EMSGSIZE);
        CHECK(cause[0] != '\0');
        again[0] = '\0';
        CHECK(proto_reader_next(r, &m, again) == rc);
        CHECK(strcmp(cause, again) == 0);
    }
}

/* Feeds a stream in pieces the seed chooses, alternating copy and in-place;
 * drains after each with drain (checked) or drain_loose. */
static void
feed_pieces(struct proto_reader *r, const uint8_t *data, size_t size,
            size_t max_message, uint32_t seed, struct outcome *out)
{
    uint32_t skip_seed = seed ^ 0x5bd1e995u;
    size_t off = 0;

    while (off < size) {
        uint32_t x = next_rand(&seed);
        size_t n = 1 + x % (x & 0x100 ? 7 : 300);

        if (n > size - off)
            n = size - off;
        if (x & 0x200) {
            CHECK(proto_reader_feed(r, (const char *)data + off, n) == 0);
        } else {
            char *buf;
            size_t len;
            CHECK(proto_reader_buffer(r, n, &buf, &len) == 0);
            CHECK(len >= n);
            memcpy(buf, data + off, n);
            proto_reader_fill(r, n);
        }
        off += n;
        CHECK(proto_reader_partial(r) <= proto_reader_pending(r));
        if (out == NULL) {
            drain_loose(r, max_message, &skip_seed);
            continue;
        }
        /* (a hint counts with the message it announces) */
        CHECK(proto_reader_partial(r) <= max_message + PROTO_HINT_BYTES);
        drain(r, max_message, out, &skip_seed);
        /* While nothing broke, nothing beyond the current message is kept,
         * and that is what partial counts (what the manager's limits on
         * unfinished messages see); once broken, nothing is. */
        if (out->end == 0) {
            CHECK(proto_reader_pending(r) <= max_message + PROTO_HINT_BYTES);
            CHECK(proto_reader_partial(r) == proto_reader_pending(r));
        } else {
            CHECK(proto_reader_partial(r) == 0);
        }
    }
    if (out == NULL)
        drain_loose(r, max_message, &skip_seed);
    else
        drain(r, max_message, out, &skip_seed);
}

/*
 * The stream again with every whole message announced by a hint: right
 * ones (wrong == false), or sizes the seed bends, zeros and giants. The
 * bytes after the last whole message follow as they are.
 */
static void
hinted_stream(const uint8_t *data, size_t size, size_t max_message, bool wrong,
              uint32_t seed, msgpack_sbuffer *sb)
{
    struct proto_reader *r = proto_reader_new(max_message);
    struct proto_raw raw;
    char hint[PROTO_HINT_BYTES];
    size_t off = 0;

    CHECK(r != NULL);
    CHECK(proto_reader_feed(r, (const char *)data, size) == 0);
    msgpack_sbuffer_init(sb);
    while (proto_reader_peek(r, &raw, NULL) == 1) {
        uint32_t n = (uint32_t)raw.size, x = next_rand(&seed);

        if (wrong && x % 4 == 0)
            n = x & 0x10 ? 0 : x & 0x20 ? UINT32_MAX : n + (x >> 8) % 5 - 2;
        proto_size_hint(hint, n);
        msgpack_sbuffer_write(sb, hint, sizeof hint);
        msgpack_sbuffer_write(sb, raw.bytes, raw.size);
        off += raw.size;
        proto_reader_skip(r);
    }
    if (size > off)
        msgpack_sbuffer_write(sb, (const char *)data + off, size - off);
    proto_reader_free(r);
}

/* Whether the bytes hold a hint's head anywhere: a reader that takes hints
 * reads such a stream differently, so it is not compared. */
static bool
holds_hint(const uint8_t *data, size_t size)
{
    char hint[PROTO_HINT_BYTES];

    proto_size_hint(hint, 0);
    return memmem(data, size, hint, PROTO_HINT_BYTES - 4) != NULL;
}

/* The stream with hints (hinted_stream), read in pieces by a reader that
 * takes them: checked into *out, or loosely when out is NULL. */
static void
read_hinted(const uint8_t *data, size_t size, size_t max_message, bool wrong,
            uint32_t seed, struct outcome *out)
{
    struct proto_reader *r = proto_reader_new(max_message);
    msgpack_sbuffer sb;

    CHECK(r != NULL);
    proto_reader_take_hints(r);
    hinted_stream(data, size, max_message, wrong, seed, &sb);
    feed_pieces(r, (const uint8_t *)sb.data, sb.size, max_message, seed, out);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&sb);
}

static void
same_outcome(const struct outcome *a, const struct outcome *b)
{
    CHECK(a->messages == b->messages);
    CHECK(a->bytes == b->bytes);
    CHECK(a->digest == b->digest);
    CHECK(a->end == b->end);
    CHECK(strcmp(a->cause, b->cause) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[] = {0, 16, 64, 100, 256, 1024, 4096};
    struct outcome whole = {0};
    struct outcome pieces = {0};
    struct proto_reader *r;
    size_t max_message;
    uint32_t seed;

    if (size < 2)
        return 0;
    max_message = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    seed = 0x9e3779b9u ^ data[1] ^ ((uint32_t)data[0] << 8);
    data += 2;
    size -= 2;
    if (max_message == 0)
        max_message = PROTO_MAX_MESSAGE_DEFAULT;

    /* The whole stream at once. */
    r = proto_reader_new(max_message);
    CHECK(r != NULL);
    CHECK(proto_reader_feed(r, (const char *)data, size) == 0);
    drain(r, max_message, &whole, NULL);
    drain(r, max_message, &whole, NULL); /* an error must stick */
    proto_reader_free(r);

    /* The same stream cut at chosen places. */
    r = proto_reader_new(max_message);
    CHECK(r != NULL);
    feed_pieces(r, data, size, max_message, seed, &pieces);
    proto_reader_free(r);

    same_outcome(&whole, &pieces);

    if (!holds_hint(data, size)) {
        struct outcome hinted = {0};

        read_hinted(data, size, max_message, false, seed, &hinted);
        same_outcome(&whole, &hinted);
    }
    read_hinted(data, size, max_message, true, seed, NULL);
    return 0;
}
