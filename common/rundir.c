/*
 * The runtime directory (docs/protocol.md, "Transport and security"): where the manager's socket, lock, pid file
 * and logs live. It is a security boundary (STYLE rule 7): anyone who can write
 * into it can put a socket of their own in the manager's place, so it must be a
 * real directory, ours, and closed to group and others. It is lstat-checked and
 * never chmod-ed into shape: a directory in a bad state is refused with words.
 */
#include "rundir.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "jshost_defs.h"

/* A malloc'd message for `cause`; NULL-safe (cause may be NULL). */
__attribute__((format(printf, 2, 3))) static void
rundir__cause(char **cause, const char *fmt, ...)
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
rundir_check(const char *path, char **cause)
{
    struct stat sb;

    if (cause != NULL)
        *cause = NULL;
    /* lstat, not stat: a symlink could point anywhere, even at a directory we
     * own today and someone else swaps tomorrow. */
    if (lstat(path, &sb) == -1) {
        int err = errno;
        rundir__cause(cause, "runtime dir %s: %s", path, strerror(err));
        return -err;
    }
    if (S_ISLNK(sb.st_mode)) {
        rundir__cause(cause,
                      "runtime dir %s: is a symbolic link (refused: it must be "
                      "a real directory)",
                      path);
        return -ENOTDIR;
    }
    if (!S_ISDIR(sb.st_mode)) {
        rundir__cause(cause, "runtime dir %s: not a directory", path);
        return -ENOTDIR;
    }
    if (sb.st_uid != geteuid()) {
        rundir__cause(cause,
                      "runtime dir %s: owned by uid %lu, not by us (uid %lu)",
                      path, (unsigned long)sb.st_uid, (unsigned long)geteuid());
        return -EACCES;
    }
    if ((sb.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        rundir__cause(cause,
                      "runtime dir %s: open to group or others (mode %04o; "
                      "it must be 0700)",
                      path, (unsigned)(sb.st_mode & 07777));
        return -EACCES;
    }
    return 0;
}

int
rundir_join(char *buf, size_t len, const char *dir, const char *name)
{
    int n;

    n = snprintf(buf, len, "%s/%s", dir, name);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= len)
        return -ENAMETOOLONG;
    return 0;
}

int
rundir_check_sockpath(const char *path, char **cause)
{
    size_t n = strlen(path);

    if (cause != NULL)
        *cause = NULL;
    if (n + 1 > RUNDIR_SUN_PATH_MAX) {
        rundir__cause(cause,
                      "socket path %s: %zu bytes, longer than a Unix socket "
                      "address holds (%zu with its NUL)",
                      path, n, (size_t)RUNDIR_SUN_PATH_MAX);
        return -ENAMETOOLONG;
    }
    return 0;
}

/* mkdir 0700 when missing, then the full check. */
static int
rundir__make(const char *path, char **cause)
{
    if (mkdir(path, 0700) == -1 && errno != EEXIST) {
        int err = errno;
        rundir__cause(cause, "runtime dir %s: cannot create it: %s", path,
                      strerror(err));
        return -err;
    }
    return rundir_check(path, cause);
}

/* Where the runtime dir is, before any check: env, XDG, /tmp. */
static int
rundir__choose(char *buf, size_t len, char **cause)
{
    const char *env;
    char cwd[4096];
    int r;

    env = getenv("JSHOST_RUNTIME_DIR");
    if (env != NULL && *env != '\0') {
        /* A relative path would change meaning once a daemon chdir()s to /. */
        if (*env == '/')
            r = snprintf(buf, len, "%s", env) >= (int)len ? -ENAMETOOLONG : 0;
        else if (getcwd(cwd, sizeof cwd) == NULL)
            r = -errno;
        else
            r = rundir_join(buf, len, cwd, env);
        if (r != 0)
            rundir__cause(cause, "runtime dir $JSHOST_RUNTIME_DIR (%s): %s",
                          env, strerror(-r));
        return r;
    }
    env = getenv("XDG_RUNTIME_DIR");
    if (env != NULL && *env == '/') {
        r = rundir_join(buf, len, env, "jshost");
        if (r != 0)
            rundir__cause(cause, "runtime dir %s/jshost: %s", env,
                          strerror(-r));
        return r;
    }
    r = snprintf(buf, len, "/tmp/jshost-%lu", (unsigned long)geteuid());
    if (r < 0 || (size_t)r >= len) {
        rundir__cause(cause, "runtime dir /tmp/jshost-%lu: %s",
                      (unsigned long)geteuid(), strerror(ENAMETOOLONG));
        return -ENAMETOOLONG;
    }
    return 0;
}

int
rundir_resolve(char *buf, size_t len, char **cause)
{
    char hosts[4096];
    size_t n;
    int r;

    if (cause != NULL)
        *cause = NULL;
    r = rundir__choose(buf, len, cause);
    if (r != 0)
        return r;
    /* "dir/" and "dir" are the same directory; keep one spelling. */
    n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';

    r = rundir__make(buf, cause);
    if (r != 0)
        return r;
    r = rundir_join(hosts, sizeof hosts, buf, JSHOST_HOSTS_DIR);
    if (r != 0) {
        rundir__cause(cause, "runtime dir %s: %s", buf, strerror(-r));
        return r;
    }
    return rundir__make(hosts, cause);
}
