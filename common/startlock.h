/*
 * The manager start lock (docs/lifecycle.md, "The manager"), tmux's try → wait → retry: a client that
 * cannot connect takes the lock; if another process holds it, it waits for that
 * process to finish starting the manager and then retries connect once.
 */
#ifndef JSHOST_STARTLOCK_H
#define JSHOST_STARTLOCK_H

/*
 * Opens and flocks `path` (created 0600).
 *   >= 0   the lock fd: we hold the lock (the caller starts the manager, and the
 *          manager releases it after listen(); closing the fd also releases it)
 *   -EAGAIN  another process held it; we waited until it let go, and the
 *          caller should now retry connecting (the other process started it)
 *   other negative errno on failure (open/flock)
 */
int startlock_acquire(const char *path);

/* Releases a lock taken with startlock_acquire (closes the fd). */
void startlock_release(int fd);

#endif
