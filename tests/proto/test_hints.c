/*
 * proto: size hints. A reader that takes them files an announced message
 * whole without reading it (what the manager forwards from its workers),
 * checks it whole before unpacking it, and stays in step with the stream
 * whatever the hint or the reads look like.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "methods.h"
#include "proto.h"
#include "tp_sb.h"

/* Appends a hint announcing n bytes. */
static void
put_hint(struct sb *s, uint32_t n)
{
    char hint[PROTO_HINT_BYTES];

    proto_size_hint(hint, n);
    msgpack_sbuffer_write(&s->buf, hint, sizeof hint);
}

/* The message in one, announced by its right size, as a worker sends it. */
static void
put_announced(struct sb *s, const struct sb *one)
{
    put_hint(s, (uint32_t)one->buf.size);
    msgpack_sbuffer_write(&s->buf, one->buf.data, one->buf.size);
}

/* [1, msgid, nil, [0, 1, ..., n-1]]: a result of many items. */
static void
pack_result(struct sb *s, uint32_t msgid, unsigned n)
{
    proto_write_result(&s->pk, msgid);
    msgpack_pack_array(&s->pk, n);
    for (unsigned i = 0; i < n; i++)
        msgpack_pack_unsigned_int(&s->pk, i);
}

/* A response whose result is a lie no scanner lets through: an array32
 * announcing 2^31 items with none after it. */
static const unsigned char lie[] = {0x94, 0x01, 0x07, 0xc0, 0xdd,
                                    0x80, 0x00, 0x00, 0x00};

static struct proto_reader *
hinting_reader(size_t max)
{
    struct proto_reader *r = proto_reader_new(max);

    assert_non_null(r);
    proto_reader_take_hints(r);
    return r;
}

static void
expect_peek_response(struct proto_reader *r, uint32_t msgid, size_t size)
{
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "";

    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.kind, PROTO_RESPONSE);
    assert_int_equal(raw.msgid, msgid);
    assert_int_equal(raw.size, size);
    assert_int_equal((unsigned char)raw.bytes[raw.error_at], 0xc0);
    proto_reader_skip(r);
}

/* The announced bytes are forwarded as they are: even a lie inside them is
 * not read, and the message after them is read as usual. */
static void
test_announced_message_unread(void **state)
{
    struct proto_reader *r = hinting_reader(0);
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    (void)state;

    sb_init(&s);
    put_hint(&s, sizeof lie);
    msgpack_sbuffer_write(&s.buf, (const char *)lie, sizeof lie);
    pack_result(&s, 8, 3);
    /* Half the lie in: the message is still arriving, hint included. */
    assert_int_equal(proto_reader_feed(r, s.buf.data, PROTO_HINT_BYTES + 4), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 0);
    assert_int_equal(proto_reader_partial(r), PROTO_HINT_BYTES + 4);
    assert_int_equal(proto_reader_feed(r, s.buf.data + PROTO_HINT_BYTES + 4,
                                       s.buf.size - PROTO_HINT_BYTES - 4),
                     0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.kind, PROTO_RESPONSE);
    assert_int_equal(raw.msgid, 7);
    assert_int_equal(raw.size, sizeof lie);
    assert_memory_equal(raw.bytes, lie, sizeof lie);
    assert_int_equal(raw.result_at, 4);
    assert_true(raw.hinted);
    proto_reader_skip(r);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_false(raw.hinted);
    expect_peek_response(r, 8, s.buf.size - PROTO_HINT_BYTES - sizeof lie);
    assert_int_equal(proto_reader_pending(r), 0);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* Without hints the same lie breaks the stream: what the hint skips. */
static void
test_lie_refused_unannounced(void **state)
{
    struct proto_reader *r = hinting_reader(0);
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "";
    (void)state;

    assert_int_equal(proto_reader_feed(r, (const char *)lie, sizeof lie), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), -EMSGSIZE);
    assert_non_null(strstr(cause, "cannot fit"));
    proto_reader_free(r);
}

/* Unpacking an announced message reads it whole first: a good one unpacks,
 * a lie breaks the stream with words that name the hint. */
static void
test_unpacked_after_a_whole_check(void **state)
{
    struct proto_reader *r = hinting_reader(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    size_t n;
    (void)state;

    sb_init(&s);
    pack_result(&s, 9, 500);
    n = s.buf.size;
    msgpack_sbuffer_clear(&s.buf);
    put_hint(&s, (uint32_t)n);
    pack_result(&s, 9, 500);
    put_hint(&s, sizeof lie);
    msgpack_sbuffer_write(&s.buf, (const char *)lie, sizeof lie);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.kind, PROTO_RESPONSE);
    assert_int_equal(m.msgid, 9);
    assert_int_equal(m.size, n);
    assert_int_equal(m.result.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(m.result.via.array.size, 500);
    assert_int_equal(m.result.via.array.ptr[499].via.u64, 499);
    proto_msg_release(&m);
    assert_int_equal(proto_reader_next(r, &m, cause), -EMSGSIZE);
    assert_non_null(strstr(cause, "size hint"));
    assert_non_null(strstr(cause, "cannot fit"));
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* A hint that says too much or too little is caught when the message is
 * unpacked: it is not one whole message. */
static void
test_wrong_size_caught_when_unpacked(void **state)
{
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb one, s;
    int delta;
    (void)state;

    sb_init(&one);
    pack_result(&one, 3, 2);
    for (delta = -1; delta <= 1; delta += 2) {
        struct proto_reader *r = hinting_reader(0);

        sb_init(&s);
        put_hint(&s, (uint32_t)((int)one.buf.size + delta));
        msgpack_sbuffer_write(&s.buf, one.buf.data, one.buf.size);
        msgpack_sbuffer_write(&s.buf, one.buf.data, one.buf.size);
        assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
        cause[0] = '\0';
        assert_int_equal(proto_reader_next(r, &m, cause), -EPROTO);
        assert_non_null(strstr(cause, "not one whole message"));
        proto_reader_free(r);
        msgpack_sbuffer_destroy(&s.buf);
    }
    msgpack_sbuffer_destroy(&one.buf);
}

/* A hint split across reads, or one that says 0, is dropped: the message
 * after it is read as usual, and nobody sees the hint. */
static void
test_split_or_zero_hint_dropped(void **state)
{
    struct proto_reader *r = hinting_reader(0);
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s, one;
    size_t i;
    (void)state;

    sb_init(&one);
    pack_result(&one, 4, 1000);
    sb_init(&s);
    put_announced(&s, &one);
    put_hint(&s, 0);
    pack_result(&s, 5, 2);
    for (i = 0; i < s.buf.size; i++)
        assert_int_equal(proto_reader_feed(r, s.buf.data + i, 1), 0);
    expect_peek_response(r, 4, one.buf.size);
    expect_peek_response(r, 5,
                         s.buf.size - 2 * PROTO_HINT_BYTES - one.buf.size);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 0);
    assert_int_equal(proto_reader_pending(r), 0);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
    msgpack_sbuffer_destroy(&one.buf);
}

static bool
count_msgids(void *arg, const struct proto_raw *raw)
{
    uint32_t *sum = arg;

    *sum += raw->msgid;
    return true;
}

/* proto_reader_scan sees the announced messages and not the hints. */
static void
test_scan_past_hints(void **state)
{
    struct proto_reader *r = hinting_reader(0);
    struct sb s, one;
    uint32_t sum = 0;
    (void)state;

    sb_init(&one);
    pack_result(&one, 10, 300);
    sb_init(&s);
    put_announced(&s, &one);
    put_hint(&s, 0);
    pack_result(&s, 20, 1);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_scan(r, count_msgids, &sum), 2);
    assert_int_equal(sum, 30);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
    msgpack_sbuffer_destroy(&one.buf);
}

/* A reader that does not take hints hands them out as what they are. */
static void
test_not_taken_is_a_notification(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    (void)state;

    sb_init(&s);
    put_hint(&s, 70000);
    pack_result(&s, 6, 2);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&m, PROTO_N_SIZE));
    assert_int_equal(m.params.via.array.size, 1);
    assert_int_equal(m.params.via.array.ptr[0].via.u64, 70000);
    proto_msg_release(&m);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.msgid, 6);
    proto_msg_release(&m);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* A hint past the size limit breaks the stream before anything is kept;
 * one whose message is not msgpack-RPC breaks it when looked at. */
static void
test_refused_hints(void **state)
{
    static const unsigned char not_rpc[] = {0x92, 0x01, 0x02};
    struct proto_reader *r = hinting_reader(1000);
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    (void)state;

    sb_init(&s);
    put_hint(&s, 1001);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), -EMSGSIZE);
    assert_non_null(strstr(cause, "size hint announced 1001 bytes"));
    assert_int_equal(proto_reader_pending(r), 0);
    proto_reader_free(r);

    r = hinting_reader(0);
    msgpack_sbuffer_clear(&s.buf);
    put_hint(&s, sizeof not_rpc);
    msgpack_sbuffer_write(&s.buf, (const char *)not_rpc, sizeof not_rpc);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    cause[0] = '\0';
    assert_int_equal(proto_reader_peek(r, &raw, cause), -EPROTO);
    assert_non_null(strstr(cause, "message"));
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* An announced request (a worker's invoke): its method and where its params
 * start, found from its head alone. */
static void
test_announced_request_params(void **state)
{
    struct proto_reader *r = hinting_reader(0);
    struct proto_raw raw;
    struct proto_cur c;
    struct proto_item it;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb one, s;
    (void)state;

    sb_init(&one);
    proto_write_request(&one.pk, 11, PROTO_M_INVOKE, 2);
    msgpack_pack_uint32(&one.pk, 3);
    msgpack_pack_array(&one.pk, 400);
    for (int i = 0; i < 400; i++)
        msgpack_pack_int(&one.pk, -i);
    sb_init(&s);
    put_announced(&s, &one);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.kind, PROTO_REQUEST);
    assert_int_equal(raw.msgid, 11);
    assert_int_equal(raw.method_len, strlen(PROTO_M_INVOKE));
    assert_memory_equal(raw.method, PROTO_M_INVOKE, raw.method_len);
    assert_int_equal(raw.nparams, 2);
    proto_cur_init(&c, raw.bytes + raw.param_at[0], raw.size - raw.param_at[0]);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.v.u, 3);
    proto_cur_init(&c, raw.bytes + raw.param_at[1], raw.size - raw.param_at[1]);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_ARRAY);
    assert_int_equal(it.len, 400);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
    msgpack_sbuffer_destroy(&one.buf);
}

/* While an announced message arrives, the reader has room for all of it:
 * its buffer does not double, copying, as the message comes in. */
static void
test_room_for_the_announced_rest(void **state)
{
    struct proto_reader *r = hinting_reader(0);
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "", *buf;
    struct sb one, s;
    size_t len, sent = PROTO_HINT_BYTES + 100;
    (void)state;

    sb_init(&one);
    pack_result(&one, 12, 300000);
    sb_init(&s);
    put_announced(&s, &one);
    assert_int_equal(proto_reader_feed(r, s.buf.data, sent), 0);
    assert_int_equal(proto_reader_buffer(r, 4096, &buf, &len), 0);
    assert_true(len >= s.buf.size - sent);
    memcpy(buf, s.buf.data + sent, s.buf.size - sent);
    proto_reader_fill(r, s.buf.size - sent);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.msgid, 12);
    assert_int_equal(raw.size, one.buf.size);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
    msgpack_sbuffer_destroy(&one.buf);
}

/* A relay's response head, then the error and result as they came: the
 * response reads back with that msgid, however it is encoded. */
static void
test_response_head(void **state)
{
    static const uint32_t ids[] = {0,   127,   128,   255,
                                   256, 65535, 65536, UINT32_MAX};
    static const unsigned char rest[] = {0xc0, 0xc3}; /* nil, true */
    struct proto_head h;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct proto_reader *r = proto_reader_new(0);

        proto_response_head(&h, ids[i]);
        assert_true(h.len >= 3 && h.len <= 7);
        assert_int_equal(proto_reader_feed(r, h.bytes, h.len), 0);
        assert_int_equal(proto_reader_feed(r, (const char *)rest, sizeof rest),
                         0);
        assert_int_equal(proto_reader_next(r, &m, cause), 1);
        assert_int_equal(m.kind, PROTO_RESPONSE);
        assert_int_equal(m.msgid, ids[i]);
        assert_int_equal(m.result.type, MSGPACK_OBJECT_BOOLEAN);
        proto_msg_release(&m);
        proto_reader_free(r);
    }
}

/* A relay's request head, then the params as they came: the request reads
 * back with that msgid and method; a method too long for the room is
 * refused, for the caller to pack the request whole. */
static void
test_request_head(void **state)
{
    static const unsigned char params[] = {0x91, 0x2a}; /* [42] */
    char longname[64];
    struct proto_head h;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    struct proto_reader *r = proto_reader_new(0);
    (void)state;

    assert_int_equal(proto_request_head(&h, 70000, PROTO_M_CONTEXT_DESTROY), 0);
    assert_int_equal(proto_reader_feed(r, h.bytes, h.len), 0);
    assert_int_equal(proto_reader_feed(r, (const char *)params, sizeof params),
                     0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.kind, PROTO_REQUEST);
    assert_int_equal(m.msgid, 70000);
    assert_true(proto_msg_is(&m, PROTO_M_CONTEXT_DESTROY));
    assert_int_equal(m.params.via.array.size, 1);
    assert_int_equal(m.params.via.array.ptr[0].via.u64, 42);
    proto_msg_release(&m);
    proto_reader_free(r);
    memset(longname, 'm', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(proto_request_head(&h, 1, longname), -ENOSPC);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announced_message_unread),
        cmocka_unit_test(test_lie_refused_unannounced),
        cmocka_unit_test(test_unpacked_after_a_whole_check),
        cmocka_unit_test(test_wrong_size_caught_when_unpacked),
        cmocka_unit_test(test_split_or_zero_hint_dropped),
        cmocka_unit_test(test_scan_past_hints),
        cmocka_unit_test(test_not_taken_is_a_notification),
        cmocka_unit_test(test_refused_hints),
        cmocka_unit_test(test_announced_request_params),
        cmocka_unit_test(test_room_for_the_announced_rest),
        cmocka_unit_test(test_response_head),
        cmocka_unit_test(test_request_head),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
