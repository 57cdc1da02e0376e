/*
 * Connections of a --listen worker: the methods direct clients use, request
 * validation, a broken stream closing only its own connection, pipelining,
 * backpressure and clients that vanish with calls in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
test_direct_client_methods(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);
    const msgpack_object *o;
    struct proto_msg msg;
    char params[1200];

    (void)state;
    tu_rpc_expect_result(
        c, tu_rpc_send(c, "hello", "[{\"client\": \"test\", \"protocol\": 1}]"),
        &msg);
    assert_int_equal(tu_rpc_field(&msg.result, "protocol")->via.u64, 1);
    assert_int_equal(tu_rpc_field(&msg.result, "pid")->via.u64,
                     (uint64_t)fix.pid);
    assert_int_equal(tu_rpc_field(&msg.result, "server")->type,
                     MSGPACK_OBJECT_STR);
    proto_msg_release(&msg);
    /* A protocol this side does not speak: ProtocolError, as the manager
     * answers it (one checker for both, proto/check.c). */
    tu_rpc_check_error(c, "hello", "[{\"client\": \"test\", \"protocol\": 2}]",
                       "ProtocolError", "protocol 2");

    snprintf(params, sizeof(params), "[\"%s\", {}]",
             tu_daemon_worker_config("basic.config.js"));
    tu_rpc_expect_result(c, tu_rpc_send(c, "attach", params), &msg);
    assert_true(proto_obj_streq(tu_rpc_field(&msg.result, "host"), "local"));
    o = tu_rpc_field(&msg.result, "functions");
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_true(o->via.array.size >= 10);
    assert_true(proto_obj_streq(
        tu_rpc_field(tu_rpc_field(&msg.result, "extras"), "anything"), "else"));
    proto_msg_release(&msg);
    snprintf(params, sizeof(params), "[\"%s\"]",
             tu_daemon_worker_config("bad/throws.config.js"));
    tu_rpc_check_error(c, "attach", params, "NotFound", NULL);
    tu_rpc_check(c, "detach", "[\"local\"]", "{\"linger_ms\":0}");

    tu_rpc_expect_result(c, tu_rpc_send(c, "status", "[null]"), &msg);
    assert_int_equal(tu_rpc_field(&msg.result, "pid")->via.u64,
                     (uint64_t)fix.pid);
    assert_int_equal(tu_rpc_field(&msg.result, "functions")->type,
                     MSGPACK_OBJECT_ARRAY);
    o = tu_rpc_field(&msg.result, "stats");
    assert_true(tu_rpc_field(o, "rss")->via.u64 > 0);
    assert_int_equal(tu_rpc_field(o, "uptime_s")->type, MSGPACK_OBJECT_FLOAT64);
    proto_msg_release(&msg);
    tu_rpc_check(c, "ping", "[]", "\"pong\"");
    tu_rpc_close(c);
}

static void
test_validation(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&fix);

    (void)state;
    tu_rpc_check_error(c, "frobnicate", "[]", "NotFound", "frobnicate");
    tu_rpc_check_error(c, "call", "[\"local\"]", "InvalidArgument", "params");
    tu_rpc_check_error(c, "call", "[\"local\", 7, {}]", "InvalidArgument",
                       "function");
    tu_rpc_check_error(c, "call", "[\"local\", \"double\", {}, 5]",
                       "InvalidArgument", "options");
    tu_rpc_check_error(
        c, "call", "[\"local\", \"double\", {}, {\"timeout_ms\": \"soon\"}]",
        "InvalidArgument", "timeout_ms");
    tu_rpc_check_error(c, "context.eval", "[\"one\", \"1\", \"x.js\"]",
                       "InvalidArgument", "context");
    tu_rpc_check_error(c, "context.eval", "[1, 2, \"x.js\"]", "InvalidArgument",
                       "source");
    tu_rpc_check_error(c, "context.call", "[1, \"f\", 3]", "InvalidArgument",
                       "args");
    tu_rpc_check_error(c, "context.load", "[1, [3]]", "InvalidArgument",
                       "paths");
    tu_rpc_check_error(c, "context.create", "[null, {\"cwd\": 1}]",
                       "InvalidArgument", "cwd");
    tu_rpc_check_error(c, "context.destroy", "[99999]", "NotFound", NULL);
    tu_rpc_check_error(c, "context.eval", "[99999, \"1\", \"x.js\"]",
                       "NotFound", NULL);
    tu_rpc_check_error(c, "hello", "[]", "InvalidArgument", "params");
    /* None of that hurt the connection. */
    tu_rpc_check(c, "call", "[\"local\", \"double\", {\"number\": 3}]", "6");
    tu_rpc_close(c);
}

/* Asserts that c gets a ProtocolError notification and then EOF. */
static void
expect_protocol_error_close(struct tu_rpc *c)
{
    struct proto_msg msg;
    struct proto_error pe;
    int r;

    r = tu_rpc_read(c, &msg, TU_WAIT_MS);
    assert_int_equal(r, 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_int_equal(msg.params.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(msg.params.via.array.size, 1);
    assert_int_equal(proto_error_from_object(&msg.params.via.array.ptr[0], &pe),
                     0);
    assert_int_equal(pe.type, PROTO_ERR_PROTOCOL);
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), -1);
}

static void
test_broken_streams_close_only_their_connection(void **state)
{
    static const char garbage[] = "\xc1\xc1 this is not msgpack";
    struct tu_rpc *good = tu_daemon_connect(&fix), *bad;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t slow;

    (void)state;
    /* A call in flight on the good connection while others break. */
    slow = tu_rpc_send(good, "call",
                       "[\"local\", \"later\", {\"ms\": 300, \"tag\": \"s\"}]");

    bad = tu_daemon_connect(&fix);
    tu_rpc_send_raw(bad, garbage, sizeof(garbage) - 1);
    expect_protocol_error_close(bad);
    tu_rpc_close(bad);
    tu_rpc_check(good, "ping", "[]", "\"pong\"");

    /* 33 levels of nesting: past msgpack-c's unpacker. */
    bad = tu_daemon_connect(&fix);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_request(&pk, 1, "call", 3);
    proto_pack_cstr(&pk, "local");
    proto_pack_cstr(&pk, "echo");
    for (int i = 0; i < 31; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
    tu_rpc_send_raw(bad, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    expect_protocol_error_close(bad);
    tu_rpc_close(bad);

    /* A well-formed msgpack value that is no RPC message. */
    bad = tu_daemon_connect(&fix);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_int(&pk, 7);
    tu_rpc_send_raw(bad, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    expect_protocol_error_close(bad);
    tu_rpc_close(bad);

    /* Half a message, then the client leaves. */
    bad = tu_daemon_connect(&fix);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_request(&pk, 1, "call", 3);
    proto_pack_cstr(&pk, "local");
    proto_pack_cstr(&pk, "hello_world");
    msgpack_pack_map(&pk, 0);
    tu_rpc_send_raw(bad, sb.data, sb.size / 2);
    msgpack_sbuffer_destroy(&sb);
    tu_rpc_close(bad);

    tu_rpc_check(good, "call", "[\"local\", \"double\", {\"number\": 5}]",
                 "10");
    {
        struct proto_msg msg;

        tu_rpc_expect_result(good, slow, &msg);
        assert_true(proto_obj_streq(&msg.result, "later s"));
        proto_msg_release(&msg);
    }
    tu_rpc_close(good);
}

static void
test_random_bytes(void **state)
{
    struct tu_rpc *good = tu_daemon_connect(&fix);
    unsigned seed = 12345;
    char buf[4096];

    (void)state;
    /* Seeded noise on many connections, some of it a valid message prefix
     * the worker waits on: none of it may reach past its own connection. */
    for (int i = 0; i < 40; i++) {
        struct tu_rpc *bad = tu_daemon_connect(&fix);
        size_t n = 1 + (size_t)(rand_r(&seed) % sizeof(buf));
        struct proto_msg msg;

        for (size_t j = 0; j < n; j++)
            buf[j] = (char)rand_r(&seed);
        if (i % 2 == 0)
            buf[0] = (char)0x94; /* a 4-array: looks like a message start */
        tu_rpc_send_raw(bad, buf, n);
        while (tu_rpc_read(bad, &msg, 100) == 1)
            proto_msg_release(&msg);
        tu_rpc_close(bad);
    }
    tu_rpc_check(good, "call", "[\"local\", \"double\", {\"number\": 8}]",
                 "16");
    tu_rpc_close(good);
}

static void
test_pipelining(void **state)
{
    enum { N = 1000 };
    struct tu_rpc *c = tu_daemon_connect(&fix);
    static uint32_t ids[N];
    static bool seen[N];
    struct proto_msg msg;
    char params[128];
    uint32_t first;

    (void)state;
    /* Every request goes out before any reply is read; sync and async calls
     * mixed, so replies come out of order. */
    for (int i = 0; i < N; i++) {
        if (i % 10 == 0)
            snprintf(params, sizeof(params),
                     "[\"local\", \"later\", {\"ms\": 1, \"tag\": \"%d\"}]", i);
        else
            snprintf(params, sizeof(params),
                     "[\"local\", \"double\", {\"number\": %d}]", i);
        ids[i] = tu_rpc_send(c, "call", params);
    }
    first = ids[0];
    for (int n = 0; n < N; n++) {
        uint32_t i;

        assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), 1);
        assert_int_equal(msg.kind, PROTO_RESPONSE);
        i = msg.msgid - first;
        assert_true(i < N);
        assert_false(seen[i]);
        seen[i] = true;
        assert_int_equal(msg.error.type, MSGPACK_OBJECT_NIL);
        if (i % 10 == 0) {
            char want[32];

            snprintf(want, sizeof(want), "later %u", i);
            assert_true(proto_obj_streq(&msg.result, want));
        } else {
            assert_int_equal(msg.result.via.u64, 2 * i);
        }
        proto_msg_release(&msg);
    }
    tu_rpc_close(c);
}

static void
test_backpressure(void **state)
{
    enum { N = 24, SIZE = 1024 * 1024 };
    struct tu_rpc *c = tu_daemon_connect(&fix), *other;
    struct proto_msg msg;
    char params[128];
    uint32_t first = 0;

    (void)state;
    /* 24 MiB of replies asked for before one is read: the worker must hold
     * back (not buffer without bound, not stall the others) and finish. */
    snprintf(params, sizeof(params), "[\"local\", \"big\", {\"size\": %d}]",
             SIZE);
    for (int i = 0; i < N; i++) {
        uint32_t id = tu_rpc_send(c, "call", params);

        if (i == 0)
            first = id;
    }
    other = tu_daemon_connect(&fix);
    tu_rpc_check(other, "ping", "[]", "\"pong\"");
    tu_rpc_close(other);
    for (int i = 0; i < N; i++) {
        tu_rpc_expect_result(c, first + (uint32_t)i, &msg);
        assert_int_equal(msg.result.type, MSGPACK_OBJECT_STR);
        assert_int_equal(msg.result.via.str.size, SIZE);
        proto_msg_release(&msg);
    }
    tu_rpc_close(c);
}

/* One figure of the worker's stats. */
static uint64_t
stat_of(struct tu_rpc *c, const char *key)
{
    struct proto_msg msg;
    uint64_t n;

    tu_rpc_expect_result(c, tu_rpc_send(c, "stats", "[]"), &msg);
    n = tu_rpc_field(&msg.result, key)->via.u64;
    proto_msg_release(&msg);
    return n;
}

/* Whether in_flight has reached `cap`; the most it was seen at in *most. */
static bool
reached(struct tu_rpc *watch, uint64_t cap, uint64_t *most)
{
    uint64_t n = stat_of(watch, "in_flight");

    if (n > *most)
        *most = n;
    return n >= cap;
}

static void
test_inflight_cap(void **state)
{
    /* Few enough past the cap that the client's sends do not block on the
     * paused connection (each small send costs ~1 KiB of socket buffer). */
    enum { N = 4196, CAP = 4096 };
    struct tu_rpc *c = tu_daemon_connect(&fix),
                  *watch = tu_daemon_connect(&fix);
    static bool seen[N];
    struct proto_msg msg;
    uint64_t most = 0;
    uint32_t first = 0;

    (void)state;
    /* More async runs than one direct client may keep going: the worker
     * stops reading that client at the cap and answers them all anyway. */
    for (int i = 0; i < N; i++) {
        uint32_t id = tu_rpc_send(
            c, "call",
            "[\"local\", \"later\", {\"ms\": 5000, \"tag\": \"c\"}]");

        if (i == 0)
            first = id;
    }
    /* Before the first runs end, in flight climbs to the cap: once there,
     * the worker reads no more of this client's requests. */
    TU_UNTIL(reached(watch, CAP, &most), TU_WAIT_MS);
    reached(watch, CAP, &most);
    if (most != CAP)
        fail_msg("%llu runs in flight, past the cap of %d",
                 (unsigned long long)most, CAP);
    for (int n = 0; n < N; n++) {
        uint32_t i;

        assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), 1);
        i = msg.msgid - first;
        assert_true(i < N);
        assert_false(seen[i]);
        seen[i] = true;
        assert_true(proto_obj_streq(&msg.result, "later c"));
        proto_msg_release(&msg);
    }
    tu_rpc_close(watch);
    tu_rpc_close(c);
}

static void
test_client_leaves_with_calls_in_flight(void **state)
{
    struct tu_rpc *gone, *c;
    char params[1200];

    (void)state;
    gone = tu_daemon_connect(&fix);
    for (int i = 0; i < 20; i++)
        tu_rpc_send(gone, "call", "[\"local\", \"later\", {\"ms\": 100}]");
    tu_rpc_send(gone, "call", "[\"local\", \"count\", null]");
    tu_rpc_send(gone, "context.create", "[]");
    /* Let the worker read them, then vanish without reading a reply. */
    tu_rpc_check(gone, "ping", "[]", "\"pong\"");
    tu_rpc_close(gone);

    c = tu_daemon_connect(&fix);
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "2");
    /* The context the vanished client made goes with it. */
    TU_UNTIL(stat_of(c, "contexts") == 0, TU_WAIT_MS);
    /* Wait past the abandoned calls' completion: still serving. */
    snprintf(params, sizeof(params),
             "[\"local\", \"later\", {\"ms\": 300, \"tag\": \"ok\"}]");
    tu_rpc_check(c, "call", params, "\"later ok\"");
    tu_rpc_check(c, "ping", "[]", "\"pong\"");
    tu_rpc_close(c);
}

static void
test_private_vm(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg msg;
    char params[256];

    (void)state;
    /* No config: contexts only (v8-cffi's VM). */
    tu_daemon_init(&f);
    tu_daemon_worker(&f, NULL, NULL);
    c = tu_daemon_connect(&f);
    tu_rpc_check_error(c, "call", "[null, \"anything\", {}]", "NotFound", NULL);
    tu_rpc_check_error(c, "attach", "[\"/nonexistent.config.js\"]", "NotFound",
                       NULL);
    tu_rpc_expect_result(c, tu_rpc_send(c, "context.create", "[null]"), &msg);
    snprintf(params, sizeof(params),
             "[%llu, \"[1, 2].map(x => x * 3)\", \"vm.js\"]",
             (unsigned long long)msg.result.via.u64);
    proto_msg_release(&msg);
    tu_rpc_check(c, "context.eval", params, "[3,6]");
    tu_rpc_expect_result(c, tu_rpc_send(c, "status", "[]"), &msg);
    assert_int_equal(tu_rpc_field(&msg.result, "config")->type,
                     MSGPACK_OBJECT_NIL);
    assert_int_equal(tu_rpc_field(&msg.result, "functions")->via.array.size, 0);
    proto_msg_release(&msg);
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_esm_config(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;

    (void)state;
    tu_daemon_init(&f);
    tu_daemon_worker(&f, tu_daemon_worker_config("esm.config.mjs"), NULL);
    c = tu_daemon_connect(&f);
    tu_rpc_check(c, "call", "[null, \"shout\", {\"s\": \"esm\"}]", "\"ESM!\"");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_listen_socket(void **state)
{
    struct tu_daemon f;
    struct stat st;
    const char *argv[5];
    char *log2;
    int status;
    pid_t pid;

    (void)state;
    tu_daemon_init(&f);
    tu_daemon_worker(&f, tu_daemon_worker_config("basic.config.js"), NULL);
    /* Only our user may connect. */
    assert_int_equal(lstat(f.sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A second worker on a live socket refuses, and leaves it alone. */
    assert_true(asprintf(&log2, "%s/second.log", f.dir) > 0);
    argv[0] = tu_build_path(TU_WORKER);
    argv[1] = "--listen";
    argv[2] = f.sock;
    argv[3] = tu_daemon_worker_config("basic.config.js");
    argv[4] = NULL;
    pid = tu_spawn((char *const *)argv, NULL, log2);
    status = tu_wait(pid, TU_WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 0);
    {
        struct tu_rpc *c = tu_daemon_connect(&f);

        tu_rpc_check(c, "ping", "[]", "\"pong\"");
        tu_rpc_close(c);
    }

    /* A worker killed outright leaves its socket file; the next one takes
     * the path over. */
    assert_int_equal(kill(f.pid, SIGKILL), 0);
    assert_int_not_equal(tu_daemon_wait(&f, TU_WAIT_MS), -1);
    assert_int_equal(lstat(f.sock, &st), 0);
    f.pid = tu_spawn((char *const *)argv, NULL, log2);
    assert_true(tu_wait_socket(f.sock, TU_WAIT_MS));
    {
        struct tu_rpc *c = tu_daemon_connect(&f);

        tu_rpc_check(c, "ping", "[]", "\"pong\"");
        tu_rpc_close(c);
    }
    /* SIGINT is a clean exit too, and the socket file goes with it. */
    assert_int_equal(kill(f.pid, SIGINT), 0);
    status = tu_daemon_wait(&f, TU_WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(lstat(f.sock, &st), -1);
    free(log2);
    tu_daemon_cleanup(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_direct_client_methods, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_broken_streams_close_only_their_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_leaves_with_calls_in_flight,
                                        setup, teardown),
        cmocka_unit_test(test_private_vm),
        cmocka_unit_test(test_esm_config),
        cmocka_unit_test(test_listen_socket),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
