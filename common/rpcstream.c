/*
 * A msgpack-RPC connection over a uv_pipe_t, shared by the manager and the
 * worker (see rpcstream.h).
 *
 * Writes are coalesced: bytes queued during one loop iteration go out in one
 * write per connection, after the poll phase (uv_check). A pipelined client's
 * burst of requests thus costs one write to the worker, not one per request.
 * An idle handle runs while anything waits, so that bytes queued from timers
 * never wait for the next I/O to wake the loop. The write is tried at once
 * (uv_try_write): only what the socket does not take is handed to uv_write,
 * whose request would otherwise cost an epoll_ctl and a loop pass per
 * message. The gathering buffer is kept for the next batch (no allocation per
 * message) unless a burst made it large.
 *
 * The check phase only comes once the read callback returns, and the worker
 * runs synchronous JavaScript inside it: a batch of messages from one read
 * that has taken 50 us, or gathered 256 KiB, is written before the next
 * message is handed out, so that a fast answer is never held behind a slow
 * run, and a pipelining peer (and the manager between) works on the first
 * answers while the worker runs the rest, rather than all waiting in turn.
 *
 * A server's peers may not hold memory without bound in messages they never
 * finish: the streams that take the partial limits are counted together, and
 * a timer looks for unfinished messages left idle.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "rpcstream.h"
#include "unixsock.h"
#include "xmalloc.h"

/* Room asked of the reader per read. */
#define RPCSTREAM_READ_CHUNK ((size_t)64 * 1024)
/* Bytes gathered inside one batch past which they are written at once. */
#define RPCSTREAM_BATCH_MAX ((size_t)256 * 1024)
/* ...or once the batch has been running this long (50 us): a write every
 * 50 us at most while a batch lasts, a few percent of a busy worker. */
#define RPCSTREAM_BATCH_NS ((uint64_t)50000)
/* A gathering buffer larger than this is given back once written. */
#define RPCSTREAM_KEEP_MAX ((size_t)256 * 1024)

struct rpcstream {
    uv_pipe_t pipe;
    struct proto_reader *reader;
    struct rpcstream_cbs cbs;
    void *owner;
    msgpack_sbuffer out; /* gathered, not yet handed to uv_write */
    size_t counted;      /* bytes of out already in write_bytes */
    size_t write_bytes;  /* queued (gathered or written), not yet written */
    size_t backlog_high; /* 0 = never pause for a backlog */
    size_t backlog_low;
    unsigned pause;
    bool queued; /* in the flush list */
    bool started;
    bool reading;
    bool ended;
    bool failed; /* ended by an error: nothing more is handed out */
    bool closing;
    bool close_when_flushed;
    bool in_dispatch;
    bool drain_due;    /* written at once: the after-write work is due */
    bool dispatch_due; /* read by rpcstream_read_now: hand out soon */
    /* The partial limits: taken, the bytes of its unfinished message as
     * counted in partial_total, and when its last byte came. */
    bool limited;
    size_t partial;
    uint64_t partial_at;
    LIST_ENTRY(rpcstream) limited_entry;
    bool mid_message; /* its reader holds part of a message (streams_mid) */
    bool hints;       /* announces big messages (rpcstream_send_hints) */
    bool hint_open;   /* a hint's room is reserved at hint_at in out */
    size_t hint_at;
};

struct rpcstream_write {
    uv_write_t req;
    uv_buf_t buf;
    char *mem; /* what to free: buf may start past its head */
    struct rpcstream *s;
};

/* Streams with bytes in `out` not yet handed to uv_write. */
static struct rpcstream **dirty;
static size_t ndirty, dirty_cap;
static uv_check_t flush_check;
static uv_idle_t flush_idle;
static bool flusher_up;

static bool in_flush_all;

/* The partial limits, and the streams that take them. */
static uv_loop_t *stream_loop;
static size_t partial_max, partial_total;
/* Transfers under way, loop-wide (rpcstream_quiet): streams holding part of
 * a message, and writes waiting for a full socket to drain. */
static size_t streams_mid, writes_queued;
static uint64_t partial_idle_ms;
static uv_timer_t partial_timer;
static LIST_HEAD(, rpcstream)
    limited_streams = LIST_HEAD_INITIALIZER(limited_streams);

static void rpcstream_dispatch(struct rpcstream *s);
static void rpcstream_flush_one(struct rpcstream *s);
static void rpcstream_mark_dirty(struct rpcstream *s);
static void rpcstream_end(struct rpcstream *s, int err, const char *cause);

static void
rpcstream_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct rpcstream *s = handle->data;
    char *p;
    size_t len;

    (void)suggested;
    if (proto_reader_buffer(s->reader, RPCSTREAM_READ_CHUNK, &p, &len) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = p;
    buf->len = len;
}

/*
 * Refused for what it holds: the error notification is tried at once, then
 * the stream closes whatever is left unwritten, so that its buffers go now
 * (a peer that reads nothing cannot keep them).
 */
static void
rpcstream_refuse_now(struct rpcstream *s, int err, const char *cause)
{
    rpcstream_refuse(s, cause);
    rpcstream_flush_one(s);
    rpcstream_end(s, err, cause);
    rpcstream_close(s);
}

/* Notes whether s holds part of a message now (for rpcstream_quiet). */
static void
rpcstream_mid_note(struct rpcstream *s)
{
    bool mid = !s->closing && proto_reader_partial(s->reader) > 0;

    if (mid != s->mid_message) {
        s->mid_message = mid;
        if (mid)
            streams_mid++;
        else
            streams_mid--;
    }
}

bool
rpcstream_quiet(void)
{
    return streams_mid == 0 && writes_queued == 0;
}

/* Counts what s's unfinished message holds now, and returns it. */
static size_t
rpcstream_partial_note(struct rpcstream *s)
{
    size_t now = proto_reader_partial(s->reader);

    partial_total = partial_total - s->partial + now;
    s->partial = now;
    s->partial_at = uv_now(s->pipe.loop);
    return now;
}

/* Counts what s's unfinished message holds now; false when that was too
 * much (s is refused). */
static bool
rpcstream_partial_count(struct rpcstream *s)
{
    size_t now = rpcstream_partial_note(s);
    char cause[PROTO_CAUSE_MAX];

    if (partial_max == 0 || now == 0 || partial_total <= partial_max)
        return true;
    snprintf(cause, sizeof cause,
             "the server holds %zu bytes of unfinished messages across its "
             "connections (the limit is %zu): this one's %zu are dropped",
             partial_total, partial_max, now);
    rpcstream_refuse_now(s, -EMSGSIZE, cause);
    return false;
}

/* Unfinished messages that got no byte for the idle time are refused (a
 * stream the server does not read meanwhile is not to blame). */
static void
rpcstream_partial_sweep_cb(uv_timer_t *t)
{
    struct rpcstream *s, *next;
    uint64_t now = uv_now(t->loop);
    char cause[PROTO_CAUSE_MAX];

    for (s = LIST_FIRST(&limited_streams); s != NULL; s = next) {
        next = LIST_NEXT(s, limited_entry);
        if (s->partial == 0 || !s->reading || s->closing ||
            s->close_when_flushed || now - s->partial_at < partial_idle_ms)
            continue;
        snprintf(cause, sizeof cause,
                 "an unfinished message got no byte for %llu ms (%zu bytes "
                 "so far)",
                 (unsigned long long)partial_idle_ms, s->partial);
        rpcstream_refuse_now(s, -ETIMEDOUT, cause);
    }
}

void
rpcstream_set_partial_limits(size_t total, uint64_t idle_ms)
{
    uint64_t every;

    partial_max = total;
    partial_idle_ms = idle_ms;
    if (stream_loop == NULL)
        return;
    uv_timer_stop(&partial_timer);
    if (idle_ms == 0)
        return;
    /* Looked at four times per idle time: refused within 1.25 of it. */
    every = idle_ms / 4;
    every = every < 10 ? 10 : every > 1000 ? 1000 : every;
    uv_timer_start(&partial_timer, rpcstream_partial_sweep_cb, every, every);
}

void
rpcstream_limit_partial(struct rpcstream *s)
{
    if (s->limited)
        return;
    s->limited = true;
    LIST_INSERT_HEAD(&limited_streams, s, limited_entry);
}

size_t
rpcstream_partial_total(void)
{
    return partial_total;
}

static void
rpcstream_end(struct rpcstream *s, int err, const char *cause)
{
    if (s->ended)
        return;
    s->ended = true;
    if (err != 0)
        s->failed = true;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        s->reading = false;
    }
    s->cbs.on_end(s->owner, err, cause);
}

static void
rpcstream_read_cb(uv_stream_t *handle, ssize_t nread, const uv_buf_t *buf)
{
    struct rpcstream *s = handle->data;

    (void)buf;
    if (nread == UV_ENOBUFS) {
        rpcstream_refuse(s, "out of memory reading a message");
        rpcstream_end(s, -ENOMEM, "out of memory");
        return;
    }
    if (nread < 0) {
        rpcstream_end(s, nread == UV_EOF ? 0 : (int)nread,
                      uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    proto_reader_fill(s->reader, (size_t)nread);
    rpcstream_mid_note(s);
    if (s->limited && !rpcstream_partial_count(s))
        return;
    rpcstream_dispatch(s);
}

/* Hands out whole messages until the buffer is empty or the stream pauses. */
static void
rpcstream_dispatch(struct rpcstream *s)
{
    struct proto_msg msg;
    char cause[PROTO_CAUSE_MAX];
    uint64_t start;
    int rc;

    if (s->in_dispatch)
        return;
    s->in_dispatch = true;
    start = uv_hrtime();
    while (!s->closing && !s->close_when_flushed && !s->failed &&
           s->pause == 0) {
        cause[0] = '\0';
        if (s->cbs.on_raw != NULL) {
            struct proto_raw raw;

            rc = proto_reader_peek(s->reader, &raw, cause);
            if (rc == 1 && s->cbs.on_raw(s->owner, &raw)) {
                proto_reader_skip(s->reader);
                goto handled;
            }
        }
        rc = s->cbs.take_bytes ? proto_reader_take(s->reader, &msg, cause)
                               : proto_reader_next(s->reader, &msg, cause);
        if (rc == 0)
            break;
        if (rc < 0) {
            if (cause[0] == '\0')
                snprintf(cause, sizeof cause, "%s", strerror(-rc));
            rpcstream_refuse(s, cause);
            rpcstream_end(s, rc, cause);
            break;
        }
        s->cbs.on_msg(s->owner, &msg);
    handled:
        if (s->out.size >= RPCSTREAM_BATCH_MAX ||
            uv_hrtime() - start >= RPCSTREAM_BATCH_NS) {
            rpcstream_flush_one(s);
            start = uv_hrtime();
        }
    }
    s->in_dispatch = false;
}

int
rpcstream_new(uv_loop_t *loop, size_t max_message,
              const struct rpcstream_cbs *cbs, void *owner,
              struct rpcstream **out)
{
    struct rpcstream *s = xcalloc(1, sizeof *s);
    int rc;

    s->reader = proto_reader_new(max_message);
    if (s->reader == NULL) {
        free(s);
        return -ENOMEM;
    }
    rc = uv_pipe_init(loop, &s->pipe, 0);
    if (rc != 0) {
        proto_reader_free(s->reader);
        free(s);
        return rc;
    }
    s->pipe.data = s;
    s->cbs = *cbs;
    s->owner = owner;
    msgpack_sbuffer_init(&s->out);
    *out = s;
    return 0;
}

int
rpcstream_open(struct rpcstream *s, int fd)
{
    (void)unixsock_grow_sndbuf(fd);
    return uv_pipe_open(&s->pipe, fd);
}

int
rpcstream_accept(struct rpcstream *s, uv_stream_t *server)
{
    int rc = uv_accept(server, (uv_stream_t *)&s->pipe), fd;

    if (rc == 0 && rpcstream_fileno(s, &fd) == 0)
        (void)unixsock_grow_sndbuf(fd);
    return rc;
}

int
rpcstream_fileno(const struct rpcstream *s, int *fd)
{
    uv_os_fd_t f;
    int rc = uv_fileno((const uv_handle_t *)&s->pipe, &f);

    if (rc == 0)
        *fd = f;
    return rc;
}

void
rpcstream_set_backlog(struct rpcstream *s, size_t high, size_t low)
{
    s->backlog_high = high;
    s->backlog_low = low;
}

static void
rpcstream_update_reading(struct rpcstream *s)
{
    bool want = s->started && !s->ended && !s->closing &&
                !s->close_when_flushed && s->pause == 0;

    if (want && !s->reading) {
        if (uv_read_start((uv_stream_t *)&s->pipe, rpcstream_alloc_cb,
                          rpcstream_read_cb) == 0)
            s->reading = true;
        /* Its idle time counts from when it can be read again. */
        s->partial_at = uv_now(s->pipe.loop);
    } else if (!want && s->reading) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        s->reading = false;
    }
    /* Messages that arrived before the pause are still buffered (also after
     * EOF: the peer may only have finished sending). */
    if (s->pause == 0 && s->started)
        rpcstream_dispatch(s);
}

int
rpcstream_start(struct rpcstream *s)
{
    int rc;

    s->started = true;
    if (s->pause != 0 || s->reading)
        return 0;
    rc = uv_read_start((uv_stream_t *)&s->pipe, rpcstream_alloc_cb,
                       rpcstream_read_cb);
    if (rc == 0)
        s->reading = true;
    return rc;
}

void
rpcstream_pause(struct rpcstream *s, unsigned why)
{
    if ((s->pause & why) == why)
        return;
    s->pause |= why;
    rpcstream_update_reading(s);
}

void
rpcstream_resume(struct rpcstream *s, unsigned why)
{
    if ((s->pause & why) == 0)
        return;
    s->pause &= ~why;
    rpcstream_update_reading(s);
}

int
rpcstream_read_now(struct rpcstream *s, size_t max)
{
    size_t before = proto_reader_pending(s->reader), len;
    bool end = false;
    char *p;
    ssize_t n;
    int fd, rc;

    if (s->closing || s->ended || rpcstream_fileno(s, &fd) != 0)
        return 0;
    while (proto_reader_pending(s->reader) < max) {
        rc = proto_reader_buffer(s->reader, RPCSTREAM_READ_CHUNK, &p, &len);
        if (rc != 0)
            return rc;
        n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        /* EOF and errors stay for libuv to read again; only whether the
         * peer has gone entirely is told here. */
        end = n == 0 || (n < 0 && errno != EAGAIN);
        if (n <= 0)
            break;
        proto_reader_fill(s->reader, (size_t)n);
    }
    rpcstream_mid_note(s);
    /* Counted, not judged: the bytes are bounded by max, and the next read
     * from the loop (or the sweep) refuses a stream past the limits, where
     * closing it cannot pull the stream from under the caller. */
    if (s->limited && proto_reader_pending(s->reader) != before) {
        /* The loop's clock stood still while the caller ran: its last byte
         * came now, not when the loop last looked. */
        uv_update_time(s->pipe.loop);
        rpcstream_partial_note(s);
    }
    if (proto_reader_pending(s->reader) != before && !s->dispatch_due) {
        s->dispatch_due = true;
        rpcstream_mark_dirty(s);
    }
    return end && rpcstream_peer_gone(s) ? 1 : 0;
}

size_t
rpcstream_scan(struct rpcstream *s, proto_scan_fn fn, void *arg)
{
    return proto_reader_scan(s->reader, fn, arg);
}

bool
rpcstream_peer_gone(const struct rpcstream *s)
{
    struct pollfd pfd = {.events = POLLIN};

    if (s->closing || rpcstream_fileno(s, &pfd.fd) != 0)
        return true;
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)) != 0;
}

void
rpcstream_msg_init(struct rpcstream_msg *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void
rpcstream_closed_cb(uv_handle_t *handle)
{
    struct rpcstream *s = handle->data;
    size_t i;

    /* Queued from a close callback after the last flush: forget it. */
    for (i = 0; i < ndirty; i++) {
        if (dirty[i] == s) {
            dirty[i] = dirty[--ndirty];
            break;
        }
    }
    proto_reader_free(s->reader);
    msgpack_sbuffer_destroy(&s->out);
    s->cbs.on_closed(s->owner);
    free(s);
}

void
rpcstream_close(struct rpcstream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    rpcstream_mid_note(s);
    if (s->limited) {
        s->limited = false;
        partial_total -= s->partial;
        s->partial = 0;
        LIST_REMOVE(s, limited_entry);
    }
    s->reading = false;
    s->write_bytes -= s->counted;
    s->counted = 0;
    s->hint_open = false;
    msgpack_sbuffer_clear(&s->out);
    uv_close((uv_handle_t *)&s->pipe, rpcstream_closed_cb);
}

/* Bytes went out: a stream waiting to close may close, a paused reader may
 * resume, the owner hears of it. */
static void
rpcstream_written(struct rpcstream *s)
{
    if (s->close_when_flushed && s->write_bytes == 0)
        rpcstream_close(s);
    /* Reading resumes once the backlog falls to the low mark. */
    if ((s->pause & RPCSTREAM_PAUSE_BACKLOG) && !s->closing &&
        s->write_bytes <= s->backlog_low)
        rpcstream_resume(s, RPCSTREAM_PAUSE_BACKLOG);
    if (s->cbs.on_drain != NULL)
        s->cbs.on_drain(s->owner);
}

static void
rpcstream_write_cb(uv_write_t *req, int status)
{
    struct rpcstream_write *wr = req->data;
    struct rpcstream *s = wr->s;

    writes_queued--;
    s->write_bytes -= wr->buf.len;
    free(wr->mem);
    free(wr);
    if (status < 0 && status != UV_ECANCELED && !s->closing)
        rpcstream_end(s, status, uv_strerror(status));
    rpcstream_written(s);
}

/* A write ended at once (done or failed): rpcstream_written runs in the
 * check phase, never from inside the owner's own work. */
static void
rpcstream_written_soon(struct rpcstream *s)
{
    s->drain_due = true;
    if (!in_flush_all)
        rpcstream_mark_dirty(s);
}

/* Empties the gathering buffer, keeping its room unless a burst grew it. */
static void
rpcstream_out_reset(struct rpcstream *s)
{
    s->hint_open = false;
    if (s->out.alloc > RPCSTREAM_KEEP_MAX) {
        msgpack_sbuffer_destroy(&s->out);
        msgpack_sbuffer_init(&s->out);
    } else {
        msgpack_sbuffer_clear(&s->out);
    }
}

/* uv_try_write: the bytes written, 0 when earlier writes are still queued or
 * the socket is full, or a negative error. */
static int
rpcstream_try_write(struct rpcstream *s, uv_buf_t *b, unsigned nbufs)
{
    int rc = uv_try_write((uv_stream_t *)&s->pipe, b, nbufs);

    return rc == UV_EAGAIN || rc == UV_ENOSYS ? 0 : rc;
}

/* Hands what s has gathered to the socket: one write for the whole batch,
 * tried at once; a uv_write only for what the socket did not take. */
static void
rpcstream_flush_one(struct rpcstream *s)
{
    struct rpcstream_write *wr;
    size_t len = s->out.size;
    uv_buf_t b;
    int n, rc;

    if (s->closing || len == 0)
        return;
    /* A hint still open says 0 (no hint): the bytes go as they are. */
    s->hint_open = false;
    /* Packed with rpcstream_begin but never committed: count it now. */
    s->write_bytes += len - s->counted;
    s->counted = 0;
    b = uv_buf_init(s->out.data, (unsigned)len);
    n = rpcstream_try_write(s, &b, 1);
    if (n < 0) {
        s->write_bytes -= len;
        rpcstream_out_reset(s);
        rpcstream_end(s, n, uv_strerror(n));
        rpcstream_written_soon(s);
        return;
    }
    s->write_bytes -= (size_t)n;
    if ((size_t)n == len) {
        rpcstream_out_reset(s);
        rpcstream_written_soon(s);
        return;
    }
    wr = xcalloc(1, sizeof *wr);
    wr->s = s;
    wr->mem = msgpack_sbuffer_release(&s->out);
    wr->buf = uv_buf_init(wr->mem + n, (unsigned)(len - (size_t)n));
    wr->req.data = wr;
    rc = uv_write(&wr->req, (uv_stream_t *)&s->pipe, &wr->buf, 1,
                  rpcstream_write_cb);
    if (rc == 0)
        writes_queued++;
    if (rc != 0) {
        s->write_bytes -= wr->buf.len;
        free(wr->mem);
        free(wr);
        rpcstream_end(s, rc, uv_strerror(rc));
        rpcstream_written_soon(s);
    }
}

void
rpcstream_flush(struct rpcstream *s)
{
    rpcstream_flush_one(s);
}

static void
rpcstream_flush_all(void)
{
    size_t i;

    /* A flush may end a stream, whose owner may queue more: loop on. */
    in_flush_all = true;
    for (i = 0; i < ndirty; i++) {
        struct rpcstream *s = dirty[i];

        s->queued = false;
        if (s->dispatch_due && !s->closing) {
            /* What rpcstream_read_now took in: libuv will not call for it. */
            s->dispatch_due = false;
            rpcstream_dispatch(s);
        }
        rpcstream_flush_one(s);
        if (s->drain_due && !s->closing) {
            s->drain_due = false;
            rpcstream_written(s);
        }
    }
    in_flush_all = false;
    ndirty = 0;
    uv_idle_stop(&flush_idle);
}

static void
rpcstream_check_cb(uv_check_t *h)
{
    (void)h;
    if (ndirty > 0)
        rpcstream_flush_all();
}

static void
rpcstream_idle_cb(uv_idle_t *h)
{
    (void)h;
    rpcstream_flush_all();
}

void
rpcstream_setup(uv_loop_t *loop)
{
    stream_loop = loop;
    uv_timer_init(loop, &partial_timer);
    uv_unref((uv_handle_t *)&partial_timer);
    uv_check_init(loop, &flush_check);
    uv_check_start(&flush_check, rpcstream_check_cb);
    /* Flushing is no reason to keep the loop alive. */
    uv_unref((uv_handle_t *)&flush_check);
    uv_idle_init(loop, &flush_idle);
    flusher_up = true;
}

void
rpcstream_teardown(void)
{
    if (flusher_up) {
        flusher_up = false;
        if (!uv_is_closing((uv_handle_t *)&flush_check))
            uv_close((uv_handle_t *)&flush_check, NULL);
        if (!uv_is_closing((uv_handle_t *)&flush_idle))
            uv_close((uv_handle_t *)&flush_idle, NULL);
        if (!uv_is_closing((uv_handle_t *)&partial_timer))
            uv_close((uv_handle_t *)&partial_timer, NULL);
        stream_loop = NULL;
    }
    free(dirty);
    dirty = NULL;
    ndirty = dirty_cap = 0;
}

/* Puts s in the list the flusher goes through this iteration. */
static void
rpcstream_mark_dirty(struct rpcstream *s)
{
    if (s->queued || !flusher_up)
        return;
    s->queued = true;
    if (ndirty == dirty_cap) {
        dirty_cap = dirty_cap ? dirty_cap * 2 : 64;
        dirty = xrealloc(dirty, dirty_cap * sizeof *dirty);
    }
    dirty[ndirty++] = s;
    if (!uv_is_active((uv_handle_t *)&flush_idle))
        uv_idle_start(&flush_idle, rpcstream_idle_cb);
}

/* Accounts len more bytes in out: a flush this iteration, maybe a pause. */
static void
rpcstream_queued(struct rpcstream *s, size_t len)
{
    s->write_bytes += len;
    s->counted += len;
    rpcstream_mark_dirty(s);
    if (s->backlog_high != 0 && s->write_bytes > s->backlog_high &&
        !(s->pause & RPCSTREAM_PAUSE_BACKLOG))
        rpcstream_pause(s, RPCSTREAM_PAUSE_BACKLOG);
}

/* A message this long is announced (a hint counts up to 4 GiB). */
static bool
hint_wanted(size_t len)
{
    return len >= RPCSTREAM_HINT_MIN && len <= UINT32_MAX;
}

/* Gathers the hint for a message of len bytes about to be gathered, when s
 * announces such: the bytes it took (0 or PROTO_HINT_BYTES). */
static size_t
rpcstream_gather_hint(struct rpcstream *s, size_t len)
{
    char hint[PROTO_HINT_BYTES];

    if (!s->hints || !hint_wanted(len))
        return 0;
    proto_size_hint(hint, (uint32_t)len);
    msgpack_sbuffer_write(&s->out, hint, sizeof hint);
    return sizeof hint;
}

void
rpcstream_send_hints(struct rpcstream *s)
{
    s->hints = true;
}

void
rpcstream_take_hints(struct rpcstream *s)
{
    proto_reader_take_hints(s->reader);
}

void
rpcstream_send(struct rpcstream *s, struct rpcstream_msg *m)
{
    size_t len = m->sb.size;

    if (s->closing || s->close_when_flushed || len == 0) {
        msgpack_sbuffer_destroy(&m->sb);
        return;
    }
    len += rpcstream_gather_hint(s, len);
    if (s->out.size == 0 && s->out.alloc < m->sb.size) {
        /* Take the message's buffer as it is: no copy for a big first one. */
        msgpack_sbuffer_destroy(&s->out);
        s->out = m->sb;
    } else {
        msgpack_sbuffer_write(&s->out, m->sb.data, m->sb.size);
        msgpack_sbuffer_destroy(&m->sb);
    }
    msgpack_sbuffer_init(&m->sb);
    rpcstream_queued(s, len);
}

bool
rpcstream_begin(struct rpcstream *s, msgpack_packer *pk)
{
    if (s->closing || s->close_when_flushed)
        return false;
    msgpack_packer_init(pk, &s->out, msgpack_sbuffer_write);
    if (s->hints) {
        /* Room for the hint, saying 0 (no hint) until the commit knows the
         * size: a message never committed is then still read right. */
        char hint[PROTO_HINT_BYTES];

        proto_size_hint(hint, 0);
        s->hint_at = s->out.size;
        s->hint_open = true;
        msgpack_sbuffer_write(&s->out, hint, sizeof hint);
    }
    return true;
}

void
rpcstream_commit(struct rpcstream *s)
{
    /* (the bytes may have been dropped meanwhile: nothing to announce) */
    if (s->hint_open && s->out.size >= s->hint_at + PROTO_HINT_BYTES) {
        char *at = s->out.data + s->hint_at;
        size_t len = s->out.size - s->hint_at - PROTO_HINT_BYTES;

        if (hint_wanted(len)) {
            proto_size_hint(at, (uint32_t)len);
        } else {
            memmove(at, at + PROTO_HINT_BYTES, len);
            s->out.size -= PROTO_HINT_BYTES;
        }
    }
    s->hint_open = false;
    if (s->closing || s->out.size <= s->counted)
        return;
    rpcstream_queued(s, s->out.size - s->counted);
}

void
rpcstream_forward(struct rpcstream *s, const char *head, size_t head_len,
                  const char *body, size_t body_len)
{
    size_t len = head_len + body_len, n;
    uv_buf_t b[2];
    int rc;

    if (s->closing || s->close_when_flushed)
        return;
    /* (a hint gathered first: the message then follows it, copied) */
    n = rpcstream_gather_hint(s, len);
    if (n > 0)
        rpcstream_queued(s, n);
    if (body_len >= RPCSTREAM_DIRECT_MIN && s->out.size == 0 &&
        s->write_bytes == 0) {
        b[0] = uv_buf_init((char *)head, (unsigned)head_len);
        b[1] = uv_buf_init((char *)body, (unsigned)body_len);
        rc = rpcstream_try_write(s, b, 2);
        if (rc < 0) {
            rpcstream_end(s, rc, uv_strerror(rc));
            rpcstream_written_soon(s);
            return;
        }
        n = (size_t)rc;
        if (n == len) {
            rpcstream_written_soon(s);
            return;
        }
        /* What the socket did not take waits with the gathered bytes. */
        if (n < head_len) {
            head += n;
            head_len -= n;
        } else {
            body += n - head_len;
            body_len -= n - head_len;
            head_len = 0;
        }
    }
    /* (msgpack-c copies even 0 bytes, to a NULL buffer) */
    if (head_len > 0)
        msgpack_sbuffer_write(&s->out, head, head_len);
    if (body_len > 0)
        msgpack_sbuffer_write(&s->out, body, body_len);
    rpcstream_queued(s, head_len + body_len);
}

void
rpcstream_close_flushed(struct rpcstream *s)
{
    if (s->closing)
        return;
    if (s->write_bytes == 0) {
        rpcstream_close(s);
        return;
    }
    s->close_when_flushed = true;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        s->reading = false;
    }
}

void
rpcstream_refuse(struct rpcstream *s, const char *cause)
{
    struct rpcstream_msg m;

    rpcstream_msg_init(&m);
    proto_write_protocol_error(&m.pk, cause);
    rpcstream_send(s, &m);
    rpcstream_close_flushed(s);
}

size_t
rpcstream_backlog(const struct rpcstream *s)
{
    return s->write_bytes;
}

bool
rpcstream_ended(const struct rpcstream *s)
{
    return s->ended || s->closing;
}

bool
rpcstream_closing(const struct rpcstream *s)
{
    return s->closing || s->close_when_flushed;
}
