/*
 * tu's base (tu.h): files, processes, sockets and deadlines. Nothing here
 * needs proto/: common/'s tests link it alone.
 */
#include "tu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rundir.h"

#ifndef JSHOST_BUILD_ROOT
#error "JSHOST_BUILD_ROOT must be set by meson"
#endif
#ifndef JSHOST_SOURCE_ROOT
#error "JSHOST_SOURCE_ROOT must be set by meson"
#endif

/* --------------------------------------------------------------- paths */

/* A ring of buffers, so a few results can be used together in one call. */
static const char *
tu__path(const char *root, const char *rel)
{
    static char ring[8][PATH_MAX];
    static unsigned next;
    char *buf = ring[next++ % 8];

    if (rel == NULL || *rel == '\0')
        snprintf(buf, PATH_MAX, "%s", root);
    else
        snprintf(buf, PATH_MAX, "%s/%s", root, rel);
    return buf;
}

const char *
tu_build_path(const char *rel)
{
    return tu__path(JSHOST_BUILD_ROOT, rel);
}

const char *
tu_source_path(const char *rel)
{
    return tu__path(JSHOST_SOURCE_ROOT, rel);
}

char *
tu_path(const char *dir, const char *name)
{
    char *p;

    if (asprintf(&p, "%s/%s", dir, name) < 0)
        fail_msg("out of memory");
    return p;
}

/* ------------------------------------------------------------- files */

char *
tu_tmpdir(void)
{
    char *d = strdup("/tmp/jtu-XXXXXX");

    assert_non_null(d);
    if (mkdtemp(d) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    return d;
}

static int
tu__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void
tu_rmtree(char *dir)
{
    if (dir == NULL)
        return;
    /* Only ever below /tmp: a bug in a test must not remove anything else. */
    if (strncmp(dir, "/tmp/", 5) == 0 && strstr(dir, "..") == NULL) {
        /* A test may have left its dir without our access bits. */
        chmod(dir, 0700);
        nftw(dir, tu__rm, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(dir);
}

char *
tu_write_file(const char *dir, const char *name, const char *text)
{
    char *path, *slash;
    size_t len = strlen(text);
    FILE *f;

    if (asprintf(&path, "%s/%s", dir, name) < 0)
        fail_msg("out of memory");
    /* "node_modules/x/index.js": make the folders on the way. */
    for (slash = strchr(path + strlen(dir) + 1, '/'); slash != NULL;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0700) == -1 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
    f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    if (fwrite(text, 1, len, f) != len || fclose(f) != 0)
        fail_msg("cannot write %s", path);
    return path;
}

/* Appends n bytes to the NUL-terminated *buf of *len bytes. */
static void
tu__append(char **buf, size_t *len, const char *data, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);

    if (b == NULL)
        fail_msg("out of memory");
    memcpy(b + *len, data, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
}

char *
tu_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf, chunk[4096];
    size_t len = 0, n;

    if (f == NULL)
        return NULL;
    buf = calloc(1, 1);
    assert_non_null(buf);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tu__append(&buf, &len, chunk, n);
    if (ferror(f))
        fail_msg("cannot read %s", path);
    fclose(f);
    return buf;
}

char *
tu_read_text(const char *path)
{
    char *s = tu_read_file(path);

    if (s == NULL && (s = strdup("")) == NULL)
        fail_msg("out of memory");
    return s;
}

bool
tu_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

size_t
tu_file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

bool
tu_file_contains(const char *path, const char *needle)
{
    char *s = tu_read_file(path);
    bool found = s != NULL && strstr(s, needle) != NULL;

    free(s);
    return found;
}

pid_t
tu_read_pid(const char *path)
{
    char *s = tu_read_file(path);
    long pid = s != NULL ? strtol(s, NULL, 10) : 0;

    free(s);
    return pid > 0 ? (pid_t)pid : 0;
}

/* ---------------------------------------------------------- processes */

int64_t
tu_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
tu__sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* In a forked child, before exec: no cmocka crash reporting, env additions. */
static void
tu__child_prepare(char *const envadd[])
{
    int i;
    char *eq, *name;

    /* cmocka's handlers must not report a crash of the child as a test of
     * ours; exec resets them; this covers the way to it. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    for (i = 0; envadd != NULL && envadd[i] != NULL; i++) {
        eq = strchr(envadd[i], '=');
        if (eq == NULL) {
            unsetenv(envadd[i]);
            continue;
        }
        /* The strings may be literals: copy the name, never write into it. */
        name = strndup(envadd[i], (size_t)(eq - envadd[i]));
        if (name != NULL)
            setenv(name, eq + 1, 1);
        free(name);
    }
}

/* fork(), with what the test printed so far flushed so that the child never
 * prints it twice. */
static pid_t
tu__fork(void)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == -1)
        fail_msg("fork: %s", strerror(errno));
    return pid;
}

/* In the child: exec argv, or say why not (on its stderr) and exit 127. */
static _Noreturn void
tu__exec(char *const argv[], const char *who)
{
    execv(argv[0], argv);
    dprintf(2, "%s: cannot run %s: %s\n", who, argv[0], strerror(errno));
    _exit(127);
}

pid_t
tu_spawn(char *const argv[], char *const envadd[], const char *logpath)
{
    return tu_spawn_fd(argv, envadd, logpath, -1, -1);
}

pid_t
tu_spawn_fd(char *const argv[], char *const envadd[], const char *logpath,
            int give, int child_fd)
{
    pid_t pid;
    int fd;

    pid = tu__fork();
    if (pid != 0)
        return pid;

    tu__child_prepare(envadd);
    /* The copy dup2 makes is not close-on-exec; a descriptor already at
     * child_fd (dup2 then does nothing) is made so by hand. */
    if (give >= 0 && (give == child_fd ? fcntl(give, F_SETFD, 0)
                                       : dup2(give, child_fd)) == -1) {
        dprintf(2, "tu_spawn: fd %d: %s\n", child_fd, strerror(errno));
        _exit(127);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0 && fd != 0) {
        dup2(fd, 0);
        close(fd);
    }
    if (logpath != NULL) {
        fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd == -1) {
            dprintf(2, "tu_spawn: cannot open %s: %s\n", logpath,
                    strerror(errno));
            _exit(127);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    tu__exec(argv, "tu_spawn");
}

int
tu_wait(pid_t pid, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    int status;
    pid_t r;

    for (;;) {
        r = waitpid(pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid)
            return status;
        if (r == -1 && errno != EINTR)
            fail_msg("waitpid %ld: %s", (long)pid, strerror(errno));
        if (timeout_ms >= 0 && tu_now_ms() >= deadline)
            return -1;
        if (r == 0)
            tu__sleep_ms(5);
    }
}

void
tu_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    if (kill(pid, SIGTERM) == -1 && errno == ESRCH) {
        /* Already gone; still reap it if it is our zombie. */
        waitpid(pid, NULL, WNOHANG);
        return;
    }
    if (tu_wait(pid, 2000) != -1)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
        ;
}

/* The threads of pid still listed (its leader included). */
static int
tu__threads(pid_t pid)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

bool
tu_pid_gone(pid_t pid)
{
    char path[64], buf[512], *p;
    bool zombie = false;
    FILE *f;

    if (kill(pid, 0) != 0)
        return errno == ESRCH;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return true;
    if (fgets(buf, sizeof buf, f) != NULL) {
        /* "pid (comm) S ...": the state follows the last ')'. */
        p = strrchr(buf, ')');
        zombie = p != NULL && p[1] == ' ' && p[2] == 'Z';
    }
    fclose(f);
    /* A zombie leader whose other threads still exit (a daemon with a
     * thread pool, killed) still holds its sockets: not gone yet. */
    return zombie && tu__threads(pid) <= 1;
}

int
tu_run(char *const argv[], char *const envadd[], const char *input, char **out,
       char **err, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : tu_now_ms() + timeout_ms, left;
    size_t ilen = input != NULL ? strlen(input) : 0, ioff = 0;
    size_t lens[2] = {0, 0};
    char **bufs[2] = {out, err}, chunk[4096];
    int pin[2], pout[2], perr[2], fds[2], i, r, status;
    struct sigaction ign, old;
    struct pollfd pfd[3];
    ssize_t n;
    pid_t pid;

    *out = calloc(1, 1);
    *err = calloc(1, 1);
    assert_non_null(*out);
    assert_non_null(*err);
    if (pipe2(pin, O_CLOEXEC) == -1 || pipe2(pout, O_CLOEXEC) == -1 ||
        pipe2(perr, O_CLOEXEC) == -1)
        fail_msg("pipe: %s", strerror(errno));
    pid = tu__fork();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        tu__child_prepare(envadd);
        tu__exec(argv, "tu_run");
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    /* Never block on the child's stdin while it waits for us to read its
     * full stdout: that would hang both. */
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    if (ilen == 0) {
        close(pin[1]);
        pin[1] = -1;
    }
    /* A child that exits without reading all of its stdin must not kill the
     * test with SIGPIPE; the test's own disposition comes back at the end
     * (the child has inherited it already). */
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    fds[0] = pout[0];
    fds[1] = perr[0];
    while (fds[0] >= 0 || fds[1] >= 0) {
        left = deadline < 0 ? -1 : deadline - tu_now_ms();
        if (deadline >= 0 && left <= 0)
            break;
        for (i = 0; i < 2; i++) {
            pfd[i].fd = fds[i];
            pfd[i].events = POLLIN;
        }
        pfd[2].fd = pin[1];
        pfd[2].events = POLLOUT;
        r = poll(pfd, 3, (int)left);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            fail_msg("poll: %s", strerror(errno));
        if (r == 0)
            break;
        if (pin[1] >= 0 && pfd[2].revents != 0) {
            n = write(pin[1], input + ioff, ilen - ioff);
            if (n > 0)
                ioff += (size_t)n;
            /* Done, or the child closed its stdin: it gets no more. */
            if (ioff == ilen ||
                (n == -1 && errno != EINTR && errno != EAGAIN)) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
        for (i = 0; i < 2; i++) {
            if (fds[i] < 0 || pfd[i].revents == 0)
                continue;
            n = read(fds[i], chunk, sizeof chunk);
            if (n > 0) {
                tu__append(bufs[i], &lens[i], chunk, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    for (i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (pin[1] >= 0)
        close(pin[1]);
    sigaction(SIGPIPE, &old, NULL);
    /* Its output has ended; a child on its way out still gets a moment. */
    left = deadline < 0 ? -1 : deadline - tu_now_ms();
    if (deadline >= 0 && left < 100)
        left = 100;
    status = tu_wait(pid, (int)left);
    if (status == -1) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
            ;
        return -1;
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

int
tu_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd, err;

    if (rundir_check_sockpath(path, NULL) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
        err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

bool
tu_wait_socket(const char *path, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    int fd;

    for (;;) {
        fd = tu_connect(path);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        if (errno == ENAMETOOLONG || tu_now_ms() >= deadline)
            return false;
        tu__sleep_ms(10);
    }
}

bool
tu_readable(int fd, int timeout_ms)
{
    struct tu_deadline d = tu_deadline_start(timeout_ms);
    struct pollfd pfd = {fd, POLLIN, 0};
    int64_t left;
    int r;

    for (;;) {
        left = d.end_ms - tu_now_ms();
        r = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            fail_msg("poll: %s", strerror(errno));
        return r == 1;
    }
}

size_t
tu_read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    struct tu_deadline d = tu_deadline_start(timeout_ms);
    size_t got = 0;
    ssize_t r;

    while (got < n) {
        if (!tu_readable(fd, (int)(d.end_ms - tu_now_ms())))
            fail_msg("fd %d: %zu of %zu bytes in %d ms", fd, got, n,
                     timeout_ms);
        r = read(fd, (char *)buf + got, n - got);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            fail_msg("read fd %d: %s", fd, strerror(errno));
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* ---------------------------------------------------------- deadlines */

struct tu_deadline
tu_deadline_start(int ms)
{
    struct tu_deadline d = {tu_now_ms() + ms, ms};

    return d;
}

bool
tu_deadline_passed(const struct tu_deadline *d)
{
    return tu_now_ms() >= d->end_ms;
}

bool
tu_deadline_wait(const struct tu_deadline *d)
{
    if (tu_deadline_passed(d))
        return false;
    tu__sleep_ms(10);
    return true;
}

void
tu_deadline_fail(const struct tu_deadline *d, const char *file, int line,
                 const char *what)
{
    fail_msg("%s:%d: waited %d ms for: %s", file, line, d->ms, what);
}
