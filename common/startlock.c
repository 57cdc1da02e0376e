/*
 * The manager start lock, with tmux's semantics (tmux client.c,
 * client_get_lock):
 *
 *   flock(LOCK_EX|LOCK_NB) succeeds → we are the one process that starts the
 *   manager; we keep the fd and the manager lets go of it after listen().
 *
 *   it fails with EWOULDBLOCK → someone else is starting it. We block on
 *   LOCK_EX until they let go, then close the fd (we do not keep the lock) and
 *   tell the caller to retry connect: by then the other process's manager
 *   listens. Keeping the lock here instead would make every waiter start a
 *   manager of its own in turn; returning without waiting would make the waiter
 *   connect before the socket exists. Waiting and retrying once is what makes N
 *   racing clients produce exactly one manager.
 *
 * flock locks belong to the open file description, so a forked daemon that
 * inherits the fd holds the same lock, and the lock goes away by itself when
 * the last holder dies: a crashed starter cannot wedge the others.
 */
#include "startlock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

int
startlock_acquire(const char *path)
{
    int fd, err;

    /* O_CLOEXEC: a client inside a bigger program must not leak the lock into
     * unrelated children (they would hold it for their whole life). Whoever
     * hands it to the manager passes it on explicitly. */
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    if (errno != EWOULDBLOCK) {
        err = errno;
        close(fd);
        return -err;
    }
    while (flock(fd, LOCK_EX) == -1) {
        if (errno != EINTR) {
            err = errno;
            close(fd);
            return -err;
        }
    }
    close(fd);
    return -EAGAIN;
}

void
startlock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}
