/*
 * Direct connections (docs/protocol.md, "Direct connections"): attach names
 * each ready worker's own socket, a client calls the worker there without the
 * manager in the way, the worker counts those calls in its figures, and a
 * restart drains a worker's direct clients (told "draining", their calls
 * answered, their connection closed) before it stops. A dead worker's socket
 * does not stay behind.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "methods.h"
#include "tu_daemon.h"

static const char config_js[] =
    "let n = 0;\n"
    "module.exports = {\n"
    "  functions: {\n"
    "    double(data) { return data.number * 2; },\n"
    "    count() { return ++n; },\n"
    "    wait(d) { return new Promise((r) => setTimeout(() => r(d.v), d.ms)); "
    "},\n"
    "  },\n"
    "  workers: 2,\n"
    "  linger: 60000,\n"
    "};\n";

static struct tu_daemon m;
static struct tu_rpc *c;
static const char *cfg;

static int
setup(void **state)
{
    (void)state;
    tu_daemon_init(&m);
    m.real = true;
    cfg = tu_daemon_file(&m, "host.config.js", config_js);
    tu_daemon_manager(&m, NULL, NULL);
    c = tu_daemon_connect(&m);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tu_rpc_close(c);
    tu_daemon_stop(&m);
    return 0;
}

/* attach once both workers are ready, and the host's id and direct sockets
 * (a json array, owned). The first attach answers once one worker is ready:
 * the other's socket is named by the next. */
static char *
attach(json_t **direct)
{
    char params[4200];
    pid_t pids[4];
    json_t *r;
    char *id;

    snprintf(params, sizeof(params), "[\"%s\", {}]", cfg);
    id = tu_rpc_attach(c, cfg);
    TU_UNTIL(tu_rpc_worker_pids(c, id, "ready", pids, 4) == 2, TU_WAIT_MS);
    free(id);
    r = tu_rpc_ok(c, "attach", params);
    id = strdup(json_string_value(json_object_get(r, "host")));
    *direct = json_incref(json_object_get(r, "direct"));
    assert_true(json_is_array(*direct));
    assert_true(json_integer_value(json_object_get(r, "timeout_ms")) > 0);
    json_decref(r);
    return id;
}

/* How many sockets the direct method names (asserting its shape). */
static size_t
direct_sockets(const char *id)
{
    char params[256];
    json_t *r;
    size_t n;

    snprintf(params, sizeof(params), "[\"%s\"]", id);
    r = tu_rpc_ok(c, "direct", params);
    assert_true(json_integer_value(json_object_get(r, "timeout_ms")) > 0);
    n = json_array_size(json_object_get(r, "direct"));
    json_decref(r);
    return n;
}

/* The calls the host's workers say they answered. */
static long
calls_counted(const char *id)
{
    json_t *h = tu_rpc_host(c, id), *w;
    long n = 0;
    size_t i;

    assert_non_null(h);
    json_array_foreach(json_object_get(h, "workers"), i, w) n +=
        (long)json_integer_value(json_object_get(w, "calls"));
    json_decref(h);
    return n;
}

static void
test_direct_call(void **state)
{
    json_t *direct;
    struct tu_rpc *d;
    char *id, *r;
    size_t i;

    (void)state;
    id = attach(&direct);
    assert_int_equal(json_array_size(direct), 2);
    for (i = 0; i < json_array_size(direct); i++) {
        const char *path = json_string_value(json_array_get(direct, i));

        assert_non_null(path);
        assert_true(tu_exists(path));
        d = tu_rpc_connect(path);
        assert_non_null(d);
        r = tu_rpc_call_fn(d, id, "double", "{\"number\": 21}", NULL);
        assert_string_equal(r, "42");
        free(r);
        tu_rpc_close(d);
    }
    /* The workers count the calls they were sent directly. */
    assert_true(calls_counted(id) >= 2);
    json_decref(direct);
    free(id);
}

/* A restart drains the old worker's direct clients: told, answered, closed;
 * its socket goes, and attach then names the new workers' sockets. */
static void
test_direct_drain_on_restart(void **state)
{
    json_t *direct, *after;
    struct tu_rpc *d;
    struct proto_msg msg;
    const char *path;
    char *id, *old, data[64], params[4200];
    bool draining = false, answered = false;
    uint32_t call;
    int r;

    (void)state;
    id = attach(&direct);
    path = json_string_value(json_array_get(direct, 0));
    old = strdup(path);
    d = tu_rpc_connect(path);
    assert_non_null(d);
    snprintf(data, sizeof(data), "{\"v\": 7, \"ms\": 500}");
    snprintf(params, sizeof(params), "[\"%s\", \"wait\", %s, {}]", id, data);
    call = tu_rpc_send(d, "call", params);
    /* The call is at the worker before the restart begins. */
    TU_UNTIL(tu_rpc_busy_worker(c, id) != 0, TU_WAIT_MS);
    snprintf(params, sizeof(params), "[\"%s\"]", id);
    tu_rpc_send(c, "restart", params);
    for (;;) {
        r = tu_rpc_read(d, &msg, TU_WAIT_MS);
        if (r < 0)
            break; /* closed, once everything it sent was answered */
        assert_int_equal(r, 1);
        if (msg.kind == PROTO_NOTIFICATION &&
            proto_msg_is(&msg, PROTO_N_DRAINING)) {
            assert_false(answered);
            draining = true;
        } else if (msg.kind == PROTO_RESPONSE) {
            char *got = tu_rpc_result(&msg);

            assert_int_equal(msg.msgid, call);
            assert_string_equal(got, "7");
            free(got);
            answered = true;
        }
        proto_msg_release(&msg);
    }
    assert_true(draining);
    assert_true(answered);
    tu_rpc_close(d);
    TU_UNTIL(!tu_exists(old), TU_WAIT_MS);
    TU_UNTIL(tu_rpc_host_in(c, id, "ready"), TU_WAIT_MS);
    /* The direct method names the sockets without another attach. */
    TU_UNTIL(direct_sockets(id) == 2, TU_WAIT_MS);
    free(attach(&after));
    assert_int_equal(json_array_size(after), 2);
    for (size_t i = 0; i < json_array_size(after); i++)
        assert_string_not_equal(json_string_value(json_array_get(after, i)),
                                old);
    json_decref(after);
    json_decref(direct);
    free(old);
    free(id);
}

/* A worker killed leaves no socket: the manager removes it. */
static void
test_direct_socket_of_dead_worker(void **state)
{
    json_t *direct;
    pid_t pids[4];
    char *id, *path;
    int n;

    (void)state;
    id = attach(&direct);
    n = tu_rpc_worker_pids(c, id, "ready", pids, 4);
    assert_int_equal(n, 2);
    path = strdup(json_string_value(json_array_get(direct, 0)));
    assert_int_equal(kill(pids[0], SIGKILL), 0);
    assert_int_equal(kill(pids[1], SIGKILL), 0);
    TU_UNTIL(!tu_exists(path), TU_WAIT_MS);
    free(path);
    json_decref(direct);
    free(id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_direct_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_drain_on_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_direct_socket_of_dead_worker,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
