/* Finding the daemons (locate.h). */
#include "locate.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef JSHOST_LIBEXECDIR
#define JSHOST_LIBEXECDIR "/usr/local/libexec/jshost"
#endif
#ifndef JSHOST_BINDIR
#define JSHOST_BINDIR "/usr/local/bin"
#endif

/* How many directories above the anchor's own one are searched: enough for
 * PREFIX/lib/python3.11/site-packages/jshost/. */
#define LOCATE_LEVELS 4

static const struct {
    const char *name;
    const char *env;
    const char *build_dir; /* its folder in a build tree */
} daemons[] = {
    [LOCATE_MANAGER] = {"jshost-manager", "JSHOST_MANAGER", "manager"},
    [LOCATE_WORKER] = {"jshost-worker", "JSHOST_WORKER", "worker"},
};

const char *
locate_name(enum locate_daemon which)
{
    return daemons[which].name;
}

const char *
locate_env(enum locate_daemon which)
{
    return daemons[which].env;
}

static bool
executable(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

/* out = dir/rest when that is an executable file. */
static bool
try_path(char *out, size_t len, const char *dir, const char *rest)
{
    int n = snprintf(out, len, "%s/%s", dir, rest);

    return n > 0 && (size_t)n < len && executable(out);
}

/* The directory of the anchor's file (realpath'd) into dir (PATH_MAX). */
static int
anchor_dir(const void *anchor, char *dir)
{
    char self[PATH_MAX], *slash;
    Dl_info info;
    ssize_t n;

    if (anchor != NULL && dladdr(anchor, &info) != 0 &&
        info.dli_fname != NULL && strchr(info.dli_fname, '/') != NULL &&
        realpath(info.dli_fname, dir) != NULL) {
        /* found */
    } else {
        /* A program links its anchor statically, or dladdr gave a bare name. */
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            return -ENOENT;
        self[n] = '\0';
        if (realpath(self, dir) == NULL)
            return -errno;
    }
    slash = strrchr(dir, '/');
    if (slash == NULL)
        return -ENOENT;
    *(slash == dir ? slash + 1 : slash) = '\0';
    return 0;
}

/* A name without a slash, looked up on PATH as execvp would. */
static bool
on_path(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH"), *s, *colon;
    char buf[PATH_MAX];
    size_t n;

    for (s = path; s != NULL && *s != '\0'; s = colon ? colon + 1 : NULL) {
        colon = strchr(s, ':');
        n = colon ? (size_t)(colon - s) : strlen(s);
        if (n == 0 || n >= sizeof(buf))
            continue;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (try_path(out, len, buf, name))
            return true;
    }
    return false;
}

/* The override: a path made absolute (and real) now, a bare name on PATH. */
static int
from_env(const char *env, char *out, size_t len)
{
    char real[PATH_MAX];

    if (strchr(env, '/') == NULL) {
        if (on_path(env, out, len))
            return 0;
        snprintf(out, len, "%s", env);
        return -ENOENT;
    }
    if (realpath(env, real) == NULL) {
        int r = -errno;

        snprintf(out, len, "%s", env);
        return r;
    }
    if ((size_t)snprintf(out, len, "%s", real) >= len)
        return -ENAMETOOLONG;
    if (!executable(out))
        return access(out, X_OK) != 0 ? -EACCES : -EISDIR;
    return 0;
}

int
locate_daemon(enum locate_daemon which, const void *anchor, char *out,
              size_t len)
{
    const char *name = daemons[which].name;
    const char *env = getenv(daemons[which].env);
    char dir[PATH_MAX], rest[64], *slash;
    int level;

    if (env != NULL && env[0] != '\0')
        return from_env(env, out, len);
    if (anchor_dir(anchor, dir) == 0) {
        if (try_path(out, len, dir, name))
            return 0;
        for (level = 0; level < LOCATE_LEVELS; level++) {
            slash = strrchr(dir, '/');
            if (slash == NULL || slash == dir)
                break;
            *slash = '\0';
            snprintf(rest, sizeof(rest), "%s/%s", daemons[which].build_dir,
                     name);
            if (try_path(out, len, dir, rest))
                return 0;
            snprintf(rest, sizeof(rest), "libexec/jshost/%s", name);
            if (try_path(out, len, dir, rest))
                return 0;
        }
    }
    if (try_path(out, len, JSHOST_LIBEXECDIR, name) ||
        try_path(out, len, JSHOST_BINDIR, name) || on_path(name, out, len))
        return 0;
    snprintf(out, len, "%s", name);
    return -ENOENT;
}
