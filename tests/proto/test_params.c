/* proto params helpers, maps, error objects and error type names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

/* Reads [0, 1, "m", <params>] where params are raw msgpack bytes. */
static void
request_with(const char *params, size_t len, struct proto_msg *m)
{
    static const char head[] = "\x94\x00\x01\xa1m";
    struct proto_reader *r = proto_reader_new(0);
    char cause[PROTO_CAUSE_MAX] = "";

    assert_non_null(r);
    assert_int_equal(proto_reader_feed(r, head, sizeof(head) - 1), 0);
    assert_int_equal(proto_reader_feed(r, params, len), 0);
    if (proto_reader_next(r, m, cause) != 1)
        fail_msg("test message did not parse: %s", cause);
    proto_reader_free(r);
}

#define REQUEST(lit, m) request_with(lit, sizeof(lit) - 1, m)

/* cause must equal want exactly. */
#define assert_cause(cause, want) assert_string_equal(cause, want)

static void
test_errtype_names(void **state)
{
    static const char *const names[] = {
        NULL,          "JSError",       "TimeoutError",
        "MemoryError", "NotFound",      "InvalidArgument",
        "ConfigError", "HostCrashed",   "HostUnavailable",
        "Overloaded",  "ProtocolError", "Cancelled",
    };
    (void)state;

    for (int t = PROTO_ERR_JS; t <= PROTO_ERR_CANCELLED; t++) {
        const char *n = proto_errtype_name((enum proto_errtype)t);
        assert_non_null(n);
        assert_string_equal(n, names[t]);
        assert_int_equal(proto_errtype_parse(n, strlen(n)), t);
    }
    assert_null(proto_errtype_name(PROTO_ERR_NONE));
    assert_null(
        proto_errtype_name((enum proto_errtype)(PROTO_ERR_CANCELLED + 1)));
    assert_null(proto_errtype_name((enum proto_errtype) - 1));
    assert_int_equal(proto_errtype_parse("JSErr", 5), PROTO_ERR_NONE);
    assert_int_equal(proto_errtype_parse("JSErrorX", 8), PROTO_ERR_NONE);
    assert_int_equal(proto_errtype_parse("jserror", 7), PROTO_ERR_NONE);
    assert_int_equal(proto_errtype_parse("", 0), PROTO_ERR_NONE);
    assert_int_equal(proto_errtype_parse(NULL, 0), PROTO_ERR_NONE);
    /* Lengths are honoured: no NUL needed. */
    assert_int_equal(proto_errtype_parse("NotFoundXYZ", 8),
                     PROTO_ERR_NOT_FOUND);
}

static void
test_params_count(void **state)
{
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    (void)state;

    REQUEST("\x92\x01\x02", &m);
    assert_int_equal(proto_params_count(&m, 2, 2, cause), 0);
    assert_int_equal(proto_params_count(&m, 0, 5, cause), 0);
    assert_int_equal(proto_params_count(&m, 3, 3, cause), -EINVAL);
    assert_cause(cause, "params: expected 3 parameters, got 2");
    assert_int_equal(proto_params_count(&m, 1, 1, cause), -EINVAL);
    assert_cause(cause, "params: expected 1 parameter, got 2");
    assert_int_equal(proto_params_count(&m, 3, 4, cause), -EINVAL);
    assert_cause(cause, "params: expected 3 to 4 parameters, got 2");
    assert_int_equal(proto_params_count(&m, 0, 1, NULL), -EINVAL);
    proto_msg_release(&m);
}

static void
test_param_str(void **state)
{
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    const char *s;
    size_t len;
    (void)state;

    REQUEST("\x94\xa2hi\x07\xc0\xa0", &m);
    assert_int_equal(proto_param_str(&m, 0, "host", &s, &len, cause), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(s, "hi", 2);
    assert_int_equal(proto_param_str(&m, 3, "empty", &s, &len, cause), 0);
    assert_int_equal(len, 0);
    assert_int_equal(proto_param_str(&m, 1, "function", &s, &len, cause),
                     -EINVAL);
    assert_cause(cause,
                 "params[1] (function): expected a string, got an integer");
    assert_int_equal(proto_param_str(&m, 2, "function", &s, &len, cause),
                     -EINVAL);
    assert_cause(cause, "params[2] (function): expected a string, got nil");
    assert_int_equal(proto_param_str(&m, 4, "source", &s, &len, cause),
                     -EINVAL);
    assert_cause(cause, "params[4] (source): missing, expected a string");

    assert_int_equal(proto_param_str_or_nil(&m, 0, "host", &s, &len, cause), 0);
    assert_int_equal(len, 2);
    s = "x";
    len = 9;
    assert_int_equal(proto_param_str_or_nil(&m, 2, "host", &s, &len, cause), 0);
    assert_null(s);
    assert_int_equal(len, 0);
    assert_int_equal(proto_param_str_or_nil(&m, 1, "host", &s, &len, cause),
                     -EINVAL);
    assert_cause(cause,
                 "params[1] (host): expected a string or nil, got an integer");
    assert_int_equal(proto_param_str_or_nil(&m, 4, "host", &s, &len, cause),
                     -EINVAL);
    assert_cause(cause, "params[4] (host): missing, expected a string or nil");
    proto_msg_release(&m);
}

static void
test_param_uint(void **state)
{
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    uint64_t v = 0;
    (void)state;

    REQUEST(
        "\x94\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xff\xca\x3f\x80\x00\x00\xa1"
        "1",
        &m);
    assert_int_equal(proto_param_uint(&m, 0, "n", &v, cause), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(proto_param_uint(&m, 1, "n", &v, cause), -EINVAL);
    assert_cause(
        cause,
        "params[1] (n): expected an unsigned integer, got a negative integer");
    assert_int_equal(proto_param_uint(&m, 2, "n", &v, cause), -EINVAL);
    assert_cause(cause,
                 "params[2] (n): expected an unsigned integer, got a float");
    assert_int_equal(proto_param_uint(&m, 3, "n", &v, cause), -EINVAL);
    assert_cause(cause,
                 "params[3] (n): expected an unsigned integer, got a string");
    assert_int_equal(proto_param_uint(&m, 9, "n", &v, cause), -EINVAL);
    assert_cause(cause, "params[9] (n): missing, expected an unsigned integer");
    proto_msg_release(&m);
}

static void
test_param_any_map_array(void **state)
{
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    const msgpack_object *o;
    (void)state;

    /* [{"timeout_ms": 5}, nil, [1], "x", {}] */
    REQUEST("\x95\x81\xaatimeout_ms\x05\xc0\x91\x01\xa1x\x80", &m);
    assert_int_equal(proto_param_any(&m, 3, &o, cause), 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(proto_param_any(&m, 7, &o, cause), 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_NIL);

    assert_int_equal(proto_param_map(&m, 0, "options", &o, cause), 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(proto_param_map(&m, 1, "options", &o, cause), 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(proto_param_map(&m, 5, "options", &o, cause), 0);
    assert_int_equal(o->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(proto_param_map(&m, 2, "options", &o, cause), -EINVAL);
    assert_cause(cause,
                 "params[2] (options): expected a map or nil, got an array");
    assert_int_equal(proto_param_map(&m, 3, "options", &o, cause), -EINVAL);
    assert_cause(cause,
                 "params[3] (options): expected a map or nil, got a string");

    assert_int_equal(proto_param_array(&m, 2, "paths", &o, cause), 0);
    assert_int_equal(o->via.array.size, 1);
    assert_int_equal(proto_param_array(&m, 0, "paths", &o, cause), -EINVAL);
    assert_cause(cause, "params[0] (paths): expected an array, got a map");
    assert_int_equal(proto_param_array(&m, 1, "paths", &o, cause), -EINVAL);
    assert_cause(cause, "params[1] (paths): expected an array, got nil");
    assert_int_equal(proto_param_array(&m, 5, "paths", &o, cause), -EINVAL);
    assert_cause(cause, "params[5] (paths): missing, expected an array");
    proto_msg_release(&m);
}

/* A response has no params: every helper says so instead of reading garbage. */
static void
test_params_of_response(void **state)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    const msgpack_object *o;
    const char *s;
    size_t len;
    uint64_t v;
    (void)state;

    assert_int_equal(proto_reader_feed(r, "\x94\x01\x01\xc0\x91\x05", 6), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(proto_params_count(&m, 0, 9, cause), -EINVAL);
    assert_non_null(strstr(cause, "not a request"));
    assert_int_equal(proto_param_str(&m, 0, "x", &s, &len, cause), -EINVAL);
    assert_int_equal(proto_param_uint(&m, 0, "x", &v, cause), -EINVAL);
    assert_int_equal(proto_param_any(&m, 0, &o, cause), -EINVAL);
    assert_int_equal(proto_param_map(&m, 0, "x", &o, cause), -EINVAL);
    assert_int_equal(proto_param_array(&m, 0, "x", &o, cause), -EINVAL);
    proto_msg_release(&m);
    proto_reader_free(r);
}

static void
test_map_helpers(void **state)
{
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    const msgpack_object *o;
    uint64_t v = 77;
    char *dup;
    (void)state;

    /* [{"timeout_ms": 5, "bad": "x", "neg": -1, "none": nil, 1: 2, "b":
     * bin"ab"}] */
    REQUEST("\x91\x86\xaatimeout_ms\x05\xa3"
            "bad\xa1x\xa3neg\xff\xa4none\xc0\x01\x02"
            "\xa1"
            "b\xc4\x02"
            "ab",
            &m);
    assert_int_equal(proto_param_map(&m, 0, "options", &o, cause), 0);
    assert_non_null(proto_map_get(o, "timeout_ms"));
    assert_null(proto_map_get(o, "timeout"));
    assert_null(proto_map_get(o, ""));
    assert_null(proto_map_get(&m.params, "timeout_ms")); /* not a map */
    assert_null(proto_map_get(NULL, "x"));

    assert_int_equal(proto_opt_uint(o, "timeout_ms", &v, cause), 0);
    assert_int_equal(v, 5);
    v = 77;
    assert_int_equal(proto_opt_uint(o, "missing", &v, cause), 1);
    assert_int_equal(proto_opt_uint(o, "none", &v, cause), 1);
    assert_int_equal(v, 77);
    assert_int_equal(proto_opt_uint(o, "bad", &v, cause), -EINVAL);
    assert_cause(cause,
                 "options.bad: expected an unsigned integer, got a string");
    assert_int_equal(proto_opt_uint(o, "neg", &v, cause), -EINVAL);
    assert_cause(
        cause,
        "options.neg: expected an unsigned integer, got a negative integer");
    {
        const msgpack_object *nil;
        assert_int_equal(proto_param_map(&m, 3, "options", &nil, cause), 0);
        assert_int_equal(proto_opt_uint(nil, "timeout_ms", &v, cause), 1);
    }

    assert_true(proto_obj_streq(proto_map_get(o, "bad"), "x"));
    assert_false(proto_obj_streq(proto_map_get(o, "bad"), "xy"));
    assert_false(
        proto_obj_streq(proto_map_get(o, "b"), "ab")); /* bin is not str */
    assert_false(proto_obj_streq(NULL, "x"));

    dup = proto_obj_strdup(proto_map_get(o, "bad"));
    assert_string_equal(dup, "x");
    free(dup);
    dup = proto_obj_strdup(proto_map_get(o, "b"));
    assert_string_equal(dup, "ab");
    free(dup);
    assert_null(proto_obj_strdup(proto_map_get(o, "timeout_ms")));
    assert_null(proto_obj_strdup(NULL));
    proto_msg_release(&m);
}

static void
test_error_roundtrip(void **state)
{
    const struct proto_error in = {
        .type = PROTO_ERR_HOST_CRASHED,
        .message = "worker 123 died of signal 9",
        .name = "Error!ignored",
        .name_len = 5,
        .stack = "at f (a.js:1:2)\nat g (b.js:3:4)",
        .logfile = "/run/jshost/hosts/abc.log",
    };
    const struct proto_error nils = {.type = PROTO_ERR_TIMEOUT};
    struct proto_reader *r = proto_reader_new(0);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct proto_msg m;
    struct proto_error out;
    char cause[PROTO_CAUSE_MAX];
    (void)state;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(proto_write_error(&pk, 17, &in), 0);
    assert_int_equal(proto_write_error(&pk, 18, &nils), 0);
    assert_int_equal(proto_reader_feed(r, sb.data, sb.size), 0);

    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.msgid, 17);
    assert_int_equal(m.result.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(m.error.via.map.size, 5);
    assert_int_equal(proto_error_from_object(&m.error, &out), 0);
    assert_int_equal(out.type, PROTO_ERR_HOST_CRASHED);
    assert_int_equal(out.message_len, strlen(in.message));
    assert_memory_equal(out.message, in.message, out.message_len);
    assert_int_equal(out.name_len, 5);
    assert_memory_equal(out.name, "Error", 5);
    assert_int_equal(out.stack_len, strlen(in.stack));
    assert_memory_equal(out.stack, in.stack, out.stack_len);
    assert_int_equal(out.logfile_len, strlen(in.logfile));
    assert_memory_equal(out.logfile, in.logfile, out.logfile_len);
    proto_msg_release(&m);

    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    assert_int_equal(m.msgid, 18);
    assert_int_equal(m.error.via.map.size, 5); /* nil fields are still there */
    assert_int_equal(proto_map_get(&m.error, "message")->type,
                     MSGPACK_OBJECT_NIL);
    assert_int_equal(proto_error_from_object(&m.error, &out), 0);
    assert_int_equal(out.type, PROTO_ERR_TIMEOUT);
    assert_null(out.message);
    assert_null(out.name);
    assert_null(out.stack);
    assert_null(out.logfile);
    assert_int_equal(
        out.message_len + out.name_len + out.stack_len + out.logfile_len, 0);
    proto_msg_release(&m);

    /* PROTO_ERR_NONE packs a nil type, which reads back as ProtocolError. */
    msgpack_sbuffer_clear(&sb);
    {
        const struct proto_error none = {.type = PROTO_ERR_NONE,
                                         .message = "m"};
        assert_int_equal(proto_pack_error(&pk, &none), 0);
        assert_int_equal(sb.data[0], (char)0x85);
    }
    msgpack_sbuffer_destroy(&sb);
    proto_reader_free(r);
}

static void
test_error_from_odd_objects(void **state)
{
    struct proto_msg m;
    struct proto_error e;
    const msgpack_object *o;
    char cause[PROTO_CAUSE_MAX];
    (void)state;

    /* [{"type": "Nope", "message": "boom", "stack": 5}, {"message": "x"}, "s",
     * {}] */
    REQUEST("\x94\x83\xa4type\xa4Nope\xa7message\xa4"
            "boom\xa5stack\x05"
            "\x81\xa7message\xa1x\xa1s\x80",
            &m);
    assert_int_equal(proto_param_any(&m, 0, &o, cause), 0);
    assert_int_equal(proto_error_from_object(o, &e), 0);
    assert_int_equal(e.type, PROTO_ERR_PROTOCOL); /* unknown type */
    assert_int_equal(e.message_len, 4);
    assert_memory_equal(e.message, "boom", 4);
    assert_null(e.stack); /* not a str: nil */
    assert_int_equal(proto_param_any(&m, 1, &o, cause), 0);
    assert_int_equal(proto_error_from_object(o, &e), 0);
    assert_int_equal(e.type, PROTO_ERR_PROTOCOL); /* missing type */
    assert_memory_equal(e.message, "x", 1);
    assert_int_equal(proto_param_any(&m, 2, &o, cause), 0);
    assert_int_equal(proto_error_from_object(o, &e), -EPROTO);
    assert_int_equal(proto_param_any(&m, 3, &o, cause), 0);
    assert_int_equal(proto_error_from_object(o, &e), 0);
    assert_int_equal(e.type, PROTO_ERR_PROTOCOL);
    assert_null(e.message);
    assert_int_equal(proto_error_from_object(NULL, &e), -EPROTO);
    proto_msg_release(&m);
}

static void
test_pack_helpers(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    (void)state;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(proto_pack_cstr(&pk, NULL), 0);
    assert_int_equal(proto_pack_cstr(&pk, "ab"), 0);
    assert_int_equal(proto_pack_strn(&pk, "abc", 1), 0);
    assert_int_equal(proto_pack_strn(&pk, NULL, 0), 0);
    assert_int_equal(sb.size, 1 + 3 + 2 + 1);
    assert_memory_equal(sb.data,
                        "\xc0\xa2"
                        "ab\xa1"
                        "a\xa0",
                        sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* A packer whose writes fail: every writer passes the failure on. */
static int
failing_write(void *data, const char *buf, size_t len)
{
    int *left = data;
    (void)buf;
    (void)len;
    if (*left == 0)
        return -1;
    (*left)--;
    return 0;
}

static void
test_writers_fail(void **state)
{
    const struct proto_error err = {
        .type = PROTO_ERR_JS, .message = "m", .stack = "s"};
    (void)state;

    /* Fail at every write position in turn; each call must report it. */
    for (int allow = 0; allow < 12; allow++) {
        msgpack_packer pk;
        int left;

        msgpack_packer_init(&pk, &left, failing_write);
        left = allow;
        if (allow < 4)
            assert_int_equal(proto_write_request(&pk, 1, "m", 0), -1);
        left = allow;
        if (allow < 4)
            assert_int_equal(proto_write_result(&pk, 1), -1);
        left = allow;
        assert_int_equal(proto_write_error(&pk, 1, &err), -1);
        left = allow;
        assert_int_equal(proto_write_protocol_error(&pk, "x"), -1);
        left = allow;
        assert_int_equal(proto_write_errorf(&pk, 1, PROTO_ERR_JS, "%d", allow),
                         -1);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errtype_names),
        cmocka_unit_test(test_params_count),
        cmocka_unit_test(test_param_str),
        cmocka_unit_test(test_param_uint),
        cmocka_unit_test(test_param_any_map_array),
        cmocka_unit_test(test_params_of_response),
        cmocka_unit_test(test_map_helpers),
        cmocka_unit_test(test_error_roundtrip),
        cmocka_unit_test(test_error_from_odd_objects),
        cmocka_unit_test(test_pack_helpers),
        cmocka_unit_test(test_writers_fail),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
