/* The connection core: the one send path (calls, the write buffer), the driver
 * that polls and reads, reply hand-over to waiting threads, connection loss,
 * and the fork check. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jshost_priv.h"
#include "methods.h"

int64_t
jshost__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
jshost__cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int r;

    if ((r = pthread_condattr_init(&attr)) != 0)
        return -r;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    r = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return -r;
}

static void
free_queue(jshost_priv *p)
{
    struct jshost__qreply *q, *next;

    for (q = p->qhead; q != NULL; q = next) {
        next = q->next;
        jshost_reply_free(&q->reply);
        free(q);
    }
    p->qhead = p->qtail = NULL;
}

/*
 * In a child after fork() the parent's threads are gone: whatever they held
 * (the lock, the driver role, their calls) is meaningless here, and the
 * socket is the parent's. Close our copy of it (never shut it down or write on
 * it: that would break the parent's connection) and start over; the first
 * request reconnects. Two threads of the child may race here: one resets, the
 * other waits for it.
 */
static void
fork_reset(jshost_priv *p, pid_t me)
{
    int expected = 0;

    if (!atomic_compare_exchange_strong(&p->forking, &expected, 1)) {
        while (atomic_load(&p->forking))
            sched_yield();
        return;
    }
    if (atomic_load(&p->pid) != me) {
        /* A lock held at fork() by a thread of the parent means the buffers
         * may be half-updated: leave them (a small leak) rather than free. */
        bool consistent = pthread_mutex_trylock(&p->lock) == 0;

        if (consistent)
            pthread_mutex_unlock(&p->lock);

        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_init(&p->errlock, NULL);
        jshost__cond_init(&p->pipe_cond);
        if (p->fd >= 0)
            close(p->fd);
        p->fd = -1;
        if (p->wakefd >= 0)
            close(p->wakefd);
        p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (consistent) {
            proto_reader_free(p->reader);
            free_queue(p);
        } else {
            msgpack_sbuffer_init(&p->wbuf);
            p->qhead = p->qtail = NULL;
        }
        p->reader = NULL;
        p->wbuf.size = 0;
        p->woff = 0;
        p->queued = p->written = 0;
        p->broken = false;
        p->driving = false;
        p->calls = NULL;
        p->in_flight = 0;
        p->pipe_lost = false;
        atomic_store(&p->pid, me);
    }
    atomic_store(&p->forking, 0);
}

void
jshost__enter(jshost *c)
{
    jshost_priv *p = c->priv;
    pid_t me = getpid();

    if (atomic_load(&p->pid) != me)
        fork_reset(p, me);
    pthread_mutex_lock(&p->lock);
}

void
jshost__leave(jshost *c)
{
    pthread_mutex_unlock(&c->priv->lock);
}

/* Starts a message at the end of the write buffer: *pk packs onto it. Returns
 * where it starts, for queue_end. */
static size_t
queue_begin(jshost_priv *p, msgpack_packer *pk)
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
static int
queue_end(jshost_priv *p, size_t before, int packed)
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

/* Lets the driver's poll return early (after queueing bytes). */
static void
poke(jshost_priv *p)
{
    uint64_t one = 1;

    if (p->driving && p->wakefd >= 0)
        (void)!write(p->wakefd, &one, sizeof(one));
}

int
jshost__push(jshost_priv *p)
{
    char words[300];
    int r = jshost__flush(p);

    if (r < 0) {
        snprintf(words, sizeof(words), "write: %s", strerror(-r));
        if (p->driving) {
            /* The driver polls this fd: only it may close it. */
            p->broken = true;
            snprintf(p->broken_cause, sizeof(p->broken_cause), "%s", words);
        } else {
            jshost__conn_lost(p, words);
        }
    }
    if (p->broken || p->woff < p->wbuf.size)
        poke(p);
    return r;
}

void
jshost__disconnect(jshost_priv *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    proto_reader_free(p->reader);
    p->reader = NULL;
    p->wbuf.size = 0;
    p->woff = 0;
    p->queued = p->written = 0;
    p->broken = false;
}

void
jshost__wake_all(jshost_priv *p)
{
    struct jshost__call *call;

    for (call = p->calls; call != NULL; call = call->next)
        pthread_cond_signal(&call->cond);
    pthread_cond_broadcast(&p->pipe_cond);
}

void
jshost__conn_lost(jshost_priv *p, const char *cause)
{
    struct jshost__call *call, *next;

    if (p->server_said[0] != '\0')
        snprintf(p->lost_cause, sizeof(p->lost_cause),
                 "%.200s (the server said: %.200s)", cause, p->server_said);
    else
        snprintf(p->lost_cause, sizeof(p->lost_cause), "%s", cause);
    p->server_said[0] = '\0';
    p->lost_err = strncmp(cause, "protocol error", 14) == 0
                      ? JSHOST_ERR_PROTOCOL
                      : JSHOST_ERR_IO;
    for (call = p->calls; call != NULL; call = next) {
        next = call->next;
        call->next = NULL;
        call->state = p->written <= call->start ? JSHOST__CALL_LOST_UNSENT
                                                : JSHOST__CALL_LOST_SENT;
        pthread_cond_signal(&call->cond);
    }
    p->calls = NULL;
    if (p->in_flight > 0) {
        p->pipe_lost = true;
        snprintf(p->pipe_lost_cause, sizeof(p->pipe_lost_cause), "%s",
                 p->lost_cause);
    }
    jshost__disconnect(p);
    pthread_cond_broadcast(&p->pipe_cond);
}

static void
call_add(jshost_priv *p, struct jshost__call *call)
{
    call->next = p->calls;
    p->calls = call;
}

static void
call_remove(jshost_priv *p, struct jshost__call *call)
{
    struct jshost__call **pp;

    for (pp = &p->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            call->next = NULL;
            return;
        }
    }
}

static void
fill_reply(const struct proto_msg *m, int *ok, jshost_value *value,
           jshost_error *error)
{
    if (m->error.type == MSGPACK_OBJECT_NIL) {
        *ok = jshost__value_from_obj(&m->result, value) == 0 ? 1 : -1;
    } else {
        *ok = jshost__error_from_obj(&m->error, error) == 0 ? 0 : -1;
    }
}

static void
handle_response(jshost_priv *p, const struct proto_msg *m)
{
    struct jshost__call *call;
    struct jshost__qreply *q;

    if (m->msgid & JSHOST__PIPE_BIT) {
        q = calloc(1, sizeof(*q));
        if (q == NULL)
            return; /* counted as still in flight: jshost_read times out */
        q->reply.msgid = m->msgid;
        fill_reply(m, &q->reply.ok, &q->reply.value, &q->reply.error);
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
        return;
    }
    for (call = p->calls; call != NULL; call = call->next) {
        if (call->msgid == m->msgid)
            break;
    }
    if (call == NULL)
        return; /* the reply to a call that timed out on our side */
    call_remove(p, call);
    fill_reply(m, &call->ok, &call->value, &call->error);
    call->state = JSHOST__CALL_DONE;
    pthread_cond_signal(&call->cond);
}

/* A request from the server: none is defined for clients yet, so answer
 * NotFound as msgpack-RPC asks. */
static void
handle_request(jshost_priv *p, const struct proto_msg *m)
{
    msgpack_packer pk;
    size_t before = queue_begin(p, &pk);

    /* Out of memory: no answer, as if the request had not come. */
    (void)queue_end(p, before,
                    proto_write_errorf(&pk, m->msgid, PROTO_ERR_NOT_FOUND,
                                       "libjshost serves no method '%.*s'",
                                       (int)m->method_len, m->method));
}

/* [2, "console", [level, text, ctx]]: to the handler, if any (lock held). */
static void
handle_console(jshost_priv *p, const struct proto_msg *m)
{
    const msgpack_object *a = m->params.via.array.ptr;
    char level[16], *text;

    if (p->console_fn == NULL || m->params.via.array.size < 3 ||
        a[0].type != MSGPACK_OBJECT_STR || a[1].type != MSGPACK_OBJECT_STR ||
        a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return;
    snprintf(level, sizeof(level), "%.*s", (int)a[0].via.str.size,
             a[0].via.str.ptr);
    text = malloc(a[1].via.str.size + 1);
    if (text == NULL)
        return; /* out of memory: the line is lost, the log has it */
    if (a[1].via.str.size > 0)
        memcpy(text, a[1].via.str.ptr, a[1].via.str.size);
    text[a[1].via.str.size] = '\0';
    p->console_fn(p->console_user, a[2].via.u64, level, text,
                  a[1].via.str.size);
    free(text);
}

void
jshost_set_console_handler(jshost *c, jshost_console_fn fn, void *user)
{
    jshost__enter(c);
    c->priv->console_fn = fn;
    c->priv->console_user = user;
    jshost__leave(c);
}

static int
dispatch(jshost_priv *p)
{
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX] = "";
    char words[300];
    const msgpack_object *e, *msg;
    int r;

    while ((r = proto_reader_next(p->reader, &m, cause)) == 1) {
        if (m.kind == PROTO_RESPONSE) {
            handle_response(p, &m);
        } else if (m.kind == PROTO_REQUEST) {
            handle_request(p, &m);
        } else if (proto_msg_is(&m, PROTO_N_CONSOLE)) {
            handle_console(p, &m);
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

static int
read_some(jshost_priv *p)
{
    char words[300];
    char *buf;
    size_t len;
    ssize_t n;
    int i, r;

    for (i = 0; i < 16; i++) {
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

int
jshost__drive(jshost_priv *p, int timeout_ms, bool unlock)
{
    struct pollfd pfd[2];
    char words[300];
    uint64_t junk;
    int n, r;

    if (p->broken) {
        jshost__conn_lost(p, p->broken_cause);
        return -EPIPE;
    }
    if (p->fd < 0)
        return -ENOTCONN;
    pfd[0].fd = p->fd;
    pfd[0].events = POLLIN | (p->woff < p->wbuf.size ? POLLOUT : 0);
    pfd[0].revents = 0;
    pfd[1].fd = p->wakefd;
    pfd[1].events = POLLIN;
    pfd[1].revents = 0;
    if (unlock)
        pthread_mutex_unlock(&p->lock);
    n = poll(pfd, p->wakefd >= 0 ? 2 : 1, timeout_ms);
    if (unlock)
        pthread_mutex_lock(&p->lock);
    if (n <= 0)
        return 0;
    if (pfd[1].revents & POLLIN)
        (void)!read(p->wakefd, &junk, sizeof(junk));
    if (p->broken) {
        jshost__conn_lost(p, p->broken_cause);
        return -EPIPE;
    }
    if (p->woff < p->wbuf.size) {
        if ((r = jshost__flush(p)) < 0) {
            snprintf(words, sizeof(words), "write: %s", strerror(-r));
            jshost__conn_lost(p, words);
            return r;
        }
    }
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
        return read_some(p);
    return 0;
}

int
jshost__call_init(struct jshost__call *call, bool pipelined)
{
    memset(call, 0, sizeof(*call));
    call->pipelined = pipelined;
    return pipelined ? 0 : jshost__cond_init(&call->cond);
}

void
jshost__call_fini(struct jshost__call *call)
{
    if (!call->pipelined)
        pthread_cond_destroy(&call->cond);
}

int
jshost__call_send(jshost_priv *p, struct jshost__call *call, const char *method,
                  const char *params, size_t params_len)
{
    msgpack_packer pk;
    size_t before = queue_begin(p, &pk);
    int r;

    /* Pipelined msgids carry the bit, blocking ones never: a reply finds its
     * way by its msgid alone. */
    call->msgid = p->next_msgid++ & ~JSHOST__PIPE_BIT;
    if (call->pipelined)
        call->msgid |= JSHOST__PIPE_BIT;
    call->start = p->queued;
    r = queue_end(p, before,
                  msgpack_pack_array(&pk, 4) || msgpack_pack_uint8(&pk, 0) ||
                      msgpack_pack_uint32(&pk, call->msgid) ||
                      proto_pack_cstr(&pk, method) ||
                      msgpack_sbuffer_write(&p->wbuf, params, params_len));
    if (r < 0)
        return r;
    if (call->pipelined)
        p->in_flight++;
    else
        call_add(p, call);
    return jshost__push(p);
}

int
jshost__call_wait(jshost_priv *p, struct jshost__call *call, int64_t deadline,
                  bool hold)
{
    struct timespec ts;
    int64_t remain;
    bool drove = false;
    int r = 0;

    while (call->state == JSHOST__CALL_PENDING) {
        remain = deadline < 0 ? -1 : deadline - jshost__now_ms();
        if (deadline >= 0 && remain <= 0) {
            call_remove(p, call);
            r = -ETIMEDOUT;
            break;
        }
        if (remain > 1000000000)
            remain = 1000000000;
        if (hold) {
            jshost__drive(p, (int)remain, false);
        } else if (!p->driving) {
            p->driving = true;
            drove = true;
            jshost__drive(p, (int)remain, true);
            p->driving = false;
        } else if (deadline < 0) {
            pthread_cond_wait(&call->cond, &p->lock);
        } else {
            ts.tv_sec = deadline / 1000;
            ts.tv_nsec = (deadline % 1000) * 1000000;
            pthread_cond_timedwait(&call->cond, &p->lock, &ts);
        }
    }
    /* Hand the driver role on to one waiting call (waking them all would be
     * a thundering herd on every reply). */
    if (drove) {
        if (p->calls != NULL)
            pthread_cond_signal(&p->calls->cond);
        pthread_cond_broadcast(&p->pipe_cond);
    }
    return r;
}

int
jshost__call_result(jshost *eo, struct jshost__call *call, const char *what,
                    jshost_value *result)
{
    jshost_priv *p = eo->priv;

    if (call->state != JSHOST__CALL_DONE)
        return jshost__seterr(eo, p->lost_err, "%s: connection lost: %s", what,
                              p->lost_cause);
    if (call->ok < 0)
        return jshost__seterr(eo, JSHOST_ERR_OOM, "%s: out of memory", what);
    if (call->ok == 0)
        return jshost__setremote(eo, &call->error);
    if (result != NULL)
        *result = call->value;
    else
        jshost_value_free(&call->value);
    return 0;
}
