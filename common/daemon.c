/*
 * Daemonizing with a readiness pipe. The classic double fork (fork, setsid,
 * fork) detaches the daemon from the caller's session and terminal and makes
 * sure it can never reacquire one; the pipe lets the original process wait
 * until the daemon really serves, so "started" means "connectable", not merely
 * "forked".
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Closes every fd from `lo` up to `hi` (inclusive), close_range if it exists.
 */
static void
daemon__close_range(unsigned int lo, unsigned int hi)
{
    long max;
    unsigned int fd;

    if (lo > hi)
        return;
    if (close_range(lo, hi, 0) == 0)
        return;
    /* Old kernels: close one by one, up to the fd limit. */
    max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (fd = lo; fd <= hi && fd < (unsigned int)max; fd++)
        close((int)fd);
}

/* In the daemon: stdio to /dev/null (stdout/stderr to the log when given), and
 * every other inherited fd closed except `keep` and the readiness pipe. */
static int
daemon__stdio(const char *logpath, int keep, int ready)
{
    int nullfd, outfd, kept[2], n, i;
    unsigned int lo;

    nullfd = open("/dev/null", O_RDWR);
    if (nullfd == -1)
        return -1;
    outfd = nullfd;
    if (logpath != NULL) {
        outfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0600);
        if (outfd == -1)
            return -1;
    }
    if (dup2(nullfd, 0) == -1 || dup2(outfd, 1) == -1 || dup2(outfd, 2) == -1)
        return -1;
    if (outfd > 2 && outfd != keep && outfd != ready)
        close(outfd);
    if (nullfd > 2 && nullfd != outfd && nullfd != keep && nullfd != ready)
        close(nullfd);

    /* The caller's other fds (a client's sockets, a Python program's files)
     * must not live on in a process that may run for hours. */
    n = 0;
    if (keep > 2)
        kept[n++] = keep;
    if (ready > 2 && ready != keep)
        kept[n++] = ready;
    if (n == 2 && kept[0] > kept[1]) {
        int t = kept[0];
        kept[0] = kept[1];
        kept[1] = t;
    }
    lo = 3;
    for (i = 0; i < n; i++) {
        if ((unsigned)kept[i] > lo)
            daemon__close_range(lo, (unsigned)kept[i] - 1);
        lo = (unsigned)kept[i] + 1;
    }
    daemon__close_range(lo, ~0U);
    return 0;
}

int
daemon_start(const char *logpath, int keep_fd, int *ready_fd)
{
    int p[2], status, err;
    pid_t pid, pid2;
    ssize_t n;
    char c;

    if (pipe2(p, O_CLOEXEC) == -1)
        return -errno;
    /* Whatever stdio holds would otherwise be written twice: once by us and
     * once by the daemon when it exits. */
    fflush(NULL);
    pid = fork();
    if (pid == -1) {
        err = errno;
        close(p[0]);
        close(p[1]);
        return -err;
    }
    if (pid != 0) {
        /* The original process: reap the intermediate child, then wait for
         * the daemon's word. EOF without a byte means it died before ready. */
        close(p[1]);
        while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
            ;
        do {
            n = read(p[0], &c, 1);
        } while (n == -1 && errno == EINTR);
        close(p[0]);
        if (n == 1 && c == '1')
            return 1;
        return -EIO;
    }

    /* The intermediate child: a new session, then fork again so the daemon is
     * not a session leader and can never acquire a controlling terminal. */
    close(p[0]);
    if (setsid() == -1)
        _exit(1);
    pid2 = fork();
    if (pid2 == -1)
        _exit(1);
    if (pid2 != 0)
        _exit(0);

    /* The daemon. */
    if (chdir("/") == -1)
        _exit(1);
    if (daemon__stdio(logpath, keep_fd, p[1]) == -1)
        _exit(1);
    *ready_fd = p[1];
    return 0;
}

void
daemon_ready(int ready_fd, int ok)
{
    struct sigaction sa, old;
    char c = ok ? '1' : '0';
    ssize_t n;

    if (ready_fd < 0)
        return;
    /* The waiting parent may have gone away; that must not kill the daemon
     * with SIGPIPE. */
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, &old);
    do {
        n = write(ready_fd, &c, 1);
    } while (n == -1 && errno == EINTR);
    sigaction(SIGPIPE, &old, NULL);
    close(ready_fd);
}
