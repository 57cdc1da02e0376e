/*
 * Detaching a daemon with a readiness pipe: the starting process waits until the
 * daemon says it is serving (or failed), so a client connects only once the
 * socket listens.
 */
#ifndef JSHOST_DAEMON_H
#define JSHOST_DAEMON_H

/*
 * Forks, setsid()s and forks again; stdin/stdout/stderr go to /dev/null (or to
 * `logpath`'s fd for stdout/stderr when not NULL). In the original process it
 * waits for the daemon's readiness byte and returns:
 *   1   in the original process: the daemon reported ready
 *  <0   in the original process: the daemon failed before ready (-EIO) or
 *       fork failed (negative errno)
 *   0   in the daemon: *ready_fd is the pipe end to pass to daemon_ready()
 * keep_fd (or -1) is an fd the daemon keeps open across (e.g. the start lock);
 * it must be above 2. Every other inherited fd above 2 is closed in the daemon.
 * The daemon's cwd is /.
 */
int daemon_start(const char *logpath, int keep_fd, int *ready_fd);

/* In the daemon: tells the waiting parent that it serves (ok=1) or failed (0). */
void daemon_ready(int ready_fd, int ok);

#endif
