/* The connection core: the one send path (calls, the write buffer), the driver
 * that reads, reply hand-over to waiting threads, reverse calls (invoke) and
 * cancellation, connection loss, and the fork check. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ext.h"
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

_Static_assert(sizeof(atomic_uint) == 4, "a futex word is 32 bits");

/* Sleeps while *word == seen, up to deadline (jshost__now_ms() terms, -1:
 * none); returns early on a bump, a signal or spuriously. True when a signal
 * cut it short. */
static bool
word_wait(atomic_uint *word, unsigned seen, int64_t deadline)
{
    struct timespec ts, *tp = NULL;

    if (deadline >= 0) {
        ts.tv_sec = deadline / 1000;
        ts.tv_nsec = (deadline % 1000) * 1000000;
        tp = &ts;
    }
    /* BITSET: an absolute CLOCK_MONOTONIC deadline, as jshost__now_ms(). */
    return syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, seen, tp, NULL,
                   FUTEX_BITSET_MATCH_ANY) < 0 &&
           errno == EINTR;
}

static void
word_wake(atomic_uint *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1);
}

/* Bumps a call's word; its thread is woken when the lock is released. The
 * bump must be the last write to the call: its thread may return as soon as
 * it sees it (a wake-up that then finds no sleeper, or a later one at the
 * same address, is harmless: every sleeper checks its word again). */
static void
word_bump(jshost_priv *p, struct jshost__call *call)
{
    atomic_uint *word = &call->word;
    bool asleep = call->asleep;

    atomic_fetch_add_explicit(word, 1, memory_order_release);
    /* A thread that is not asleep (the driver, a flusher) needs no wake. */
    if (!asleep)
        return;
    if (p->nwakes < JSHOST__MAX_WAKES)
        p->wakes[p->nwakes++] = word;
    else
        word_wake(word);
}

void
jshost__wake_pending(jshost_priv *p)
{
    int i;

    for (i = 0; i < p->nwakes; i++)
        word_wake(p->wakes[i]);
    p->nwakes = 0;
}

void
jshost__unlock(jshost_priv *p)
{
    atomic_uint *wakes[JSHOST__MAX_WAKES];
    int i, n = p->nwakes;

    if (n > 0)
        memcpy(wakes, p->wakes, (size_t)n * sizeof(wakes[0]));
    p->nwakes = 0;
    pthread_mutex_unlock(&p->lock);
    for (i = 0; i < n; i++)
        word_wake(wakes[i]);
}

/* The invokes read and not handed to the handler, and the rids awaiting an
 * answer: both belong to the connection (lock held). */
static void
forget_invokes(jshost_priv *p)
{
    struct jshost__invoke *inv, *next;

    for (inv = p->inv_head; inv != NULL; inv = next) {
        next = inv->next;
        free(inv);
    }
    p->inv_head = p->inv_tail = NULL;
    p->inv_nrids = 0;
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

/* Bumped in every child fork() makes (glibc no longer caches getpid(), and
 * the check runs on every call). */
static atomic_uint fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void
fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void
fork_register(void)
{
    /* Out of memory here leaves fork() unnoticed: the child would then share
     * the parent's connection, as a handle without this check would. */
    (void)pthread_atfork(NULL, NULL, fork_child);
}

void
jshost__fork_watch(void)
{
    pthread_once(&fork_once, fork_register);
}

unsigned
jshost__fork_gen(void)
{
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
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
fork_reset(jshost_priv *p, unsigned gen)
{
    int expected = 0;

    if (!atomic_compare_exchange_strong(&p->forking, &expected, 1)) {
        while (atomic_load(&p->forking))
            sched_yield();
        return;
    }
    if (atomic_load(&p->gen) != gen) {
        /* A lock held at fork() by a thread of the parent means the buffers
         * may be half-updated: leave them (a small leak) rather than free. */
        bool consistent = pthread_mutex_trylock(&p->lock) == 0;

        if (consistent)
            pthread_mutex_unlock(&p->lock); /* ours from the trylock */

        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_init(&p->errlock, NULL);
        jshost__cond_init(&p->pipe_cond);
        if (p->fd >= 0)
            close(p->fd);
        p->fd = -1;
        /* The parent's eventfd: a wake here would wake the parent. */
        if (p->wake_fd >= 0)
            close(p->wake_fd);
        p->wake_fd = -1;
        p->serve_woken = false;
        if (consistent) {
            proto_reader_free(p->reader);
            free_queue(p);
            forget_invokes(p);
        } else {
            msgpack_sbuffer_init(&p->wbuf);
            p->qhead = p->qtail = NULL;
            p->inv_head = p->inv_tail = NULL;
            p->inv_rids = NULL;
            p->inv_cap = p->inv_nrids = 0;
        }
        p->reader = NULL;
        p->wbuf.size = 0;
        p->woff = 0;
        p->queued = p->written = 0;
        p->broken = false;
        p->driving = false;
        p->flushing = false;
        p->calls = NULL;
        p->nwakes = 0;
        p->in_flight = 0;
        p->pipe_lost = false;
        jshost__direct_after_fork(p);
        atomic_store(&p->gen, gen);
    }
    atomic_store(&p->forking, 0);
}

void
jshost__enter(jshost *c)
{
    jshost_priv *p = c->priv;
    unsigned gen = jshost__fork_gen();

    if (atomic_load_explicit(&p->gen, memory_order_relaxed) != gen)
        fork_reset(p, gen);
    pthread_mutex_lock(&p->lock);
}

void
jshost__leave(jshost *c)
{
    jshost__unlock(c->priv);
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

/* A write failed (negative errno r): the connection is done for. */
static void
write_failed(jshost_priv *p, int r)
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
        write_failed(p, r);
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
    forget_invokes(p);
}

void
jshost__wake_all(jshost_priv *p)
{
    struct jshost__call *call, *next;

    for (call = p->calls; call != NULL; call = next) {
        next = call->next;
        word_bump(p, call);
    }
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
        word_bump(p, call);
    }
    p->calls = NULL;
    if (p->in_flight > 0) {
        p->pipe_lost = true;
        snprintf(p->pipe_lost_cause, sizeof(p->pipe_lost_cause), "%s",
                 p->lost_cause);
    }
    /* A flusher polls a dup of the socket: shut it down so that its poll
     * ends now rather than when the peer goes. */
    if (p->flushing && p->fd >= 0)
        shutdown(p->fd, SHUT_RDWR);
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
    call_remove(p, call);
    if (error == NULL)
        call->ok = take_result(result, len, call->buf, call->cap, &call->value);
    else
        call->ok = jshost__error_from_obj(error, &call->error) == 0 ? 0 : -1;
    call->state = JSHOST__CALL_DONE;
    word_bump(p, call);
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
    size_t before = queue_begin(p, &pk);

    /* Out of memory: no answer, as if the request had not come. */
    (void)queue_end(p, before,
                    proto_write_errorf(&pk, m->msgid, PROTO_ERR_NOT_FOUND,
                                       "libjshost serves no method '%.*s'",
                                       (int)m->method_len, m->method));
}

/* Notes rid as awaiting its answer (lock held). 0 or -ENOMEM. */
static int
rid_add(jshost_priv *p, uint32_t rid)
{
    uint32_t *rids;
    size_t cap;

    if (p->inv_nrids == p->inv_cap) {
        cap = p->inv_cap > 0 ? p->inv_cap * 2 : 16;
        if ((rids = realloc(p->inv_rids, cap * sizeof(*rids))) == NULL)
            return -ENOMEM;
        p->inv_rids = rids;
        p->inv_cap = cap;
    }
    p->inv_rids[p->inv_nrids++] = rid;
    return 0;
}

/* Takes rid off those awaiting an answer; false when it is not one. */
static bool
rid_take(jshost_priv *p, uint32_t rid)
{
    size_t i;

    for (i = 0; i < p->inv_nrids; i++) {
        if (p->inv_rids[i] == rid) {
            p->inv_rids[i] = p->inv_rids[--p->inv_nrids];
            return true;
        }
    }
    return false;
}

/* An invoke's params, [callback_id, args]: the id and the args' bytes. */
static bool
invoke_params(const struct proto_raw *raw, uint32_t *id, const char **args,
              size_t *len)
{
    struct proto_cur cur;
    struct proto_item it;
    size_t end;

    if (raw->nparams < 2)
        return false;
    proto_cur_init(&cur, raw->bytes + raw->param_at[0],
                   raw->size - raw->param_at[0]);
    if (proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_UINT ||
        it.v.u > UINT32_MAX)
        return false;
    *id = (uint32_t)it.v.u;
    /* The args run to the next param, or to the end of the message. */
    end = raw->nparams > 2 ? raw->param_at[2] : raw->size;
    *args = raw->bytes + raw->param_at[1];
    *len = end - raw->param_at[1];
    proto_cur_init(&cur, *args, *len);
    return proto_cur_next(&cur, &it) == 0 && it.type == PROTO_T_ARRAY;
}

/*
 * [0, rid, "invoke", [callback_id, args]]: queued for the handler, which
 * jshost__drive calls once the lock is released. Answered at once when there
 * is no handler or nobody may be called now (a connection being set up), and
 * when its params are not what docs/protocol.md says.
 */
static void
handle_invoke(jshost_priv *p, const struct proto_raw *raw)
{
    struct jshost__invoke *inv = NULL;
    msgpack_packer pk;
    const char *args, *words = NULL;
    enum proto_errtype type = PROTO_ERR_NONE;
    uint32_t id;
    size_t len, before;

    if (p->invoke_fn == NULL || !p->driving) {
        type = PROTO_ERR_NOT_FOUND;
        words = "this client serves no callables";
    } else if (!invoke_params(raw, &id, &args, &len)) {
        type = PROTO_ERR_INVALID_ARGUMENT;
        words = "invoke: params must be [callback_id, args]";
    } else if ((inv = malloc(sizeof(*inv) + len)) == NULL ||
               rid_add(p, raw->msgid) < 0) {
        free(inv);
        type = PROTO_ERR_MEMORY;
        words = "libjshost ran out of memory taking this invoke";
    }
    if (type != PROTO_ERR_NONE) {
        before = queue_begin(p, &pk);
        /* Out of memory: no answer, as if the request had not come. */
        (void)queue_end(p, before,
                        proto_write_errorf(&pk, raw->msgid, type, "%s", words));
        return;
    }
    inv->next = NULL;
    inv->rid = raw->msgid;
    inv->callback_id = id;
    inv->len = len;
    memcpy(inv->args, args, len);
    if (p->inv_tail != NULL)
        p->inv_tail->next = inv;
    else
        p->inv_head = inv;
    p->inv_tail = inv;
}

/* Hands the invokes read to the handler, the lock released meanwhile (the
 * driver role stays ours, so nobody else reads). */
static void
run_invokes(jshost_priv *p)
{
    struct jshost__invoke *inv = p->inv_head, *next;
    jshost_invoke_fn fn = p->invoke_fn;
    void *user = p->invoke_user;

    p->inv_head = p->inv_tail = NULL;
    jshost__unlock(p);
    for (; inv != NULL; inv = next) {
        next = inv->next;
        fn(p->self, inv->rid, inv->callback_id, inv->args, inv->len, user);
        free(inv);
    }
    pthread_mutex_lock(&p->lock);
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
            handle_invoke(p, &raw);
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
        run_invokes(p);
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
    n = poll(pfd, (nfds_t)nfds, timeout_ms);
    r = n < 0 && errno == EINTR ? -EINTR : 0;
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
        write_failed(p, r);
        return r;
    }
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
        return read_and_run(p, unlock);
    return 0;
}

/*
 * A thread whose request the socket did not take while another drives: it
 * waits for POLLOUT itself (and writes what it can, others' bytes too), so
 * the driver's poll never needs interrupting. It polls a dup of the socket,
 * which the driver may close meanwhile.
 */
static void
wait_writable(jshost_priv *p, int timeout_ms)
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

void
jshost__call_init(struct jshost__call *call, bool pipelined)
{
    memset(call, 0, sizeof(*call));
    call->pipelined = pipelined;
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
static size_t
pack_uint(unsigned char *h, uint32_t v)
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
    n += pack_uint(h + n, msgid);
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
 * errno (the caller has the connection closed: write_failed).
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
static int
send_msg(jshost_priv *p, const struct iovec *iov, int niov)
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
        write_failed(p, err);
        return err;
    }
    /* queued < end: the connection was lost and made again meanwhile. */
    while (p->written < end && p->queued >= end && p->fd >= 0 && !p->broken &&
           p->driving && !p->flushing)
        wait_writable(p, JSHOST__WAIT_SLICE_MS);
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
        call_add(p, call);
    /* A pipelined request behind others in flight waits for the next
     * jshost_read or jshost_flush (or a full cork): many go in one write.
     * Else, with nothing queued before it, straight from the caller's
     * bytes. */
    corked = call->pipelined && p->in_flight > 1;
    err = put_iov(p, iov, niov, total, corked);
    call->end = p->queued;
    if (err < 0)
        write_failed(p, err);
    else if (corked && p->wbuf.size - p->woff >= JSHOST__CORK_BYTES)
        err = jshost__push(p);
    return err;
}

/* Asks the interrupt check whether to give up (lock held, and released
 * while it runs). */
static bool
interrupted(jshost_priv *p)
{
    jshost_interrupt_fn fn = p->interrupt_fn;
    void *user = p->interrupt_user;
    int stop;

    jshost__unlock(p);
    stop = fn(user);
    pthread_mutex_lock(&p->lock);
    return stop != 0;
}

int
jshost__call_wait(jshost_priv *p, struct jshost__call *call, int64_t deadline,
                  bool hold)
{
    int64_t now, remain, until, check_at = -1;
    unsigned seen;
    bool drove = false, flushed = false, signalled = false;
    int r = 0;

    /* With an interrupt check, no wait lasts longer than JSHOST__CHECK_MS
     * and a signal ends it: the check then says whether to go on. */
    if (!hold && p->interrupt_fn != NULL)
        check_at = jshost__now_ms() + JSHOST__CHECK_MS;
    while (call->state == JSHOST__CALL_PENDING) {
        if (call->serving && p->serve_woken)
            break;
        now = jshost__now_ms();
        if (check_at >= 0 && (signalled || now >= check_at)) {
            signalled = false;
            if (interrupted(p) && call->state == JSHOST__CALL_PENDING) {
                call_remove(p, call);
                r = -EINTR;
                break;
            }
            now = jshost__now_ms();
            check_at = now + JSHOST__CHECK_MS;
            continue;
        }
        remain = deadline < 0 ? -1 : deadline - now;
        if (deadline >= 0 && remain <= 0) {
            call_remove(p, call);
            r = -ETIMEDOUT;
            break;
        }
        until = deadline;
        if (check_at >= 0 && (until < 0 || check_at < until)) {
            until = check_at;
            remain = check_at - now;
        }
        if (remain > 1000000000)
            remain = 1000000000;
        if (hold) {
            jshost__drive(p, (int)remain, false);
        } else if (!p->driving) {
            p->driving = true;
            drove = true;
            signalled = jshost__drive(p, (int)remain, true) == -EINTR;
            p->driving = false;
        } else if (p->written < call->end && !p->flushing && p->fd >= 0) {
            /* Only while its own bytes wait: its reply cannot come before. */
            flushed = true;
            wait_writable(p, (int)remain);
        } else {
            /* Asleep on its own word, without the lock: the driver's wake-up
             * does not run into a lock it holds, and an answered call needs
             * the lock no more. */
            seen = atomic_load_explicit(&call->word, memory_order_relaxed);
            call->asleep = true;
            jshost__unlock(p);
            signalled = word_wait(&call->word, seen, until);
            if (atomic_load_explicit(&call->word, memory_order_acquire) !=
                    seen &&
                call->state == JSHOST__CALL_DONE && !drove && !flushed)
                return 1;
            pthread_mutex_lock(&p->lock);
            call->asleep = false;
        }
    }
    /* Hand the driver role on to one waiting call (waking them all would be
     * a thundering herd on every reply); bytes left to write by a flusher
     * that is done need whoever waits. */
    if (flushed && p->woff < p->wbuf.size) {
        jshost__wake_all(p);
    } else if (drove) {
        if (p->calls != NULL)
            word_bump(p, p->calls);
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
    else if (call->value.data != call->buf)
        jshost_value_free(&call->value);
    return 0;
}

/* Reverse calls, cancel, release, serve (jshost.h) ------------------------ */

/* A notification [2, method, [ids...]] (or [[ids...]] when `nested`) sent
 * with send_msg (lock held). */
static int
send_ids(jshost_priv *p, const char *method, const uint32_t *ids, size_t n,
         bool nested)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct iovec iov;
    size_t i;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = proto_write_notification(&pk, method, nested ? 1 : (uint32_t)n);
    if (nested)
        r |= msgpack_pack_array(&pk, n);
    for (i = 0; i < n; i++)
        r |= msgpack_pack_uint32(&pk, ids[i]);
    if (r != 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    iov = (struct iovec){sb.data, sb.size};
    r = send_msg(p, &iov, 1);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int
jshost__cancel_locked(jshost_priv *p, uint32_t msgid)
{
    return send_ids(p, PROTO_N_CANCEL, &msgid, 1, false);
}

/* The words for a failed send_msg of `what`. Returns -1. */
static int
send_failed(jshost *c, const char *what, int r)
{
    if (r == -ENOMEM)
        return jshost__seterr(c, JSHOST_ERR_OOM, "%s: out of memory", what);
    if (r == -ENOTCONN)
        return jshost__seterr(c, JSHOST_ERR_IO, "%s: not connected", what);
    return jshost__seterr(c, JSHOST_ERR_IO, "%s: write: %s", what,
                          strerror(-r));
}

int
jshost_cancel(jshost *c, uint32_t msgid)
{
    int r;

    jshost__enter(c);
    r = jshost__cancel_locked(c->priv, msgid);
    jshost__leave(c);
    if (r < 0)
        return send_failed(c, "cancel", r);
    return 0;
}

void
jshost_set_interrupt_check(jshost *c, jshost_interrupt_fn fn, void *user)
{
    jshost__enter(c);
    c->priv->interrupt_fn = fn;
    c->priv->interrupt_user = user;
    jshost__leave(c);
    jshost__direct_inherit_all(c->priv);
}

void
jshost_callable(uint32_t callback_id, char out[JSHOST_CALLABLE_SIZE])
{
    out[0] = (char)0xd6; /* fixext 4 */
    out[1] = PROTO_EXT_CALLABLE;
    out[2] = (char)(callback_id >> 24);
    out[3] = (char)(callback_id >> 16);
    out[4] = (char)(callback_id >> 8);
    out[5] = (char)callback_id;
}

void
jshost_set_invoke_handler(jshost *c, jshost_invoke_fn fn, void *user)
{
    jshost__enter(c);
    c->priv->invoke_fn = fn;
    c->priv->invoke_user = user;
    jshost__leave(c);
    jshost__direct_inherit_all(c->priv);
}

/* [1, rid, error, result] from the error's and the result's bytes (one of
 * them nil). */
static int
invoke_answer(jshost *c, uint32_t rid, const char *error, size_t error_len,
              const char *value, size_t len)
{
    static const char nil = (char)0xc0;
    jshost_priv *p = c->priv;
    unsigned char head[8] = {0x94, 0x01};
    struct iovec iov[3];
    int r;

    iov[0] = (struct iovec){head, 2 + pack_uint(head + 2, rid)};
    iov[1] = error != NULL ? (struct iovec){(void *)error, error_len}
                           : (struct iovec){(void *)&nil, 1};
    iov[2] = value != NULL ? (struct iovec){(void *)value, len}
                           : (struct iovec){(void *)&nil, 1};
    jshost__enter(c);
    if (!rid_take(p, rid)) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_ARG,
                              "invoke %u: no such reverse call awaits an "
                              "answer (answered already, or its connection "
                              "was lost)",
                              rid);
    }
    r = send_msg(p, iov, 3);
    jshost__leave(c);
    /* c->err is left alone on success: the handle's other threads may be
     * reporting their own failure through it. */
    if (r < 0)
        return send_failed(c, "invoke answer", r);
    return 0;
}

int
jshost_invoke_reply(jshost *c, uint32_t rid, const char *value, size_t len)
{
    if (!jshost__valid_value(value, len, false, PROTO_VALUE_MAX_DEPTH))
        return jshost__seterr(c, JSHOST_ERR_ARG,
                              "invoke %u: the answer is not one packed msgpack "
                              "value (nesting at most %d levels)",
                              rid, PROTO_VALUE_MAX_DEPTH);
    return invoke_answer(c, rid, NULL, 0, value, len);
}

int
jshost_invoke_error(jshost *c, uint32_t rid, const char *type, const char *name,
                    const char *message, const char *stack)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, 5) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_TYPE) != 0 ||
        proto_pack_cstr(&pk, type != NULL ? type : "JSError") != 0 ||
        proto_pack_cstr(&pk, PROTO_K_MESSAGE) != 0 ||
        proto_pack_cstr(&pk, message) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_NAME) != 0 ||
        proto_pack_cstr(&pk, name) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_STACK) != 0 ||
        proto_pack_cstr(&pk, stack) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_LOGFILE) != 0 ||
        msgpack_pack_nil(&pk) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return jshost__seterr(c, JSHOST_ERR_OOM, "invoke %u: out of memory",
                              rid);
    }
    r = invoke_answer(c, rid, sb.data, sb.size, NULL, 0);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int
jshost_release(jshost *c, const uint32_t *callback_ids, size_t n)
{
    int r;

    if (n == 0)
        return 0;
    if (callback_ids == NULL || n > UINT32_MAX)
        return jshost__seterr(c, JSHOST_ERR_ARG, "release: no callback ids");
    /* [2, "release", [[ids...]]] */
    jshost__enter(c);
    r = send_ids(c->priv, PROTO_N_RELEASE, callback_ids, n, true);
    jshost__leave(c);
    if (r < 0)
        return send_failed(c, "release", r);
    return 0;
}

int
jshost_serve(jshost *c, int timeout_ms)
{
    jshost_priv *p = c->priv;
    struct jshost__call call, *other;
    int64_t deadline = timeout_ms < 0 ? -1 : jshost__now_ms() + timeout_ms;
    int r;

    jshost__enter(c);
    /* Made once: the driver polls it beside the socket, so that a wake ends
     * a serve's poll. Without it (out of descriptors) a wake waits for the
     * poll's slice to end. */
    if (p->wake_fd < 0)
        p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->serve_woken) {
        p->serve_woken = false;
        jshost__leave(c);
        return 0;
    }
    if (p->fd < 0) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_IO, "serve: not connected");
    }
    jshost__call_init(&call, false);
    call.serving = true;
    call.start = call.end = p->queued;
    call_add(p, &call);
    r = jshost__call_wait(p, &call, deadline, false);
    if (r == 0 && call.state == JSHOST__CALL_PENDING) {
        /* Woken: the wake is spent once no other serve waits for it. */
        call_remove(p, &call);
        for (other = p->calls; other != NULL; other = other->next)
            if (other->serving)
                break;
        if (other == NULL)
            p->serve_woken = false;
    } else if (r == 0) {
        r = jshost__seterr(c, p->lost_err, "serve: connection lost: %s",
                           p->lost_cause);
        jshost__leave(c);
        return r;
    }
    jshost__leave(c);
    if (r == -EINTR)
        return jshost__seterr(c, JSHOST_ERR_CANCELLED, "serve: interrupted");
    return 0;
}

void
jshost_serve_wake(jshost *c)
{
    jshost_priv *p = c->priv;
    struct jshost__call *call;
    uint64_t one = 1;

    jshost__enter(c);
    p->serve_woken = true;
    for (call = p->calls; call != NULL; call = call->next)
        if (call->serving)
            word_bump(p, call);
    if (p->wake_fd >= 0)
        (void)!write(p->wake_fd, &one, sizeof(one));
    jshost__leave(c);
}
