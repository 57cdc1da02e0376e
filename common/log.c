/*
 * Daemon logging: "2026-11-21T23:30:46.123Z [pid] LEVEL message", one line
 * per event. Each line goes out in a single write() on an O_APPEND fd, so the
 * lines of several processes sharing one log file (a worker pool, a restart)
 * never interleave mid-line.
 */
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int log__fd = 2;
static enum log_level log__level = LOG_LEVEL_INFO;
static char log__progname[64] = "jshost";

static const char *const log__names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int
log_open(const char *path, const char *progname)
{
    int fd;

    if (progname != NULL)
        snprintf(log__progname, sizeof log__progname, "%s", progname);
    if (path == NULL) {
        log_close();
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1)
        return -errno;
    log_close();
    log__fd = fd;
    return 0;
}

void
log_close(void)
{
    if (log__fd > 2)
        close(log__fd);
    log__fd = 2;
}

void
log_set_level(enum log_level level)
{
    log__level = level;
}

int
log_fd(void)
{
    return log__fd;
}

void
log_timestamp(char *buf, unsigned long size)
{
    struct timespec ts;
    struct tm tm;
    char date[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03ldZ", date, ts.tv_nsec / 1000000);
}

/* Writes all of buf, retrying short writes and EINTR; errors are dropped (there
 * is nowhere left to report a failing log). */
static void
log__write_all(int fd, const char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(fd, buf, len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/*
 * The one format of every jshost log file (manager.log, hosts/<id>.log, console
 * output of JavaScript): "<timestamp> [<pid>] <LEVEL> <text>". Newlines inside
 * the text (a JS stack trace) become "\n  ": continuation lines are indented,
 * so every line that starts with a timestamp starts an event. The line goes
 * out in one write() (O_APPEND fds: lines of several processes never
 * interleave mid-line).
 */
size_t
log_format(char *line, const char *level, const char *text, size_t len)
{
    char ts[32];
    size_t i, n;
    int m;

    while (len > 0 && text[len - 1] == '\n')
        len--;
    log_timestamp(ts, sizeof ts);
    m = snprintf(line, 96, "%s [%ld] ", ts, (long)getpid());
    n = m > 0 ? (size_t)m : 0;
    for (; *level != '\0' && n < 80; level++)
        line[n++] = (char)toupper((unsigned char)*level);
    line[n++] = ' ';
    for (i = 0; i < len; i++) {
        line[n++] = text[i];
        if (text[i] == '\n' && i + 1 < len) {
            line[n++] = ' ';
            line[n++] = ' ';
        }
    }
    line[n++] = '\n';
    return n;
}

void
log_line(int fd, const char *level, const char *text, size_t len)
{
    char stack[4096], *line;
    size_t n, cap = LOG_LINE_ROOM(len);

    line = cap <= sizeof stack ? stack : malloc(cap);
    if (line == NULL)
        return;
    n = log_format(line, level, text, len);
    log__write_all(fd, line, n);
    if (line != stack)
        free(line);
}

static void
log__emit(enum log_level level, const char *fmt, va_list ap)
{
    char stack[2048], *msg;
    va_list aq;
    int m;

    va_copy(aq, ap);
    m = vsnprintf(stack, sizeof stack, fmt, aq);
    va_end(aq);
    if (m < 0)
        return;
    msg = stack;
    if ((size_t)m >= sizeof stack) {
        msg = malloc((size_t)m + 1);
        if (msg == NULL) {
            msg = stack; /* truncated beats nothing */
            m = (int)sizeof stack - 1;
        } else {
            vsnprintf(msg, (size_t)m + 1, fmt, ap);
        }
    }
    log_line(log__fd, log__names[level], msg, (size_t)m);
    if (msg != stack)
        free(msg);
}

void
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    if ((unsigned)level > LOG_LEVEL_DEBUG)
        level = LOG_LEVEL_DEBUG;
    if (level > log__level)
        return;
    log__emit(level, fmt, ap);
}

#define LOG__FN(name, level)                                                   \
    void name(const char *fmt, ...)                                            \
    {                                                                          \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        log_vwrite(level, fmt, ap);                                            \
        va_end(ap);                                                            \
    }

LOG__FN(log_error, LOG_LEVEL_ERROR)
LOG__FN(log_warn, LOG_LEVEL_WARN)
LOG__FN(log_info, LOG_LEVEL_INFO)
LOG__FN(log_debug, LOG_LEVEL_DEBUG)

/* The last words: to the log, and to a terminal too when the log is a file, so
 * a manager run by hand in the foreground does not die silently. */
static __attribute__((noreturn)) void
log__fatal(const char *fmt, va_list ap, int err)
{
    char msg[1024];
    size_t n;

    vsnprintf(msg, sizeof msg, fmt, ap);
    if (err != 0) {
        n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, ": %s", strerror(err));
    }
    log_error("fatal: %s", msg);
    if (log__fd != 2 && isatty(2))
        dprintf(2, "%s: fatal: %s\n", log__progname, msg);
    exit(1);
}

void
fatal(const char *fmt, ...)
{
    va_list ap;
    int err = errno;

    va_start(ap, fmt);
    log__fatal(fmt, ap, err);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log__fatal(fmt, ap, 0);
}
