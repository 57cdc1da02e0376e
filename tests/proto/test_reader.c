/* proto reader: message kinds, feeding patterns, limits, broken streams. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "tp_sb.h"

/* Feeds and expects exactly one message back. */
static void
read_one(struct proto_reader *r, const struct sb *s, struct proto_msg *m)
{
    char cause[PROTO_CAUSE_MAX] = "";

    assert_int_equal(proto_reader_feed(r, s->buf.data, s->buf.size), 0);
    assert_int_equal(proto_reader_next(r, m, cause), 1);
    assert_int_equal(m->size, s->buf.size);
}

/* Feeds bytes and expects the stream to break with err and a cause holding
 * `want`. */
static void
expect_broken(size_t max, const void *bytes, size_t len, int err,
              const char *want)
{
    struct proto_reader *r = proto_reader_new(max);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    int rc;

    assert_non_null(r);
    assert_int_equal(proto_reader_feed(r, bytes, len), 0);
    rc = proto_reader_next(r, &m, cause);
    if (rc != err || strstr(cause, want) == NULL)
        fail_msg("expected %d with \"%s\", got %d with \"%s\"", err, want, rc,
                 cause);
    proto_reader_free(r);
}

static void
test_request_roundtrip(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    struct sb s;
    (void)state;

    sb_init(&s);
    assert_int_equal(proto_write_request(&s.pk, 42, "call", 2), 0);
    assert_int_equal(proto_pack_cstr(&s.pk, "host1"), 0);
    assert_int_equal(msgpack_pack_int(&s.pk, -7), 0);
    read_one(r, &s, &m);
    assert_int_equal(m.kind, PROTO_REQUEST);
    assert_int_equal(m.msgid, 42);
    assert_true(proto_msg_is(&m, "call"));
    assert_false(proto_msg_is(&m, "cal"));
    assert_false(proto_msg_is(&m, "calls"));
    assert_int_equal(m.params.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(m.params.via.array.size, 2);
    assert_true(proto_obj_streq(&m.params.via.array.ptr[0], "host1"));
    assert_int_equal(m.params.via.array.ptr[1].via.i64, -7);
    assert_int_equal(m.root.via.array.size, 4);
    assert_int_equal(proto_reader_pending(r), 0);
    proto_msg_release(&m);
    proto_msg_release(&m); /* harmless twice */
    sb_done(&s);
    proto_reader_free(r);
}

static void
test_response_roundtrip(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    struct proto_error e;
    struct sb s;
    (void)state;

    sb_init(&s);
    assert_int_equal(proto_write_result(&s.pk, UINT32_MAX), 0);
    assert_int_equal(msgpack_pack_double(&s.pk, 2.5), 0);
    read_one(r, &s, &m);
    assert_int_equal(m.kind, PROTO_RESPONSE);
    assert_int_equal(m.msgid, UINT32_MAX);
    assert_int_equal(m.error.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(m.result.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(m.result.via.f64 == 2.5);
    assert_null(m.method);
    proto_msg_release(&m);

    msgpack_sbuffer_clear(&s.buf);
    assert_int_equal(proto_write_errorf(&s.pk, 0, PROTO_ERR_NOT_FOUND,
                                        "no function '%s'", "nope"),
                     0);
    read_one(r, &s, &m);
    assert_int_equal(m.kind, PROTO_RESPONSE);
    assert_int_equal(m.msgid, 0);
    assert_int_equal(m.error.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(m.result.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(proto_error_from_object(&m.error, &e), 0);
    assert_int_equal(e.type, PROTO_ERR_NOT_FOUND);
    assert_int_equal(e.message_len, strlen("no function 'nope'"));
    assert_memory_equal(e.message, "no function 'nope'", e.message_len);
    assert_null(e.name);
    assert_null(e.stack);
    assert_null(e.logfile);
    proto_msg_release(&m);
    sb_done(&s);
    proto_reader_free(r);
}

static void
test_errorf_long_message(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    struct proto_error e;
    struct sb s;
    char big[3000];
    (void)state;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sb_init(&s);
    assert_int_equal(
        proto_write_errorf(&s.pk, 9, PROTO_ERR_CONFIG, "<%s>", big), 0);
    read_one(r, &s, &m);
    assert_int_equal(proto_error_from_object(&m.error, &e), 0);
    assert_int_equal(e.type, PROTO_ERR_CONFIG);
    assert_int_equal(e.message_len, sizeof(big) + 1);
    assert_int_equal(e.message[0], '<');
    assert_int_equal(e.message[e.message_len - 1], '>');
    proto_msg_release(&m);

    /* An empty message is an empty string, not nil. */
    msgpack_sbuffer_clear(&s.buf);
    assert_int_equal(proto_write_errorf(&s.pk, 9, PROTO_ERR_JS, "%s", ""), 0);
    read_one(r, &s, &m);
    assert_int_equal(proto_error_from_object(&m.error, &e), 0);
    assert_non_null(e.message);
    assert_int_equal(e.message_len, 0);
    proto_msg_release(&m);
    sb_done(&s);
    proto_reader_free(r);
}

static void
test_notification_roundtrip(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    struct sb s;
    (void)state;

    sb_init(&s);
    assert_int_equal(proto_write_notification(&s.pk, "log", 0), 0);
    read_one(r, &s, &m);
    assert_int_equal(m.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&m, "log"));
    assert_int_equal(m.params.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(m.params.via.array.size, 0);
    assert_int_equal(m.root.via.array.size, 3);
    proto_msg_release(&m);
    sb_done(&s);
    proto_reader_free(r);
}

static void
test_protocol_error_notification(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    struct proto_error e;
    const msgpack_object *o;
    char cause[PROTO_CAUSE_MAX];
    struct sb s;
    (void)state;

    sb_init(&s);
    assert_int_equal(
        proto_write_protocol_error(&s.pk, "nesting deeper than 32 levels"), 0);
    read_one(r, &s, &m);
    assert_int_equal(m.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&m, "error"));
    assert_int_equal(proto_params_count(&m, 1, 1, cause), 0);
    assert_int_equal(proto_param_map(&m, 0, "error", &o, cause), 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 5);
    assert_int_equal(proto_error_from_object(o, &e), 0);
    assert_int_equal(e.type, PROTO_ERR_PROTOCOL);
    assert_int_equal(e.message_len, strlen("nesting deeper than 32 levels"));
    assert_memory_equal(e.message, "nesting deeper than 32 levels",
                        e.message_len);
    assert_true(proto_obj_streq(proto_map_get(o, "type"), "ProtocolError"));
    assert_int_equal(proto_map_get(o, "stack")->type, MSGPACK_OBJECT_NIL);
    proto_msg_release(&m);

    /* Without words it still says something. */
    msgpack_sbuffer_clear(&s.buf);
    assert_int_equal(proto_write_protocol_error(&s.pk, NULL), 0);
    read_one(r, &s, &m);
    assert_int_equal(proto_param_map(&m, 0, "error", &o, cause), 0);
    assert_true(proto_obj_streq(proto_map_get(o, "message"), "protocol error"));
    proto_msg_release(&m);
    sb_done(&s);
    proto_reader_free(r);
}

/* A stream of n mixed messages; message i has msgid i (or method "n<i>"). */
static void
pack_stream(struct sb *s, int n)
{
    for (int i = 0; i < n; i++) {
        switch (i % 3) {
        case 0:
            proto_write_request(&s->pk, (uint32_t)i, "m", 1);
            proto_pack_strn(&s->pk, "abcdefghijklmnopqrstuvwxyz0123456789",
                            (size_t)(i % 37));
            break;
        case 1:
            proto_write_result(&s->pk, (uint32_t)i);
            msgpack_pack_array(&s->pk, 2);
            msgpack_pack_uint64(&s->pk, UINT64_MAX);
            msgpack_pack_bin(&s->pk, 3);
            msgpack_pack_bin_body(&s->pk, "\0\1\2", 3);
            break;
        default:
            proto_write_notification(&s->pk, "note", 1);
            msgpack_pack_map(&s->pk, 1);
            proto_pack_cstr(&s->pk, "i");
            msgpack_pack_int(&s->pk, i);
            break;
        }
    }
}

static void
check_stream_msg(const struct proto_msg *m, int i)
{
    switch (i % 3) {
    case 0:
        assert_int_equal(m->kind, PROTO_REQUEST);
        assert_int_equal(m->msgid, i);
        assert_int_equal(m->params.via.array.ptr[0].via.str.size, i % 37);
        break;
    case 1:
        assert_int_equal(m->kind, PROTO_RESPONSE);
        assert_int_equal(m->msgid, i);
        assert_int_equal(m->result.via.array.ptr[1].via.bin.size, 3);
        assert_memory_equal(m->result.via.array.ptr[1].via.bin.ptr, "\0\1\2",
                            3);
        break;
    default:
        assert_int_equal(m->kind, PROTO_NOTIFICATION);
        assert_int_equal(m->params.via.array.ptr[0].via.map.ptr[0].val.via.i64,
                         i);
        break;
    }
}

static void
test_byte_at_a_time(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    struct sb s;
    int got = 0;
    (void)state;

    sb_init(&s);
    pack_stream(&s, 30);
    for (size_t i = 0; i < s.buf.size; i++) {
        int rc;

        assert_int_equal(proto_reader_feed(r, s.buf.data + i, 1), 0);
        while ((rc = proto_reader_next(r, &m, cause)) == 1) {
            check_stream_msg(&m, got++);
            proto_msg_release(&m);
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(got, 30);
    assert_int_equal(proto_reader_pending(r), 0);
    sb_done(&s);
    proto_reader_free(r);
}

static void
test_many_in_one_buffer(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg *held;
    char cause[PROTO_CAUSE_MAX];
    struct sb s;
    const int n = 8000;
    (void)state;

    sb_init(&s);
    pack_stream(&s, n);
    assert_true(s.buf.size >
                64 * 1024); /* more than the unpacker's first buffer */
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    /* Hold them all: each keeps its own zone and the bytes it points into. */
    held = calloc((size_t)n, sizeof(*held));
    assert_non_null(held);
    for (int i = 0; i < n; i++)
        assert_int_equal(proto_reader_next(r, &held[i], cause), 1);
    {
        struct proto_msg none = {.kind = PROTO_NOTIFICATION, .msgid = 5};
        assert_int_equal(proto_reader_next(r, &none, cause), 0);
        assert_int_equal(none.msgid, 0); /* cleared even when nothing came */
        assert_null(none.zone);
    }
    proto_reader_free(r); /* messages outlive their reader */
    for (int i = 0; i < n; i++) {
        check_stream_msg(&held[i], i);
        proto_msg_release(&held[i]);
    }
    free(held);
    sb_done(&s);
}

static void
test_buffer_fill(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    struct sb s;
    size_t off = 0;
    size_t step = 1;
    int got = 0;
    (void)state;

    sb_init(&s);
    pack_stream(&s, 500);
    while (off < s.buf.size) {
        char *buf;
        size_t len;
        size_t n;
        int rc;

        assert_int_equal(proto_reader_buffer(r, step, &buf, &len), 0);
        assert_true(len >= step);
        n = s.buf.size - off < step ? s.buf.size - off : step;
        memcpy(buf, s.buf.data + off, n);
        proto_reader_fill(r, n);
        off += n;
        step = step * 3 % 1999 + 1; /* uneven read sizes */
        while ((rc = proto_reader_next(r, &m, cause)) == 1) {
            check_stream_msg(&m, got++);
            proto_msg_release(&m);
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(got, 500);
    /* A 64 KiB read, the way a libuv alloc_cb asks. */
    {
        char *buf;
        size_t len;
        assert_int_equal(proto_reader_buffer(r, 65536, &buf, &len), 0);
        assert_true(len >= 65536);
        proto_reader_fill(r, 0);
    }
    assert_int_equal(proto_reader_next(r, &m, cause), 0);
    sb_done(&s);
    proto_reader_free(r);
}

/* Big messages one after another, read into the reader's own buffer in
 * chunks: once a message is handed out the next starts at the front again
 * (landing behind it, each would be copied whole when it reached the end). */
static void
test_buffer_front_after_each_message(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    char cause[PROTO_CAUSE_MAX];
    struct proto_raw raw;
    const char *front = NULL;
    size_t body = 600 * 1024;
    char *blob = calloc(1, body);
    struct sb s;
    (void)state;

    assert_non_null(blob);
    sb_init(&s);
    proto_write_result(&s.pk, 9);
    msgpack_pack_bin(&s.pk, body);
    msgpack_pack_bin_body(&s.pk, blob, body);
    for (int m = 0; m < 4; m++) {
        size_t off = 0;
        char *buf;
        size_t len;

        while (off < s.buf.size) {
            size_t n;

            assert_int_equal(proto_reader_buffer(r, 65536, &buf, &len), 0);
            if (off == 0 && front != NULL)
                assert_ptr_equal(buf, front);
            n = s.buf.size - off < len ? s.buf.size - off : len;
            if (n > 65536)
                n = 65536;
            memcpy(buf, s.buf.data + off, n);
            proto_reader_fill(r, n);
            off += n;
        }
        assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
        assert_int_equal(raw.size, s.buf.size);
        front = raw.bytes;
        proto_reader_skip(r);
    }
    sb_done(&s);
    free(blob);
    proto_reader_free(r);
}

static void
test_truncated(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    struct sb s;
    (void)state;

    sb_init(&s);
    proto_write_request(&s.pk, 1, "context.eval", 2);
    proto_pack_cstr(&s.pk, "ctx");
    proto_pack_cstr(&s.pk, "1 + 1");
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size - 1), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 0);
    assert_int_equal(proto_reader_pending(r), s.buf.size - 1);
    assert_int_equal(proto_reader_feed(r, s.buf.data + s.buf.size - 1, 1), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_true(proto_msg_is(&m, "context.eval"));
    proto_msg_release(&m);
    assert_int_equal(proto_reader_feed(r, NULL, 0), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 0);
    sb_done(&s);
    proto_reader_free(r);
}

static void
test_oversized_complete(void **state)
{
    struct sb s;
    char big[2000];
    (void)state;

    memset(big, 'a', sizeof(big));
    sb_init(&s);
    proto_write_request(&s.pk, 1, "m", 1);
    proto_pack_strn(&s.pk, big, sizeof(big));
    expect_broken(1024, s.buf.data, s.buf.size, -EMSGSIZE, "1024-byte");

    /* Exactly at the limit is fine; one byte less is not. */
    {
        struct proto_reader *r = proto_reader_new(s.buf.size);
        struct proto_msg m;
        char cause[PROTO_CAUSE_MAX];

        assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
        assert_int_equal(proto_reader_next(r, &m, cause), 1);
        proto_msg_release(&m);
        proto_reader_free(r);
    }
    expect_broken(s.buf.size - 1, s.buf.data, s.buf.size, -EMSGSIZE, "limit");

    /* Many small items rather than one long one. */
    msgpack_sbuffer_clear(&s.buf);
    proto_write_request(&s.pk, 1, "m", 2000);
    for (int i = 0; i < 2000; i++)
        msgpack_pack_nil(&s.pk);
    expect_broken(1024, s.buf.data, s.buf.size, -EMSGSIZE, "limit");
    sb_done(&s);
}

static void
test_oversized_incomplete(void **state)
{
    /* [0, 1, "m", [<str32 announcing 4 GiB - 1>...]] */
    static const unsigned char head[] = {0x94, 0x00, 0x01, 0xa1, 'm', 0x91,
                                         0xdb, 0xff, 0xff, 0xff, 0xff};
    unsigned char chunk[4096];
    struct proto_reader *r;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    (void)state;

    memset(chunk, 'z', sizeof(chunk));
    r = proto_reader_new(0); /* the default 64 MiB */
    assert_int_equal(proto_reader_feed(r, (const char *)head, sizeof(head)), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), -EMSGSIZE);
    assert_non_null(strstr(cause, "limit"));
    /* What follows is not kept. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(
            proto_reader_feed(r, (const char *)chunk, sizeof(chunk)), 0);
    assert_true(proto_reader_pending(r) <= sizeof(head));
    assert_int_equal(proto_reader_next(r, &m, cause), -EMSGSIZE);
    proto_reader_free(r);

    /* An array32 count no message under the limit can hold: refused at once. */
    {
        static const unsigned char arr[] = {0x94, 0x00, 0x01, 0xa1, 'm',
                                            0xdd, 0x7f, 0xff, 0xff, 0xff};
        expect_broken(0, arr, sizeof(arr), -EMSGSIZE, "items");
    }

    /* A message that grows past the limit piece by piece, each piece allowed
     * on its own: the reader stops keeping bytes once the message passes it. */
    {
        static const unsigned char arr[] = {0x94, 0x00, 0x01, 0xa1,
                                            'm',  0xdc, 0x03, 0xe8};
        unsigned char item[101];
        const size_t max = 10000;
        int rc = 0;

        item[0] = 0xd9; /* str8 of 99 bytes */
        item[1] = 99;
        memset(item + 2, 'q', 99);
        r = proto_reader_new(max);
        assert_int_equal(proto_reader_feed(r, (const char *)arr, sizeof(arr)),
                         0);
        for (int i = 0; i < 1000 && rc == 0; i++) {
            for (size_t off = 0; off < sizeof(item); off += 17) {
                size_t n = sizeof(item) - off < 17 ? sizeof(item) - off : 17;
                char *buf;
                size_t len;
                assert_int_equal(proto_reader_buffer(r, n, &buf, &len), 0);
                memcpy(buf, item + off, n);
                proto_reader_fill(r, n);
            }
            assert_true(proto_reader_pending(r) <= max);
            rc = proto_reader_next(r, &m, cause);
        }
        assert_int_equal(rc, -EMSGSIZE);
        proto_reader_free(r);
    }
}

static void
test_garbage(void **state)
{
    static const unsigned char c1[] = {0xc1};
    static const char text[] = "GET / HTTP/1.1\r\n";
    (void)state;

    expect_broken(0, c1, 1, -EPROTO, "0xc1");
    expect_broken(0, text, strlen(text), -EPROTO,
                  "message: expected an array, got an integer");
    expect_broken(0,
                  "\xa3"
                  "abc",
                  4, -EPROTO, "expected an array, got a string");
    expect_broken(0, "\x90", 1, -EPROTO, "empty array");
}

/* Whole messages before a break are still handed out; then the error sticks. */
static void
test_sticky_error(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    char first[PROTO_CAUSE_MAX];
    struct sb s;
    (void)state;

    sb_init(&s);
    proto_write_notification(&s.pk, "a", 0);
    msgpack_pack_array(&s.pk, 3);
    msgpack_pack_int(&s.pk, 7); /* bad kind */
    proto_pack_cstr(&s.pk, "b");
    msgpack_pack_array(&s.pk, 0);
    proto_write_notification(&s.pk, "c", 0);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_true(proto_msg_is(&m, "a"));
    proto_msg_release(&m);
    assert_int_equal(proto_reader_next(r, &m, cause), -EPROTO);
    assert_non_null(strstr(cause, "message[0] (kind)"));
    strcpy(first, cause);
    /* Neither the message after it nor new valid bytes revive the stream. */
    msgpack_sbuffer_clear(&s.buf);
    proto_write_notification(&s.pk, "d", 0);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    for (int i = 0; i < 3; i++) {
        cause[0] = '\0';
        assert_int_equal(proto_reader_next(r, &m, cause), -EPROTO);
        assert_string_equal(cause, first);
        assert_null(m.zone);
    }
    assert_int_equal(proto_reader_next(r, &m, NULL), -EPROTO);

    /* Also after a scanner error, with whole messages queued before it. */
    proto_reader_free(r);
    r = proto_reader_new(0);
    msgpack_sbuffer_clear(&s.buf);
    proto_write_notification(&s.pk, "a", 0);
    proto_write_notification(&s.pk, "b", 0);
    msgpack_sbuffer_write(&s.buf, "\xc1", 1);
    proto_write_notification(&s.pk, "c", 0);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    proto_msg_release(&m);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_true(proto_msg_is(&m, "b"));
    proto_msg_release(&m);
    assert_int_equal(proto_reader_next(r, &m, cause), -EPROTO);
    assert_int_equal(proto_reader_next(r, &m, cause), -EPROTO);
    assert_non_null(strstr(cause, "0xc1"));
    proto_reader_free(r);
    sb_done(&s);
}

/* One hand-packed message with a wrong part, and the words it must produce. */
struct bad_case {
    const char *bytes;
    size_t len;
    const char *cause;
};

#define BAD(lit, why)                                                          \
    {                                                                          \
        lit, sizeof(lit) - 1, why                                              \
    }

static void
test_wrong_types(void **state)
{
    static const struct bad_case cases[] = {
        BAD("\x94\xa1k\x01\xa1m\x90",
            "message[0] (kind): expected 0, 1 or 2, got a string"),
        BAD("\x94\x03\x01\xa1m\x90", "message[0] (kind): expected 0, 1 or 2"),
        BAD("\x94\xff\x01\xa1m\x90",
            "message[0] (kind): expected 0, 1 or 2, got a negative"),
        BAD("\x94\xc0\x01\xa1m\x90",
            "message[0] (kind): expected 0, 1 or 2, got nil"),
        BAD("\x93\x00\x01\xa1m", "message: a request has 4 elements, got 3"),
        BAD("\x95\x00\x01\xa1m\x90\xc0",
            "message: a request has 4 elements, got 5"),
        BAD("\x93\x01\x01\xc0", "message: a response has 4 elements, got 3"),
        BAD("\x94\x02\xa1m\x90\xc0",
            "message: a notification has 3 elements, got 4"),
        BAD("\x92\x02\xa1m", "message: a notification has 3 elements, got 2"),
        /* msgid */
        BAD("\x94\x00\xa1x\xa1m\x90", "message[1] (msgid): expected an "
                                      "unsigned 32-bit integer, got a string"),
        BAD("\x94\x00\xff\xa1m\x90", "message[1] (msgid): expected an unsigned "
                                     "32-bit integer, got a negative integer"),
        BAD("\x94\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa1m\x90",
            "message[1] (msgid): expected an unsigned 32-bit integer, got one "
            "above 4294967295"),
        BAD("\x94\x00\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\xa1m\x90",
            "message[1] (msgid): expected an unsigned 32-bit integer, got a "
            "float"),
        BAD("\x94\x01\xc0\xc0\xc0",
            "message[1] (msgid): expected an unsigned 32-bit integer, got nil"),
        /* method */
        BAD("\x94\x00\x01\x05\x90",
            "message[2] (method): expected a string, got an integer"),
        BAD("\x94\x00\x01\xc4\x01m\x90",
            "message[2] (method): expected a string, got a binary"),
        BAD("\x93\x02\x90\x90",
            "message[1] (method): expected a string, got an array"),
        /* params */
        BAD("\x94\x00\x01\xa1m\x80",
            "message[3] (params): expected an array, got a map"),
        BAD("\x94\x00\x01\xa1m\xc0",
            "message[3] (params): expected an array, got nil"),
        BAD("\x93\x02\xa1m\xc3",
            "message[2] (params): expected an array, got a boolean"),
        BAD("\x93\x02\xa1m\xd4\x01\x00",
            "message[2] (params): expected an array, got an extension"),
        /* response error */
        BAD("\x94\x01\x01\xa1x\xc0",
            "message[2] (error): expected a map or nil, got a string"),
        BAD("\x94\x01\x01\x90\xc0",
            "message[2] (error): expected a map or nil, got an array"),
        BAD("\x94\x01\x01\xc2\xc0",
            "message[2] (error): expected a map or nil, got a boolean"),
        /* the whole message */
        BAD("\x81\xa1k\x00", "message: expected an array, got a map"),
        BAD("\xc0", "message: expected an array, got nil"),
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_broken(0, cases[i].bytes, cases[i].len, -EPROTO, cases[i].cause);
}

/* depth nested arrays in params: [0, 1, "m", [[[...]]]] nests depth + 2 levels.
 */
static void
pack_nested(struct sb *s, int inner, bool empty_last)
{
    proto_write_request(&s->pk, 1, "m", 1);
    for (int i = 0; i < inner; i++)
        msgpack_pack_array(&s->pk, (i == inner - 1 && empty_last) ? 0 : 1);
    if (!empty_last)
        msgpack_pack_int(&s->pk, 5);
}

static void
test_nesting(void **state)
{
    struct proto_reader *r;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    struct sb s;
    (void)state;

    /* 32 levels in all: message array, params array, 30 inside. */
    for (int empty = 0; empty <= 1; empty++) {
        sb_init(&s);
        pack_nested(&s, PROTO_VALUE_MAX_DEPTH, empty);
        r = proto_reader_new(0);
        read_one(r, &s, &m);
        {
            const msgpack_object *o = &m.params.via.array.ptr[0];
            int levels = 1;
            while (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 1) {
                o = &o->via.array.ptr[0];
                levels++;
            }
            assert_int_equal(levels, empty ? PROTO_VALUE_MAX_DEPTH
                                           : PROTO_VALUE_MAX_DEPTH + 1);
        }
        proto_msg_release(&m);
        proto_reader_free(r);
        sb_done(&s);

        /* 33: even when the 33rd is an empty array (msgpack-c's NOMEM). */
        sb_init(&s);
        pack_nested(&s, PROTO_VALUE_MAX_DEPTH + 1, empty);
        expect_broken(0, s.buf.data, s.buf.size, -EPROTO,
                      "nesting deeper than 32 levels");
        sb_done(&s);
    }

    /* Maps count as levels too; and byte-at-a-time finds it just the same. */
    sb_init(&s);
    proto_write_request(&s.pk, 1, "m", 1);
    for (int i = 0; i < 31; i++) {
        msgpack_pack_map(&s.pk, 1);
        proto_pack_cstr(&s.pk, "k");
    }
    msgpack_pack_nil(&s.pk);
    r = proto_reader_new(0);
    for (size_t i = 0; i < s.buf.size; i++)
        assert_int_equal(proto_reader_feed(r, s.buf.data + i, 1), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), -EPROTO);
    assert_string_equal(cause, "nesting deeper than 32 levels");
    proto_reader_free(r);
    sb_done(&s);
}

/* Every msgpack type in a result, fed in two uneven halves, comes back whole.
 */
static void
test_all_types(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    struct sb s;
    const msgpack_object *a;
    (void)state;

    sb_init(&s);
    proto_write_result(&s.pk, 3);
    msgpack_pack_array(&s.pk, 12);
    msgpack_pack_nil(&s.pk);
    msgpack_pack_true(&s.pk);
    msgpack_pack_int64(&s.pk, INT64_MIN);
    msgpack_pack_uint64(&s.pk, UINT64_MAX);
    msgpack_pack_float(&s.pk, 1.5f);
    msgpack_pack_double(&s.pk, -0.0);
    proto_pack_strn(&s.pk, "", 0);
    msgpack_pack_bin(&s.pk, 0);
    msgpack_pack_ext(&s.pk, 12, -1);
    msgpack_pack_ext_body(&s.pk, "\0\0\0\0\0\0\0\0\0\0\0\1", 12);
    msgpack_pack_ext(&s.pk, 70000, 1);
    {
        char *body = calloc(1, 70000);
        msgpack_pack_ext_body(&s.pk, body, 70000);
        free(body);
    }
    msgpack_pack_map(&s.pk, 0);
    msgpack_pack_array(&s.pk, 0);
    assert_int_equal(proto_reader_feed(r, s.buf.data, 37), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 0);
    assert_int_equal(proto_reader_feed(r, s.buf.data + 37, s.buf.size - 37), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.size, s.buf.size);
    a = m.result.via.array.ptr;
    assert_int_equal(a[0].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(a[1].type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(a[2].via.i64 == INT64_MIN);
    assert_true(a[3].via.u64 == UINT64_MAX);
    assert_int_equal(a[4].type, MSGPACK_OBJECT_FLOAT32);
    assert_int_equal(a[6].type, MSGPACK_OBJECT_STR);
    assert_int_equal(a[7].type, MSGPACK_OBJECT_BIN);
    assert_int_equal(a[8].type, MSGPACK_OBJECT_EXT);
    assert_int_equal(a[8].via.ext.type, -1);
    assert_int_equal(a[9].via.ext.size, 70000);
    assert_int_equal(a[10].type, MSGPACK_OBJECT_MAP);
    assert_int_equal(a[11].type, MSGPACK_OBJECT_ARRAY);
    proto_msg_release(&m);
    sb_done(&s);
    proto_reader_free(r);
}

/* A result that is mostly runs of small items, nested: the scanner reads
 * them in place when a header's worth of bytes is there. Every kind its
 * first byte sizes (fixints, nil, booleans, numbers, fixstr up to 31 bytes,
 * fixext), fix containers and others (str8, map16) inside the runs. */
static void
pack_runs(struct sb *s, uint32_t msgid)
{
    static const char text[] = "abcdefghijklmnopqrstuvwxyz01234";
    static const char ext[16] = {0};

    proto_write_result(&s->pk, msgid);
    msgpack_pack_map(&s->pk, 40);
    for (int i = 0; i < 40; i++) {
        char key[8];

        snprintf(key, sizeof key, "k%d", i);
        proto_pack_cstr(&s->pk, key);
        msgpack_pack_array(&s->pk, i % 2 ? 15 : 17);
        msgpack_pack_int(&s->pk, i);
        msgpack_pack_int(&s->pk, -i);
        msgpack_pack_int(&s->pk, 1000 * i);
        msgpack_pack_int64(&s->pk, -100000LL * i);
        msgpack_pack_uint64(&s->pk, UINT64_MAX - (uint64_t)i);
        msgpack_pack_double(&s->pk, i + 0.5);
        msgpack_pack_float(&s->pk, (float)i);
        msgpack_pack_nil(&s->pk);
        msgpack_pack_true(&s->pk);
        proto_pack_strn(&s->pk, text, (size_t)(i % 32));
        msgpack_pack_ext(&s->pk, (size_t)1 << (i % 5), 5);
        msgpack_pack_ext_body(&s->pk, ext, (size_t)1 << (i % 5));
        msgpack_pack_map(&s->pk, 1);
        proto_pack_cstr(&s->pk, "deep");
        msgpack_pack_array(&s->pk, 1);
        msgpack_pack_array(&s->pk, 0);
        msgpack_pack_map(&s->pk, 0);
        proto_pack_strn(&s->pk, "0123456789012345678901234567890123456789",
                        32 + (size_t)(i % 8)); /* str8 */
        msgpack_pack_map(&s->pk, 16);          /* map16 */
        for (int k = 0; k < 16; k++) {
            msgpack_pack_int(&s->pk, k);
            msgpack_pack_false(&s->pk);
        }
        if (i % 2 == 0) { /* a container that ends with the map's entry */
            msgpack_pack_true(&s->pk);
            msgpack_pack_array(&s->pk, 1);
            msgpack_pack_array(&s->pk, 1);
            msgpack_pack_nil(&s->pk);
        }
    }
}

/* Fed whole or in pieces of every size up to 64 bytes, three such messages
 * come out as three messages equal to what msgpack-c makes of their bytes;
 * with a limit a byte short, the first is refused. */
static void
test_runs_in_place(void **state)
{
    struct sb s;
    size_t one;
    msgpack_unpacked want;
    (void)state;

    sb_init(&s);
    pack_runs(&s, 1);
    one = s.buf.size;
    pack_runs(&s, 2);
    pack_runs(&s, 3);
    assert_int_equal(s.buf.size, 3 * one);
    msgpack_unpacked_init(&want);
    assert_int_equal(msgpack_unpack_next(&want, s.buf.data, one, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    for (size_t piece = 1; piece <= 64; piece++) {
        struct proto_reader *r = proto_reader_new(0);
        size_t size = piece == 64 ? s.buf.size : piece;
        int got = 0;

        for (size_t at = 0; at < s.buf.size; at += size) {
            size_t n = s.buf.size - at < size ? s.buf.size - at : size;
            struct proto_msg m;
            char cause[PROTO_CAUSE_MAX];
            int rc;

            assert_int_equal(proto_reader_feed(r, s.buf.data + at, n), 0);
            while ((rc = proto_reader_next(r, &m, cause)) == 1) {
                got++;
                assert_int_equal(m.kind, PROTO_RESPONSE);
                assert_int_equal(m.msgid, got);
                assert_int_equal(m.size, one);
                assert_true(
                    msgpack_object_equal(m.result, want.data.via.array.ptr[3]));
                proto_msg_release(&m);
            }
            assert_int_equal(rc, 0);
        }
        assert_int_equal(got, 3);
        assert_int_equal(proto_reader_pending(r), 0);
        proto_reader_free(r);
    }
    msgpack_unpacked_destroy(&want);
    for (size_t max = one / 2; max < one; max += 97)
        expect_broken(max, s.buf.data, s.buf.size, -EMSGSIZE, "limit");
    expect_broken(one - 1, s.buf.data, s.buf.size, -EMSGSIZE, "limit");
    sb_done(&s);
}

/* What proto_reader_scan showed, in order. */
struct seen {
    int kinds[8];
    uint32_t ids[8];
    char methods[8][16];
    int n, stop_after;
};

static bool
note(void *arg, const struct proto_raw *raw)
{
    struct seen *s = arg;

    assert_true(s->n < 8);
    s->kinds[s->n] = raw->kind;
    s->ids[s->n] = raw->msgid;
    snprintf(s->methods[s->n], sizeof s->methods[0], "%.*s",
             (int)raw->method_len, raw->method ? raw->method : "");
    s->n++;
    return s->n != s->stop_after;
}

/* A busy server looks at what waits behind the message it is on, in order,
 * taking nothing. */
static void
test_scan(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct seen seen;
    struct proto_msg m;
    struct sb s;
    (void)state;

    assert_non_null(r);
    sb_init(&s);
    proto_write_request(&s.pk, 7, "call", 0);
    proto_write_notification(&s.pk, "cancel", 1);
    msgpack_pack_uint32(&s.pk, 7);
    proto_write_result(&s.pk, 9);
    msgpack_pack_nil(&s.pk);
    /* half a message: not seen */
    proto_write_request(&s.pk, 8, "call", 0);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size - 3), 0);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(proto_reader_scan(r, note, &seen), 3);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.kinds[0], PROTO_REQUEST);
    assert_int_equal(seen.ids[0], 7);
    assert_string_equal(seen.methods[0], "call");
    assert_int_equal(seen.kinds[1], PROTO_NOTIFICATION);
    assert_string_equal(seen.methods[1], "cancel");
    assert_int_equal(seen.kinds[2], PROTO_RESPONSE);
    assert_int_equal(seen.ids[2], 9);
    /* fn stops it. */
    memset(&seen, 0, sizeof seen);
    seen.stop_after = 2;
    assert_int_equal(proto_reader_scan(r, note, &seen), 2);
    /* Nothing was taken: the first message is still the first. */
    assert_int_equal(proto_reader_next(r, &m, NULL), 1);
    assert_int_equal(m.msgid, 7);
    proto_msg_release(&m);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(proto_reader_scan(r, note, &seen), 2);
    assert_string_equal(seen.methods[0], "cancel");
    /* The rest arrives: the fourth is seen too. */
    assert_int_equal(proto_reader_feed(r, s.buf.data + s.buf.size - 3, 3), 0);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(proto_reader_scan(r, note, &seen), 3);
    assert_int_equal(seen.ids[2], 8);
    sb_done(&s);
    /* A message whose head is not msgpack-RPC ends the look there. */
    sb_init(&s);
    msgpack_pack_array(&s.pk, 2);
    msgpack_pack_uint8(&s.pk, 5);
    msgpack_pack_nil(&s.pk);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(proto_reader_scan(r, note, &seen), 3);
    sb_done(&s);
    proto_reader_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_roundtrip),
        cmocka_unit_test(test_response_roundtrip),
        cmocka_unit_test(test_errorf_long_message),
        cmocka_unit_test(test_notification_roundtrip),
        cmocka_unit_test(test_protocol_error_notification),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_buffer_front_after_each_message),
        cmocka_unit_test(test_many_in_one_buffer),
        cmocka_unit_test(test_buffer_fill),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_oversized_complete),
        cmocka_unit_test(test_oversized_incomplete),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_all_types),
        cmocka_unit_test(test_runs_in_place),
        cmocka_unit_test(test_scan),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
