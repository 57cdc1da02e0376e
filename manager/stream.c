/*
 * A msgpack-RPC connection over a uv_pipe_t: bytes are read straight into the
 * connection's proto_reader, whole messages go to the owner, outgoing messages
 * are queued with a byte count so that a slow reader can be noticed.
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

    s->reader = proto_reader_new(0);
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

    proto_reader_free(s->reader);
    s->reader = NULL;
    s->on_closed(s->owner);
}

void
stream_close(struct stream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    s->reading = false;
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

void
stream_send(struct stream *s, struct outmsg *om)
{
    struct stream_write *wr;
    int rc;

    if (s->closing || s->close_when_flushed || om->sb.size == 0) {
        msgpack_sbuffer_destroy(&om->sb);
        return;
    }
    wr = xcalloc(1, sizeof *wr);
    wr->s = s;
    wr->buf.len = om->sb.size;
    wr->buf.base = msgpack_sbuffer_release(&om->sb);
    wr->req.data = wr;
    msgpack_sbuffer_destroy(&om->sb);
    s->write_bytes += wr->buf.len;
    rc = uv_write(&wr->req, (uv_stream_t *)&s->pipe, &wr->buf, 1,
                  stream_write_cb);
    if (rc != 0) {
        s->write_bytes -= wr->buf.len;
        free(wr->buf.base);
        free(wr);
        stream_end(s, rc, uv_strerror(rc));
        return;
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
