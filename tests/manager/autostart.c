/*
 * The client side of auto-start (docs/lifecycle.md, "The manager"), as a test helper: connect; on
 * ENOENT/ECONNREFUSED take manager.lock; retry connect once; still refused →
 * unlink the stale socket and start the manager with the lock handed over in
 * JSHOST_START_LOCK_FD. Then `hello`, and print the manager's pid.
 *
 *   autostart MANAGER RUNDIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "jshost_defs.h"
#include "rundir.h"
#include "startlock.h"
#include "tu_rpc.h"

/* A connected fd, or a negative errno (ENOENT, ECONNREFUSED decide). */
static int
try_connect(const char *path)
{
    int fd = tu_connect(path);

    return fd >= 0 ? fd : -errno;
}

static int
start_manager(const char *manager, const char *rundir, int lockfd)
{
    char num[16];
    pid_t pid;
    int status;

    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* The lock goes to the manager, which drops it after listen(). */
        fcntl(lockfd, F_SETFD, 0);
        snprintf(num, sizeof num, "%d", lockfd);
        setenv("JSHOST_START_LOCK_FD", num, 1);
        execl(manager, manager, "--runtime-dir", rundir, (char *)NULL);
        _exit(127);
    }
    close(lockfd);
    /* The manager's first process returns once the daemon listens. */
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -EIO;
    return 0;
}

int
main(int argc, char **argv)
{
    char sock[256], lock[256];
    struct tu_rpc *c;
    char *res;
    int fd, lockfd;

    if (argc != 3) {
        fprintf(stderr, "usage: autostart MANAGER RUNDIR\n");
        return 2;
    }
    if (rundir_join(sock, sizeof sock, argv[2], JSHOST_MANAGER_SOCK) != 0 ||
        rundir_join(lock, sizeof lock, argv[2], JSHOST_MANAGER_LOCK) != 0)
        return 2;
    fd = try_connect(sock);
    if (fd == -ENOENT || fd == -ECONNREFUSED) {
        lockfd = startlock_acquire(lock);
        if (lockfd < 0 && lockfd != -EAGAIN) {
            fprintf(stderr, "autostart: lock: %s\n", strerror(-lockfd));
            return 1;
        }
        /* Always retry once: another client may have started it meanwhile. */
        fd = try_connect(sock);
        if (fd >= 0 && lockfd >= 0)
            startlock_release(lockfd);
        if (fd < 0 && lockfd >= 0) {
            unlink(sock);
            if (start_manager(argv[1], argv[2], lockfd) != 0) {
                fprintf(stderr, "autostart: the manager did not start\n");
                return 1;
            }
            fd = try_connect(sock);
        }
    }
    if (fd < 0) {
        fprintf(stderr, "autostart: connect %s: %s\n", sock, strerror(-fd));
        return 1;
    }
    c = tu_rpc_from_fd(fd);
    res = tu_rpc_call(c, "hello",
                      "[{\"client\": \"autostart\", \"protocol\": 1}]");
    if (res == NULL || res[0] == '!') {
        fprintf(stderr, "autostart: hello: %s\n", res ? res : "no answer");
        return 1;
    }
    {
        json_t *j = json_loads(res, 0, NULL);
        json_t *pid = j != NULL ? json_object_get(j, "pid") : NULL;

        if (pid == NULL)
            return 1;
        printf("%lld\n", (long long)json_integer_value(pid));
        json_decref(j);
    }
    free(res);
    tu_rpc_close(c);
    return 0;
}
