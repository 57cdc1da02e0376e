/*
 * libjshost's insides, shared by its files (jshost__ prefix). Not installed.
 *
 *   connect.c   connecting: auto-spawn, hello, reattach, jshost_free
 *   conn.c      the lock and the fork check, waking waiting calls, the
 *               calls registered, connection loss, a blocking call's wait
 *   send.c      the one send path (jshost__call_send), the write buffer
 *   drive.c     the driver: polls, reads, hands out each message read
 *   invoke.c    reverse calls (invoke) and their answers; cancel, release,
 *               jshost_serve
 *   console.c   console lines to jshost_set_console_handler's handler
 *   call.c      the blocking API (jshost_call, attach, contexts, ...)
 *   pipeline.c  the pipelined API (jshost_send, jshost_read, ...)
 *   direct.c    direct calls to a host's workers
 *   value.c     values, errors; json.c JSON to and from msgpack
 *
 * One connection per handle. All state below is guarded by `lock`. Only the
 * "driver" (one thread at a time, priv->driving) polls the socket, and it
 * polls without the lock, the socket alone; every read/write syscall is made
 * with the lock held and is nonblocking. Threads waiting for their reply
 * sleep on a futex word of their own, without the lock, and the driver hands
 * replies over (a shared handle is pipelined, not serialized: see jshost.h):
 * it bumps the word, and the wake-up waits for the lock's release
 * (jshost__unlock), so the woken never run into the lock. One poll and one
 * read serve every waiter whose reply came. Nobody ever needs to interrupt the
 * driver: when the socket will not take a request at once, the thread that
 * queued it waits for POLLOUT itself (on a dup of the socket, which the
 * driver may close meanwhile: priv->flushing), and a write that fails while
 * the driver polls shuts the socket down, which ends the driver's poll.
 *
 * A call's life: a public function (call.c, pipeline.c, connect.c for hello
 * and attach) fills a struct jshost__call and hands it to jshost__call_send,
 * the one send path: it gives the call its msgid, registers or counts the
 * call and writes the request straight from the caller's pieces, queueing
 * only what the socket did not take (a write failure, there or in
 * jshost__push, is handled in one place, send.c's jshost__write_failed). A
 * blocking call then waits in jshost__call_wait (which drives the connection
 * when no other thread does) and jshost__call_result turns its end into a value
 * or an error; a pipelined call's reply queues for jshost_read.
 * jshost__conn_lost is the one place a lost connection ends the calls it
 * carried.
 *
 * Nothing on a call's way allocates but the result handed to the caller (and
 * not that when the caller gives room for it): requests are written from the
 * caller's bytes, replies are read as bytes (proto_reader_peek) and copied
 * out, and the fork check is a generation counter, not getpid().
 */
#ifndef JSHOST_PRIV_H
#define JSHOST_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <msgpack.h>

#include "jshost.h"
#include "proto.h"
#include "spin.h"

/* How long a blocking call waits past its own deadline for the server's
 * TimeoutError before giving up on the client side. */
#define JSHOST__MARGIN_MS 2000
/* Client-side guard on a JS run with the host's default deadline (timeout 0):
 * the server enforces the config's own deadline, which may be long. */
#define JSHOST__JS_DEFAULT_WAIT_MS (10 * 60 * 1000)
/* Client wait for requests other than call when given 0. */
#define JSHOST__REQUEST_DEFAULT_MS 60000
/* A wait that is the host's own deadline plus the margin, once the host is
 * known (a call with timeout 0; docs/protocol.md, "Direct connections"). */
#define JSHOST__WAIT_HOST ((int64_t)-2)
/* jshost__request on a direct connection: nothing of the request was
 * written (the worker's socket was already gone); it may go elsewhere. */
#define JSHOST__UNSENT (-2)
/* Pipelined msgids have this bit set, blocking ones never: a reply is routed to
 * the pipelined queue or to a blocking call by its msgid alone, and the reply
 * to a blocking call that timed out is dropped. */
#define JSHOST__PIPE_BIT 0x80000000u
/* The driver looks around at least this often, whatever its deadline. */
#define JSHOST__WAIT_SLICE_MS 1000
/* Pipelined requests queued behind others in flight are written once this
 * many bytes wait (or by the next jshost_read or jshost_flush). */
#define JSHOST__CORK_BYTES 65536
/* Wake-ups of waiting calls held back until the lock is released. */
#define JSHOST__MAX_WAKES 64
/* Pieces of a request's params (jshost__call_send), besides its head. */
#define JSHOST__MAX_PARTS 8
/* A blocking call with an interrupt check looks at it at least this often. */
#define JSHOST__CHECK_MS 100

enum jshost__call_state {
    JSHOST__CALL_PENDING = 0,
    JSHOST__CALL_DONE,
    JSHOST__CALL_LOST_UNSENT, /* connection lost before any byte of it was
                                 written */
    JSHOST__CALL_LOST_SENT,   /* connection lost after (part of) it was
                                 written */
};

/*
 * A call: one request, from jshost__call_send until its reply is taken. A
 * blocking call lives on its caller's stack and is in priv->calls until it is
 * answered, lost or given up; a pipelined one (msgid with JSHOST__PIPE_BIT)
 * is only counted in priv->in_flight once sent, its reply queued for
 * jshost_read.
 */
struct jshost__call {
    struct jshost__call *next;
    uint32_t msgid;
    bool pipelined;
    /* jshost_serve's: a waiter that no reply answers (its msgid means
     * nothing), there to take the driver role when nobody else reads. */
    bool serving;
    _Atomic enum jshost__call_state state; /* read unlocked after `word` */
    uint64_t start; /* priv->queued at the first byte of the request */
    uint64_t end;   /* and past its last byte */
    /* Bumped (and futex-woken) when the call ends or the driver role is
     * handed to it: a waiting thread sleeps on it without the lock, and the
     * bump is the last write to the call, after which its thread may take
     * the result and return without the lock. */
    atomic_uint word;
    bool asleep; /* its thread sleeps on word (set and read under the lock) */
    int ok; /* 1: value holds the result, 0: error holds it, -1: out of memory
             */
    /* Room the caller gives for the result (may be NULL): a result that fits
     * lands there (value.data == buf), a bigger one is malloc'd. */
    char *buf;
    size_t cap;
    jshost_value value;
    jshost_error error;
};

/* A reply for the pipelined interface, queued until jshost_read. */
struct jshost__qreply {
    struct jshost__qreply *next;
    jshost_reply reply;
};

/* An invoke read by the driver, handed to the invoke handler once the lock
 * is released (invoke.c). */
struct jshost__invoke {
    struct jshost__invoke *next;
    uint32_t rid;
    uint32_t callback_id;
    size_t len;
    char args[]; /* the packed arguments array */
};

/* A host this handle holds (attached), to attach again after a reconnect. */
struct jshost__held {
    struct jshost__held *next;
    char *config;
    char *host;
    int count;
};

struct jshost_priv {
    pthread_mutex_t lock;
    /* Guards c->remote's strings: threads sharing a handle may fail at once,
     * and the words of one must not be freed twice by the other. */
    pthread_mutex_t errlock;
    atomic_uint gen;    /* the jshost__fork_gen() the state belongs to */
    atomic_int forking; /* a fork reset is under way in this process */

    /* Options (owned copies). */
    char *socket_path;  /* resolved */
    char *runtime_dir;  /* NULL when talking to an explicit socket */
    char *manager_path; /* may be NULL */
    char *client_name;
    int spawn;
    int connect_timeout_ms;

    int fd; /* -1 when not connected */
    struct proto_reader *reader;
    msgpack_sbuffer wbuf; /* bytes not yet written start at woff */
    size_t woff;
    uint64_t queued;  /* bytes ever queued on this connection */
    uint64_t written; /* bytes ever written on this connection */
    bool broken;      /* write failed while a driver read: it closes */
    char broken_cause[320];
    char lost_cause[512];  /* why the last connection was lost */
    int lost_err;          /* and as an enum jshost_err (IO or PROTOCOL) */
    char server_said[256]; /* the server's last "error" notification */

    /* Calls whose word was bumped under the lock: their futex wake-up
     * waits for the lock's release (jshost__unlock), so that the woken do
     * not run into the lock and the holder makes no system call for them
     * while others wait for it. */
    atomic_uint *wakes[JSHOST__MAX_WAKES];
    int nwakes;
    uint32_t next_msgid; /* only jshost__call_send takes from it */
    bool driving;
    bool flushing; /* a thread waits for the socket to take wbuf's bytes */
    struct jshost__call *calls; /* blocking calls awaiting their reply */

    struct jshost__qreply *qhead, *qtail;
    size_t in_flight; /* pipelined requests whose replies were not read */
    bool pipe_lost;   /* pipelined requests were lost with the connection */
    char pipe_lost_cause[512];
    pthread_cond_t pipe_cond;

    struct jshost__held *held;

    jshost *self; /* the handle these are the insides of (for handlers) */
    /* Reverse calls (invoke.c): jshost_set_invoke_handler's handler, the
     * invokes read and not yet handed to it, and the rids handed out and not
     * answered yet on this connection (another rid's answer is refused: it
     * would answer some other invoke of a later connection). */
    jshost_invoke_fn invoke_fn;
    void *invoke_user;
    struct jshost__invoke *inv_head, *inv_tail;
    uint32_t *inv_rids;
    size_t inv_nrids, inv_cap;
    /* jshost_set_interrupt_check's. */
    jshost_interrupt_fn interrupt_fn;
    void *interrupt_user;
    /* jshost_serve: an eventfd the driver polls beside the socket (-1 until
     * the first serve), written by jshost_serve_wake; and the wake itself,
     * sticky until a serve returns for it. */
    int wake_fd;
    bool serve_woken;
    /* The driver's busy-polling before it sleeps (common/spin.h). */
    struct spin spin;
    /* Direct calls (direct.c): whether this handle makes them, the hosts it
     * attached as direct.c knows them (guarded by dlock, never held across a
     * call); for a handle on a worker's own socket, direct_conn (it never
     * reconnects) and whether the worker said it is draining. */
    bool direct;
    pthread_mutex_t dlock;
    struct jshost__dhost *dhosts;
    bool direct_conn;
    atomic_bool draining;
    /* jshost_set_console_handler's: called from dispatch (drive.c, through
     * console.c), lock held. */
    jshost_console_fn console_fn;
    void *console_user;
};

/* Errors ------------------------------------------------------------------ */

/* Sets c->err/errstr (printf-style) and clears c->remote. Returns -1. */
int jshost__seterr(jshost *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets c->err = REMOTE and moves *e into c->remote. Returns -1. */
int jshost__setremote(jshost *c, jshost_error *e);
/* A jshost struct that only collects a request's error (jshost__seterr and
 * jshost__setremote fit it), for priv's connection; not the whole struct:
 * its errstr is written only on failure. */
static inline void
jshost__sink_init(jshost *sink, jshost_priv *priv)
{
    sink->err = JSHOST_ERR_NONE;
    sink->errstr[0] = '\0';
    memset(&sink->remote, 0, sizeof(sink->remote));
    sink->priv = priv;
}
/* Fills a jshost_error from an error map object. 0 or -ENOMEM. */
int jshost__error_from_obj(const msgpack_object *o, jshost_error *e);
/* True when buf holds exactly one well-formed msgpack value (an array when
 * want_array) nesting at most max_depth containers: what still fits where
 * the request puts it (proto.h's PROTO_MAX_DEPTH counts the whole message).
 * Allocates nothing. */
bool jshost__valid_value(const char *buf, size_t len, bool want_array,
                         int max_depth);
/* A msgpack str header for len bytes into h (5 bytes of room). Returns its
 * length. */
size_t jshost__str_head(unsigned char *h, size_t len);
/* "Type: message" words for a remote error. */
void jshost__remote_words(const jshost_error *e, char *buf, size_t len);

/* Connection core (conn.c) --------------------------------------------------
 */

/* Counts the fork()s this process went through (a pthread_atfork child
 * handler, registered with the first handle): a handle made at another count
 * belongs to a parent. No system call. */
unsigned jshost__fork_gen(void);
/* Registers that handler (once per process). */
void jshost__fork_watch(void);
/* Enters the handle from a public function: after fork() in a child, drops the
 * inherited connection state; then takes the lock. */
void jshost__enter(jshost *c);
void jshost__leave(jshost *c);
/* Releases the lock, then wakes the calls it ended or handed the driver role
 * to meanwhile. Every release of the lock goes through here. */
void jshost__unlock(jshost_priv *p);
/* Those wake-ups now, the lock held (before a wait that releases it). */
void jshost__wake_pending(jshost_priv *p);
/* Ms since an arbitrary epoch (CLOCK_MONOTONIC). */
int64_t jshost__now_ms(void);
/* Handles a dead connection: fails or marks for resend every blocking call,
 * marks the pipelined ones lost. Must not be called while another thread
 * drives. */
void jshost__conn_lost(jshost_priv *p, const char *cause);
/* Wakes every waiting call and the pipelined reader (the driver role is free
 * again). */
void jshost__wake_all(jshost_priv *p);
/* Initializes a condvar on CLOCK_MONOTONIC. */
int jshost__cond_init(pthread_cond_t *cond);
/* Bumps a call's word, its thread woken once the lock is released (lock
 * held). */
void jshost__word_bump(jshost_priv *p, struct jshost__call *call);
/* Registers a blocking call as awaiting its reply, or takes it off (lock
 * held). */
void jshost__call_add(jshost_priv *p, struct jshost__call *call);
void jshost__call_remove(jshost_priv *p, struct jshost__call *call);

/* Writing (send.c) ---------------------------------------------------------
 */

/* Writes what the socket takes now. 0, or a negative errno (connection broken).
 */
int jshost__flush(jshost_priv *p);
/* Writes what the socket takes now and, when the connection broke, has it
 * closed: at once, or by the driver when one polls it (the socket is shut
 * down to end its poll). 0 or the write's negative errno. */
int jshost__push(jshost_priv *p);
/* A write failed (negative errno r): the connection is closed, or marked
 * broken for the driver to close. */
void jshost__write_failed(jshost_priv *p, int r);
/* A message packed onto the end of the write buffer (*pk packs there):
 * queue_begin returns where it starts; queue_end counts it as queued when
 * packed == 0, else drops it whole (0 or -ENOMEM). */
size_t jshost__queue_begin(jshost_priv *p, msgpack_packer *pk);
int jshost__queue_end(jshost_priv *p, size_t before, int packed);
/* Waits for the socket to take bytes, writing what it takes (lock held,
 * released meanwhile), while another thread drives. */
void jshost__wait_writable(jshost_priv *p, int timeout_ms);
/* A msgpack uint into h (5 bytes of room). Returns its length. */
size_t jshost__pack_uint(unsigned char *h, uint32_t v);
/* A message that is not a request, from its pieces (lock held): written now,
 * what the socket does not take queued. 0 or a negative errno. */
int jshost__send_msg(jshost_priv *p, const struct iovec *iov, int niov);

/* Reading (drive.c) ----------------------------------------------------------
 */

/* One round of the driver: polls the socket (with the lock released when
 * `unlock`) up to timeout_ms (at most JSHOST__WAIT_SLICE_MS), then writes,
 * reads and dispatches everything that came; with `unlock`, the invokes read
 * then go to the invoke handler (the lock released meanwhile). Returns 0,
 * -EINTR when a signal cut the poll short, or a negative errno when the
 * connection broke (already handled through conn_lost). */
int jshost__drive(jshost_priv *p, int timeout_ms, bool unlock);

/* Reverse calls (invoke.c) and console lines (console.c) -------------------
 */

/* An invoke read (lock held): queued for the invoke handler, or answered at
 * once with an error. */
void jshost__handle_invoke(jshost_priv *p, const struct proto_raw *raw);
/* Hands the queued invokes to the handler, the lock released meanwhile. */
void jshost__run_invokes(jshost_priv *p);
/* A console notification: to the console handler, if any (lock held). */
void jshost__handle_console(jshost_priv *p, const struct proto_msg *m);

/* Calls (conn.c; the send path is send.c's, cancel invoke.c's) -------------
 */

/* A fresh call record (blocking, or pipelined). */
void jshost__call_init(struct jshost__call *call, bool pipelined);
/*
 * The one send path (lock held, connected): gives the call its msgid,
 * registers a blocking call or counts a pipelined one, and writes
 * [0, msgid, method, params] (params: one packed array, the concatenation of
 * the nparts pieces, at most JSHOST__MAX_PARTS) straight from the pieces when
 * nothing else waits to be written, queueing what the socket did not take (a
 * pipelined request behind others in flight is only queued, up to
 * JSHOST__CORK_BYTES: jshost_read writes it). 0;
 * -ENOMEM when nothing was queued; another negative errno when the write
 * failed (the connection is then being closed, and a blocking call learns it
 * in jshost__call_wait).
 */
int jshost__call_send(jshost_priv *p, struct jshost__call *call,
                      const char *method, const struct iovec *parts,
                      int nparts);
/*
 * Waits (lock held) until a blocking call is answered or lost, driving when
 * nobody else does; with `hold` the lock is never released (a fresh
 * connection, on which nobody else may talk yet). deadline in jshost__now_ms()
 * terms, -1 = none. 0 (lock held), -ETIMEDOUT or -EINTR (the interrupt check
 * said stop; lock held; either way the call is then no longer registered), or
 * 1: answered while it slept, and the lock was not taken again (the result is
 * the call's own now). A serving call (jshost_serve's) also returns 0 once
 * jshost_serve_wake was called.
 */
int jshost__call_wait(jshost_priv *p, struct jshost__call *call,
                      int64_t deadline, bool hold);
/* Sends [2, "cancel", [msgid]] (lock held): a blocking call given up on. 0
 * or a negative errno. */
int jshost__cancel_locked(jshost_priv *p, uint32_t msgid);
/* A finished call's outcome: 0 with *result (may be NULL: freed), or -1 with
 * eo's error ("<what>: connection lost: ...", a remote error, ...). */
int jshost__call_result(jshost *eo, struct jshost__call *call, const char *what,
                        jshost_value *result);

/* Connecting (connect.c) ------------------------------------------------------
 */

/* With the lock held and the handle disconnected: connects (spawning the
 * manager when allowed), says hello and attaches again what is held. */
int jshost__reconnect_locked(jshost *c);
/* Closes the socket and drops per-connection state (lock held, no driver). */
void jshost__disconnect(jshost_priv *p);

/* Blocking requests (call.c) ---------------------------------------------- */

/* Sends a request (its params in pieces) and waits for its answer, into buf
 * when it fits (may be NULL). wait_ms < 0: no guard; JSHOST__WAIT_HOST: the
 * host's deadline plus the margin. Errors go to eo. 0, -1, or
 * JSHOST__UNSENT (direct connections only). */
int jshost__request(jshost *c, jshost *eo, const char *method,
                    const struct iovec *parts, int nparts, int64_t wait_ms,
                    char *buf, size_t cap, jshost_value *result);

/* Direct calls (direct.c) ---------------------------------------------------
 */

/* A call (params in parts) of a host attached here goes to one of its
 * workers: 0 or -1 as jshost__request, 1 when it must go through the manager
 * (*wait_ms then resolved from the host's deadline where it was
 * JSHOST__WAIT_HOST). */
int jshost__direct_call(jshost *c, jshost *eo, const struct iovec *parts,
                        int nparts, int64_t *wait_ms, char *buf, size_t cap,
                        jshost_value *result);
/* attach answered reply (a map) for host, attached by config. */
void jshost__direct_attached(jshost *c, const char *host, const char *config,
                             const msgpack_object *reply);
void jshost__direct_detached(jshost *c, const char *host);
/* The invoke handler and interrupt check, set on the handle since its
 * worker connections were made, passed down to them (not under p->lock). */
void jshost__direct_inherit_all(jshost_priv *p);
void jshost__direct_free(jshost_priv *p);
/* In a child after fork (from the fork reset). */
void jshost__direct_after_fork(jshost_priv *p);

/* Held hosts (call.c) */
void jshost__held_free(jshost_priv *p);

/*
 * jshost_request for the Python extension (which links libjshost
 * statically), without what it does not need: params are trusted to be one
 * packed array no deeper than PROTO_MAX_DEPTH - 1 (its own packer made
 * them), and a result of at most cap bytes lands in buf (result->data ==
 * buf; a bigger one is malloc'd as usual).
 */
int jshost__request_into(jshost *c, const char *method, const char *params,
                         size_t params_len, int timeout_ms, char *buf,
                         size_t cap, jshost_value *result, int *errcode,
                         jshost_error *err, char *errstr, size_t errstr_len);

#endif
