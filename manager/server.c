/*
 * The listening socket (docs/protocol.md, "Transport and security"): the path
 * is checked against sun_path before bind (libuv truncates silently), bound
 * with umask 0077 so that only we can connect; every peer's uid is checked
 * (unixsock_check_peer) as client.c accepts it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* Stops listening; unlinks the socket unless another manager replaced it. */
void
server_close(void)
{
    struct stat st;

    if (!server_open)
        return;
    server_open = false;
    if (stat(server_path, &st) == 0 && st.st_dev == server_dev &&
        st.st_ino == server_ino)
        unlink(server_path);
    uv_close((uv_handle_t *)&server_pipe, NULL);
}
