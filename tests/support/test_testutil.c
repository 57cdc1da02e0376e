/*
 * testutil tested: tu_rpc against a forked echo peer (over a socketpair and
 * over a listening socket), out-of-order replies, notifications, errors, EOF,
 * and the process and file helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mpjson.h"
#include "testutil.h"

static void
peer_send(int fd, msgpack_sbuffer *sb)
{
    size_t off = 0;
    ssize_t n;

    while (off < sb->size) {
        n = send(fd, sb->data + off, sb->size - off, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(3);
        off += (size_t)n;
    }
    msgpack_sbuffer_clear(sb);
}

/*
 * The peer, in a forked child (never returns into cmocka):
 *   echo [..]     → result = params
 *   fail []       → NotFound error
 *   notify []     → notification ["note", [1]], then result "ok"
 *   hold []       → no reply until "release" comes; then release's reply
 *                   goes out first and hold's after it (out of order)
 *   quit []       → closes the connection without a reply
 * A broken stream gets the protocol error notification and a close.
 */
static void
echo_peer(int fd)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg msg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t held = 0;
    bool holding = false;
    char cause[PROTO_CAUSE_MAX], *buf;
    size_t len;
    ssize_t n;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (;;) {
        rc = proto_reader_next(r, &msg, cause);
        if (rc < 0) {
            proto_write_protocol_error(&pk, cause);
            peer_send(fd, &sb);
            _exit(0);
        }
        if (rc == 0) {
            if (proto_reader_buffer(r, 4096, &buf, &len) != 0)
                _exit(4);
            n = read(fd, buf, len);
            if (n <= 0)
                _exit(0);
            proto_reader_fill(r, (size_t)n);
            continue;
        }
        if (msg.kind != PROTO_REQUEST) {
            proto_msg_release(&msg);
            continue;
        }
        if (proto_msg_is(&msg, "echo")) {
            proto_write_result(&pk, msg.msgid);
            msgpack_pack_object(&pk, msg.params);
        } else if (proto_msg_is(&msg, "notify")) {
            proto_write_notification(&pk, "note", 1);
            msgpack_pack_int(&pk, 1);
            proto_write_result(&pk, msg.msgid);
            proto_pack_cstr(&pk, "ok");
        } else if (proto_msg_is(&msg, "hold")) {
            held = msg.msgid;
            holding = true;
        } else if (proto_msg_is(&msg, "release")) {
            proto_write_result(&pk, msg.msgid);
            proto_pack_cstr(&pk, "released");
            if (holding) {
                proto_write_result(&pk, held);
                proto_pack_cstr(&pk, "held");
                holding = false;
            }
        } else if (proto_msg_is(&msg, "quit")) {
            _exit(0);
        } else {
            proto_write_errorf(&pk, msg.msgid, PROTO_ERR_NOT_FOUND,
                               "no method '%.*s'", (int)msg.method_len,
                               msg.method);
        }
        proto_msg_release(&msg);
        peer_send(fd, &sb);
    }
}

struct fx {
    struct tu_rpc *c;
    pid_t peer;
};

static int
setup_pair(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fflush(stdout);
    fx->peer = fork();
    assert_true(fx->peer >= 0);
    if (fx->peer == 0) {
        close(sv[0]);
        echo_peer(sv[1]);
    }
    close(sv[1]);
    fx->c = tu_rpc_from_fd(sv[0]);
    *state = fx;
    return 0;
}

static int
teardown_pair(void **state)
{
    struct fx *fx = *state;

    tu_rpc_close(fx->c);
    /* Closing our end makes the peer see EOF and exit 0. */
    assert_int_equal(tu_wait(fx->peer, 10000), 0);
    free(fx);
    return 0;
}

static void
expect_call(struct tu_rpc *c, const char *method, const char *params,
            const char *want)
{
    char *got = tu_rpc_call(c, method, params, 10000);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void
test_call_echo(void **state)
{
    struct fx *fx = *state;

    expect_call(fx->c, "echo", "[]", "[]");
    expect_call(fx->c, "echo", "[1, \"two\", {\"three\": [3.5, null, true]}]",
                "[1,\"two\",{\"three\":[3.5,null,true]}]");
    /* The special forms cross as bin/timestamp/bigint and come back. */
    expect_call(fx->c, "echo",
                "[{\"$bin\": \"AAE=\"}, {\"$date\": "
                "\"2026-11-21T23:30:46.123Z\"}, {\"$bigint\": "
                "\"-123456789012345678901234567890\"}, 18446744073709551615]",
                "[{\"$bin\":\"AAE=\"},{\"$date\":\"2026-11-21T23:30:46.123Z\"},"
                "{\"$bigint\":\"-123456789012345678901234567890\"},"
                "18446744073709551615]");
    expect_call(fx->c, "nope", "[]", "!NotFound: no method 'nope'");
}

static void
test_deepest_value(void **state)
{
    struct fx *fx = *state;
    char params[128], want[128];
    int i, n = 0;

    /* A value nesting PROTO_VALUE_MAX_DEPTH levels inside params: the whole
     * request nests PROTO_MAX_DEPTH, the most the reader takes. */
    params[n++] = '[';
    for (i = 0; i < PROTO_VALUE_MAX_DEPTH; i++)
        params[n++] = '[';
    for (i = 0; i <= PROTO_VALUE_MAX_DEPTH; i++)
        params[n++] = ']';
    params[n] = '\0';
    strcpy(want, params);
    expect_call(fx->c, "echo", params, want);
}

static void
test_msgids_and_out_of_order(void **state)
{
    struct fx *fx = *state;
    struct proto_msg msg;
    uint32_t hold, release, skipped;
    char *s;

    skipped = tu_rpc_next_msgid(fx->c);
    hold = tu_rpc_send(fx->c, "hold", "[]");
    release = tu_rpc_send(fx->c, "release", "[]");
    assert_int_equal(hold, skipped + 1);
    assert_int_equal(release, hold + 1);

    /* The peer answers release first; waiting for hold queues it. */
    assert_int_equal(tu_rpc_wait(fx->c, hold, &msg, 10000), 1);
    assert_int_equal(msg.msgid, hold);
    s = tu_rpc_result(&msg);
    assert_string_equal(s, "\"held\"");
    free(s);
    proto_msg_release(&msg);
    /* Now from the queue, without touching the socket. */
    assert_int_equal(tu_rpc_wait(fx->c, release, &msg, 0), 1);
    s = tu_rpc_result(&msg);
    assert_string_equal(s, "\"released\"");
    free(s);
    proto_msg_release(&msg);
}

static void
test_notification_and_read(void **state)
{
    struct fx *fx = *state;
    struct proto_msg msg;
    uint32_t id;
    char *s;

    /* Nothing pending: a read times out. */
    assert_int_equal(tu_rpc_read(fx->c, &msg, 50), 0);

    id = tu_rpc_send(fx->c, "notify", "[]");
    assert_int_equal(tu_rpc_wait(fx->c, id, &msg, 10000), 1);
    proto_msg_release(&msg);
    /* The notification that came first was queued for tu_rpc_read. */
    assert_int_equal(tu_rpc_read(fx->c, &msg, 0), 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&msg, "note"));
    assert_null(tu_rpc_result(&msg));
    s = mpjson_dump(&msg.params, 0);
    assert_string_equal(s, "[1]");
    free(s);
    proto_msg_release(&msg);
}

static void
test_raw_garbage_and_eof(void **state)
{
    struct fx *fx = *state;
    struct proto_msg msg;
    const msgpack_object *e;

    /* A half request, then garbage: the peer says why and closes. */
    tu_rpc_send_raw(fx->c, "\x94\x00", 2);
    tu_rpc_send_raw(fx->c, "\xc1", 1);
    assert_int_equal(tu_rpc_read(fx->c, &msg, 10000), 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&msg, "error"));
    e = &msg.params.via.array.ptr[0];
    assert_true(proto_obj_streq(proto_map_get(e, "type"), "ProtocolError"));
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(fx->c, &msg, 10000), -1);
    assert_string_equal(tu_rpc_error(fx->c), "end of stream");
    /* And it stays ended; a call gives NULL, not a hang. */
    assert_null(tu_rpc_call(fx->c, "echo", "[]", 10000));
}

static void
test_quit_is_eof(void **state)
{
    struct fx *fx = *state;

    assert_null(tu_rpc_call(fx->c, "quit", "[]", 10000));
}

/* A listening peer at `path`: accepts one connection and echoes on it. */
static pid_t
listening_peer(const char *path)
{
    struct sockaddr_un sa;
    pid_t pid;
    int lfd, fd;

    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid != 0)
        return pid;
    usleep(50 * 1000); /* so tu_wait_socket really waits */
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        _exit(5);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (lfd == -1 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) == -1 ||
        listen(lfd, 4) == -1)
        _exit(5);
    /* tu_wait_socket's probe connects and closes; skip such connections. */
    for (;;) {
        char c;
        fd = accept(lfd, NULL, NULL);
        if (fd == -1)
            _exit(6);
        if (recv(fd, &c, 1, MSG_PEEK) == 1)
            echo_peer(fd);
        close(fd);
    }
}

static void
test_connect_path(void **state)
{
    char *dir = tu_tmpdir(), path[200], *s;
    struct tu_rpc *c;
    pid_t pid;

    (void)state;
    snprintf(path, sizeof path, "%s/peer.sock", dir);
    /* Nobody there yet: the errno tells why (auto-start decides on it). */
    errno = 0;
    assert_int_equal(tu_connect(path), -1);
    assert_int_equal(errno, ENOENT);
    assert_null(tu_rpc_connect(path));
    {
        char longpath[300];

        memset(longpath, 'x', sizeof longpath - 1);
        longpath[0] = '/';
        longpath[sizeof longpath - 1] = '\0';
        assert_int_equal(tu_connect(longpath), -1);
        assert_int_equal(errno, ENAMETOOLONG);
    }
    pid = listening_peer(path);
    assert_true(tu_wait_socket(path, 10000));
    c = tu_rpc_connect(path);
    assert_non_null(c);
    assert_true(tu_rpc_fd(c) >= 0);
    s = tu_rpc_call(c, "echo", "[\"over a socket\"]", 10000);
    assert_string_equal(s, "[\"over a socket\"]");
    free(s);
    tu_rpc_close(c);
    tu_kill(pid);
    assert_false(tu_wait_socket("/tmp/jtu-no-such-dir/x.sock", 30));
    tu_rmtree(dir);
}

static void
test_processes_and_files(void **state)
{
    char *dir = tu_tmpdir(), *script, *log, *out, path[256];
    char *argv[] = {"/bin/sh", NULL, NULL};
    char *env[] = {"TU_GREETING=hello there", NULL};
    struct stat sb;
    int status;
    pid_t pid;
    FILE *f;

    (void)state;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(strncmp(dir, "/tmp/", 5), 0);

    script = tu_write_file(dir, "sub/dir/run.sh",
                           "echo \"$TU_GREETING\"\necho oops >&2\nexit 3\n");
    argv[1] = script;
    snprintf(path, sizeof path, "%s/out.log", dir);
    log = path;
    pid = tu_spawn(argv, env, log);
    status = tu_wait(pid, 10000);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    f = fopen(log, "r");
    assert_non_null(f);
    out = calloc(1, 256);
    assert_true(fread(out, 1, 255, f) > 0);
    fclose(f);
    assert_string_equal(out, "hello there\noops\n");
    free(out);
    free(script);

    /* A child that does not end: wait times out, kill ends it. */
    argv[0] = "/bin/sleep";
    argv[1] = "100";
    pid = tu_spawn(argv, NULL, NULL);
    assert_int_equal(tu_wait(pid, 50), -1);
    tu_kill(pid);
    assert_int_equal(kill(pid, 0), -1);

    /* A program that cannot run exits 127. */
    argv[0] = "/nonexistent/prog";
    argv[1] = NULL;
    pid = tu_spawn(argv, NULL, "/dev/null");
    status = tu_wait(pid, 10000);
    assert_int_equal(WEXITSTATUS(status), 127);

    assert_int_equal(access(tu_source_path("tests/support/testutil.h"), F_OK),
                     0);
    assert_int_equal(access(tu_build_path("build.ninja"), F_OK), 0);
    tu_rmtree(dir);
}

/* sh -c script through tu_run; *out and *err as tu_run sets them. */
static int
run_sh(const char *script, char *const env[], const char *input, char **out,
       char **err, int timeout_ms)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};

    return tu_run(argv, env, input, out, err, timeout_ms);
}

static void
test_run(void **state)
{
    char *env[] = {"TU_WORD=bird", NULL};
    char *out, *err, *big;
    struct sigaction sa;
    size_t i, n = 1 << 20;

    (void)state;
    /* stdin given, both outputs apart, the exit status. */
    assert_int_equal(run_sh("cat; echo \"$TU_WORD\" >&2; exit 4", env,
                            "line one\nline two\n", &out, &err, 10000),
                     4);
    assert_string_equal(out, "line one\nline two\n");
    assert_string_equal(err, "bird\n");
    free(out);
    free(err);

    /* No input: stdin is at EOF at once (cat would wait for ever). */
    assert_int_equal(run_sh("cat; echo done", NULL, NULL, &out, &err, 10000),
                     0);
    assert_string_equal(out, "done\n");
    free(out);
    free(err);

    /* Ended by a signal: 128 + its number, as a shell says. */
    assert_int_equal(run_sh("kill -TERM $$", NULL, NULL, &out, &err, 10000),
                     128 + SIGTERM);
    free(out);
    free(err);

    /* A megabyte each way: no deadlock while the child waits for its stdout
     * to be read; and a child that reads none of it kills no one with
     * SIGPIPE, the test's disposition of SIGPIPE stays as it was. */
    big = malloc(n + 1);
    assert_non_null(big);
    for (i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    assert_int_equal(run_sh("cat", NULL, big, &out, &err, 60000), 0);
    assert_string_equal(out, big);
    free(out);
    free(err);
    assert_int_equal(run_sh("exit 7", NULL, big, &out, &err, 60000), 7);
    free(out);
    free(err);
    free(big);
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);

    /* Still running at the deadline: -1, and it is gone. */
    assert_int_equal(run_sh("echo early; exec sleep 100", NULL, NULL, &out,
                            &err, 200),
                     -1);
    assert_string_equal(out, "early\n");
    free(out);
    free(err);

    /* A program that cannot run: 127, and why on stderr. */
    {
        char *argv[] = {"/nonexistent/prog", NULL};

        assert_int_equal(tu_run(argv, NULL, NULL, &out, &err, 10000), 127);
        assert_non_null(strstr(err, "cannot run /nonexistent/prog"));
        free(out);
        free(err);
    }
}

static void
test_read_file(void **state)
{
    char *dir = tu_tmpdir(), *path, *s, missing[256];

    (void)state;
    snprintf(missing, sizeof missing, "%s/none", dir);
    errno = 0;
    assert_null(tu_read_file(missing));
    assert_int_equal(errno, ENOENT);
    path = tu_write_file(dir, "empty", "");
    s = tu_read_file(path);
    assert_string_equal(s, "");
    free(s);
    free(path);
    path = tu_write_file(dir, "text", "one\ntwo\n");
    s = tu_read_file(path);
    assert_string_equal(s, "one\ntwo\n");
    free(s);
    free(path);
    tu_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_echo, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_deepest_value, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_msgids_and_out_of_order,
                                        setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_notification_and_read, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_raw_garbage_and_eof, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_quit_is_eof, setup_pair,
                                        teardown_pair),
        cmocka_unit_test(test_connect_path),
        cmocka_unit_test(test_processes_and_files),
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_read_file),
    };

    return cmocka_run_group_tests_name("support/testutil", tests, NULL, NULL);
}
