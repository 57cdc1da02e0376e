/*
 * The manager's limits (docs/lifecycle.md, "Limits"; docs/security.md), each
 * hit on purpose: an unfinished message left idle, unfinished messages past
 * the total across connections, connections per manager, private VMs per
 * connection and per manager, the host log's size (rotation) and a log that
 * cannot be written (reported; the host serves on); a worker's own socket
 * for direct calls held to the same limits. Each scenario runs its own
 * manager in its own runtime dir.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostid.h"
#include "tu_daemon.h"

/* Half a message, then silence: the connection is closed after the idle
 * timeout, with an error notification; others are not affected. */
static void
test_partial_message_idle(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_PARTIAL_IDLE_MS=300", NULL};
    struct tu_rpc *c, *other;
    unsigned char head[32];
    char half[100];
    size_t n;
    uint32_t id;

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, NULL, env);
    c = tu_daemon_connect(&m);
    other = tu_daemon_connect(&m);
    tu_rpc_check(c, "ping", "[]", "\"pong\"");
    n = tu_rpc_ping_head(c, head, 200, &id);
    (void)id;
    tu_rpc_send_raw(c, head, n);
    memset(half, 'x', sizeof half);
    tu_rpc_send_raw(c, half, sizeof half);
    tu_rpc_expect_refused(c, "unfinished message");
    tu_rpc_check(other, "ping", "[]", "\"pong\"");
    tu_rpc_close(c);
    tu_rpc_close(other);
    tu_daemon_stop(&m);
}

/* Unfinished messages across connections past the total: the connection
 * whose bytes passed it is closed; the one under it finishes its message. */
static void
test_partial_messages_total(void **state)
{
    enum { LEN = 700 * 1024, SENT = 600 * 1024 };
    struct tu_daemon m;
    const char *env[] = {"JSHOST_MAX_PARTIAL_TOTAL=1048576", NULL};
    struct tu_rpc *a, *b, *watch;
    unsigned char head[32];
    char *body;
    size_t n;
    uint32_t ida, idb;
    struct proto_msg msg;

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, NULL, env);
    a = tu_daemon_connect(&m);
    b = tu_daemon_connect(&m);
    watch = tu_daemon_connect(&m);
    body = malloc(LEN);
    memset(body, 'x', LEN);
    n = tu_rpc_ping_head(a, head, LEN, &ida);
    tu_rpc_send_raw(a, head, n);
    tu_rpc_send_raw(a, body, SENT);
    TU_UNTIL(tu_rpc_manager_figure(watch, "partial_bytes") >= SENT, TU_WAIT_MS);
    n = tu_rpc_ping_head(b, head, LEN, &idb);
    tu_rpc_send_raw(b, head, n);
    tu_rpc_send_raw(b, body, SENT);
    tu_rpc_expect_refused(b, "unfinished messages");
    /* a's message finishes: answered (ping takes no params). */
    tu_rpc_send_raw(a, body, LEN - SENT);
    assert_int_equal(tu_rpc_wait(a, ida, &msg, TU_WAIT_MS), 1);
    assert_int_equal(msg.error.type, MSGPACK_OBJECT_MAP);
    proto_msg_release(&msg);
    TU_UNTIL(tu_rpc_manager_figure(watch, "partial_bytes") == 0, TU_WAIT_MS);
    free(body);
    tu_rpc_close(a);
    tu_rpc_close(b);
    tu_rpc_close(watch);
    tu_daemon_stop(&m);
}

/* Connections per manager: past the limit a new one is told why and
 * closed; once one leaves there is room again. */
static void
test_connections_limit(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_MAX_CLIENTS=3", NULL};
    struct tu_rpc *c[4];
    int i;

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, NULL, env);
    for (i = 0; i < 3; i++) {
        c[i] = tu_daemon_connect(&m);
        tu_rpc_check(c[i], "ping", "[]", "\"pong\"");
        /* The probe that saw the manager listen is gone before more come. */
        if (i == 0)
            TU_UNTIL(tu_rpc_manager_figure(c[0], "clients") == 1, TU_WAIT_MS);
    }
    c[3] = tu_daemon_connect(&m);
    tu_rpc_expect_refused(c[3], "too many connections");
    tu_rpc_close(c[3]);
    tu_rpc_close(c[2]);
    TU_UNTIL(tu_rpc_manager_figure(c[0], "clients") == 2, TU_WAIT_MS);
    c[2] = tu_daemon_connect(&m);
    tu_rpc_check(c[2], "ping", "[]", "\"pong\"");
    for (i = 0; i < 3; i++)
        tu_rpc_close(c[i]);
    tu_daemon_stop(&m);
}

/* Private VMs per connection and per manager: past either, Overloaded;
 * a VM that goes makes room. */
static void
test_private_vm_limits(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_MAX_CLIENT_VMS=2", "JSHOST_MAX_VMS=3", NULL};
    struct tu_rpc *a, *b;
    json_t *j;
    long vm[3];
    char params[64];
    int i;

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, NULL, env);
    a = tu_daemon_connect(&m);
    b = tu_daemon_connect(&m);
    for (i = 0; i < 2; i++) {
        j = tu_rpc_ok(a, "context.create", "[null, {}]");
        vm[i] = (long)json_integer_value(j);
        json_decref(j);
    }
    /* Another context on a VM it has is not a new VM. */
    snprintf(params, sizeof params, "[null, {\"vm\": %ld}]", vm[0]);
    json_decref(tu_rpc_ok(a, "context.create", params));
    tu_rpc_check_error(a, "context.create", "[null, {}]", "Overloaded",
                       "private VMs");
    j = tu_rpc_ok(b, "context.create", "[null, {}]");
    vm[2] = (long)json_integer_value(j);
    json_decref(j);
    tu_rpc_check_error(b, "context.create", "[null, {}]", "Overloaded",
                       "private VMs");
    /* b's VM goes (its last context destroyed): room for one more. */
    snprintf(params, sizeof params, "[%ld]", vm[2]);
    tu_rpc_check(b, "context.destroy", params, "null");
    json_decref(tu_rpc_ok(b, "context.create", "[null, {}]"));
    tu_rpc_close(a);
    tu_rpc_close(b);
    tu_daemon_stop(&m);
}

/* The host log is rotated past its size, keeping the last N files, none
 * much past the size. */
static void
test_log_rotation(void **state)
{
    enum { MAX = 20000 };
    struct tu_daemon m;
    const char *env[] = {"JSHOST_LOG_MAX_BYTES=20000", "JSHOST_LOG_KEEP=2",
                         NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r;
    const char *p0, *p1, *p2, *p3;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    p0 = tu_daemon_host_log(&m, id, 0);
    p1 = tu_daemon_host_log(&m, id, 1);
    p2 = tu_daemon_host_log(&m, id, 2);
    p3 = tu_daemon_host_log(&m, id, 3);
    /* 2000 lines of 100 bytes: ten times the size. */
    r = tu_rpc_call_fn(c, id, "print", "2000", NULL);
    assert_string_equal(r, "2000");
    free(r);
    TU_UNTIL(tu_exists(p2) && tu_file_contains(p0, "line 00001999"),
             TU_WAIT_MS);
    assert_false(tu_exists(p3));
    assert_true(tu_file_size(p0) <= MAX + 4096);
    assert_true(tu_file_size(p1) <= MAX + 4096);
    assert_true(tu_file_size(p2) <= MAX + 4096);
    /* Whole lines only: each one a worker's or the manager's. */
    {
        char *text = tu_read_text(p1), *line, *save = NULL;

        for (line = strtok_r(text, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save))
            if (strncmp(line, "fake worker ", 12) != 0 &&
                strncmp(line, "20", 2) != 0)
                fail_msg("a line cut in two: '%s'", line);
        free(text);
    }
    r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
    assert_string_equal(r, "1");
    free(r);
    tu_daemon_stop_host(&m, c, id);
}

/* The host log of config, known before its attach: the host id is made
 * from the config's real path. */
static const char *
host_log_of_config(struct tu_daemon *m, const char *cfg)
{
    char real[4096], hid[17];

    assert_non_null(realpath(cfg, real));
    hostid_make(real, hid);
    return tu_daemon_host_log(m, hid, 0);
}

/* A log that cannot be written (a full disk: /dev/full) is reported in
 * manager.log; its output is dropped and counted; the host serves on. */
static void
test_log_full_disk(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r, mlog[600];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    assert_int_equal(symlink("/dev/full", host_log_of_config(&m, cfg)), 0);
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    r = tu_rpc_call_fn(c, id, "print", "10", NULL);
    assert_string_equal(r, "10");
    free(r);
    snprintf(mlog, sizeof mlog, "%s/manager.log", m.rundir);
    TU_UNTIL(tu_file_contains(mlog, strerror(ENOSPC)), TU_WAIT_MS);
    TU_UNTIL(tu_rpc_host_figure(c, id, "log_dropped") > 0, TU_WAIT_MS);
    r = tu_rpc_call_fn(c, id, "echo", "2", NULL);
    assert_string_equal(r, "2");
    free(r);
    tu_daemon_stop_host(&m, c, id);
}

/* A log that cannot be opened (here a directory stands where it goes):
 * the host starts and serves all the same; the failure is reported. */
static void
test_log_cannot_open(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r, path[600], mlog[600];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    snprintf(path, sizeof path, "%s", host_log_of_config(&m, cfg));
    assert_int_equal(mkdir(path, 0700), 0);
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    r = tu_rpc_call_fn(c, id, "print", "3", NULL);
    assert_string_equal(r, "3");
    free(r);
    snprintf(mlog, sizeof mlog, "%s/manager.log", m.rundir);
    TU_UNTIL(tu_file_contains(mlog, strerror(EISDIR)), TU_WAIT_MS);
    r = tu_rpc_call_fn(c, id, "echo", "4", NULL);
    assert_string_equal(r, "4");
    free(r);
    tu_rpc_close(c);
    free(id);
    rmdir(path);
    tu_daemon_stop(&m);
}

/* A limit given as a flag wins over its variable; a value that is not a
 * number stops the manager at once, naming the option. */
static void
test_options(void **state)
{
    struct tu_daemon m;
    const char *args[] = {"--max-clients", "2", NULL};
    const char *env[] = {"JSHOST_MAX_CLIENTS=50", NULL};
    struct tu_rpc *a, *b, *c;
    char *argv[6], *envadd[] = {"JSHOST_MAX_VMS=lots", NULL}, *out, *err;
    char dir[300];

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, args, env);
    a = tu_daemon_connect(&m);
    /* The probe that saw it listen has gone: a is the one connection. */
    TU_UNTIL(tu_rpc_manager_figure(a, "clients") == 1, TU_WAIT_MS);
    b = tu_daemon_connect(&m);
    tu_rpc_check(b, "ping", "[]", "\"pong\"");
    c = tu_daemon_connect(&m);
    tu_rpc_expect_refused(c, "too many connections");
    tu_rpc_close(c);
    tu_rpc_close(b);
    tu_rpc_close(a);
    snprintf(dir, sizeof dir, "%s/other", m.dir);
    argv[0] = (char *)tu_build_path(TU_MANAGER);
    argv[1] = "--foreground";
    argv[2] = "--runtime-dir";
    argv[3] = dir;
    argv[4] = NULL;
    assert_int_equal(tu_run(argv, envadd, NULL, &out, &err, TU_WAIT_MS), 2);
    assert_non_null(strstr(err, "JSHOST_MAX_VMS"));
    free(out);
    free(err);
    tu_daemon_stop(&m);
}

/* A worker's socket for direct calls takes the manager's limits: half a
 * message there, then silence, is refused after the manager's idle time. */
static void
test_direct_socket_limits(void **state)
{
    static const char config_js[] =
        "module.exports = { functions: { one() { return 1; } },\n"
        "  linger: 60000 };\n";
    struct tu_daemon m;
    const char *env[] = {"JSHOST_PARTIAL_IDLE_MS=300", NULL};
    struct tu_rpc *c, *d;
    const char *cfg;
    unsigned char head[32];
    char params[600];
    json_t *r;
    size_t n;
    uint32_t id;

    (void)state;
    tu_daemon_init(&m);
    m.real = true;
    cfg = tu_daemon_file(&m, "host.config.js", config_js);
    tu_daemon_manager(&m, NULL, env);
    c = tu_daemon_connect(&m);
    snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
    r = tu_rpc_ok(c, "attach", params);
    assert_int_equal(json_array_size(json_object_get(r, "direct")), 1);
    d = tu_rpc_connect(
        json_string_value(json_array_get(json_object_get(r, "direct"), 0)));
    assert_non_null(d);
    json_decref(r);
    tu_rpc_check(d, "ping", "[]", "\"pong\"");
    n = tu_rpc_ping_head(d, head, 200, &id);
    tu_rpc_send_raw(d, head, n);
    tu_rpc_send_raw(d, "xx", 2);
    tu_rpc_expect_refused(d, "unfinished message got no byte");
    tu_rpc_close(d);
    tu_rpc_close(c);
    tu_daemon_stop(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_message_idle),
        cmocka_unit_test(test_partial_messages_total),
        cmocka_unit_test(test_connections_limit),
        cmocka_unit_test(test_private_vm_limits),
        cmocka_unit_test(test_log_rotation),
        cmocka_unit_test(test_log_full_disk),
        cmocka_unit_test(test_log_cannot_open),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_direct_socket_limits),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
