/* proto: messages seen as bytes (peek/skip, what the manager forwards) and the
 * pull reader over msgpack bytes; messages taken as bytes (proto_reader_take,
 * what the worker reads). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "tp_sb.h"

/* [0, msgid, "call", ["host1", "fn", {"a": [1, 2]}, {"timeout_ms": 500}]] */
static void
pack_call(struct sb *s, uint32_t msgid)
{
    proto_write_request(&s->pk, msgid, "call", 4);
    proto_pack_cstr(&s->pk, "host1");
    proto_pack_cstr(&s->pk, "fn");
    msgpack_pack_map(&s->pk, 1);
    proto_pack_cstr(&s->pk, "a");
    msgpack_pack_array(&s->pk, 2);
    msgpack_pack_int(&s->pk, 1);
    msgpack_pack_int(&s->pk, 2);
    msgpack_pack_map(&s->pk, 1);
    proto_pack_cstr(&s->pk, "timeout_ms");
    msgpack_pack_uint32(&s->pk, 500);
}

static void
expect_str_at(const struct proto_raw *raw, size_t at, const char *want)
{
    struct proto_cur c;
    struct proto_item it;

    proto_cur_init(&c, raw->bytes + at, raw->size - at);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_STR);
    assert_int_equal(it.len, strlen(want));
    assert_memory_equal(it.ptr, want, it.len);
}

static void
test_peek_request(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_raw raw;
    struct proto_cur c;
    struct proto_item it;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    (void)state;

    sb_init(&s);
    pack_call(&s, 77);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.kind, PROTO_REQUEST);
    assert_int_equal(raw.msgid, 77);
    assert_int_equal(raw.method_len, 4);
    assert_memory_equal(raw.method, "call", 4);
    assert_int_equal(raw.size, s.buf.size);
    assert_memory_equal(raw.bytes, s.buf.data, s.buf.size);
    assert_int_equal(raw.nparams, 4);
    expect_str_at(&raw, raw.param_at[0], "host1");
    expect_str_at(&raw, raw.param_at[1], "fn");
    /* The data is skipped whole: the options come right after it. */
    proto_cur_init(&c, raw.bytes + raw.param_at[2], raw.size - raw.param_at[2]);
    assert_int_equal(proto_cur_skip(&c), 0);
    assert_ptr_equal((const char *)c.p, raw.bytes + raw.param_at[3]);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_MAP);
    assert_int_equal(it.len, 1);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* A peeked message stays: next unpacks it, skip drops it. */
static void
test_peek_then_next_or_skip(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_raw raw;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    (void)state;

    sb_init(&s);
    pack_call(&s, 1);
    pack_call(&s, 2);
    pack_call(&s, 3);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.msgid, 1);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.msgid, 1);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.msgid, 1);
    proto_msg_release(&m);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.msgid, 2);
    proto_reader_skip(r);
    /* Skip without a peek first does nothing. */
    proto_reader_skip(r);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.msgid, 3);
    assert_true(proto_msg_is(&m, "call"));
    assert_int_equal(m.params.via.array.size, 4);
    proto_msg_release(&m);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 0);
    assert_int_equal(proto_reader_pending(r), 0);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* A message split over many small reads is peeked whole, once complete. */
static void
test_peek_in_pieces(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    size_t i;
    (void)state;

    sb_init(&s);
    pack_call(&s, 9);
    for (i = 0; i + 1 < s.buf.size; i++) {
        assert_int_equal(proto_reader_feed(r, s.buf.data + i, 1), 0);
        assert_int_equal(proto_reader_peek(r, &raw, cause), 0);
    }
    assert_int_equal(proto_reader_feed(r, s.buf.data + i, 1), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.msgid, 9);
    expect_str_at(&raw, raw.param_at[0], "host1");
    proto_reader_skip(r);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

static void
test_peek_response(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_raw raw;
    struct proto_item it;
    struct proto_cur c;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    (void)state;

    sb_init(&s);
    proto_write_result(&s.pk, 5);
    msgpack_pack_array(&s.pk, 1000);
    for (int i = 0; i < 1000; i++)
        msgpack_pack_int(&s.pk, i);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), 1);
    assert_int_equal(raw.kind, PROTO_RESPONSE);
    assert_int_equal(raw.msgid, 5);
    assert_int_equal((unsigned char)raw.bytes[raw.error_at], 0xc0);
    proto_cur_init(&c, raw.bytes + raw.result_at, raw.size - raw.result_at);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_ARRAY);
    assert_int_equal(it.len, 1000);
    proto_reader_skip(r);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* A head that is not msgpack-RPC breaks the stream for peek as for next, with
 * the same words, and it stays broken. */
static void
test_peek_refuses(void **state)
{
    static const unsigned char bad[] = {0x93, 0x05, 0xa1, 'x', 0x90};
    struct proto_reader *r = proto_reader_new(0);
    struct proto_raw raw;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "", again[PROTO_CAUSE_MAX] = "";
    (void)state;

    assert_int_equal(proto_reader_feed(r, (const char *)bad, sizeof bad), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), -EPROTO);
    assert_non_null(strstr(cause, "message[0] (kind)"));
    assert_int_equal(proto_reader_next(r, &m, again), -EPROTO);
    assert_string_equal(cause, again);
    proto_reader_free(r);
}

/* A message over the limit is refused before any of it can be peeked. */
static void
test_peek_limit(void **state)
{
    struct proto_reader *r = proto_reader_new(64);
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX] = "";
    struct sb s;
    char body[100];
    (void)state;

    sb_init(&s);
    memset(body, 'a', sizeof body);
    proto_write_request(&s.pk, 1, "call", 1);
    msgpack_pack_str(&s.pk, sizeof body);
    msgpack_pack_str_body(&s.pk, body, sizeof body);
    /* The str's head already announces more than the limit holds. */
    assert_int_equal(proto_reader_feed(r, s.buf.data, 20), 0);
    assert_int_equal(proto_reader_peek(r, &raw, cause), -EMSGSIZE);
    assert_non_null(strstr(cause, "limit"));
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

static void
expect_item(const void *bytes, size_t len, enum proto_item_type type)
{
    struct proto_cur c;
    struct proto_item it;

    proto_cur_init(&c, bytes, len);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, type);
    assert_ptr_equal(c.p, (const uint8_t *)bytes + len);
}

static void
test_cursor_types(void **state)
{
    static const unsigned char i8pos[] = {0xd0, 0x05};
    static const unsigned char i16neg[] = {0xd1, 0xff, 0x00};
    static const unsigned char u64[] = {0xcf, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff};
    static const unsigned char f64[] = {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
    static const unsigned char bin8[] = {0xc4, 0x02, 0xaa, 0xbb};
    static const unsigned char ts32[] = {0xd6, 0xff, 0, 0, 0, 1};
    static const unsigned char ext8[] = {0xc7, 0x01, 0x02, 0x07};
    static const unsigned char map16[] = {0xde, 0x00, 0x03};
    struct proto_cur c;
    struct proto_item it;
    (void)state;

    expect_item(i8pos, sizeof i8pos, PROTO_T_UINT);
    proto_cur_init(&c, (const char *)i16neg, sizeof i16neg);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_INT);
    assert_int_equal(it.v.i, -256);
    proto_cur_init(&c, (const char *)u64, sizeof u64);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_true(it.v.u == UINT64_MAX);
    proto_cur_init(&c, (const char *)f64, sizeof f64);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_FLOAT64);
    assert_true(it.v.f == 1.5);
    expect_item(bin8, sizeof bin8, PROTO_T_BIN);
    proto_cur_init(&c, (const char *)ts32, sizeof ts32);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_EXT);
    assert_int_equal(it.ext_type, -1);
    assert_int_equal(it.len, 4);
    proto_cur_init(&c, (const char *)ext8, sizeof ext8);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.ext_type, 2);
    assert_int_equal(it.len, 1);
    proto_cur_init(&c, (const char *)map16, sizeof map16);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_MAP);
    assert_int_equal(it.len, 3);
}

/* Bytes that end early or lie about what follows are refused, never read
 * past. */
static void
test_cursor_refuses(void **state)
{
    static const unsigned char short_str[] = {0xa5, 'a', 'b'};
    static const unsigned char short_u32[] = {0xce, 0x00, 0x01};
    static const unsigned char never[] = {0xc1};
    static const unsigned char lying_array[] = {0xdd, 0x7f, 0xff,
                                                0xff, 0xff, 0x01};
    static const unsigned char lying_map[] = {0x81, 0x01};
    struct proto_cur c;
    struct proto_item it;
    (void)state;

    proto_cur_init(&c, (const char *)short_str, sizeof short_str);
    assert_int_equal(proto_cur_next(&c, &it), -EPROTO);
    proto_cur_init(&c, (const char *)short_u32, sizeof short_u32);
    assert_int_equal(proto_cur_next(&c, &it), -EPROTO);
    proto_cur_init(&c, (const char *)never, sizeof never);
    assert_int_equal(proto_cur_next(&c, &it), -EPROTO);
    proto_cur_init(&c, (const char *)lying_array, sizeof lying_array);
    assert_int_equal(proto_cur_skip(&c), -EPROTO);
    proto_cur_init(&c, (const char *)lying_map, sizeof lying_map);
    assert_int_equal(proto_cur_skip(&c), -EPROTO);
    proto_cur_init(&c, NULL, 0);
    assert_int_equal(proto_cur_next(&c, &it), -EPROTO);
}

/* proto_reader_take: a message handed out as bytes, its head read, its
 * params read from the bytes by the same helpers as an unpacked one. */
static void
test_take_request(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    char cause[PROTO_CAUSE_MAX] = "";
    struct proto_msg m;
    const char *str;
    size_t len;
    struct sb s;
    (void)state;

    sb_init(&s);
    pack_call(&s, 5);
    pack_call(&s, 6);
    /* The first arrives in two pieces: nothing until it is whole. */
    assert_int_equal(proto_reader_feed(r, s.buf.data, 10), 0);
    assert_int_equal(proto_reader_take(r, &m, cause), 0);
    assert_int_equal(proto_reader_feed(r, s.buf.data + 10, s.buf.size - 10), 0);
    assert_int_equal(proto_reader_take(r, &m, cause), 1);
    assert_non_null(m.raw.bytes);
    assert_null(m.zone);
    assert_int_equal(m.kind, PROTO_REQUEST);
    assert_int_equal(m.msgid, 5);
    assert_int_equal(m.size, s.buf.size / 2);
    assert_true(proto_msg_is(&m, "call"));
    assert_int_equal(proto_msg_nparams(&m), 4);
    assert_int_equal(m.params.type, MSGPACK_OBJECT_NIL); /* no tree */
    assert_int_equal(proto_params_count(&m, 4, 4, cause), 0);
    assert_int_equal(proto_param_str(&m, 1, "function", &str, &len, cause), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(str, "fn", 2);
    assert_int_equal(proto_param_str(&m, 2, "data", &str, &len, cause),
                     -EINVAL);
    assert_string_equal(cause,
                        "params[2] (data): expected a string, got a map");
    assert_int_equal(proto_param_str(&m, 4, "x", &str, &len, cause), -EINVAL);
    assert_string_equal(cause, "params[4] (x): missing, expected a string");
    /* A response's error and result are no spans of a request. */
    assert_int_equal(proto_msg_error_bytes(&m).len, 0);
    assert_int_equal(proto_msg_result_bytes(&m).len, 0);
    proto_msg_release(&m);
    /* It left the reader: the next one is the second. */
    assert_int_equal(proto_reader_take(r, &m, cause), 1);
    assert_int_equal(m.msgid, 6);
    proto_msg_release(&m);
    assert_int_equal(proto_reader_take(r, &m, cause), 0);
    assert_int_equal(proto_reader_pending(r), 0);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* The params past the ones the scanner notes (PROTO_RAW_PARAMS) are found
 * by walking; a response's error and result as spans; map lookups in
 * bytes. */
static void
test_take_far_params_and_response(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    char cause[PROTO_CAUSE_MAX] = "";
    struct proto_msg m;
    struct proto_span e, v, res;
    struct proto_cur c;
    struct proto_item it;
    uint64_t u;
    struct sb s;
    (void)state;

    sb_init(&s);
    proto_write_notification(&s.pk, "n", 9);
    for (int i = 0; i < 9; i++) {
        if (i % 2 == 0) {
            msgpack_pack_map(&s.pk, 1); /* containers between, to walk */
            proto_pack_cstr(&s.pk, "k");
            msgpack_pack_array(&s.pk, 1);
            msgpack_pack_int(&s.pk, i);
        } else {
            msgpack_pack_uint32(&s.pk, 100 + i);
        }
    }
    /* then a response */
    msgpack_pack_array(&s.pk, 4);
    msgpack_pack_uint8(&s.pk, PROTO_RESPONSE);
    msgpack_pack_uint32(&s.pk, 9);
    msgpack_pack_map(&s.pk, 2);
    proto_pack_cstr(&s.pk, "type");
    proto_pack_cstr(&s.pk, "JSError");
    proto_pack_cstr(&s.pk, "message");
    proto_pack_cstr(&s.pk, "boom");
    msgpack_pack_array(&s.pk, 2);
    msgpack_pack_int(&s.pk, 1);
    msgpack_pack_int(&s.pk, 2);
    assert_int_equal(proto_reader_feed(r, s.buf.data, s.buf.size), 0);

    assert_int_equal(proto_reader_take(r, &m, cause), 1);
    assert_int_equal(m.kind, PROTO_NOTIFICATION);
    assert_int_equal(proto_msg_nparams(&m), 9);
    for (uint32_t i = 1; i < 9; i += 2) {
        assert_int_equal(proto_param_uint(&m, i, "u", &u, cause), 0);
        assert_int_equal(u, 100 + i);
    }
    assert_int_equal(proto_param_uint(&m, 8, "u", &u, cause), -EINVAL);
    assert_string_equal(cause,
                        "params[8] (u): expected an unsigned integer, got a "
                        "map");
    proto_msg_release(&m);

    assert_int_equal(proto_reader_take(r, &m, cause), 1);
    assert_int_equal(m.kind, PROTO_RESPONSE);
    assert_int_equal(m.msgid, 9);
    assert_int_equal(proto_params_count(&m, 0, 9, cause), -EINVAL);
    e = proto_msg_error_bytes(&m);
    res = proto_msg_result_bytes(&m);
    assert_int_equal(e.ptr + e.len, res.ptr); /* back to back */
    assert_int_equal(res.ptr + res.len, m.raw.bytes + m.size);
    assert_int_equal(proto_span_map_get(e, "message", &v), 1);
    proto_cur_init(&c, v.ptr, v.len);
    assert_int_equal(proto_cur_next(&c, &it), 0);
    assert_int_equal(it.type, PROTO_T_STR);
    assert_int_equal(it.len, 4);
    assert_memory_equal(it.ptr, "boom", 4);
    assert_int_equal((const char *)c.p, v.ptr + v.len);
    assert_int_equal(proto_span_map_get(e, "stack", &v), 0);
    assert_int_equal(proto_span_map_get(res, "type", &v), 0); /* an array */
    v.len = 0;
    assert_int_equal(proto_span_map_get(v, "type", &v), 0); /* absent */
    /* Bytes that end inside the map are not msgpack. */
    e.len -= 2;
    assert_int_equal(proto_span_map_get(e, "message", &v), -EPROTO);
    proto_msg_release(&m);
    proto_reader_free(r);
    msgpack_sbuffer_destroy(&s.buf);
}

/* A message that lies is refused by take as by next, with the same words,
 * and the refusal sticks. */
static void
test_take_refuses(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
        size_t limit;
        int rc;
        const char *words;
    } cases[] = {
        /* an array32 claiming 4 Gi items */
        {"\xdd\xff\xff\xff\xff", 5, 0, -EMSGSIZE, NULL},
        /* a str32 longer than the limit */
        {"\x94\x00\x01\xdb\x00\x01\x00\x00", 8, 4096, -EMSGSIZE, NULL},
        /* 33 levels */
        {"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
         "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
         "\x90",
         33, 0, -EPROTO, "nesting deeper than 32 levels"},
        /* not an RPC message */
        {"\x93\x00\x01\xa1m", 5, 0, -EPROTO,
         "message: a request has 4 elements, got 3"},
        {"\xc1", 1, 0, -EPROTO, "not msgpack (byte 0xc1)"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char ct[PROTO_CAUSE_MAX] = "", cn[PROTO_CAUSE_MAX] = "";
        struct proto_reader *rt = proto_reader_new(cases[i].limit);
        struct proto_reader *rn = proto_reader_new(cases[i].limit);
        struct proto_msg m;

        assert_int_equal(proto_reader_feed(rt, cases[i].bytes, cases[i].len),
                         0);
        assert_int_equal(proto_reader_feed(rn, cases[i].bytes, cases[i].len),
                         0);
        assert_int_equal(proto_reader_take(rt, &m, ct), cases[i].rc);
        assert_int_equal(proto_reader_next(rn, &m, cn), cases[i].rc);
        assert_string_equal(ct, cn);
        if (cases[i].words != NULL)
            assert_string_equal(ct, cases[i].words);
        ct[0] = '\0';
        assert_int_equal(proto_reader_take(rt, &m, ct), cases[i].rc);
        assert_string_equal(ct, cn);
        proto_reader_free(rt);
        proto_reader_free(rn);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_request),
        cmocka_unit_test(test_peek_then_next_or_skip),
        cmocka_unit_test(test_peek_in_pieces),
        cmocka_unit_test(test_peek_response),
        cmocka_unit_test(test_peek_refuses),
        cmocka_unit_test(test_peek_limit),
        cmocka_unit_test(test_cursor_types),
        cmocka_unit_test(test_cursor_refuses),
        cmocka_unit_test(test_take_request),
        cmocka_unit_test(test_take_far_params_and_response),
        cmocka_unit_test(test_take_refuses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
