/*
 * daemon: the original process returns only once the daemon says ready or
 * failed; the daemon is detached (own session, not its leader), its stdio
 * point at /dev/null or the log, keep_fd survives and other fds do not.
 * Each daemon reports through keep_fd (a pipe) and then _exit()s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "daemon.h"

/* Reads what the daemon wrote on the pipe until EOF (all writers gone). */
static char *
read_report(int fd)
{
    static char buf[1024];
    size_t n = 0;
    ssize_t r;

    for (;;) {
        if (!tu_readable(fd, TU_WAIT_MS))
            fail_msg("the daemon neither wrote nor closed its end in %d ms "
                     "(so far: %.*s)",
                     TU_WAIT_MS, (int)n, buf);
        r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r == -1 && errno == EINTR)
            continue;
        assert_true(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

/* In the daemon: what it can see of itself, on keep_fd. */
static void
daemon_report(int keep, int other, pid_t parent_sid)
{
    char buf[512], cwd[64], in[64];
    ssize_t n;

    n = readlink("/proc/self/fd/0", in, sizeof in - 1);
    in[n > 0 ? n : 0] = '\0';
    if (getcwd(cwd, sizeof cwd) == NULL)
        strcpy(cwd, "?");
    snprintf(buf, sizeof buf,
             "keep=%s other=%s stdin=%s cwd=%s leader=%s newsid=%s\n",
             fcntl(keep, F_GETFD) != -1 ? "open" : "closed",
             fcntl(other, F_GETFD) == -1 && errno == EBADF ? "closed" : "open",
             in, cwd, getsid(0) == getpid() ? "yes" : "no",
             getsid(0) != parent_sid ? "yes" : "no");
    if (write(keep, buf, strlen(buf)) < 0)
        _exit(3);
}

static void
test_ready(void **state)
{
    char *tmp = tu_tmpdir(), *logpath = tu_path(tmp, "daemon.log"), *log;
    int p[2], other, ready = -1, r;
    pid_t sid = getsid(0);

    (void)state;
    assert_int_equal(pipe(p), 0);
    other = open("/dev/null", O_RDONLY);
    assert_true(other > 2);
    r = daemon_start(logpath, p[1], &ready);
    if (r == 0) {
        daemon_report(p[1], other, sid);
        printf("hello from the daemon\n");
        fflush(stdout);
        fprintf(stderr, "and its stderr\n");
        daemon_ready(ready, 1);
        _exit(0);
    }
    assert_int_equal(r, 1);
    close(p[1]);
    close(other);
    assert_string_equal(read_report(p[0]),
                        "keep=open other=closed stdin=/dev/null cwd=/ "
                        "leader=no newsid=yes\n");
    close(p[0]);
    /* The daemon wrote its log lines before saying ready. */
    log = tu_read_file(logpath);
    assert_non_null(log);
    assert_string_equal(log, "hello from the daemon\nand its stderr\n");
    free(log);
    free(logpath);
    tu_rmtree(tmp);
}

static void
test_failed(void **state)
{
    int p[2], ready = -1, r;

    (void)state;
    assert_int_equal(pipe(p), 0);
    r = daemon_start(NULL, p[1], &ready);
    if (r == 0) {
        daemon_ready(ready, 0);
        _exit(1);
    }
    assert_int_equal(r, -EIO);
    close(p[1]);
    read_report(p[0]); /* waits until the daemon is gone */
    close(p[0]);
}

static void
test_died_before_ready(void **state)
{
    int p[2], ready = -1, r;

    (void)state;
    assert_int_equal(pipe(p), 0);
    r = daemon_start(NULL, p[1], &ready);
    if (r == 0)
        _exit(1); /* no word at all: EOF on the pipe */
    assert_int_equal(r, -EIO);
    close(p[1]);
    read_report(p[0]);
    close(p[0]);
}

static void
test_no_log_no_keep(void **state)
{
    char *tmp = tu_tmpdir(), *flag = tu_path(tmp, "ok");
    int ready = -1, r, fd;
    char out[64];
    ssize_t n;

    (void)state;
    r = daemon_start(NULL, -1, &ready);
    if (r == 0) {
        /* stdout is /dev/null: writing to it works and goes nowhere. */
        n = readlink("/proc/self/fd/1", out, sizeof out - 1);
        out[n > 0 ? n : 0] = '\0';
        if (strcmp(out, "/dev/null") == 0 && printf("x\n") == 2) {
            fd = open(flag, O_WRONLY | O_CREAT, 0600);
            close(fd);
        }
        daemon_ready(ready, 1);
        _exit(0);
    }
    assert_int_equal(r, 1);
    assert_int_equal(access(flag, F_OK), 0);
    free(flag);
    tu_rmtree(tmp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_failed),
        cmocka_unit_test(test_died_before_ready),
        cmocka_unit_test(test_no_log_no_keep),
    };

    /* Nothing buffered may be duplicated into the daemons. */
    setvbuf(stdout, NULL, _IONBF, 0);
    return cmocka_run_group_tests_name("common/daemon", tests, NULL, NULL);
}
