/* The connection core: the lock and the fork check, the wake-ups of waiting
 * calls (futex words), the calls registered on the connection, connection
 * loss, and a blocking call's wait for its reply (with the interrupt check
 * that can end it) and its outcome. Sending is send.c's, reading drive.c's,
 * reverse calls invoke.c's. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "jshost_priv.h"

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
void
jshost__word_bump(jshost_priv *p, struct jshost__call *call)
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
        jshost__word_bump(p, call);
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
        jshost__word_bump(p, call);
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

void
jshost__call_add(jshost_priv *p, struct jshost__call *call)
{
    call->next = p->calls;
    p->calls = call;
}

void
jshost__call_remove(jshost_priv *p, struct jshost__call *call)
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

void
jshost__call_init(struct jshost__call *call, bool pipelined)
{
    memset(call, 0, sizeof(*call));
    call->pipelined = pipelined;
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
                jshost__call_remove(p, call);
                r = -EINTR;
                break;
            }
            now = jshost__now_ms();
            check_at = now + JSHOST__CHECK_MS;
            continue;
        }
        remain = deadline < 0 ? -1 : deadline - now;
        if (deadline >= 0 && remain <= 0) {
            jshost__call_remove(p, call);
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
            jshost__wait_writable(p, (int)remain);
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
            jshost__word_bump(p, p->calls);
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

void
jshost_set_interrupt_check(jshost *c, jshost_interrupt_fn fn, void *user)
{
    jshost__enter(c);
    c->priv->interrupt_fn = fn;
    c->priv->interrupt_user = user;
    jshost__leave(c);
    jshost__direct_inherit_all(c->priv);
}
