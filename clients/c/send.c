/* Writing: the one send path (jshost__call_send), the write buffer and what
 * the socket did not take, other messages (invoke answers, notifications), and
 * a write that fails. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jshost_priv.h"

/* Starts a message at the end of the write buffer: *pk packs onto it. Returns
 * where it starts, for jshost__queue_end. */
size_t
jshost__queue_begin(jshost_priv *p, msgpack_packer *pk)
{
    if (p->woff == p->wbuf.size) {
        p->wbuf.size = 0;
        p->woff = 0;
    }
    msgpack_packer_init(pk, &p->wbuf, msgpack_sbuffer_write);
    return p->wbuf.size;
}

/* Ends the message begun at `before`: counted as queued when packing went
 * well (packed == 0), else dropped whole. 0 or -ENOMEM. */
int
jshost__queue_end(jshost_priv *p, size_t before, int packed)
{
    if (packed != 0) {
        p->wbuf.size = before;
        return -ENOMEM;
    }
    p->queued += p->wbuf.size - before;
    return 0;
}

int
jshost__flush(jshost_priv *p)
{
    ssize_t n;

    if (p->fd < 0)
        return -ENOTCONN;
    while (p->woff < p->wbuf.size) {
        /* MSG_NOSIGNAL: a dead server must never kill the caller with SIGPIPE
         * (Linux has no SO_NOSIGPIPE). */
        n = send(p->fd, p->wbuf.data + p->woff, p->wbuf.size - p->woff,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -errno;
        }
        p->woff += (size_t)n;
        p->written += (uint64_t)n;
    }
    if (p->woff == p->wbuf.size) {
        p->wbuf.size = 0;
        p->woff = 0;
    } else if (p->woff > 1024 * 1024 && p->woff > p->wbuf.size / 2) {
        memmove(p->wbuf.data, p->wbuf.data + p->woff, p->wbuf.size - p->woff);
        p->wbuf.size -= p->woff;
        p->woff = 0;
    }
    return 0;
}

/* A write failed (negative errno r): the connection is done for. */
void
jshost__write_failed(jshost_priv *p, int r)
{
    char words[300];

    snprintf(words, sizeof(words), "write: %s", strerror(-r));
    if (p->driving) {
        /* The driver reads this fd without the lock: only it may close it.
         * Shutting the socket down ends its read (and a flusher's poll). */
        if (!p->broken)
            shutdown(p->fd, SHUT_RDWR);
        p->broken = true;
        snprintf(p->broken_cause, sizeof(p->broken_cause), "%s", words);
    } else {
        jshost__conn_lost(p, words);
    }
}

int
jshost__push(jshost_priv *p)
{
    int r = jshost__flush(p);

    if (r < 0)
        jshost__write_failed(p, r);
    return r;
}

/*
 * A thread whose request the socket did not take while another drives: it
 * waits for POLLOUT itself (and writes what it can, others' bytes too), so
 * the driver's poll never needs interrupting. It polls a dup of the socket,
 * which the driver may close meanwhile.
 */
void
jshost__wait_writable(jshost_priv *p, int timeout_ms)
{
    struct pollfd pfd = {-1, POLLOUT, 0};
    struct timespec ts = {0, 0};

    pfd.fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
    if (pfd.fd < 0) {
        /* Out of descriptors: the driver writes when its wait slice ends. */
        ts.tv_nsec =
            (timeout_ms >= 0 && timeout_ms < 10 ? timeout_ms : 10) * 1000000L;
        jshost__unlock(p);
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&p->lock);
        return;
    }
    p->flushing = true;
    jshost__unlock(p);
    poll(&pfd, 1, timeout_ms);
    pthread_mutex_lock(&p->lock);
    close(pfd.fd);
    p->flushing = false;
    if (p->fd >= 0 && !p->broken)
        jshost__push(p);
}

size_t
jshost__str_head(unsigned char *h, size_t len)
{
    if (len < 32) {
        h[0] = (unsigned char)(0xa0 | len);
        return 1;
    }
    if (len < 256) {
        h[0] = 0xd9;
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[0] = 0xda;
        h[1] = (unsigned char)(len >> 8);
        h[2] = (unsigned char)len;
        return 3;
    }
    h[0] = 0xdb;
    h[1] = (unsigned char)(len >> 24);
    h[2] = (unsigned char)(len >> 16);
    h[3] = (unsigned char)(len >> 8);
    h[4] = (unsigned char)len;
    return 5;
}

/* A msgpack uint (a msgid, a callback id) into h (5 bytes of room), as small
 * as msgpack-c packs it. Returns its length. */
size_t
jshost__pack_uint(unsigned char *h, uint32_t v)
{
    if (v < 0x80) {
        h[0] = (unsigned char)v;
        return 1;
    }
    if (v < 0x100) {
        h[0] = 0xcc;
        h[1] = (unsigned char)v;
        return 2;
    }
    if (v < 0x10000) {
        h[0] = 0xcd;
        h[1] = (unsigned char)(v >> 8);
        h[2] = (unsigned char)v;
        return 3;
    }
    h[0] = 0xce;
    h[1] = (unsigned char)(v >> 24);
    h[2] = (unsigned char)(v >> 16);
    h[3] = (unsigned char)(v >> 8);
    h[4] = (unsigned char)v;
    return 5;
}

/* A request's head: [0, msgid, and the method's str header (its bytes
 * follow). Returns its length (at most 12). */
static size_t
pack_head(unsigned char *h, uint32_t msgid, size_t method_len)
{
    size_t n = 2;

    h[0] = 0x94; /* fixarray of 4 */
    h[1] = 0x00; /* request */
    n += jshost__pack_uint(h + n, msgid);
    return n + jshost__str_head(h + n, method_len);
}

/* Room for len more bytes in the write buffer. 0 or -ENOMEM. */
static int
wbuf_reserve(jshost_priv *p, size_t len)
{
    size_t want, cap;
    char *d;

    if (p->woff == p->wbuf.size)
        p->wbuf.size = p->woff = 0;
    if (p->wbuf.alloc - p->wbuf.size >= len)
        return 0;
    want = p->wbuf.size + len;
    if (want < len)
        return -ENOMEM;
    cap = p->wbuf.alloc ? p->wbuf.alloc : 8192;
    while (cap < want)
        cap = cap * 2 > cap ? cap * 2 : want;
    if ((d = realloc(p->wbuf.data, cap)) == NULL)
        return -ENOMEM;
    p->wbuf.data = d;
    p->wbuf.alloc = cap;
    return 0;
}

/*
 * Writes one whole message of `total` bytes (room for it reserved), straight
 * from its pieces when nothing else waits to be written and it is not
 * `corked`, queueing what the socket did not take. 0, or the write's negative
 * errno (the caller has the connection closed: jshost__write_failed).
 */
static int
put_iov(jshost_priv *p, const struct iovec *iov, int niov, size_t total,
        bool corked)
{
    struct msghdr mh = {0};
    size_t skip;
    ssize_t n = 0;
    int i, err = 0;

    if (!corked && p->woff == p->wbuf.size && p->fd >= 0) {
        mh.msg_iov = (struct iovec *)iov;
        mh.msg_iovlen = (size_t)niov;
        do {
            n = sendmsg(p->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                err = -errno;
            n = 0;
        }
    }
    p->queued += total;
    p->written += (uint64_t)n;
    skip = (size_t)n;
    for (i = 0; i < niov; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        memcpy(p->wbuf.data + p->wbuf.size, (char *)iov[i].iov_base + skip,
               iov[i].iov_len - skip);
        p->wbuf.size += iov[i].iov_len - skip;
        skip = 0;
    }
    return err;
}

/*
 * A message that is not a request (an invoke's answer, a notification), lock
 * held: written now, what the socket does not take queued. A driver polling
 * meanwhile does not wait for POLLOUT, so when it drives, this thread waits
 * until the socket took the message (as a blocking call's sender does). 0 or a
 * negative errno.
 */
int
jshost__send_msg(jshost_priv *p, const struct iovec *iov, int niov)
{
    size_t total = 0;
    uint64_t end;
    int i, err;

    if (p->fd < 0 || p->broken)
        return -ENOTCONN;
    for (i = 0; i < niov; i++)
        total += iov[i].iov_len;
    if (wbuf_reserve(p, total) < 0)
        return -ENOMEM;
    end = p->queued + total;
    if ((err = put_iov(p, iov, niov, total, false)) < 0) {
        jshost__write_failed(p, err);
        return err;
    }
    /* queued < end: the connection was lost and made again meanwhile. */
    while (p->written < end && p->queued >= end && p->fd >= 0 && !p->broken &&
           p->driving && !p->flushing)
        jshost__wait_writable(p, JSHOST__WAIT_SLICE_MS);
    return 0;
}

int
jshost__call_send(jshost_priv *p, struct jshost__call *call, const char *method,
                  const struct iovec *parts, int nparts)
{
    unsigned char head[16];
    struct iovec iov[2 + JSHOST__MAX_PARTS];
    size_t total;
    bool corked;
    int i, niov, err = 0;

    /* Pipelined msgids carry the bit, blocking ones never: a reply finds its
     * way by its msgid alone. */
    call->msgid = p->next_msgid & ~JSHOST__PIPE_BIT;
    if (call->pipelined)
        call->msgid |= JSHOST__PIPE_BIT;
    iov[1].iov_base = (void *)method;
    iov[1].iov_len = strlen(method);
    iov[0].iov_base = head;
    iov[0].iov_len = pack_head(head, call->msgid, iov[1].iov_len);
    total = iov[0].iov_len + iov[1].iov_len;
    for (i = 0; i < nparts; i++) {
        iov[2 + i] = parts[i];
        total += parts[i].iov_len;
    }
    niov = 2 + nparts;
    /* Room first: what the socket does not take must be queued whole, or
     * the stream would be cut. */
    if (wbuf_reserve(p, total) < 0)
        return -ENOMEM;
    p->next_msgid++;
    call->start = p->queued;
    if (call->pipelined)
        p->in_flight++;
    else
        jshost__call_add(p, call);
    /* A pipelined request behind others in flight waits for the next
     * jshost_read or jshost_flush (or a full cork): many go in one write.
     * Else, with nothing queued before it, straight from the caller's
     * bytes. */
    corked = call->pipelined && p->in_flight > 1;
    err = put_iov(p, iov, niov, total, corked);
    call->end = p->queued;
    if (err < 0)
        jshost__write_failed(p, err);
    else if (corked && p->wbuf.size - p->woff >= JSHOST__CORK_BYTES)
        err = jshost__push(p);
    return err;
}
