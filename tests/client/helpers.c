/* Helpers for the client tests (see helpers.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

char *
th_tmpdir(void)
{
    char tmpl[] = "/tmp/jshc.XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return NULL;
    chmod(tmpl, 0700);
    return strdup(tmpl);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
th_rmtree(char *dir)
{
    if (dir == NULL)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

char *
th_write(const char *dir, const char *name, const char *text)
{
    char *path;
    FILE *f;

    if (asprintf(&path, "%s/%s", dir, name) < 0)
        return NULL;
    f = fopen(path, "w");
    if (f == NULL) {
        free(path);
        return NULL;
    }
    fputs(text, f);
    fclose(f);
    return path;
}

pid_t
th_spawn(char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    int fd;

    if (pid != 0)
        return pid;
    if (logpath != NULL) {
        fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
    }
    execv(argv[0], argv);
    _exit(127);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int
th_wait_socket(const char *path, int ms)
{
    struct sockaddr_un sa;
    int fd, i;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    for (i = 0; i < ms / 10; i++) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(fd);
            return 1;
        }
        close(fd);
        sleep_ms(10);
    }
    return 0;
}

int
th_wait(pid_t pid, int ms)
{
    int st, i;

    for (i = 0;; i += 5) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        if (i >= ms)
            return -1;
        sleep_ms(5);
    }
}

void
th_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    if (th_wait(pid, 2000) == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static void
append(char **buf, size_t *len, const char *data, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);

    if (b == NULL)
        return;
    memcpy(b + *len, data, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
}

int
th_run(char *const argv[], const char *input, char **out, char **err,
       int timeout_ms)
{
    int pin[2], pout[2], perr[2], st, open_fds = 2;
    size_t olen = 0, elen = 0, ilen = input ? strlen(input) : 0, ioff = 0;
    char buf[4096];
    struct pollfd pfd[3];
    pid_t pid;
    ssize_t n;
    int waited = 0;

    *out = calloc(1, 1);
    *err = calloc(1, 1);
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
        pipe2(perr, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (ilen == 0) {
        close(pin[1]);
        pin[1] = -1;
    }
    signal(SIGPIPE, SIG_IGN);
    while (open_fds > 0 && waited < timeout_ms) {
        int k = 0;

        pfd[k].fd = pout[0];
        pfd[k++].events = POLLIN;
        pfd[k].fd = perr[0];
        pfd[k++].events = POLLIN;
        if (pin[1] >= 0) {
            pfd[k].fd = pin[1];
            pfd[k++].events = POLLOUT;
        }
        if (poll(pfd, k, 100) == 0) {
            waited += 100;
            continue;
        }
        if (k == 3 && (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            n = write(pin[1], input + ioff, ilen - ioff);
            if (n > 0)
                ioff += (size_t)n;
            if (n <= 0 || ioff == ilen) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP)))
                continue;
            n = read(pfd[i].fd, buf, sizeof(buf));
            if (n > 0) {
                if (i == 0)
                    append(out, &olen, buf, (size_t)n);
                else
                    append(err, &elen, buf, (size_t)n);
            } else {
                if (i == 0) {
                    close(pout[0]);
                    pout[0] = -1;
                } else {
                    close(perr[0]);
                    perr[0] = -1;
                }
                open_fds--;
            }
        }
        if (pout[0] < 0 && perr[0] < 0)
            break;
    }
    if (pin[1] >= 0)
        close(pin[1]);
    if (pout[0] >= 0)
        close(pout[0]);
    if (perr[0] >= 0)
        close(perr[0]);
    st = th_wait(pid, timeout_ms > waited ? timeout_ms - waited : 100);
    if (st == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

char *
th_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL, chunk[4096];
    size_t len = 0, n;

    if (f == NULL)
        return NULL;
    buf = calloc(1, 1);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        append(&buf, &len, chunk, n);
    fclose(f);
    return buf;
}

int
th_count_lines(const char *path)
{
    char *s = th_read_file(path);
    int n = 0;

    if (s == NULL)
        return 0;
    for (char *p = s; *p; p++)
        n += *p == '\n';
    free(s);
    return n;
}
