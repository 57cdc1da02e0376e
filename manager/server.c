/*
 * The listening socket (docs/protocol.md, "Transport and security"): the path
 * is checked against sun_path before bind (libuv truncates silently), bound
 * with umask 0077 so that only we can connect; every peer's uid is checked
 * (unixsock_check_peer) as client.c accepts it. Or, under systemd's socket
 * activation, the listening socket it hands over: served as it is, never
 * bound or unlinked by us (it is systemd's).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "rundir.h"
#include "xmalloc.h"

static uv_pipe_t server_pipe;
static bool server_open;
static char server_path[256];
static dev_t server_dev;
static ino_t server_ino;

static void
server_connection_cb(uv_stream_t *server, int status)
{
    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    client_accept(server);
}

int
server_listen(uv_loop_t *loop, const char *path, char **cause)
{
    struct stat st;
    mode_t old;
    int rc;

    rc = rundir_check_sockpath(path, cause);
    if (rc != 0)
        return rc;
    uv_pipe_init(loop, &server_pipe, 0);
    server_open = true;
    old = umask(0077);
    rc = uv_pipe_bind(&server_pipe, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server_pipe, SOMAXCONN,
                       server_connection_cb);
    if (rc != 0) {
        *cause = xasprintf("cannot listen on %s: %s", path, uv_strerror(rc));
        return rc;
    }
    snprintf(server_path, sizeof server_path, "%s", path);
    if (stat(path, &st) == 0) {
        server_dev = st.st_dev;
        server_ino = st.st_ino;
    }
    return 0;
}

/*
 * The listening socket systemd passed (sd_listen_fds(3), without libsystemd):
 * LISTEN_PID names this process and LISTEN_FDS counts descriptors from fd 3.
 * The variables are cleared either way, so that no worker inherits them. 1
 * with *fd, 0 when the process was not started that way, or a negative errno
 * with *cause when it was but fd 3 is no listening Unix stream socket.
 */
int
server_activation_fd(int *fd, char **cause)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    struct sockaddr_un sa;
    socklen_t len;
    char *end;
    long pid, n;
    int val, found = 0;

    if (pid_s != NULL && fds_s != NULL) {
        errno = 0;
        pid = strtol(pid_s, &end, 10);
        if (errno == 0 && *end == '\0' && pid == (long)getpid()) {
            n = strtol(fds_s, &end, 10);
            if (errno == 0 && *end == '\0' && n >= 1)
                found = 1;
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!found)
        return 0;
    len = sizeof val;
    if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) != 0 || !val) {
        *cause = xasprintf("LISTEN_FDS: fd 3 is not a listening socket");
        return -ENOTSOCK;
    }
    len = sizeof val;
    if (getsockopt(3, SOL_SOCKET, SO_TYPE, &val, &len) != 0 ||
        val != SOCK_STREAM) {
        *cause = xasprintf("LISTEN_FDS: fd 3 is not a stream socket");
        return -EPROTOTYPE;
    }
    len = sizeof sa;
    if (getsockname(3, (struct sockaddr *)&sa, &len) != 0 ||
        sa.sun_family != AF_UNIX) {
        *cause = xasprintf("LISTEN_FDS: fd 3 is not a Unix socket");
        return -EAFNOSUPPORT;
    }
    fcntl(3, F_SETFD, FD_CLOEXEC);
    *fd = 3;
    return 1;
}

int
server_listen_fd(uv_loop_t *loop, int fd, char **cause)
{
    int rc;

    uv_pipe_init(loop, &server_pipe, 0);
    server_open = true;
    /* server_path stays empty: server_close never unlinks systemd's socket. */
    server_path[0] = '\0';
    rc = uv_pipe_open(&server_pipe, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server_pipe, SOMAXCONN,
                       server_connection_cb);
    if (rc != 0) {
        *cause = xasprintf("cannot serve the socket systemd passed (fd %d): %s",
                           fd, uv_strerror(rc));
        return rc;
    }
    return 0;
}

/* Stops listening; unlinks the socket unless another manager replaced it (or
 * it is systemd's). */
void
server_close(void)
{
    struct stat st;

    if (!server_open)
        return;
    server_open = false;
    if (server_path[0] != '\0' && stat(server_path, &st) == 0 &&
        st.st_dev == server_dev && st.st_ino == server_ino)
        unlink(server_path);
    uv_close((uv_handle_t *)&server_pipe, NULL);
}
