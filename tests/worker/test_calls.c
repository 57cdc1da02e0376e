/*
 * A worker started with --listen on a js-host-style config: calls in every
 * style, values of every type both ways, errors with stacks, contexts, console
 * output, timers and require().
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tu_daemon.h"

static struct tu_daemon fix;

static int
setup(void **state)
{
    (void)state;
    tu_daemon_init(&fix);
    tu_daemon_worker(&fix, tu_daemon_worker_config("basic.config.js"), NULL);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tu_daemon_stop(&fix);
    return 0;
}

static void
test_call_styles(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);

    (void)state;
    tu_rpc_check(c, "call", "[\"local\", \"hello_world\", {\"name\": \"Foo\"}]",
                 "\"Hello, Foo!\"");
    tu_rpc_check(c, "call", "[\"local\", \"hello_world\", {}]",
                 "\"Hello, World!\"");
    tu_rpc_check(c, "call", "[\"local\", \"double\", {\"number\": 20}]", "40");
    tu_rpc_check(c, "call",
                 "[\"local\", \"later\", {\"ms\": 5, \"tag\": \"a\"}]",
                 "\"later a\"");
    /* State kept in closures persists between calls. */
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_check(c, "call", "[null, \"count\", null, {}]", "2");
    /* `this` is {name, host: {config}} with the config's extras. */
    tu_rpc_check(c, "call", "[\"local\", \"extras\", null]",
                 "[\"extras\",\"else\"]");
    tu_rpc_close(c);
}

static void
test_unknown_function(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);
    char *got;

    (void)state;
    got = tu_rpc_call(c, "call", "[\"local\", \"nope\", {}]");
    assert_non_null(got);
    assert_true(strncmp(got, "!NotFound: ", 11) == 0);
    assert_non_null(strstr(got, "nope"));
    free(got);
    /* The worker lives on. */
    tu_rpc_check(c, "ping", "[]", "\"pong\"");
    tu_rpc_close(c);
}

static void
check_js_error(struct tu_rpc *c, const char *function, const char *name,
               const char *message, const char *where)
{
    struct proto_msg msg;
    struct proto_error pe;
    char params[128];
    uint32_t id;

    snprintf(params, sizeof(params), "[\"local\", \"%s\", {\"why\": \"x\"}]",
             function);
    id = tu_rpc_send(c, "call", params);
    tu_rpc_expect_error(c, id, "JSError", &msg, &pe);
    assert_non_null(pe.name);
    assert_int_equal(pe.name_len, strlen(name));
    assert_memory_equal(pe.name, name, pe.name_len);
    assert_int_equal(pe.message_len, strlen(message));
    assert_memory_equal(pe.message, message, pe.message_len);
    if (where != NULL) {
        char *stack;

        assert_non_null(pe.stack);
        stack = strndup(pe.stack, pe.stack_len);
        if (strstr(stack, where) == NULL)
            fail_msg("the stack does not name %s:\n%s", where, stack);
        free(stack);
    }
    proto_msg_release(&msg);
}

static void
test_errors_with_stacks(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);

    (void)state;
    /* A sync throw names the config file and the line of the throw. */
    check_js_error(c, "fail", "TypeError", "bad thing: x",
                   "basic.config.js:22");
    check_js_error(c, "fail_cb", "RangeError", "out of range",
                   "basic.config.js:");
    check_js_error(c, "reject", "Error", "rejected", "basic.config.js:");
    /* A failed call fails that call only. */
    tu_rpc_check(c, "call", "[\"local\", \"double\", {\"number\": 1}]", "2");
    tu_rpc_close(c);
}

static void
test_timers(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);

    (void)state;
    tu_rpc_check(c, "call", "[\"local\", \"timer\", {}]", "\"fired\"");
    tu_rpc_check(c, "call", "[\"local\", \"interval\", {}]", "3");
    tu_rpc_check(c, "call", "[\"local\", \"immediate\", {}]", "\"immediate\"");
    tu_rpc_check(c, "call", "[\"local\", \"nodeTimers\", {}]",
                 "[[\"tick\",\"then\"],\"object\",true,false]");
    tu_rpc_close(c);
}

static void
test_require(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);

    (void)state;
    /* A relative file, a package's main (with a .json beside it), and a
     * package's conditional exports taking the `require` branch. */
    tu_rpc_check(c, "call", "[\"local\", \"helper\", {\"s\": \"hi\"}]",
                 "\"HI!\"");
    tu_rpc_check(c, "call", "[\"local\", \"pkg\", {}]",
                 "[\"somepkg 1.0.0\",\"cjs\"]");
    tu_rpc_close(c);
}

static void
test_console_to_log(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);
    char *log;

    (void)state;
    tu_rpc_check(c, "call", "[\"local\", \"log\", {\"tag\": \"t42\"}]", "true");
    tu_rpc_close(c);
    /* Stopping flushes whatever the worker buffered. */
    assert_int_equal(kill(fix.pid, SIGTERM), 0);
    assert_int_not_equal(tu_daemon_wait(&fix, TU_WAIT_MS), -1);
    log = tu_daemon_log(&fix);
    if (strstr(log, "stdout-line t42") == NULL ||
        strstr(log, "stderr-line t42") == NULL)
        fail_msg("console output missing from the log:\n%s", log);
    /* The worker's own lines: start, ready and exit. */
    assert_non_null(strstr(log, "start"));
    assert_non_null(strstr(log, "ready"));
    assert_non_null(strstr(log, "exit"));
    free(log);
    /* Restart for teardown's clean stop. */
    tu_daemon_cleanup(&fix);
    tu_daemon_init(&fix);
    tu_daemon_worker(&fix, tu_daemon_worker_config("basic.config.js"), NULL);
}

static void
test_late_errors_and_callbacks(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);
    char *log;

    (void)state;
    /* First settlement wins; the later ones are logged and ignored. */
    tu_rpc_check(c, "call", "[\"local\", \"twice\", {}]", "\"first\"");
    /* An error thrown from a timer outside any call is logged; the worker
     * lives on. */
    tu_rpc_check(c, "call", "[\"local\", \"throw_later\", {\"tag\": \"t7\"}]",
                 "\"thrown later\"");
    tu_rpc_check(c, "call",
                 "[\"local\", \"later\", {\"ms\": 50, \"tag\": \"b\"}]",
                 "\"later b\"");
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_close(c);
    assert_int_equal(kill(fix.pid, SIGTERM), 0);
    assert_int_not_equal(tu_daemon_wait(&fix, TU_WAIT_MS), -1);
    log = tu_daemon_log(&fix);
    if (strstr(log, "late boom t7") == NULL)
        fail_msg("the timer's error is not in the log:\n%s", log);
    free(log);
    tu_daemon_cleanup(&fix);
    tu_daemon_init(&fix);
    tu_daemon_worker(&fix, tu_daemon_worker_config("basic.config.js"), NULL);
}

/* ---- values ------------------------------------------------------------- */

/* Sends call echo with data packed by `pack`; returns the msgid. */
static uint32_t
send_echo(struct tu_rpc *c, void (*pack)(msgpack_packer *pk))
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t id = tu_rpc_request_begin(c, &sb, &pk, "call", 4);

    proto_pack_cstr(&pk, "local");
    proto_pack_cstr(&pk, "echo");
    pack(&pk);
    msgpack_pack_map(&pk, 0);
    tu_rpc_request_send(c, &sb);
    return id;
}

static const char bin_bytes[] = {0, 1, 2, (char)0xff, 'a'};
static const char utf8[] = "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80";

static void
pack_all_types(msgpack_packer *pk)
{
    /* timestamp 64: nsec (30 bits) << 34 | sec (34 bits) */
    uint64_t ts = ((uint64_t)678000000 << 34) | (uint64_t)1577934245;
    char tsb[8];
    /* 2^70 and -(2^70) in two's complement big-endian */
    static const char big[9] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0};
    static const char negbig[9] = {(char)0xc0, 0, 0, 0, 0, 0, 0, 0, 0};

    for (int i = 0; i < 8; i++)
        tsb[i] = (char)(ts >> (56 - 8 * i));
    msgpack_pack_array(pk, 19);
    msgpack_pack_nil(pk);                      /* 0 */
    msgpack_pack_true(pk);                     /* 1 */
    msgpack_pack_false(pk);                    /* 2 */
    msgpack_pack_int64(pk, -5);                /* 3 */
    msgpack_pack_uint64(pk, UINT64_MAX);       /* 4: BigInt in JS */
    msgpack_pack_int64(pk, INT64_MIN);         /* 5: BigInt in JS */
    msgpack_pack_uint64(pk, (1ULL << 53) + 1); /* 6: BigInt in JS */
    msgpack_pack_double(pk, NAN);              /* 7 */
    msgpack_pack_double(pk, -0.0);             /* 8 */
    msgpack_pack_double(pk, INFINITY);         /* 9 */
    msgpack_pack_double(pk, 0.1);              /* 10 */
    proto_pack_strn(pk, utf8, strlen(utf8));   /* 11 */
    msgpack_pack_bin(pk, sizeof(bin_bytes));   /* 12 */
    msgpack_pack_bin_body(pk, bin_bytes, sizeof(bin_bytes));
    msgpack_pack_ext(pk, 8, -1); /* 13: Date */
    msgpack_pack_ext_body(pk, tsb, 8);
    msgpack_pack_ext(pk, 9, 1); /* 14: 2^70 */
    msgpack_pack_ext_body(pk, big, 9);
    msgpack_pack_ext(pk, 9, 1); /* 15: -(2^70) */
    msgpack_pack_ext_body(pk, negbig, 9);
    msgpack_pack_map(pk, 2); /* 16 */
    proto_pack_cstr(pk, "a");
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
    proto_pack_cstr(pk, "b");
    msgpack_pack_map(pk, 0);
    msgpack_pack_int64(pk, (1LL << 53));    /* 17: still a Number */
    msgpack_pack_uint64(pk, 4294967296ULL); /* 18 */
}

/* Reads a timestamp ext in any of its three forms. */
static void
read_timestamp(const msgpack_object *o, int64_t *sec, uint32_t *nsec)
{
    const unsigned char *p = (const unsigned char *)o->via.ext.ptr;
    uint64_t v = 0;

    assert_int_equal(o->type, MSGPACK_OBJECT_EXT);
    assert_int_equal(o->via.ext.type, -1);
    switch (o->via.ext.size) {
    case 4:
        for (int i = 0; i < 4; i++)
            v = v << 8 | p[i];
        *sec = (int64_t)v;
        *nsec = 0;
        break;
    case 8:
        for (int i = 0; i < 8; i++)
            v = v << 8 | p[i];
        *nsec = (uint32_t)(v >> 34);
        *sec = (int64_t)(v & ((1ULL << 34) - 1));
        break;
    case 12:
        *nsec = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                (uint32_t)p[2] << 8 | p[3];
        for (int i = 4; i < 12; i++)
            v = v << 8 | p[i];
        *sec = (int64_t)v;
        break;
    default:
        fail_msg("timestamp ext of %u bytes", o->via.ext.size);
    }
}

/* A bigint ext equals the two's complement bytes want (redundant sign bytes
 * aside). */
static void
check_bigint(const msgpack_object *o, const unsigned char *want,
             size_t want_len)
{
    const unsigned char *p;
    size_t n;

    assert_int_equal(o->type, MSGPACK_OBJECT_EXT);
    assert_int_equal(o->via.ext.type, 1);
    p = (const unsigned char *)o->via.ext.ptr;
    n = o->via.ext.size;
    while (n > want_len && (p[0] == 0x00 || p[0] == 0xff) &&
           ((p[0] ^ p[1]) & 0x80) == 0) {
        p++;
        n--;
    }
    assert_int_equal(n, want_len);
    assert_memory_equal(p, want, n);
}

static void
test_values_roundtrip(void **state)
{
    static const unsigned char big[9] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char negbig[9] = {0xc0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct tu_rpc *c = tu_daemon_connect(&fix);
    const msgpack_object *a, *m;
    struct proto_msg msg;
    uint32_t nsec;
    int64_t sec;

    (void)state;
    tu_rpc_expect_result(c, send_echo(c, pack_all_types), &msg);
    assert_int_equal(msg.result.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(msg.result.via.array.size, 19);
    a = msg.result.via.array.ptr;
    assert_int_equal(a[0].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(a[1].type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(a[1].via.boolean);
    assert_false(a[2].via.boolean);
    assert_int_equal(a[3].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(a[3].via.i64, -5);
    /* BigInts that fit 64 bits go back as ints. */
    assert_int_equal(a[4].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(a[4].via.u64 == UINT64_MAX);
    assert_int_equal(a[5].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_true(a[5].via.i64 == INT64_MIN);
    assert_int_equal(a[6].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(a[6].via.u64 == (1ULL << 53) + 1);
    assert_int_equal(a[7].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(isnan(a[7].via.f64));
    assert_int_equal(a[8].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(a[8].via.f64 == 0.0 && signbit(a[8].via.f64));
    assert_int_equal(a[9].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(isinf(a[9].via.f64) && a[9].via.f64 > 0);
    assert_int_equal(a[10].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(a[10].via.f64 == 0.1);
    assert_int_equal(a[11].type, MSGPACK_OBJECT_STR);
    assert_int_equal(a[11].via.str.size, strlen(utf8));
    assert_memory_equal(a[11].via.str.ptr, utf8, strlen(utf8));
    assert_int_equal(a[12].type, MSGPACK_OBJECT_BIN);
    assert_int_equal(a[12].via.bin.size, sizeof(bin_bytes));
    assert_memory_equal(a[12].via.bin.ptr, bin_bytes, sizeof(bin_bytes));
    read_timestamp(&a[13], &sec, &nsec);
    assert_int_equal(sec, 1577934245);
    assert_int_equal(nsec, 678000000);
    check_bigint(&a[14], big, sizeof(big));
    check_bigint(&a[15], negbig, sizeof(negbig));
    assert_int_equal(a[16].type, MSGPACK_OBJECT_MAP);
    m = tu_rpc_field(&a[16], "a");
    assert_int_equal(m->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(m->via.array.ptr[0].via.u64, 1);
    assert_int_equal(tu_rpc_field(&a[16], "b")->type, MSGPACK_OBJECT_MAP);
    /* 2^53 is still a Number: an integer either way. */
    assert_int_equal(a[17].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(a[17].via.u64 == (1ULL << 53));
    assert_int_equal(a[18].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(a[18].via.u64 == 4294967296ULL);
    proto_msg_release(&msg);
    tu_rpc_close(c);
}

static void
test_values_out(void **state)
{
    static const unsigned char big[9] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0};
    struct tu_rpc *c = tu_daemon_connect(&fix);
    const msgpack_object *r, *o;
    struct proto_msg msg;
    struct proto_error pe;
    uint32_t nsec;
    int64_t sec;

    (void)state;
    tu_rpc_expect_result(
        c, tu_rpc_send(c, "call", "[\"local\", \"types\", {}]"), &msg);
    r = &msg.result;
    assert_int_equal(r->type, MSGPACK_OBJECT_MAP);
    read_timestamp(tu_rpc_field(r, "date"), &sec, &nsec);
    assert_int_equal(sec, 1577934245);
    assert_int_equal(nsec, 678000000);
    check_bigint(tu_rpc_field(r, "big"), big, sizeof(big));
    o = tu_rpc_field(r, "small_big");
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o->via.u64, 12);
    o = tu_rpc_field(r, "bytes");
    assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(o->via.bin.size, 3);
    assert_memory_equal(o->via.bin.ptr, "\x01\x02\x03", 3);
    o = tu_rpc_field(r, "map");
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_true(proto_obj_streq(tu_rpc_field(o, "k"), "v"));
    o = tu_rpc_field(r, "nan");
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(isnan(o->via.f64));
    o = tu_rpc_field(r, "negzero");
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(signbit(o->via.f64));
    o = tu_rpc_field(r, "inf");
    assert_true(isinf(o->via.f64) && o->via.f64 < 0);
    /* JSON.stringify's rules: skipped in objects, null in arrays, toJSON. */
    assert_null(proto_map_get(r, "skipped"));
    assert_null(proto_map_get(r, "fn"));
    o = tu_rpc_field(r, "arr");
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, 3);
    assert_int_equal(o->via.array.ptr[0].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(o->via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(o->via.array.ptr[2].via.u64, 1);
    assert_true(proto_obj_streq(tu_rpc_field(r, "json"), "from toJSON"));
    proto_msg_release(&msg);

    /* A cycle cannot cross: InvalidArgument, and the worker lives on. */
    tu_rpc_expect_error(c, tu_rpc_send(c, "call", "[\"local\", \"cycle\", {}]"),
                        "InvalidArgument", &msg, &pe);
    proto_msg_release(&msg);
    tu_rpc_check(c, "ping", "[]", "\"pong\"");
    tu_rpc_close(c);
}

static void
pack_bad_utf8(msgpack_packer *pk)
{
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "a\xff\xfe", 3);
}

static void
pack_nested_30(msgpack_packer *pk)
{
    for (int i = 0; i < 29; i++)
        msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 0);
}

static void
test_values_bad_in(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);
    struct proto_msg msg;
    struct proto_error pe;

    (void)state;
    tu_rpc_expect_error(c, send_echo(c, pack_bad_utf8), "InvalidArgument", &msg,
                        &pe);
    proto_msg_release(&msg);
    /* As deep as a value may nest inside a request: it crosses both ways. */
    tu_rpc_expect_result(c, send_echo(c, pack_nested_30), &msg);
    assert_int_equal(msg.result.type, MSGPACK_OBJECT_ARRAY);
    proto_msg_release(&msg);
    tu_rpc_close(c);
}

/* ---- contexts ----------------------------------------------------------- */

static void
test_contexts(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);
    struct proto_msg msg;
    struct proto_error pe;
    char params[1200], *got, *stack;
    uint64_t ctx;
    uint32_t id;

    (void)state;
    snprintf(params, sizeof(params), "[null, {\"cwd\": \"%s\"}]",
             tu_source_path("tests/worker/configs"));
    tu_rpc_expect_result(c, tu_rpc_send(c, "context.create", params), &msg);
    assert_int_equal(msg.result.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ctx = msg.result.via.u64;
    assert_true(ctx > 0);
    proto_msg_release(&msg);

    snprintf(params, sizeof(params), "[%llu, \"1 + 1\", \"one.js\"]",
             (unsigned long long)ctx);
    tu_rpc_check(c, "context.eval", params, "2");
    /* Globals persist within the context; a promise result is awaited. */
    snprintf(params, sizeof(params),
             "[%llu, \"var kept = 41; Promise.resolve(kept + 1)\", \"two.js\", "
             "{\"timeout_ms\": 5000}]",
             (unsigned long long)ctx);
    tu_rpc_check(c, "context.eval", params, "42");
    snprintf(params, sizeof(params), "[%llu, \"Math.max\", [1, 7, 2]]",
             (unsigned long long)ctx);
    tu_rpc_check(c, "context.call", params, "7");
    snprintf(params, sizeof(params),
             "[%llu, [\"lib/ctxlib.js\", \"lib/ctxlib2.js\"]]",
             (unsigned long long)ctx);
    tu_rpc_check(c, "context.load", params, "null");
    snprintf(params, sizeof(params), "[%llu, \"ctxlib2\", [\"z\"]]",
             (unsigned long long)ctx);
    tu_rpc_check(c, "context.call", params, "\"ctxlib z and ctxlib2\"");
    /* require() from a context starts at its cwd. */
    snprintf(params, sizeof(params),
             "[%llu, \"require('somepkg').describe()\", \"req.js\"]",
             (unsigned long long)ctx);
    tu_rpc_check(c, "context.eval", params, "\"somepkg 1.0.0\"");

    /* The identifier names the script in stack traces. */
    snprintf(params, sizeof(params),
             "[%llu, \"\\n\\nthrow new SyntaxError('in page')\", \"page.js\"]",
             (unsigned long long)ctx);
    id = tu_rpc_send(c, "context.eval", params);
    tu_rpc_expect_error(c, id, "JSError", &msg, &pe);
    assert_int_equal(pe.name_len, strlen("SyntaxError"));
    assert_non_null(pe.stack);
    stack = strndup(pe.stack, pe.stack_len);
    if (strstr(stack, "page.js:3") == NULL)
        fail_msg("the stack does not name page.js:3:\n%s", stack);
    free(stack);
    proto_msg_release(&msg);

    /* Contexts are separate global scopes. */
    tu_rpc_expect_result(c, tu_rpc_send(c, "context.create", "[]"), &msg);
    snprintf(params, sizeof(params), "[%llu, \"typeof kept\", null]",
             (unsigned long long)msg.result.via.u64);
    proto_msg_release(&msg);
    tu_rpc_check(c, "context.eval", params, "\"undefined\"");

    snprintf(params, sizeof(params), "[%llu]", (unsigned long long)ctx);
    tu_rpc_check(c, "context.destroy", params, "null");
    got = tu_rpc_call(c, "context.destroy", params);
    assert_non_null(got);
    assert_true(strncmp(got, "!NotFound", 9) == 0);
    free(got);
    snprintf(params, sizeof(params), "[%llu, \"1\", \"x.js\"]",
             (unsigned long long)ctx);
    got = tu_rpc_call(c, "context.eval", params);
    assert_non_null(got);
    assert_true(strncmp(got, "!NotFound", 9) == 0);
    free(got);
    tu_rpc_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_styles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_with_stacks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require, setup, teardown),
        cmocka_unit_test_setup_teardown(test_console_to_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_errors_and_callbacks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_values_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_bad_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contexts, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
