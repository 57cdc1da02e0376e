/*
 * The runtime directory (docs/protocol.md, "Transport and security") and socket-path checks. A security boundary:
 * the directory must be ours, a real directory, and closed to group and others.
 */
#ifndef JSHOST_RUNDIR_H
#define JSHOST_RUNDIR_H

#include <stddef.h>
#include <sys/un.h>

/* sizeof(((struct sockaddr_un *)0)->sun_path): 108 on Linux. */
#define RUNDIR_SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/*
 * Resolves the runtime dir: $JSHOST_RUNTIME_DIR, else $XDG_RUNTIME_DIR/jshost,
 * else /tmp/jshost-<uid>; creates it 0700 if missing (and its hosts/ subdir),
 * then checks it with rundir_check. Writes the path into buf (len bytes).
 * 0, or a negative errno with `cause` (malloc'd, caller frees) saying which path
 * and why.
 */
int rundir_resolve(char *buf, size_t len, char **cause);

/*
 * lstat-checks an existing runtime dir: a directory (not a symlink, not a file),
 * owned by our uid, no group/other permission bits.
 *   -ENOTDIR  not a directory (or a symlink)
 *   -EACCES   another owner, or open to group/others
 * 0, or negative errno with a malloc'd `cause`.
 */
int rundir_check(const char *path, char **cause);

/*
 * Joins dir and name into buf (len bytes). -ENAMETOOLONG when it does not fit.
 */
int rundir_join(char *buf, size_t len, const char *dir, const char *name);

/*
 * -ENAMETOOLONG when `path` does not fit sun_path with its NUL (libuv 1.44's
 * uv_pipe_bind/uv_pipe_connect truncate silently); 0 otherwise. With `cause`
 * non-NULL a malloc'd message names the path.
 */
int rundir_check_sockpath(const char *path, char **cause);

#endif
