/* The pipelined interface: many calls in flight on one connection, replies
 * taken as they come, a pollable fd for event loops (see jshost.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jshost_priv.h"

int
jshost_send(jshost *c, const char *method, const char *params,
            size_t params_len, uint32_t *msgid)
{
    jshost_priv *p = c->priv;
    struct jshost__call call;
    struct iovec part = {(void *)params, params_len};
    int r;

    if (method == NULL ||
        !jshost__valid_value(params, params_len, true, PROTO_MAX_DEPTH - 1))
        return jshost__seterr(
            c, JSHOST_ERR_ARG,
            "send %s: params are not one packed msgpack array",
            method != NULL ? method : "(no method)");
    jshost__enter(c);
    if (p->fd < 0 && !p->driving) {
        /* Replies still owed on the lost connection will never come: keep the
         * loss reported by jshost_read rather than reconnecting under it. */
        if (p->pipe_lost) {
            r = jshost__seterr(c, JSHOST_ERR_IO,
                               "send %s: connection lost: %s (read the "
                               "failure first)",
                               method, p->pipe_lost_cause);
            jshost__leave(c);
            return r;
        }
        if (jshost__reconnect_locked(c) < 0) {
            jshost__leave(c);
            return -1;
        }
    }
    jshost__call_init(&call, true);
    r = jshost__call_send(p, &call, method, &part, 1);
    if (r == -ENOMEM) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_OOM, "send %s: out of memory",
                              method);
    }
    if (r < 0) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_IO, "send %s: write: %s", method,
                              strerror(-r));
    }
    if (msgid != NULL)
        *msgid = call.msgid;
    jshost__leave(c);
    c->err = JSHOST_ERR_NONE;
    c->errstr[0] = '\0';
    return 0;
}

int
jshost_flush(jshost *c)
{
    jshost_priv *p = c->priv;
    int r;

    jshost__enter(c);
    if (p->fd < 0) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_IO, "flush: not connected");
    }
    r = jshost__push(p);
    jshost__leave(c);
    if (r < 0)
        return jshost__seterr(c, JSHOST_ERR_IO, "flush: write: %s",
                              strerror(-r));
    return 0;
}

int
jshost_fd(const jshost *c)
{
    return c->priv->fd;
}

size_t
jshost_pending_write(const jshost *c)
{
    const jshost_priv *p = c->priv;

    return p->wbuf.size - p->woff;
}

size_t
jshost_in_flight(const jshost *c)
{
    return c->priv->in_flight;
}

int
jshost_read(jshost *c, jshost_reply *reply, int timeout_ms)
{
    jshost_priv *p = c->priv;
    struct jshost__qreply *q;
    int64_t deadline =
        timeout_ms < 0 ? -1 : jshost__now_ms() + (int64_t)timeout_ms;
    int64_t remain;
    struct timespec ts;
    bool once = false;

    memset(reply, 0, sizeof(*reply));
    jshost__enter(c);
    while (p->qhead == NULL) {
        if (p->pipe_lost) {
            int r;

            p->pipe_lost = false;
            p->in_flight = 0;
            r = jshost__seterr(c, p->lost_err,
                               "read: connection lost with requests in "
                               "flight: %s",
                               p->pipe_lost_cause);
            jshost__leave(c);
            return r;
        }
        if (p->fd < 0) {
            jshost__leave(c);
            return jshost__seterr(c, JSHOST_ERR_IO, "read: not connected");
        }
        remain = deadline < 0 ? -1 : deadline - jshost__now_ms();
        if (deadline >= 0 && remain <= 0 && once)
            break;
        once = true;
        if (remain > 1000000000)
            remain = 1000000000;
        /* What jshost_send queued goes out first, in one write. */
        if (!p->driving && p->woff < p->wbuf.size && jshost__push(p) < 0)
            continue; /* lost: the loop reports it */
        if (!p->driving) {
            p->driving = true;
            jshost__drive(p, remain < 0 ? -1 : (int)remain, true);
            p->driving = false;
        } else if (deadline < 0) {
            jshost__wake_pending(p); /* the wait releases the lock itself */
            pthread_cond_wait(&p->pipe_cond, &p->lock);
        } else {
            ts.tv_sec = deadline / 1000;
            ts.tv_nsec = (deadline % 1000) * 1000000;
            jshost__wake_pending(p);
            pthread_cond_timedwait(&p->pipe_cond, &p->lock, &ts);
        }
    }
    jshost__wake_all(p);
    q = p->qhead;
    if (q == NULL) {
        jshost__leave(c);
        return 0;
    }
    p->qhead = q->next;
    if (p->qhead == NULL)
        p->qtail = NULL;
    if (p->in_flight > 0)
        p->in_flight--;
    jshost__leave(c);
    *reply = q->reply;
    free(q);
    c->err = JSHOST_ERR_NONE;
    c->errstr[0] = '\0';
    return 1;
}
