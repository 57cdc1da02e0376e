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

/* Reads until a notification comes; asserts it is the error notification
 * with `words`, and that the stream ends right after it. */
static void
expect_refused(struct tu_rpc *c, const char *words)
{
    struct proto_msg msg;
    struct proto_error pe;
    int rc;

    rc = tu_rpc_read(c, &msg, TU_WAIT_MS);
    if (rc != 1)
        fail_msg("no error notification (read: %d, %s)", rc, tu_rpc_error(c));
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&msg, "error"));
    assert_int_equal(msg.params.via.array.size, 1);
    assert_int_equal(proto_error_from_object(&msg.params.via.array.ptr[0], &pe),
                     0);
    assert_int_equal(pe.type, PROTO_ERR_PROTOCOL);
    if (pe.message == NULL ||
        memmem(pe.message, pe.message_len, words, strlen(words)) == NULL)
        fail_msg("error notification without '%s': %.*s", words,
                 (int)pe.message_len, pe.message ? pe.message : "");
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), -1);
}

/* The head of a `ping` request whose one param is a str of `len` bytes,
 * the str's bytes not included; its msgid in *msgid. */
static size_t
big_head(struct tu_rpc *c, unsigned char *buf, uint32_t len, uint32_t *msgid)
{
    uint32_t id = tu_rpc_next_msgid(c);
    size_t n = 0;

    *msgid = id;
    buf[n++] = 0x94; /* [0, id, "ping", [str32]] */
    buf[n++] = 0x00;
    buf[n++] = 0xce;
    buf[n++] = (unsigned char)(id >> 24);
    buf[n++] = (unsigned char)(id >> 16);
    buf[n++] = (unsigned char)(id >> 8);
    buf[n++] = (unsigned char)id;
    buf[n++] = 0xa4;
    memcpy(buf + n, "ping", 4);
    n += 4;
    buf[n++] = 0x91;
    buf[n++] = 0xdb;
    buf[n++] = (unsigned char)(len >> 24);
    buf[n++] = (unsigned char)(len >> 16);
    buf[n++] = (unsigned char)(len >> 8);
    buf[n++] = (unsigned char)len;
    return n;
}

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
    n = big_head(c, head, 200, &id);
    (void)id;
    tu_rpc_send_raw(c, head, n);
    memset(half, 'x', sizeof half);
    tu_rpc_send_raw(c, half, sizeof half);
    expect_refused(c, "unfinished message");
    tu_rpc_check(other, "ping", "[]", "\"pong\"");
    tu_rpc_close(c);
    tu_rpc_close(other);
    tu_daemon_stop(&m);
}

static long
partial_bytes(struct tu_rpc *c)
{
    json_t *j = tu_rpc_ok(c, "status", "[]");
    long n = (long)json_integer_value(
        json_object_get(json_object_get(j, "manager"), "partial_bytes"));

    json_decref(j);
    return n;
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
    n = big_head(a, head, LEN, &ida);
    tu_rpc_send_raw(a, head, n);
    tu_rpc_send_raw(a, body, SENT);
    TU_UNTIL(partial_bytes(watch) >= SENT, TU_WAIT_MS);
    n = big_head(b, head, LEN, &idb);
    tu_rpc_send_raw(b, head, n);
    tu_rpc_send_raw(b, body, SENT);
    expect_refused(b, "unfinished messages");
    /* a's message finishes: answered (ping takes no params). */
    tu_rpc_send_raw(a, body, LEN - SENT);
    assert_int_equal(tu_rpc_wait(a, ida, &msg, TU_WAIT_MS), 1);
    assert_int_equal(msg.error.type, MSGPACK_OBJECT_MAP);
    proto_msg_release(&msg);
    TU_UNTIL(partial_bytes(watch) == 0, TU_WAIT_MS);
    free(body);
    tu_rpc_close(a);
    tu_rpc_close(b);
    tu_rpc_close(watch);
    tu_daemon_stop(&m);
}

static long
clients(struct tu_rpc *c)
{
    json_t *j = tu_rpc_ok(c, "status", "[]");
    long n = (long)json_integer_value(
        json_object_get(json_object_get(j, "manager"), "clients"));

    json_decref(j);
    return n;
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
            TU_UNTIL(clients(c[0]) == 1, TU_WAIT_MS);
    }
    c[3] = tu_daemon_connect(&m);
    expect_refused(c[3], "too many connections");
    tu_rpc_close(c[3]);
    tu_rpc_close(c[2]);
    TU_UNTIL(clients(c[0]) == 2, TU_WAIT_MS);
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

static char *
log_path(struct tu_daemon *m, const char *id, const char *suffix)
{
    char path[512];

    snprintf(path, sizeof path, "%s/hosts/%s.log%s", m->rundir, id, suffix);
    return strdup(path);
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
    char *id, *r, *p0, *p1, *p2, *p3;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    tu_daemon_manager(&m, NULL, env);
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    p0 = log_path(&m, id, "");
    p1 = log_path(&m, id, ".1");
    p2 = log_path(&m, id, ".2");
    p3 = log_path(&m, id, ".3");
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
    free(p0);
    free(p1);
    free(p2);
    free(p3);
    tu_rpc_close(c);
    free(id);
    tu_daemon_stop(&m);
}

static long
host_figure_of(struct tu_rpc *c, const char *id, const char *key)
{
    return tu_rpc_host_figure(c, id, key);
}

/* A log that cannot be written (a full disk: /dev/full) is reported in
 * manager.log; its output is dropped and counted; the host serves on. */
static void
test_log_full_disk(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r, real[4096], hid[17], path[600], mlog[600];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    assert_non_null(realpath(cfg, real));
    hostid_make(real, hid);
    snprintf(path, sizeof path, "%s/hosts/%s.log", m.rundir, hid);
    assert_int_equal(symlink("/dev/full", path), 0);
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    r = tu_rpc_call_fn(c, id, "print", "10", NULL);
    assert_string_equal(r, "10");
    free(r);
    snprintf(mlog, sizeof mlog, "%s/manager.log", m.rundir);
    TU_UNTIL(tu_file_contains(mlog, strerror(ENOSPC)), TU_WAIT_MS);
    TU_UNTIL(host_figure_of(c, id, "log_dropped") > 0, TU_WAIT_MS);
    r = tu_rpc_call_fn(c, id, "echo", "2", NULL);
    assert_string_equal(r, "2");
    free(r);
    tu_rpc_close(c);
    free(id);
    tu_daemon_stop(&m);
}

/* A log that cannot be opened (here a directory stands where it goes):
 * the host starts and serves all the same; the failure is reported. */
static void
test_log_cannot_open(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r, real[4096], hid[17], path[600], mlog[600];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    assert_non_null(realpath(cfg, real));
    hostid_make(real, hid);
    snprintf(path, sizeof path, "%s/hosts/%s.log", m.rundir, hid);
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
    TU_UNTIL(clients(a) == 1, TU_WAIT_MS);
    b = tu_daemon_connect(&m);
    tu_rpc_check(b, "ping", "[]", "\"pong\"");
    c = tu_daemon_connect(&m);
    expect_refused(c, "too many connections");
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
    n = big_head(d, head, 200, &id);
    tu_rpc_send_raw(d, head, n);
    tu_rpc_send_raw(d, "xx", 2);
    expect_refused(d, "unfinished message got no byte");
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
