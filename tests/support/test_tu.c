/*
 * tu tested: tu_rpc against a forked echo peer (over a socketpair and over a
 * listening socket), out-of-order replies, notifications, errors, EOF; the
 * process and file helpers; waits with deadlines, on their own and on a loop.
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
#include "tu_loop.h"
#include "tu_rpc.h"

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
    assert_int_equal(tu_wait(fx->peer, TU_WAIT_MS), 0);
    free(fx);
    return 0;
}

static void
test_call_echo(void **state)
{
    struct fx *fx = *state;

    tu_rpc_check(fx->c, "echo", "[]", "[]");
    tu_rpc_check(fx->c, "echo", "[1, \"two\", {\"three\": [3.5, null, true]}]",
                 "[1,\"two\",{\"three\":[3.5,null,true]}]");
    /* The special forms cross as bin/timestamp/bigint and come back. */
    tu_rpc_check(
        fx->c, "echo",
        "[{\"$bin\": \"AAE=\"}, {\"$date\": "
        "\"2026-11-21T23:30:46.123Z\"}, {\"$bigint\": "
        "\"-123456789012345678901234567890\"}, 18446744073709551615]",
        "[{\"$bin\":\"AAE=\"},{\"$date\":\"2026-11-21T23:30:46.123Z\"},"
        "{\"$bigint\":\"-123456789012345678901234567890\"},"
        "18446744073709551615]");
    tu_rpc_check(fx->c, "nope", "[]", "!NotFound: no method 'nope'");
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
    tu_rpc_check(fx->c, "echo", params, want);
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
    assert_int_equal(tu_rpc_wait(fx->c, hold, &msg, TU_WAIT_MS), 1);
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
    assert_int_equal(tu_rpc_wait(fx->c, id, &msg, TU_WAIT_MS), 1);
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
    assert_int_equal(tu_rpc_read(fx->c, &msg, TU_WAIT_MS), 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&msg, "error"));
    e = &msg.params.via.array.ptr[0];
    assert_true(proto_obj_streq(proto_map_get(e, "type"), "ProtocolError"));
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(fx->c, &msg, TU_WAIT_MS), -1);
    assert_string_equal(tu_rpc_error(fx->c), "end of stream");
    /* And it stays ended; a call gives NULL, not a hang. */
    assert_null(tu_rpc_call(fx->c, "echo", "[]"));
}

static void
test_quit_is_eof(void **state)
{
    struct fx *fx = *state;

    assert_null(tu_rpc_call(fx->c, "quit", "[]"));
}

/* A peer that listens at `path` once a byte comes on `go`, then echoes on
 * the connections that send something. */
static pid_t
listening_peer(const char *path, int go[2])
{
    struct sockaddr_un sa;
    pid_t pid;
    int lfd, fd;
    char c;

    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid != 0) {
        close(go[0]);
        return pid;
    }
    close(go[1]);
    if (read(go[0], &c, 1) != 1)
        _exit(5);
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
    int go[2];
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
    assert_int_equal(pipe(go), 0);
    pid = listening_peer(path, go);
    /* It listens only when told: a wait that ends before says so. */
    assert_false(tu_wait_socket(path, 30));
    assert_int_equal(write(go[1], "g", 1), 1);
    close(go[1]);
    assert_true(tu_wait_socket(path, TU_WAIT_MS));
    c = tu_rpc_connect(path);
    assert_non_null(c);
    assert_true(tu_rpc_fd(c) >= 0);
    s = tu_rpc_call(c, "echo", "[\"over a socket\"]");
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
    status = tu_wait(pid, TU_WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    out = tu_read_file(log);
    assert_string_equal(out, "hello there\noops\n");
    free(out);
    assert_true(tu_file_contains(log, "oops"));
    assert_false(tu_file_contains(log, "hello again"));
    free(script);

    /* A descriptor handed over as the child's fd 3. */
    {
        char *sh[] = {"/bin/sh", "-c", "echo handed >&3", NULL};
        int p[2];
        char buf[16] = "";

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = tu_spawn_fd(sh, NULL, NULL, p[1], 3);
        close(p[1]);
        assert_int_equal(tu_wait(pid, TU_WAIT_MS), 0);
        assert_true(tu_readable(p[0], TU_WAIT_MS));
        assert_int_equal(read(p[0], buf, sizeof buf - 1), 7);
        assert_string_equal(buf, "handed\n");
        /* The writer is gone: readable (EOF), not a wait to the deadline. */
        assert_true(tu_readable(p[0], TU_WAIT_MS));
        close(p[0]);
    }

    /* A child that does not end: wait times out, kill ends it. */
    argv[0] = "/bin/sleep";
    argv[1] = "100";
    pid = tu_spawn(argv, NULL, NULL);
    assert_int_equal(tu_wait(pid, 50), -1);
    assert_false(tu_pid_gone(pid));
    tu_kill(pid);
    assert_int_equal(kill(pid, 0), -1);
    assert_true(tu_pid_gone(pid));
    /* A zombie nobody reaped yet counts as gone. */
    argv[0] = "/bin/true";
    argv[1] = NULL;
    pid = tu_spawn(argv, NULL, NULL);
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    assert_int_equal(kill(pid, 0), 0);
    assert_int_equal(tu_wait(pid, TU_WAIT_MS), 0);

    /* A program that cannot run exits 127. */
    argv[0] = "/nonexistent/prog";
    argv[1] = NULL;
    pid = tu_spawn(argv, NULL, "/dev/null");
    status = tu_wait(pid, TU_WAIT_MS);
    assert_int_equal(WEXITSTATUS(status), 127);

    assert_int_equal(access(tu_source_path("tests/support/tu.h"), F_OK), 0);
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
                            "line one\nline two\n", &out, &err, TU_WAIT_MS),
                     4);
    assert_string_equal(out, "line one\nline two\n");
    assert_string_equal(err, "bird\n");
    free(out);
    free(err);

    /* No input: stdin is at EOF at once (cat would wait for ever). */
    assert_int_equal(
        run_sh("cat; echo done", NULL, NULL, &out, &err, TU_WAIT_MS), 0);
    assert_string_equal(out, "done\n");
    free(out);
    free(err);

    /* Ended by a signal: 128 + its number, as a shell says. */
    assert_int_equal(
        run_sh("kill -TERM $$", NULL, NULL, &out, &err, TU_WAIT_MS),
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
    assert_int_equal(
        run_sh("echo early; exec sleep 100", NULL, NULL, &out, &err, 200), -1);
    assert_string_equal(out, "early\n");
    free(out);
    free(err);

    /* A program that cannot run: 127, and why on stderr. */
    {
        char *argv[] = {"/nonexistent/prog", NULL};

        assert_int_equal(tu_run(argv, NULL, NULL, &out, &err, TU_WAIT_MS), 127);
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
    s = tu_read_text(missing);
    assert_string_equal(s, "");
    free(s);
    assert_false(tu_exists(missing));
    assert_int_equal(tu_file_size(missing), 0);
    assert_false(tu_file_contains(missing, ""));
    assert_int_equal(tu_read_pid(missing), 0);
    path = tu_write_file(dir, "pid", "4242\n");
    assert_true(tu_exists(path));
    assert_int_equal(tu_file_size(path), 5);
    assert_int_equal(tu_read_pid(path), 4242);
    free(path);
    path = tu_write_file(dir, "nopid", "none\n");
    assert_int_equal(tu_read_pid(path), 0);
    free(path);
    path = tu_path(dir, "a");
    assert_int_equal(strlen(path), strlen(dir) + 2);
    assert_string_equal(path + strlen(dir), "/a");
    free(path);
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

static int ticks;

static bool
tick(int until)
{
    return ++ticks >= until;
}

static void
on_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void
test_waits(void **state)
{
    struct tu_deadline d;
    int64_t t0;
    uv_loop_t loop;
    uv_timer_t timer;
    bool fired = false;

    (void)state;
    /* The condition is tested until it holds, each test a step. */
    ticks = 0;
    TU_UNTIL(tick(3), TU_WAIT_MS);
    assert_int_equal(ticks, 3);
    /* A condition true at once costs no wait. */
    TU_UNTIL(tick(0), 0);
    /* Past its deadline a wait says so at once. */
    t0 = tu_now_ms();
    d = tu_deadline_start(20);
    while (tu_deadline_wait(&d))
        ;
    assert_true(tu_deadline_passed(&d));
    assert_true(tu_now_ms() - t0 >= 20);
    assert_false(tu_deadline_wait(&d));

    /* A loop runs until its timer fired; no handle of the wait is left. */
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_timer_init(&loop, &timer), 0);
    timer.data = &fired;
    assert_int_equal(uv_timer_start(&timer, on_timer, 30, 0), 0);
    TU_LOOP_UNTIL(&loop, fired, TU_WAIT_MS);
    assert_int_equal(uv_loop_alive(&loop), 0);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* What a failed wait says, run in a process of its own (see main). */
static void
fail_until(void **state)
{
    (void)state;
    TU_UNTIL(1 == 2, 20);
}

static void
fail_loop_until(void **state)
{
    uv_loop_t loop;

    (void)state;
    uv_loop_init(&loop);
    TU_LOOP_UNTIL(&loop, 3 == 4, 20);
}

static void
test_failed_waits_say_why(void **state)
{
    char *argv[] = {NULL, "--fail", NULL}, *out, *err, *all, self[4096];
    ssize_t n;

    (void)state;
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    argv[0] = self;
    assert_int_not_equal(tu_run(argv, NULL, NULL, &out, &err, TU_WAIT_MS), 0);
    /* cmocka writes failures to one stream or the other, by version. */
    assert_true(asprintf(&all, "%s%s", out, err) > 0);
    if (strstr(all, "test_tu.c:") == NULL ||
        strstr(all, ": waited 20 ms for: 1 == 2") == NULL ||
        strstr(all, ": waited 20 ms for: 3 == 4") == NULL)
        fail_msg("the failed waits said:\n%s", all);
    free(all);
    free(out);
    free(err);
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--fail") == 0) {
        const struct CMUnitTest failing[] = {
            cmocka_unit_test(fail_until),
            cmocka_unit_test(fail_loop_until),
        };

        return cmocka_run_group_tests_name("failing", failing, NULL, NULL);
    }
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
        cmocka_unit_test(test_waits),
        cmocka_unit_test(test_failed_waits_say_why),
    };

    return cmocka_run_group_tests_name("support/tu", tests, NULL, NULL);
}
