/* jshost logs CONFIG [-f]: print a host's log file, or follow it as tail -f
 * does (across truncation and replacement). It only reads: no manager or host
 * is started for it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hostid.h"
#include "rundir.h"

static char *
obj_strdup(const msgpack_object *o)
{
    char *s;

    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    s = malloc(o->via.str.size + 1);
    if (s != NULL) {
        memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = '\0';
    }
    return s;
}

/*
 * The log file of CONFIG: the running manager's word when it knows the host,
 * else where the manager keeps it in this runtime dir (common/hostid.c).
 * Never starts anything: a stopped host's log is still there to read.
 */
static char *
find_logfile(const char *config, int *status)
{
    jshost_value v = {0};
    msgpack_unpacked u;
    char *log = NULL, *cause = NULL, real[PATH_MAX], dir[PATH_MAX],
         path[PATH_MAX];
    int none;
    jshost *c;

    *status = CLI_JSHOST;
    if ((c = cli_connect_running(&none)) == NULL && !none)
        return NULL;
    if (c != NULL) {
        msgpack_unpacked_init(&u);
        if (jshost_status(c, config, &v) == 0 &&
            msgpack_unpack_next(&u, v.data, v.len, NULL) ==
                MSGPACK_UNPACK_SUCCESS)
            log = obj_strdup(cli_get(&u.data, "logfile"));
        msgpack_unpacked_destroy(&u);
        jshost_value_free(&v);
        jshost_free(c);
        if (log != NULL) {
            *status = CLI_OK;
            return log;
        }
    }
    if (realpath(config, real) == NULL) {
        cli_warn("logs: %s: %s", config, strerror(errno));
        return NULL;
    }
    if (rundir_resolve(dir, sizeof(dir), &cause) < 0) {
        cli_warn("logs %s: %s", config, cause != NULL ? cause : "runtime dir");
        free(cause);
        return NULL;
    }
    if (hostid_logfile(path, sizeof(path), dir, real) < 0) {
        cli_warn("logs %s: the log path is too long", config);
        return NULL;
    }
    if ((log = strdup(path)) == NULL) {
        cli_warn("out of memory");
        return NULL;
    }
    *status = CLI_OK;
    return log;
}

/* Copies fd to stdout from where it is to its end. -1 on a write error. */
static int
copy_out(int fd)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            return -1;
    }
    return fflush(stdout) == 0 ? 0 : -1;
}

static int
follow(const char *path, int fd)
{
    struct timespec tick = {0, 200 * 1000000L};
    struct stat st, now;

    if (fstat(fd, &st) < 0)
        return CLI_JSHOST;
    for (;;) {
        if (copy_out(fd) < 0)
            return CLI_OK; /* the reader went away (a pipe closed) */
        nanosleep(&tick, NULL);
        if (stat(path, &now) == 0 &&
            (now.st_ino != st.st_ino || now.st_dev != st.st_dev)) {
            /* replaced: finish the old file, then go on with the new one */
            copy_out(fd);
            int nfd = open(path, O_RDONLY | O_CLOEXEC);

            if (nfd >= 0) {
                close(fd);
                fd = nfd;
                fstat(fd, &st);
            }
        } else if (fstat(fd, &now) == 0 &&
                   now.st_size < lseek(fd, 0, SEEK_CUR)) {
            lseek(fd, 0, SEEK_SET); /* truncated */
        }
    }
}

int
cmd_logs(int argc, char **argv)
{
    const char *config = NULL;
    int f = 0, i, status, fd, r;
    char *log;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
            f = 1;
        else if (argv[i][0] == '-')
            return cli_usage("logs", "unknown option '%s'", argv[i]);
        else if (config == NULL)
            config = argv[i];
        else
            return cli_usage("logs", "too many arguments");
    }
    if (config == NULL)
        return cli_usage("logs", "logs needs a CONFIG");
    if ((log = find_logfile(config, &status)) == NULL)
        return status;
    fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && f) {
        /* as tail -F: the log appears when the host first starts */
        fprintf(stderr, "jshost: logs %s: no log yet; waiting for %s\n", config,
                log);
        while ((fd = open(log, O_RDONLY | O_CLOEXEC)) < 0 && errno == ENOENT)
            nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
    }
    if (fd < 0 && errno == ENOENT) {
        cli_warn("logs %s: no log at %s (the host has not run in this runtime "
                 "dir)",
                 config, log);
        free(log);
        return CLI_JSHOST;
    }
    if (fd < 0) {
        cli_warn("logs %s: %s: %s", config, log, strerror(errno));
        free(log);
        return CLI_JSHOST;
    }
    signal(SIGPIPE, SIG_DFL);
    r = f ? follow(log, fd) : (copy_out(fd) < 0 ? CLI_JSHOST : CLI_OK);
    close(fd);
    free(log);
    return r;
}
