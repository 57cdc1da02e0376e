/*
 * serve's own files, each one job:
 *
 *   serve.c         the server: the inherited fd or the listening socket
 *                   (peer uid checked), the ready and config_error
 *                   notifications, the heap-limit exit, teardown
 *   serve_conn.c    a connection: its life (reference-counted), reading,
 *                   backpressure, writing replies, the contexts it made
 *   serve_method.c  what the worker answers: the dispatch table, a handler
 *                   per method, and the calls handed to the engine
 *
 * A call on the worker (struct serve_call) goes: serve_conn_on_msg →
 * serve_method_dispatch → (the method's checker, proto/check.c) → m_call →
 * js_call (engine) ... → serve_call_done → serve_conn_packer/replied, the
 * reply written by the connection's rpcstream.
 *
 * A reverse call (docs/protocol.md, "Callbacks and cancellation") goes out
 * through serve_method_invoke (the engine's invoke hook) on the connection
 * of the call or context that owns the callable; its answer comes back as a
 * response to serve_method_dispatch → js_invoke_settle. While JS runs long
 * the engine calls serve__poll (its poll hook): each connection reads what
 * came meanwhile (serve_conn_poll) and a cancel, a context.destroy, a peer
 * gone or a stop signal terminates the JS it is about.
 */
#ifndef JSHOST_SERVE_INTERNAL_H
#define JSHOST_SERVE_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "rpcstream.h"
#include "serve.h"

/* How many of the latest calls the p50/p99 figures cover. */
#define SERVE_LATENCY_RING 256

/* A few msgids of one connection (unread requests serve_conn_poll saw). */
struct serve_ids {
    uint32_t *v;
    size_t n, cap;
};

/* A call at the engine: the connection and msgid its reply goes to. */
struct serve_call {
    struct serve_conn *conn;
    uint32_t msgid;
    uint64_t start_ns; /* uv_hrtime when it came: the stats' times */
    struct serve_call *prev, *next; /* the connection's calls */
};

struct serve_conn {
    struct rpcstream *stream; /* NULL once closed */
    struct serve *serve;
    uint64_t id; /* the engine's peer id for its reverse calls */
    unsigned refs;
    unsigned in_flight;       /* calls at the engine */
    struct serve_call *calls; /* ...and which */
    /* msgids of requests cancelled while still unread (serve_conn_poll saw
     * the cancel after them): answered Cancelled when they are read */
    struct serve_ids precancel;
    /* Pings and stats requests serve_conn_poll answered while JavaScript
     * ran (so that a long run never looks like a hung worker, and status
     * sees it busy): always the first ones still unread, as the poll answers
     * every one it sees and reading goes in order; dropped when read. */
    unsigned early;
    bool is_fd;
    bool counted; /* a direct client, in serve->nclients */
    bool paused;  /* SERVE_PAUSE_CALLS: not read until calls finish */
    bool eof;     /* the peer finished sending; close once answered */
    bool closing; /* no more reading or replies */
    bool handle_closing;
    uint32_t *contexts; /* contexts this connection made, destroyed with it */
    size_t ncontexts, contexts_cap;
    struct serve_conn *prev, *next;
};

struct serve {
    uv_loop_t *loop;
    js_engine *engine;
    char *config_realpath;
    serve_exit_cb on_exit;
    void *arg;
    uv_pipe_t listener;
    bool listener_open;
    char *listen_path;
    struct serve_conn *conns;
    struct serve_conn *fd_conn;
    uv_timer_t doom_timer;
    uv_timer_t reap_timer;
    uv_timer_t resume_timer; /* reads paused connections again, outside
                                engine callbacks */
    /* Contexts of closed connections, destroyed by reap_timer; and their
     * peer ids, whose reverse calls it fails. */
    uint32_t *dead_contexts;
    size_t ndead, dead_cap;
    uint64_t *dead_peers;
    size_t ndead_peers, dead_peers_cap;
    uint64_t next_conn_id;
    volatile sig_atomic_t *stop_signal; /* see serve_options */
    bool closing;
    bool doomed;
    bool exit_requested;
    /* The times of the latest calls (us), for the stats' p50/p99. */
    uint32_t lat_us[SERVE_LATENCY_RING];
    unsigned nlat, latpos;
    unsigned max_clients; /* direct clients at once */
    unsigned nclients;    /* ...open now */
    bool draining;        /* told to drain: no new direct clients */
    bool drained_said;    /* and the manager told that none is left */
};

/* ---- serve.c ---- */

void serve__request_exit(struct serve *s, int status);
/* After anything that may have run JavaScript: did it hit the heap limit? */
void serve__check_doomed(struct serve *s);
/* A doomed worker exits once every reply is written. */
void serve__maybe_exit(struct serve *s);
/* Destroys these contexts on a later loop iteration (never inside an
 * engine callback). */
void serve__reap_contexts(struct serve *s, const uint32_t *ids, size_t n);
/* Fails the reverse calls sent on a closed connection, likewise later. */
void serve__reap_peer(struct serve *s, uint64_t peer);
/* Reads paused connections again on a later loop iteration. */
void serve__resume_later(struct serve *s);
/* The manager's drain: no new direct clients; each one is told, and its
 * connection closes once what it sent is answered. */
void serve__drain(struct serve *s);
/* Tells the manager once no direct client is left while draining. */
void serve__maybe_drained(struct serve *s);
/* A call that started at start_ns (uv_hrtime) was answered. */
void serve__record_latency(struct serve *s, uint64_t start_ns);
/* p50 and p99 of the latest calls' times, in ms (0 before any). */
void serve__latency(const struct serve *s, double *p50_ms, double *p99_ms);

/* ---- serve_conn.c ---- */

/* Calls in flight on a direct client's connection past which it is not read
 * (the manager's connection is bounded by the manager's own limits). */
#define SERVE_INFLIGHT_MAX 4096

struct serve_conn *serve_conn_new(struct serve *s);
/* Starts reading; closes the connection when it cannot. */
void serve_conn_start(struct serve_conn *c);
/* Closes at once; replies still owed are dropped. */
void serve_conn_close(struct serve_conn *c);
/* A direct client's connection while draining: told so, and closed once
 * its calls are answered and written. */
void serve_conn_drain(struct serve_conn *c);
/* Says why in a ProtocolError notification, then closes (a peer refused). */
void serve_conn_refuse(struct serve_conn *c, const char *cause);
/* Takes the messages left in the reader, then reads again. Not from inside
 * an engine callback (it starts calls). */
void serve_conn_maybe_resume(struct serve_conn *c);
/* Doomed: what is owed is still written, nothing more is read. */
void serve_conn_doom(struct serve_conn *c);
/* True while unwritten replies remain. */
bool serve_conn_writing(const struct serve_conn *c);

/* A packer on the connection's outgoing bytes; false when replies are
 * dropped. Every reply packed is followed by serve_conn_replied. */
bool serve_conn_packer(struct serve_conn *c, msgpack_packer *pk);
void serve_conn_replied(struct serve_conn *c);
/* Writes what is queued now rather than at the end of the iteration. */
void serve_conn_flush(struct serve_conn *c);
void serve_conn_reply_error(struct serve_conn *c, uint32_t msgid,
                            enum proto_errtype type, const char *msg);
void serve_conn_reply_js_error(struct serve_conn *c, uint32_t msgid,
                               const struct js_error *err);

/* A call starts on c (it holds a reference until serve_conn_call_end). */
void serve_conn_call_begin(struct serve_conn *c);
void serve_conn_call_end(struct serve_conn *c);

void serve_conn_add_context(struct serve_conn *c, uint32_t id);
/* A context destroyed by request is no longer any connection's. */
void serve_conn_forget_context(struct serve *s, uint32_t id);
bool serve_conn_has_context(const struct serve_conn *c, uint32_t id);
/* The connection that made context id, or NULL. */
struct serve_conn *serve_conn_of_context(struct serve *s, uint32_t id);
/* Whether the request msgid was cancelled before it was read (and forget
 * that it was). */
bool serve_ids_take(struct serve_ids *ids, uint32_t msgid);
/* A message serve_conn_poll answers while JavaScript runs: a ping or stats
 * request (well formed: no params). */
bool serve_conn_is_early_kind(enum proto_kind kind, uint32_t nparams, bool ping,
                              bool stats);
/* The answers to ping and stats (also given while JavaScript runs). */
void serve_method_pong(struct serve_conn *c, uint32_t msgid);
void serve_method_stats(struct serve_conn *c, uint32_t msgid);
/* The engine's poll, for one connection: reads what came, acts on the
 * cancels and context.destroys in it, and on a peer that has gone. */
void serve_conn_poll(struct serve_conn *c);

/* ---- serve_method.c ---- */

void serve_method_dispatch(struct serve_conn *c, const struct proto_msg *msg);
/* The engine's invoke hook (struct js_engine_hooks). */
int serve_method_invoke(void *arg, struct js_invoke *inv);
/* The function names as an array; the config's extras as a map. */
void serve_method_pack_functions(struct serve *s, msgpack_packer *pk);
void serve_method_pack_extras(struct serve *s, msgpack_packer *pk);

#endif
