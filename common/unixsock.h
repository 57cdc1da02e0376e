/*
 * Unix sockets by path, for daemons and clients alike: one connect, one probe
 * of whether a path has a live listener, one way to clear a stale socket, one
 * peer check (docs/protocol.md, "Transport and security"). Nothing here
 * prints, exits or aborts; where words help, `cause` (may be NULL) gets a
 * malloc'd message that names the path, for the caller to free.
 */
#ifndef JSHOST_UNIXSOCK_H
#define JSHOST_UNIXSOCK_H

#include <sys/types.h>

/*
 * Connects a new SOCK_STREAM socket (close-on-exec, plus `flags` such as
 * SOCK_NONBLOCK) to path. 0 with *fdp, or a negative errno with nothing left
 * open: -ENAMETOOLONG when path does not fit sun_path, -ENOENT or
 * -ECONNREFUSED when nobody listens there, -EAGAIN when a non-blocking
 * connect finds the listener's backlog full.
 */
int unixsock_connect(const char *path, int flags, int *fdp);

/*
 * 1 when something accepts connections on path, 0 when nothing does (no
 * file, or a socket nobody listens on), a negative errno otherwise.
 */
int unixsock_probe(const char *path);

/*
 * Makes way for a listener at path: nothing there is fine, a socket nobody
 * listens on is unlinked. 0, or a negative errno with *cause:
 *   -EADDRINUSE  a live listener serves there
 *   -EEXIST      the path is something other than a socket
 * Call it only while holding whatever lock keeps two servers from starting
 * at once, or two may each take the other's socket for stale.
 */
int unixsock_clear_stale(const char *path, char **cause);

/*
 * The peer of a connected Unix socket runs as our effective uid
 * (SO_PEERCRED reports the peer's effective uid, so that is what it is
 * compared with: a set-uid client is judged by the uid it acts as, as the
 * socket file's permissions judge it). *uid and *pid (either may be NULL)
 * get the peer's. 0, or a negative errno with *cause: -EPERM for another
 * user.
 */
int unixsock_check_peer(int fd, uid_t *uid, pid_t *pid, char **cause);

/*
 * Lets fd hold up to UNIXSOCK_SNDBUF unsent bytes, or as many as the system
 * allows (net.core.wmem_max): a big message then crosses in one write and
 * one wake-up of the reader instead of one per default-sized bufferful.
 * Costs nothing until bytes are in flight. Best effort: 0, or a negative
 * errno that the caller may ignore.
 */
#define UNIXSOCK_SNDBUF (4 * 1024 * 1024)
int unixsock_grow_sndbuf(int fd);

#endif
