/* The driver: polls the socket, reads, and hands out every message read:
 * replies to the blocking calls waiting for them or to the pipelined queue,
 * invokes to invoke.c, console lines to console.c, the server's other
 * requests and notifications. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jshost_priv.h"
#include "methods.h"

/* A result's bytes into buf when they fit, else into fresh memory. 1, or -1
 * when out of memory. */
static int
take_result(const char *bytes, size_t len, char *buf, size_t cap,
            jshost_value *value)
{
    value->data = len <= cap && buf != NULL ? buf : malloc(len);
    if (value->data == NULL)
        return -1;
    memcpy(value->data, bytes, len);
    value->len = len;
    return 1;
}

/* A pipelined reply, queued for jshost_read. */
static void
queue_reply(jshost_priv *p, uint32_t msgid, const char *result, size_t len,
            const msgpack_object *error)
{
    struct jshost__qreply *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return; /* counted as still in flight: jshost_read times out */
    q->reply.msgid = msgid;
    if (error == NULL)
        q->reply.ok = take_result(result, len, NULL, 0, &q->reply.value);
    else
        q->reply.ok =
            jshost__error_from_obj(error, &q->reply.error) == 0 ? 0 : -1;
    if (q->reply.ok < 0) {
        /* out of memory copying it: say so in the reply itself */
        q->reply.ok = 0;
        jshost_error_clear(&q->reply.error);
        q->reply.error.type = strdup("MemoryError");
        q->reply.error.message =
            strdup("libjshost ran out of memory reading this reply");
    }
    if (p->qtail != NULL)
        p->qtail->next = q;
    else
        p->qhead = q;
    p->qtail = q;
    pthread_cond_broadcast(&p->pipe_cond);
}

/* A blocking call's reply: error NULL means the result's bytes. */
static void
hand_reply(jshost_priv *p, uint32_t msgid, const char *result, size_t len,
           const msgpack_object *error)
{
    struct jshost__call *call;

    for (call = p->calls; call != NULL; call = call->next) {
        if (call->msgid == msgid && !call->serving)
            break;
    }
    if (call == NULL)
        return; /* the reply to a call that timed out on our side */
    jshost__call_remove(p, call);
    if (error == NULL)
        call->ok = take_result(result, len, call->buf, call->cap, &call->value);
    else
        call->ok = jshost__error_from_obj(error, &call->error) == 0 ? 0 : -1;
    call->state = JSHOST__CALL_DONE;
    jshost__word_bump(p, call);
}

static void
handle_response(jshost_priv *p, uint32_t msgid, const char *result, size_t len,
                const msgpack_object *error)
{
    if (msgid & JSHOST__PIPE_BIT)
        queue_reply(p, msgid, result, len, error);
    else
        hand_reply(p, msgid, result, len, error);
}

/* A request from the server other than invoke: answer NotFound, as
 * msgpack-RPC asks. */
static void
handle_request(jshost_priv *p, const struct proto_msg *m)
{
    msgpack_packer pk;
    size_t before = jshost__queue_begin(p, &pk);

    /* Out of memory: no answer, as if the request had not come. */
    (void)jshost__queue_end(
        p, before,
        proto_write_errorf(&pk, m->msgid, PROTO_ERR_NOT_FOUND,
                           "libjshost serves no method '%.*s'",
                           (int)m->method_len, m->method));
}

/* Hands out every whole message read. A result crosses as the bytes it came
 * as (no unpacking, no zone); an invoke as its params' bytes; errors, other
 * requests and notifications, rare, are unpacked. */
static int
dispatch(jshost_priv *p)
{
    struct proto_raw raw;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    char words[300];
    const msgpack_object *e, *msg;
    int r;

    while ((r = proto_reader_peek(p->reader, &raw, cause)) == 1) {
        if (raw.kind == PROTO_RESPONSE &&
            (unsigned char)raw.bytes[raw.error_at] == 0xc0) {
            handle_response(p, raw.msgid, raw.bytes + raw.result_at,
                            raw.size - raw.result_at, NULL);
            proto_reader_skip(p->reader);
            continue;
        }
        if (raw.kind == PROTO_REQUEST &&
            raw.method_len == sizeof(PROTO_M_INVOKE) - 1 &&
            memcmp(raw.method, PROTO_M_INVOKE, raw.method_len) == 0) {
            jshost__handle_invoke(p, &raw);
            proto_reader_skip(p->reader);
            continue;
        }
        if ((r = proto_reader_next(p->reader, &m, cause)) != 1)
            break;
        if (m.kind == PROTO_RESPONSE) {
            handle_response(p, m.msgid, NULL, 0, &m.error);
        } else if (m.kind == PROTO_REQUEST) {
            handle_request(p, &m);
        } else if (proto_msg_is(&m, PROTO_N_DRAINING)) {
            /* A worker's own socket: send it nothing new (direct.c). */
            atomic_store(&p->draining, true);
        } else if (proto_msg_is(&m, PROTO_N_CONSOLE)) {
            jshost__handle_console(p, &m);
        } else if (proto_msg_is(&m, "error") && m.params.via.array.size > 0) {
            e = &m.params.via.array.ptr[0];
            msg = proto_map_get(e, "message");
            if (msg != NULL && msg->type == MSGPACK_OBJECT_STR)
                snprintf(p->server_said, sizeof(p->server_said), "%.*s",
                         (int)msg->via.str.size, msg->via.str.ptr);
        }
        proto_msg_release(&m);
    }
    if (r < 0) {
        snprintf(words, sizeof(words), "protocol error from the server: %s",
                 cause[0] ? cause : strerror(-r));
        jshost__conn_lost(p, words);
        return r;
    }
    return 0;
}

/* Reads what is there without waiting (a few rounds of the buffer at
 * most: the others' turn comes too), handing out every whole message. */
static int
read_some(jshost_priv *p)
{
    char words[300];
    char *buf;
    size_t len;
    ssize_t n;
    int i, r;

    for (i = 0; i < 16; i++) {
        /* Straight into the reader's own buffer. */
        if (p->reader == NULL ||
            proto_reader_buffer(p->reader, 65536, &buf, &len) < 0) {
            jshost__conn_lost(p, "out of memory reading a reply");
            return -ENOMEM;
        }
        n = recv(p->fd, buf, len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            r = -errno;
            snprintf(words, sizeof(words), "read: %s", strerror(errno));
            jshost__conn_lost(p, words);
            return r;
        }
        if (n == 0) {
            jshost__conn_lost(p, "the server closed the connection");
            return -ECONNRESET;
        }
        proto_reader_fill(p->reader, (size_t)n);
        if ((r = dispatch(p)) < 0)
            return r;
        if ((size_t)n < len)
            return 0;
    }
    return 0;
}

/* read_some, then the invokes it found go to the handler (with `unlock`). */
static int
read_and_run(jshost_priv *p, bool unlock)
{
    int r = read_some(p);

    if (unlock && p->inv_head != NULL)
        jshost__run_invokes(p);
    return r;
}

int
jshost__drive(jshost_priv *p, int timeout_ms, bool unlock)
{
    struct pollfd pfd[2];
    uint64_t wakes;
    bool out;
    int n, nfds = 1, r;

    if (p->broken) {
        jshost__conn_lost(p, p->broken_cause);
        return -EPIPE;
    }
    if (p->fd < 0)
        return -ENOTCONN;
    /* Bytes to write that no flusher waits to write: wait for POLLOUT too. */
    out = p->woff < p->wbuf.size && !p->flushing;
    if (timeout_ms == 0 && !out)
        return read_and_run(p, unlock);
    if (timeout_ms < 0 || timeout_ms > JSHOST__WAIT_SLICE_MS)
        timeout_ms = JSHOST__WAIT_SLICE_MS;
    /* The socket alone (and jshost_serve_wake's eventfd, once a serve made
     * it): nobody else ever needs to interrupt this wait. (A blocking recv
     * instead, one system call less, costs more CPU: measured on Linux 6.1,
     * the sleep inside recv costs more than poll's.) */
    pfd[0].fd = p->fd;
    pfd[0].events = POLLIN | (out ? POLLOUT : 0);
    pfd[0].revents = 0;
    if (p->wake_fd >= 0) {
        pfd[1].fd = p->wake_fd;
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        nfds = 2;
    }
    if (out)
        p->flushing = true;
    if (unlock)
        jshost__unlock(p);
    /* Only the driver spins, so p->spin needs no lock. Not in the middle of
     * a transfer (bytes to write, part of a reply read): its end comes at the
     * pace of the peer's copying, which polling does not hasten. */
    n = 0;
    if (!out && (p->reader == NULL || proto_reader_partial(p->reader) == 0))
        n = spin_wait(&p->spin, pfd, (nfds_t)nfds,
                      (uint64_t)timeout_ms * 1000000u);
    if (n == 0) {
        n = poll(pfd, (nfds_t)nfds, timeout_ms);
    } else if (n < 0) {
        /* The spin's poll failed as the blocking one would have (a signal). */
        errno = -n;
        n = -1;
    }
    r = n < 0 && errno == EINTR ? -EINTR : 0;
    spin_end(&p->spin);
    if (unlock)
        pthread_mutex_lock(&p->lock);
    if (out)
        p->flushing = false;
    if (p->broken) {
        jshost__conn_lost(p, p->broken_cause);
        return -EPIPE;
    }
    if (n <= 0)
        return r;
    if (nfds == 2 && (pfd[1].revents & POLLIN) && p->wake_fd == pfd[1].fd)
        (void)!read(p->wake_fd, &wakes, sizeof(wakes));
    if (p->woff < p->wbuf.size && (r = jshost__flush(p)) < 0) {
        jshost__write_failed(p, r);
        return r;
    }
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
        return read_and_run(p, unlock);
    return 0;
}
