/*
 * A msgpack-RPC connection over a uv_pipe_t: bytes are read straight into the
 * connection's proto_reader, whole messages go to the owner, outgoing messages
 * are queued with a byte count so that a slow reader can be noticed.
 *
 * Writes are coalesced: messages queued during one loop iteration go out in
 * one write per connection, after the poll phase (uv_check). A pipelined
 * client's burst of requests thus costs one write to the worker, not one per
 * request. An idle handle runs while anything waits, so that messages queued
 * from timers never wait for the next I/O to wake the loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "xmalloc.h"

#define STREAM_READ_CHUNK (64 * 1024)

struct stream_write {
    uv_write_t req;
    uv_buf_t buf;
    struct stream *s;
};

/* Streams with bytes in `out` not yet handed to uv_write. */
static struct stream **dirty;
static size_t ndirty, dirty_cap;
static uv_check_t flush_check;
static uv_idle_t flush_idle;

static void stream_dispatch(struct stream *s);

static void
stream_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct stream *s = handle->data;
    char *p;
    size_t len;

    (void)suggested;
    if (proto_reader_buffer(s->reader, STREAM_READ_CHUNK, &p, &len) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = p;
    buf->len = len;
}

static void
stream_end(struct stream *s, int err, const char *cause)
{
    if (s->ended)
        return;
    s->ended = true;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        s->reading = false;
    }
    s->on_end(s->owner, err, cause);
}

static void
stream_read_cb(uv_stream_t *handle, ssize_t nread, const uv_buf_t *buf)
{
    struct stream *s = handle->data;

    (void)buf;
    if (nread == UV_ENOBUFS) {
        stream_refuse(s, "out of memory reading a message");
        stream_end(s, -ENOMEM, "out of memory");
        return;
    }
    if (nread < 0) {
        stream_end(s, nread == UV_EOF ? 0 : (int)nread, uv_strerror(nread));
        return;
    }
    if (nread == 0)
        return;
    proto_reader_fill(s->reader, (size_t)nread);
    stream_dispatch(s);
}

/* Hands out whole messages until the buffer is empty or reading pauses. */
static void
stream_dispatch(struct stream *s)
{
    struct proto_msg msg;
    char cause[PROTO_CAUSE_MAX];
    int rc;

    if (s->in_dispatch)
        return;
    s->in_dispatch = true;
    while (!s->closing && !s->ended && s->pause == 0) {
        cause[0] = '\0';
        rc = proto_reader_next(s->reader, &msg, cause);
        if (rc == 0)
            break;
        if (rc < 0) {
            stream_refuse(s, cause[0] != '\0' ? cause : "broken stream");
            stream_end(s, rc, cause);
            break;
        }
        s->on_msg(s->owner, &msg);
    }
    s->in_dispatch = false;
}

int
stream_init(struct stream *s, uv_loop_t *loop, void *owner)
{
    int rc;

    s->reader = proto_reader_new(mgr.max_message);
    if (s->reader == NULL)
        return -ENOMEM;
    rc = uv_pipe_init(loop, &s->pipe, 0);
    if (rc != 0) {
        proto_reader_free(s->reader);
        s->reader = NULL;
        return rc;
    }
    s->pipe.data = s;
    s->owner = owner;
    msgpack_sbuffer_init(&s->out);
    return 0;
}

static void
stream_update_reading(struct stream *s)
{
    bool want = !s->ended && !s->closing && s->pause == 0;

    if (want && !s->reading) {
        if (uv_read_start((uv_stream_t *)&s->pipe, stream_alloc_cb,
                          stream_read_cb) == 0)
            s->reading = true;
        /* Messages that arrived before the pause are still buffered. */
        stream_dispatch(s);
    } else if (!want && s->reading) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        s->reading = false;
    }
}

int
stream_start(struct stream *s)
{
    int rc = uv_read_start((uv_stream_t *)&s->pipe, stream_alloc_cb,
                           stream_read_cb);
    if (rc == 0)
        s->reading = true;
    return rc;
}

void
stream_outmsg(struct outmsg *om)
{
    msgpack_sbuffer_init(&om->sb);
    msgpack_packer_init(&om->pk, &om->sb, msgpack_sbuffer_write);
}

static void
stream_closed_cb(uv_handle_t *handle)
{
    struct stream *s = handle->data;

    size_t i;

    /* Queued from a close callback after the last flush: forget it. */
    for (i = 0; i < ndirty; i++) {
        if (dirty[i] == s) {
            dirty[i] = dirty[--ndirty];
            break;
        }
    }
    proto_reader_free(s->reader);
    s->reader = NULL;
    msgpack_sbuffer_destroy(&s->out);
    s->on_closed(s->owner);
}

void
stream_close(struct stream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    s->reading = false;
    s->write_bytes -= s->out.size;
    msgpack_sbuffer_clear(&s->out);
    uv_close((uv_handle_t *)&s->pipe, stream_closed_cb);
}

static void
stream_write_cb(uv_write_t *req, int status)
{
    struct stream_write *wr = req->data;
    struct stream *s = wr->s;

    s->write_bytes -= wr->buf.len;
    free(wr->buf.base);
    free(wr);
    if (status < 0 && status != UV_ECANCELED && !s->closing)
        stream_end(s, status, uv_strerror(status));
    if (s->close_when_flushed && s->write_bytes == 0) {
        stream_close(s);
        return;
    }
    /* Reading resumes once the backlog falls under a quarter of the mark. */
    if ((s->pause & STREAM_PAUSE_BACKLOG) &&
        s->write_bytes <= s->backlog_high / 4) {
        s->pause &= ~STREAM_PAUSE_BACKLOG;
        stream_update_reading(s);
    }
}

/* Hands what s has gathered to libuv: one write for the whole batch. */
static void
stream_flush_one(struct stream *s)
{
    struct stream_write *wr;
    size_t len = s->out.size;
    int rc;

    s->dirty = false;
    if (s->closing || len == 0)
        return;
    wr = xcalloc(1, sizeof *wr);
    wr->s = s;
    wr->buf.len = len;
    wr->buf.base = msgpack_sbuffer_release(&s->out);
    wr->req.data = wr;
    rc = uv_write(&wr->req, (uv_stream_t *)&s->pipe, &wr->buf, 1,
                  stream_write_cb);
    if (rc != 0) {
        s->write_bytes -= len;
        free(wr->buf.base);
        free(wr);
        stream_end(s, rc, uv_strerror(rc));
        if (s->close_when_flushed && s->write_bytes == 0)
            stream_close(s);
    }
}

static void
stream_flush_all(void)
{
    size_t i;

    /* A flush may end a stream, whose owner may queue more: loop on. */
    for (i = 0; i < ndirty; i++)
        stream_flush_one(dirty[i]);
    ndirty = 0;
    uv_idle_stop(&flush_idle);
}

static void
stream_check_cb(uv_check_t *h)
{
    (void)h;
    if (ndirty > 0)
        stream_flush_all();
}

static void
stream_idle_cb(uv_idle_t *h)
{
    (void)h;
    stream_flush_all();
}

void
stream_setup(uv_loop_t *loop)
{
    uv_check_init(loop, &flush_check);
    uv_check_start(&flush_check, stream_check_cb);
    /* Flushing is no reason to keep the loop alive. */
    uv_unref((uv_handle_t *)&flush_check);
    uv_idle_init(loop, &flush_idle);
}

void
stream_teardown(void)
{
    free(dirty);
    dirty = NULL;
    ndirty = dirty_cap = 0;
}

void
stream_send(struct stream *s, struct outmsg *om)
{
    size_t len = om->sb.size;

    if (s->closing || s->close_when_flushed || om->sb.size == 0) {
        msgpack_sbuffer_destroy(&om->sb);
        return;
    }
    if (s->out.size == 0 && s->out.data == NULL) {
        /* Take the message's buffer as it is: no copy for the first one. */
        s->out = om->sb;
    } else {
        msgpack_sbuffer_write(&s->out, om->sb.data, om->sb.size);
        msgpack_sbuffer_destroy(&om->sb);
    }
    s->write_bytes += len;
    msgpack_sbuffer_init(&om->sb);
    if (!s->dirty) {
        s->dirty = true;
        if (ndirty == dirty_cap) {
            dirty_cap = dirty_cap ? dirty_cap * 2 : 64;
            dirty = xrealloc(dirty, dirty_cap * sizeof *dirty);
        }
        dirty[ndirty++] = s;
        if (!uv_is_active((uv_handle_t *)&flush_idle))
            uv_idle_start(&flush_idle, stream_idle_cb);
    }
    if (s->backlog_high != 0 && s->write_bytes > s->backlog_high &&
        !(s->pause & STREAM_PAUSE_BACKLOG)) {
        s->pause |= STREAM_PAUSE_BACKLOG;
        stream_update_reading(s);
    }
}

void
stream_close_flushed(struct stream *s)
{
    if (s->closing)
        return;
    if (s->write_bytes == 0) {
        stream_close(s);
        return;
    }
    s->close_when_flushed = true;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        s->reading = false;
    }
}

void
stream_refuse(struct stream *s, const char *cause)
{
    struct outmsg om;

    stream_outmsg(&om);
    proto_write_protocol_error(&om.pk, cause);
    stream_send(s, &om);
    stream_close_flushed(s);
}

size_t
stream_backlog(const struct stream *s)
{
    return s->write_bytes;
}
