/*
 * The host logs (docs/lifecycle.md, "Logs"). Workers write their output into
 * a pipe the manager reads (worker.c); the lines are queued here and written
 * by a job on libuv's thread pool, one job per file at a time, so that a slow
 * or full disk stalls neither the loop nor the worker (whose end of the pipe
 * never blocks). Past log_max_bytes the job rotates the file (<log>.1 the
 * newest of log_keep); what does not fit the queue, or cannot be written, is
 * dropped and counted, reported once in manager.log and noted in the log
 * when it can be written again. The manager's own event lines about a host
 * are written at once on the file's fd, as manager.log's are.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "xmalloc.h"

/* Output queued for one file at most; more is dropped (and counted). */
#define LOGFILE_QUEUE_MAX ((size_t)1024 * 1024)
/* An unfinished line is kept up to this, then written as it is. */
#define LOGFILE_LINE_MAX ((size_t)64 * 1024)

struct logfile {
    char *path;
    bool daemon_log; /* manager.log: log.c is pointed at the new file */
    int fd;          /* -1: not open (yet) */
    char *queue;
    size_t queued, cap;
    uint64_t dropped;       /* bytes dropped so far */
    uint64_t dropped_noted; /* of those, said in the log */
    bool failing;           /* the last job failed: said in manager.log */
    bool busy;              /* a job runs */
    bool check_due;         /* a size check with nothing to write */
    bool closing;

    /* The job's: set on the loop, used by the thread, read back after. */
    uv_work_t work;
    char *jbuf;
    size_t jlen, jdone;
    int jfd, jnewfd, jerr;
    const char *jwhat; /* the step that failed */
};

struct logfile_feed {
    char *buf;
    size_t len, cap;
};

/* The job's own path with a suffix, "<path>.<n>" (n 0: the path). */
static void
logfile_name(const struct logfile *lf, unsigned n, char *buf, size_t len)
{
    if (n == 0)
        snprintf(buf, len, "%s", lf->path);
    else
        snprintf(buf, len, "%s.%u", lf->path, n);
}

/* On the thread: <path>.N-1 -> .N ... <path> -> .1, a new <path>. */
static int
logfile_rotate(struct logfile *lf, int *fd)
{
    char from[4200], to[4200];
    unsigned i;
    int nfd;

    logfile_name(lf, (unsigned)mgr.log_keep, to, sizeof to);
    if (unlink(to) != 0 && errno != ENOENT) {
        lf->jwhat = "remove the oldest log";
        return -errno;
    }
    for (i = (unsigned)mgr.log_keep; i >= 1; i--) {
        logfile_name(lf, i - 1, from, sizeof from);
        logfile_name(lf, i, to, sizeof to);
        if (rename(from, to) != 0 && errno != ENOENT) {
            lf->jwhat = "rotate";
            return -errno;
        }
    }
    nfd = open(lf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (nfd < 0) {
        lf->jwhat = "open";
        return -errno;
    }
    if (*fd != lf->jfd)
        close(*fd);
    *fd = nfd;
    return 0;
}

static int
logfile_write_all(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* How much of p[0..len) fits in room and ends a line (0: not a line). */
static size_t
logfile_cut(const char *p, size_t len, size_t room)
{
    const char *nl;

    if (len <= room)
        return len;
    nl = memrchr(p, '\n', room);
    return nl != NULL ? (size_t)(nl - p) + 1 : 0;
}

/*
 * On the thread: opens the file if it is not, writes the job's bytes,
 * rotating whenever the file would pass its size; a line is never cut (one
 * longer than the size goes into a file of its own).
 */
static void
logfile_work_cb(uv_work_t *req)
{
    struct logfile *lf = req->data;
    int fd = lf->jfd, rc;
    struct stat st;
    uint64_t size = 0, max = mgr.log_max_bytes;
    bool regular = false;
    size_t n;

    if (fd < 0) {
        fd = open(lf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            lf->jerr = -errno;
            lf->jwhat = "open";
            return;
        }
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        regular = true;
        size = (uint64_t)st.st_size;
    }
    do {
        const char *p = lf->jbuf + lf->jdone;

        n = lf->jlen - lf->jdone;
        if (regular && max > 0 && size + n > max) {
            size_t cut = logfile_cut(p, n, size < max ? max - size : 0);

            if (cut == 0 && size > 0) {
                rc = logfile_rotate(lf, &fd);
                if (rc != 0) {
                    lf->jerr = rc;
                    break;
                }
                size = 0;
                continue;
            }
            if (cut == 0) {
                /* A line longer than the size: a file of its own. */
                const char *nl = memchr(p, '\n', n);

                cut = nl != NULL ? (size_t)(nl - p) + 1 : n;
            }
            n = cut;
        }
        if (n == 0)
            break;
        rc = logfile_write_all(fd, lf->jbuf + lf->jdone, n);
        if (rc != 0) {
            lf->jerr = rc;
            lf->jwhat = "write";
            break;
        }
        lf->jdone += n;
        size += n;
    } while (lf->jdone < lf->jlen);
    lf->jnewfd = fd != lf->jfd ? fd : -1;
}

static void logfile_kick(struct logfile *lf);

static void
logfile_free(struct logfile *lf)
{
    if (lf->fd >= 0)
        close(lf->fd);
    free(lf->queue);
    free(lf->path);
    free(lf);
}

/* Back on the loop: the new file's fd taken, failures said once. */
static void
logfile_after_cb(uv_work_t *req, int status)
{
    struct logfile *lf = req->data;
    uint64_t lost = lf->jlen - lf->jdone;

    (void)status;
    lf->busy = false;
    if (lf->jnewfd >= 0) {
        if (lf->fd >= 0)
            close(lf->fd);
        lf->fd = lf->jnewfd;
        if (lf->daemon_log)
            log_open(lf->path, NULL);
    }
    free(lf->jbuf);
    lf->jbuf = NULL;
    if (lf->jerr != 0) {
        lf->dropped += lost;
        if (!lf->failing)
            log_warn("log %s: cannot %s it: %s; its output is dropped until "
                     "it can be written (the host serves on)",
                     lf->path, lf->jwhat ? lf->jwhat : "write",
                     strerror(-lf->jerr));
        lf->failing = true;
    } else if (lf->failing) {
        lf->failing = false;
        log_info("log %s: written again", lf->path);
    }
    logfile_kick(lf);
}

/* A line about what was dropped, once the file takes lines again. */
static void
logfile_note_dropped(struct logfile *lf)
{
    char text[200], line[LOG_LINE_ROOM(200)];
    size_t n;
    int m;

    if (lf->dropped == lf->dropped_noted || lf->failing)
        return;
    m = snprintf(text, sizeof text,
                 "manager: %llu bytes of output were dropped: the log could "
                 "not take them in time",
                 (unsigned long long)(lf->dropped - lf->dropped_noted));
    if (m <= 0)
        return;
    n = log_format(line, "warn", text,
                   (size_t)m < sizeof text ? (size_t)m : sizeof text - 1);
    if (lf->queued + n > lf->cap) {
        lf->cap = lf->queued + n;
        lf->queue = xrealloc(lf->queue, lf->cap);
    }
    memmove(lf->queue + n, lf->queue, lf->queued);
    memcpy(lf->queue, line, n);
    lf->queued += n;
    lf->dropped_noted = lf->dropped;
}

/* Starts a job for what is queued, unless one runs. */
static void
logfile_kick(struct logfile *lf)
{
    if (lf->busy)
        return;
    if (lf->queued > 0)
        logfile_note_dropped(lf);
    if (lf->queued == 0 && !lf->check_due) {
        if (lf->closing)
            logfile_free(lf);
        return;
    }
    lf->check_due = false;
    lf->jbuf = lf->queue;
    lf->jlen = lf->queued;
    lf->jdone = 0;
    lf->queue = NULL;
    lf->queued = lf->cap = 0;
    lf->jfd = lf->fd;
    lf->jnewfd = -1;
    lf->jerr = 0;
    lf->jwhat = NULL;
    lf->work.data = lf;
    if (uv_queue_work(mgr.loop, &lf->work, logfile_work_cb, logfile_after_cb) !=
        0) {
        lf->dropped += lf->jlen;
        free(lf->jbuf);
        lf->jbuf = NULL;
        if (lf->closing)
            logfile_free(lf);
        return;
    }
    lf->busy = true;
}

struct logfile *
logfile_open(const char *path, bool daemon_log)
{
    struct logfile *lf = xcalloc(1, sizeof *lf);

    lf->path = xstrdup(path);
    lf->daemon_log = daemon_log;
    lf->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (lf->fd < 0) {
        /* Said now; each job tries again. */
        log_warn("log %s: cannot open it: %s; its output is dropped until "
                 "it can be written (the host serves on)",
                 path, strerror(errno));
        lf->failing = true;
    }
    return lf;
}

void
logfile_close(struct logfile *lf)
{
    if (lf == NULL)
        return;
    lf->closing = true;
    logfile_kick(lf);
}

int
logfile_fd(const struct logfile *lf)
{
    return lf->fd;
}

uint64_t
logfile_dropped(const struct logfile *lf)
{
    return lf->dropped;
}

void
logfile_write(struct logfile *lf, const char *buf, size_t len)
{
    if (lf == NULL || len == 0)
        return;
    if (lf->queued + len > LOGFILE_QUEUE_MAX) {
        lf->dropped += len;
        return;
    }
    if (lf->queued + len > lf->cap) {
        lf->cap = lf->cap * 2 > lf->queued + len ? lf->cap * 2
                                                 : lf->queued + len + 4096;
        lf->queue = xrealloc(lf->queue, lf->cap);
    }
    memcpy(lf->queue + lf->queued, buf, len);
    lf->queued += len;
    logfile_kick(lf);
}

void
logfile_check(struct logfile *lf)
{
    if (lf == NULL)
        return;
    lf->check_due = true;
    logfile_kick(lf);
}

struct logfile_feed *
logfile_feed_new(void)
{
    return xcalloc(1, sizeof(struct logfile_feed));
}

static void
logfile_feed_keep(struct logfile_feed *f, const char *buf, size_t len)
{
    if (len == 0)
        return;
    if (f->len + len > f->cap) {
        f->cap = f->len + len + 256;
        f->buf = xrealloc(f->buf, f->cap);
    }
    memcpy(f->buf + f->len, buf, len);
    f->len += len;
}

/* Whole lines go to the log; the rest waits for its end (a line longer
 * than LOGFILE_LINE_MAX goes as it is). */
void
logfile_feed(struct logfile *lf, struct logfile_feed *f, const char *buf,
             size_t len)
{
    const char *nl;
    size_t head;

    if (f->len > 0) {
        nl = memchr(buf, '\n', len);
        head = nl != NULL ? (size_t)(nl - buf) + 1 : len;
        logfile_feed_keep(f, buf, head);
        if (nl != NULL || f->len >= LOGFILE_LINE_MAX) {
            logfile_write(lf, f->buf, f->len);
            f->len = 0;
        }
        buf += head;
        len -= head;
    }
    if (len == 0)
        return;
    nl = memrchr(buf, '\n', len);
    head = nl != NULL ? (size_t)(nl - buf) + 1 : 0;
    logfile_write(lf, buf, head);
    if (len - head >= LOGFILE_LINE_MAX)
        logfile_write(lf, buf + head, len - head);
    else
        logfile_feed_keep(f, buf + head, len - head);
}

void
logfile_feed_end(struct logfile *lf, struct logfile_feed *f)
{
    if (f == NULL)
        return;
    if (f->len > 0) {
        logfile_feed_keep(f, "\n", 1);
        logfile_write(lf, f->buf, f->len);
    }
    free(f->buf);
    free(f);
}
