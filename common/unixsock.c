/* Unix sockets by path: connect, probe, clear a stale one, check the peer. */
#include "unixsock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A malloc'd message for `cause`; NULL-safe (cause may be NULL). */
__attribute__((format(printf, 2, 3))) static void
unixsock__cause(char **cause, const char *fmt, ...)
{
    va_list ap;
    char *s;

    if (cause == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) == -1)
        s = NULL;
    va_end(ap);
    *cause = s;
}

int
unixsock_connect(const char *path, int flags, int *fdp)
{
    struct sockaddr_un sa;
    size_t n = strlen(path);
    int fd, r;

    /* Checked before any fd exists: nothing to leak on the way out. */
    if (n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    if (fd < 0)
        return -errno;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        r = -errno;
        if (r == -EINTR)
            continue;
        /* An interrupted connect that went through meanwhile. */
        if (r == -EISCONN)
            break;
        close(fd);
        return r;
    }
    *fdp = fd;
    return 0;
}

int
unixsock_probe(const char *path)
{
    int fd, r = unixsock_connect(path, 0, &fd);

    if (r == 0) {
        close(fd);
        return 1;
    }
    if (r == -ENOENT || r == -ECONNREFUSED)
        return 0;
    return r;
}

int
unixsock_clear_stale(const char *path, char **cause)
{
    struct stat st;
    int r;

    if (cause != NULL)
        *cause = NULL;
    if (lstat(path, &st) < 0) {
        r = -errno;
        if (r == -ENOENT)
            return 0;
        unixsock__cause(cause, "%s: %s", path, strerror(-r));
        return r;
    }
    if (!S_ISSOCK(st.st_mode)) {
        unixsock__cause(cause, "%s: exists and is not a socket", path);
        return -EEXIST;
    }
    r = unixsock_probe(path);
    if (r == 1) {
        unixsock__cause(cause, "%s: another process is serving on it", path);
        return -EADDRINUSE;
    }
    if (r < 0) {
        unixsock__cause(cause, "%s: %s", path, strerror(-r));
        return r;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        r = -errno;
        unixsock__cause(cause, "%s: cannot remove the stale socket: %s", path,
                        strerror(-r));
        return r;
    }
    return 0;
}

int
unixsock_check_peer(int fd, uid_t *uid, pid_t *pid, char **cause)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int r;

    if (cause != NULL)
        *cause = NULL;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        r = -errno;
        unixsock__cause(cause, "SO_PEERCRED: %s", strerror(-r));
        return r;
    }
    if (uid != NULL)
        *uid = cred.uid;
    if (pid != NULL)
        *pid = cred.pid;
    if (cred.uid != geteuid()) {
        unixsock__cause(cause, "uid %lu is refused: this side runs as uid %lu",
                        (unsigned long)cred.uid, (unsigned long)geteuid());
        return -EPERM;
    }
    return 0;
}

int
unixsock_grow_sndbuf(int fd)
{
    int want = UNIXSOCK_SNDBUF, had, now;
    socklen_t len = sizeof had;

    /* Linux caps the value at wmem_max silently, and reports twice what
     * was set; where wmem_max is below the default, setting would shrink
     * the buffer, so the old size is put back. */
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &had, &len) != 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) != 0)
        return -errno;
    len = sizeof now;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &now, &len) == 0 && now < had) {
        had /= 2;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &had, sizeof had);
    }
    return 0;
}
