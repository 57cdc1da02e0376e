/*
 * unixsock: connect, probe a path, clear a stale socket, check a peer. Real
 * sockets in a private temp dir; another uid is played by a child that drops
 * to nobody (run as root only).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "unixsock.h"

struct fx {
    char dir[64];
    char path[128];
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/jus-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A socket bound at path; listening when listen_too. */
static int
bound_socket(const char *path, int listen_too)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (listen_too)
        assert_int_equal(listen(fd, 8), 0);
    return fd;
}

/* Open fds of this process (a leak shows as a larger count). */
static int
count_fds(void)
{
    int n = 0;

    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return n;
}

static void
test_connect_and_probe(void **state)
{
    struct fx *f = *state;
    char longpath[200];
    int lfd, fd, before;

    /* Nothing there. */
    assert_int_equal(unixsock_probe(f->path), 0);
    assert_int_equal(unixsock_connect(f->path, 0, &fd), -ENOENT);

    /* A socket file nobody listens on: stale. */
    lfd = bound_socket(f->path, 0);
    assert_int_equal(unixsock_probe(f->path), 0);
    assert_int_equal(unixsock_connect(f->path, 0, &fd), -ECONNREFUSED);
    close(lfd);
    unlink(f->path);

    /* A live listener. */
    lfd = bound_socket(f->path, 1);
    assert_int_equal(unixsock_probe(f->path), 1);
    assert_int_equal(unixsock_connect(f->path, SOCK_NONBLOCK, &fd), 0);
    assert_true(fd >= 0);
    close(fd);
    close(lfd);
    unlink(f->path);

    /* A path past sun_path: refused before any fd exists, none leaks. */
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    before = count_fds();
    for (int i = 0; i < 50; i++) {
        assert_int_equal(unixsock_probe(longpath), -ENAMETOOLONG);
        assert_int_equal(unixsock_connect(longpath, 0, &fd), -ENAMETOOLONG);
    }
    assert_int_equal(count_fds(), before);
}

static void
test_clear_stale(void **state)
{
    struct fx *f = *state;
    char *cause = NULL;
    struct stat st;
    FILE *file;
    int lfd;

    /* Nothing there is fine. */
    assert_int_equal(unixsock_clear_stale(f->path, &cause), 0);
    assert_null(cause);

    /* A stale socket is removed. */
    lfd = bound_socket(f->path, 0);
    close(lfd);
    assert_int_equal(unixsock_clear_stale(f->path, &cause), 0);
    assert_int_equal(lstat(f->path, &st), -1);

    /* A live one is left alone, with words. */
    lfd = bound_socket(f->path, 1);
    assert_int_equal(unixsock_clear_stale(f->path, &cause), -EADDRINUSE);
    assert_non_null(cause);
    assert_non_null(strstr(cause, f->path));
    assert_non_null(strstr(cause, "another process is serving on it"));
    free(cause);
    assert_int_equal(lstat(f->path, &st), 0);
    close(lfd);
    unlink(f->path);

    /* Something that is not a socket is never removed. */
    file = fopen(f->path, "w");
    assert_non_null(file);
    fclose(file);
    assert_int_equal(unixsock_clear_stale(f->path, &cause), -EEXIST);
    assert_non_null(strstr(cause, "not a socket"));
    free(cause);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* cause may be NULL. */
    assert_int_equal(unixsock_clear_stale(f->path, NULL), -EEXIST);
    unlink(f->path);
}

static void
test_peer_is_us(void **state)
{
    char *cause = NULL;
    uid_t uid = 12345;
    pid_t pid = 0;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(unixsock_check_peer(sv[0], &uid, &pid, &cause), 0);
    assert_null(cause);
    assert_int_equal(uid, geteuid());
    assert_int_equal(pid, getpid());
    assert_int_equal(unixsock_check_peer(sv[1], NULL, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
    /* A closed fd: the getsockopt error, with words. */
    assert_int_equal(unixsock_check_peer(sv[0], NULL, NULL, &cause), -EBADF);
    assert_non_null(strstr(cause, "SO_PEERCRED"));
    free(cause);
}

/* Another user connects: refused. Needs root to become nobody. */
static void
test_peer_of_another_uid(void **state)
{
    struct fx *f = *state;
    char *cause = NULL;
    int lfd, cfd, status, r;
    uid_t uid = 0;
    pid_t child;

    if (geteuid() != 0) {
        skip();
        return;
    }
    lfd = bound_socket(f->path, 1);
    /* nobody must be able to reach the socket. */
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chmod(f->path, 0777), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int fd;

        if (setuid(65534) != 0)
            _exit(2);
        _exit(unixsock_connect(f->path, 0, &fd) == 0 ? 0 : 3);
    }
    cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    r = unixsock_check_peer(cfd, &uid, NULL, &cause);
    assert_int_equal(r, -EPERM);
    assert_int_equal(uid, 65534);
    assert_non_null(strstr(cause, "uid 65534 is refused"));
    free(cause);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(cfd);
    close(lfd);
}

/* The send buffer grows to UNIXSOCK_SNDBUF, or to what wmem_max allows,
 * and never shrinks (Linux reports twice the value set). */
static void
test_grow_sndbuf(void **state)
{
    FILE *f = fopen("/proc/sys/net/core/wmem_max", "r");
    long wmem_max = 0;
    int sv[2], before = 0, after = 0;
    socklen_t len = sizeof before;
    long want;
    (void)state;

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld", &wmem_max), 1);
    fclose(f);
    want = wmem_max < UNIXSOCK_SNDBUF ? wmem_max : UNIXSOCK_SNDBUF;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &before, &len),
                     0);
    assert_int_equal(unixsock_grow_sndbuf(sv[0]), 0);
    len = sizeof after;
    assert_int_equal(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &after, &len), 0);
    assert_int_equal(after, 2 * want > before ? 2 * want : before);
    assert_int_equal(unixsock_grow_sndbuf(-1), -EBADF);
    close(sv[0]);
    close(sv[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_and_probe, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_clear_stale, setup, teardown),
        cmocka_unit_test(test_peer_is_us),
        cmocka_unit_test(test_grow_sndbuf),
        cmocka_unit_test_setup_teardown(test_peer_of_another_uid, setup,
                                        teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
