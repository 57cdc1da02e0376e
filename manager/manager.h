/*
 * jshost-manager internals, shared by its files the way tmux.h is: one flat
 * folder, each file owning one kind of object (docs/lifecycle.md says what
 * they do, docs/protocol.md what they say).
 *
 *   main.c      daemon life: options, runtime dir, signals, idle exit, shutdown
 *   server.c    the listening socket, peer uid check
 *   client.c    client connections: the dispatch table of their methods
 *   host.c      hosts: holders, attach, linger, restart/stop, the host's log
 *   host_pool.c a host's workers: the pool, ready, crashes and quarantine
 *   host_reload.c the development reload: the files a host loaded, watched
 *   worker.c    worker processes: spawn, ready, forwarding, liveness, exit
 *   call.c      a call's life: made, freed
 *   deadline.c  every call's deadline and each busy worker's liveness check,
 *               in one heap under one timer
 *   logfile.c   the host logs: workers' output through a pipe, written off
 *               the loop, rotated, dropped (and counted) past what it holds
 *   invoke.c    reverse calls: a worker's invoke to the client that owns
 *               the callable, and the answer back (msgids remapped both ways)
 *   router.c    the msgid remap table of each worker connection
 *   context.c   manager-wide context ids, each pinned to its worker
 *   status.c    the status method's figures
 *
 * Connections (clients' and workers') are common/rpcstream.c's, shared with
 * the worker.
 *
 * A call, out: client_on_msg → client_request (the table: the method's
 * checker, proto/check.c, then its handler) → client_call (or
 * client_context_op / client_context_create) → host_pool_submit (limits;
 * a context's call goes straight to its worker) → the host's queue →
 * host_pool_dispatch → host_pool_pick (fewest in flight) → worker_forward
 * (router_add gives it the worker's msgid) → worker_pack → rpcstream_send.
 *
 * And back: worker_on_msg → worker_on_response → router_take (the call by
 * its worker msgid) → worker_reply_client (the client's msgid restored;
 * context.create and .destroy through worker_context_created/_destroyed) →
 * client_send → rpcstream_send; then host_pool_call_done and call_free.
 * A worker that dies answers its calls in worker_finish (HostCrashed). A
 * call that passes its deadline first is answered by host_pool_call_late
 * (TimeoutError) and its worker's answer, if one comes, is dropped.
 *
 * Cancel: client_cancel finds the call among the client's calls (by its
 * msgid): queued, it is answered Cancelled; at a worker, worker_cancel sends
 * the worker a cancel for its msg* there, and the worker's Cancelled answer
 * comes back as any answer. A client that closes does the same for all its
 * calls (answers dropped) and fails its reverse calls (invoke.c).
 */
#ifndef JSHOST_MANAGER_H
#define JSHOST_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <msgpack.h>
#include <uv.h>

#include "check.h"
#include "methods.h"
#include "proto.h"
#include "rpcstream.h"

struct client;
struct host;
struct worker;
struct call;
struct invoke;
struct status_req;
struct logfile;

/* ---- deadline.c ---- */

/* A moment to act at: fire(d) runs once the loop's clock passes at_ms. */
struct deadline {
    uint64_t at_ms;
    size_t slot; /* its place in the heap, from 1; 0 = not armed */
    void (*fire)(struct deadline *d);
};

void deadline_setup(uv_loop_t *loop);
void deadline_cleanup(void);
/* Arms d for at_ms, or moves it there when it is armed already. */
void deadline_arm(struct deadline *d, uint64_t at_ms);
void deadline_disarm(struct deadline *d);
struct host_reload;

/* ---- call.c ---- */

enum call_kind {
    CALL_FORWARD,        /* a client's call/context.* request */
    CALL_CONTEXT_CREATE, /* context.create: the result is a worker context id */
    CALL_CONTEXT_DESTROY, /* context.destroy: forget the context on success */
    CALL_STATS,           /* the manager's own stats request (status) */
    CALL_PING,            /* the manager's liveness ping */
    CALL_IGNORE, /* internal, answer dropped (cleanup after a client) */
};

/* One request on its way to a worker and its answer on the way back. */
struct call {
    struct call *hnext;       /* router hash chain */
    TAILQ_ENTRY(call) qentry; /* host's queue while waiting for a worker */
    TAILQ_ENTRY(call) centry; /* its client's calls, while counted */
    bool in_client;
    bool cancelled; /* a cancel went to its worker */
    enum call_kind kind;
    uint32_t wid;          /* msgid towards the worker */
    uint32_t cid;          /* the client's msgid */
    struct client *client; /* referenced; NULL for internal calls */
    struct host *host;
    struct worker *worker;
    /* The request until it is forwarded: its method (a static name) and its
     * params array as bytes, forwarded as they came. `params` points into the
     * client's read buffer while the request is being handled, and into
     * `params_owned` once it waits in a queue (call_keep). A context's
     * params[0] is rewritten: rest_at is where params[1] starts. */
    const char *method;
    const char *params;
    size_t params_len;
    size_t rest_at;
    uint32_t nparams;
    char *params_owned;
    bool counted;     /* in host and client in-flight counts */
    uint64_t context; /* manager context id (context.*), 0 otherwise */
    uint64_t start_ns;
    /* The client's timeout_ms (0: the host's) until it is forwarded, the
     * one in force from then on. Its deadline counts from received_ms. */
    uint64_t timeout_ms;
    uint64_t received_ms;
    struct deadline deadline;
    /* The manager answered it (TimeoutError) while its worker still holds
     * it: the worker's answer, when it comes, is dropped. */
    bool answered;
    struct status_req *sreq;
};

struct call *call_new(enum call_kind kind, struct client *client, uint32_t cid);
void call_free(struct call *c);
/* The request's params from a message as read (the slow path: re-packed). */
void call_set_params(struct call *c, const char *method,
                     const msgpack_object *params);
/* Makes the request's bytes the call's own, before it waits in a queue. */
void call_keep(struct call *c);

/* ---- router.c ---- */

struct router;
struct router *router_new(void);
void router_free(struct router *r);
/* Gives c a fresh worker msgid and files it. */
void router_add(struct router *r, struct call *c);
/* The call filed under wid, left in the table; NULL if none. */
struct call *router_find(const struct router *r, uint32_t wid);
/* The call filed under wid, removed from the table; NULL if none. */
struct call *router_take(struct router *r, uint32_t wid);
/* Calls fn for each call filed (fn must not add or take any). */
void router_foreach(const struct router *r, void (*fn)(struct call *, void *),
                    void *arg);
/* Any one call, removed; NULL when empty (for crash answering). */
struct call *router_pop(struct router *r);
size_t router_count(const struct router *r);
/* Tests only: where the next msgid starts (to reach the wrap-around). */
void router__set_next(struct router *r, uint32_t next);

/* ---- context.c ---- */

/* A context, by its manager-wide id: it sticks to the worker that made it. */
struct context {
    struct context *hnext; /* by id */
    struct context *wnext; /* by worker_context */
    uint64_t id;
    uint64_t worker_context; /* the worker's own id for it */
    struct worker *worker;   /* NULL once that worker is gone */
    struct host *host;
    struct client *owner; /* not referenced: cleared when it closes */
};

struct context *context_new(struct host *h, struct worker *w,
                            uint64_t worker_context, struct client *owner);
struct context *context_find(uint64_t id);
void context_free(struct context *x);
/* Calls fn for each context (fn may free the one it is given). */
void context_foreach(void (*fn)(struct context *, void *), void *arg);
unsigned context_count_host(const struct host *h);
void context_cleanup(void);
/* The context a worker knows as worker_context, or NULL. */
struct context *context_find_worker(const struct worker *w,
                                    uint64_t worker_context);

/* ---- invoke.c ---- */

/* A worker's invoke request (fast path: its bytes): sent on to the client
 * that owns the callable, or answered with an error at once. false when
 * the request is not one the fast path takes (the slow path answers it). */
bool invoke_from_worker(struct worker *w, const struct proto_raw *raw);
/* A client's response: to the worker whose invoke it answers (dropped when
 * that worker or that invoke is gone). */
void invoke_answer(struct client *c, const struct proto_raw *raw);
/* The client is closing: its workers' invokes are failed. */
void invoke_client_closed(struct client *c);
/* The worker is gone: answers to its invokes will be dropped. */
void invoke_worker_gone(struct worker *w);
/* Answers a worker's request wid with an error of type. */
void invoke_fail(struct worker *w, uint32_t wid, enum proto_errtype type,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- client.c ---- */

TAILQ_HEAD(callq, call);

struct client {
    TAILQ_ENTRY(client) entry;
    struct rpcstream *stream; /* until client_on_closed */
    uint64_t id;
    unsigned refs;
    bool closed;
    uid_t uid;
    pid_t pid;
    unsigned inflight;
    struct callq calls; /* in flight (queued or at a worker), for cancel */
    struct host **held; /* hosts this connection holds (attach) */
    size_t nheld;
    /* Reverse calls waiting for this client's answer, by the msgid it was
     * given (invoke.c). */
    struct invoke **invokes;
    size_t ninvokes, invokes_cap; /* count; buckets, a power of two */
    uint32_t next_invoke;
};

TAILQ_HEAD(clients, client);

struct client *client_accept(uv_stream_t *server);
void client_ref(struct client *c);
void client_unref(struct client *c);
void client_close(struct client *c);
void client_reply_error(struct client *c, uint32_t msgid,
                        enum proto_errtype type, const char *logfile,
                        const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Starts a result reply: the caller packs the result into om, then sends. */
void client_reply_begin(struct rpcstream_msg *om, uint32_t msgid);
void client_send(struct client *c, struct rpcstream_msg *om);
void client_forget_host(struct client *c, struct host *h);
/* Private VMs this connection owns. */
unsigned client_private_vms(const struct client *c);

/* ---- host.c ---- */

enum host_state {
    HOST_STARTING, /* first worker not ready yet */
    HOST_READY,
    HOST_STOPPING,    /* draining for stop */
    HOST_STOPPED,     /* stopped while holders remain */
    HOST_QUARANTINED, /* too many young crashes: until it expires, or a
                         restart */
};

/* A client waiting for a host event (attach reply, restart/stop reply). */
struct waiter {
    TAILQ_ENTRY(waiter) entry;
    struct client *client; /* referenced */
    uint32_t msgid;
    enum { WAIT_ATTACH, WAIT_RESTART, WAIT_STOP } kind;
};

TAILQ_HEAD(waiters, waiter);
TAILQ_HEAD(workers, worker);

/* Times of recent events (crashes that count, recycles), oldest first. */
struct host_events {
    uint64_t *at;
    unsigned n, cap;
};

#define HOST_EXITS 8

struct host {
    TAILQ_ENTRY(host) entry;
    char id[17];
    char *config; /* real path; NULL for a private VM */
    char *logfile;
    struct logfile *log; /* NULL for a private VM (manager.log's) */
    enum host_state state;
    bool dropped; /* out of the host list, freed once its workers are gone */
    bool is_private;
    struct client *owner; /* private VM: the owning connection */
    uint64_t priv_memory_mb, priv_timeout_ms;
    char *priv_cwd;
    /* The environment of the client that started it ("K=V\0" strings): its
     * workers' process.env takes NODE_ENV and the config's `env` from it
     * (worker_env_of, worker_spawn). */
    char *env;
    size_t env_len;
    unsigned handles; /* open timers */
    unsigned nlive;   /* workers not yet freed */
    bool freeing;

    /* From the first worker's ready notification. */
    bool configured;
    uint32_t nworkers;
    uint64_t linger_ms, timeout_ms, memory_mb;
    char *ready_blob; /* packed functions array then extras map */
    size_t ready_functions_len, ready_blob_len;
    char **warnings; /* the config's warnings (ready), for attach */
    size_t nwarnings;

    /* The reload (host_reload.c): the config's `reload` (-1: not set), the
     * watches, a reload under way (and another due after it), and why the
     * last one failed (said to every attach until one succeeds). */
    int reload_setting;
    struct host_reload *reload;
    bool reloading, reload_pending;
    char *reload_error;

    struct workers workers;
    unsigned generation;
    bool restarting;
    struct client **holders; /* each connection once */
    unsigned *holds;         /* per holder: its attaches not detached */
    size_t nholders;
    uv_timer_t linger_timer;
    bool lingering;
    uint64_t linger_deadline;
    uv_timer_t respawn_timer;
    unsigned respawn_due;     /* workers to spawn when the timer fires */
    struct host_events young; /* crashes that count towards quarantine */
    struct host_events recycles;
    unsigned quarantines; /* in a row: each one twice as long */
    uint64_t quarantine_until_ms, quarantine_over_ms;
    /* How the latest workers with a direct socket ended ("worker N killed
     * by signal 9 (SIGKILL)"), by socket: a direct client whose call was cut
     * short asks, to say it as the manager would (the direct method). */
    struct {
        char *path;
        char *words;
    } exits[HOST_EXITS];
    unsigned exits_next;
    unsigned total_crashes;
    char *last_crash;
    struct waiters waiters;
    struct callq queue; /* calls waiting for a ready worker */
    unsigned inflight;  /* queued + at workers */
    uint64_t created_ms;
};

TAILQ_HEAD(hosts, host);

struct host *host_find(const char *id_or_path);
/* The host of a config (started if new). 0, or negative errno + cause. */
int host_get(const char *config_realpath, pid_t client_pid, struct host **out,
             char **cause);
struct host *host_new_private(struct client *owner, uint64_t memory_mb,
                              uint64_t timeout_ms, const char *cwd);
void host_attach(struct host *h, struct client *c, uint32_t msgid);
/* Releases one of c's holds on h (all of them with `all`); true when that
 * was the host's last hold. */
bool host_detach(struct host *h, struct client *c, bool all);
void host_restart(struct host *h, struct client *c, uint32_t msgid);
void host_stop(struct host *h, struct client *c, uint32_t msgid);
void host_stop_now(struct host *h);
/* One event of the host into its log file (and manager.log). */
void host_log(struct host *h, pid_t pid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *host_state_name(enum host_state s);
/* A worker's memory is gone: a dropped host goes with its last one. */
void host_worker_freed(struct host *h);
/* Shared with host_pool.c. */
void host__drop(struct host *h);
void host__begin_stop(struct host *h);
void host__fail_call(struct call *c, enum proto_errtype type, const char *msg);
void host__fail_queue(struct host *h, enum proto_errtype type, const char *msg);
/* Answers the waiters of the given kinds (a mask of 1 << kind): with the
 * attach result / host status, or with an error when type is not NONE. */
void host__answer_waiters(struct host *h, unsigned kinds,
                          enum proto_errtype type, const char *msg);
/* A stopping host with no worker left is stopped. */
void host__worker_idle(struct host *h);
/* A private VM with no context left stops. */
void host__release_private(struct host *h);
/* "host <id> (<config>) is quarantined ...; N ms left" into buf. */
void host__quarantine_words(const struct host *h, char *buf, size_t len);
/* Restarts h because `changed` changed (the reload); a reload due while one
 * runs waits for it. */
void host__reload(struct host *h, const char *changed);
void host__free_warnings(struct host *h);

/* ---- host_reload.c ---- */

/* Whether h reloads on change: its config's `reload`, else the manager's. */
bool host_reload_enabled(const struct host *h);
/* Watches the config and `files` (ready's array, may be NULL) when h reloads;
 * the former watches go. */
void host_reload_watch(struct host *h, const msgpack_object *files);
/* No more watching (h stops, or goes). */
void host_reload_stop(struct host *h);
/* A restart of h ended: done (words NULL) or failed with words (the old
 * workers serve on). Says so when it was a reload, then runs a reload that
 * was due meanwhile. */
void host_reload_finished(struct host *h, const char *words);

/* ---- host_pool.c ---- */

#define HOST_POOL_MAX_WORKERS 64

/* Brings the current generation up to its pool size. */
void host_pool_fill(struct host *h);
/* A request from a client for this host (call/context.*): the call owns msg. */
void host_pool_submit(struct host *h, struct call *c);
/* Hands queued calls to ready workers. */
void host_pool_dispatch(struct host *h);
/* The call no longer counts against its host's and client's limits. */
void host_pool_call_done(struct call *c);
/* Cancel (docs/protocol.md): a queued call is answered Cancelled (when
 * `answer`), one at a worker is cancelled there. */
void host_pool_cancel(struct call *c, bool answer);
/* Called by worker.c. */
void host_pool_worker_ready(struct host *h, struct worker *w,
                            const msgpack_object *info);
void host_pool_worker_config_error(struct host *h, struct worker *w,
                                   const msgpack_object *err);
void host_pool_worker_exited(struct host *h, struct worker *w);
void host_pool_worker_recycling(struct host *h, struct worker *w);
/* A call's deadline passed before its answer (deadline.c's fire). */
void host_pool_call_late(struct deadline *d);
/* Arms c's deadline: received_ms plus its timeout (the host's when 0). */
void host_pool_call_deadline(struct call *c);

/* ---- worker.c ---- */

enum worker_state {
    WORKER_STARTING,
    WORKER_READY,
    WORKER_DRAINING, /* no new calls; stopped once in-flight ones are answered
                      */
    WORKER_STOPPING, /* TERM sent */
    WORKER_EXITED,
};

struct worker {
    TAILQ_ENTRY(worker) entry;
    struct host *host;
    struct rpcstream *stream; /* until worker_stream_closed */
    uv_process_t proc;
    uv_timer_t kill_timer;
    unsigned handles;
    bool stream_open;
    pid_t pid;
    enum worker_state state;
    unsigned gen;
    struct router *calls;
    unsigned inflight; /* client calls at this worker */
    uint64_t start_ms, ready_ms;
    uint64_t ping_sent_ms;  /* 0 = no ping outstanding */
    uint64_t last_msg_ms;   /* anything heard from it */
    uint64_t owed_since_ms; /* a request went to it while it owed nothing */
    struct deadline watch;  /* when its silence is judged next */
    unsigned late;          /* calls it holds that the manager answered */
    bool served;            /* it answered a client's call */
    bool unresponsive;
    bool stop_requested;
    /* Its own socket for the direct calls of the host's clients (NULL for a
     * private VM, or when the path would not fit sun_path); drained: it said
     * no direct client is left after a drain. */
    char *direct_path;
    bool drained;
    bool crashed_counted;
    /* Its stdout and stderr, read into the host's log (logfile.c). */
    uv_pipe_t out;
    bool out_open;
    struct logfile_feed *out_line;
    bool grace_over;        /* draining: its calls were cancelled */
    struct invoke *invokes; /* its reverse calls waiting on clients */
    int64_t exit_status;
    int term_signal;
    /* Figures from the worker's stats (it sees every call, direct ones
     * too). */
    uint64_t ncalls, nerrors, wire_inflight;
    uint64_t rss, heap_used, heap_limit;
    double p50_ms, p99_ms;
    /* Its messages passed on as their size hints announced them, items
     * unread: answers and reverse calls' args (the manager's own figure). */
    uint64_t forwarded_unread;
};

struct worker *worker_spawn(struct host *h, char **cause);
/* The environment process `pid` (a client) started with, as "K=V\0" strings
 * (/proc/PID/environ): *env malloc'd (NULL and 0 when unreadable). */
void worker_env_of(pid_t pid, char **env, size_t *len);
/* Sends c to the worker (rewriting msgid and context id). */
void worker_forward(struct worker *w, struct call *c);
/* Sends an internal request (stats, ping, context.destroy). */
void worker_request(struct worker *w, struct call *c, const char *method,
                    uint64_t context_param);
void worker_drain(struct worker *w);
/* Packs the direct sockets of h's workers that take new calls (an array). */
void worker_pack_direct(msgpack_packer *pk, const struct host *h);
/* Sends the worker a cancel for call c (its msgid there). */
void worker_cancel(struct worker *w, struct call *c);
/* Sends a message packed in om (or drops it once the socket is closing). */
void worker_send(struct worker *w, struct rpcstream_msg *om);
void worker_stop(struct worker *w);
void worker_kill(struct worker *w);
const char *worker_state_name(enum worker_state s);
/* The manager answered one of w's calls at its deadline (w still holds it). */
void worker_call_late(struct worker *w, struct call *c);
/* "killed by signal 9 (SIGKILL)" / "exited with status 3" */
void worker_exit_words(const struct worker *w, char *buf, size_t len);
void worker_ping_all(void);

/* ---- logfile.c ---- */

/* A log file the manager writes off its loop (a slow or full disk never
 * stalls it), rotated past log_max_bytes keeping log_keep older files;
 * what cannot be written in time is dropped and counted. */
struct logfile *logfile_open(const char *path, bool daemon_log);
/* Writes what is queued, then frees lf. */
void logfile_close(struct logfile *lf);
/* The fd the manager's own event lines go to, written at once (-1 while
 * the file cannot be opened). */
int logfile_fd(const struct logfile *lf);
/* Queues whole lines for the file. */
void logfile_write(struct logfile *lf, const char *buf, size_t len);
/* Rotates it if it grew past its size by other writers' lines. */
void logfile_check(struct logfile *lf);
/* Bytes of output dropped so far. */
uint64_t logfile_dropped(const struct logfile *lf);

/* A worker's output as it comes, cut into whole lines for its log. */
struct logfile_feed;
struct logfile_feed *logfile_feed_new(void);
void logfile_feed(struct logfile *lf, struct logfile_feed *f, const char *buf,
                  size_t len);
/* The end of the output: what is left goes out; f is freed. */
void logfile_feed_end(struct logfile *lf, struct logfile_feed *f);

/* ---- status.c ---- */

void status_request(struct client *c, uint32_t msgid, struct host *only);
void status__stats_reply(struct call *c, struct worker *w,
                         const struct proto_msg *msg);
void status_pack_host(msgpack_packer *pk, struct host *h);

/* ---- server.c ---- */

int server_listen(uv_loop_t *loop, const char *path, char **cause);
/* systemd's socket activation: 1 with *fd (3) when started that way, 0 when
 * not, a negative errno with *cause when LISTEN_FDS is for us but wrong. */
int server_activation_fd(int *fd, char **cause);
/* Serves an already listening socket (never bound or unlinked by us). */
int server_listen_fd(uv_loop_t *loop, int fd, char **cause);
void server_close(void);

/* ---- main.c ---- */

struct manager {
    uv_loop_t *loop;
    char rundir[256];
    char sockpath[256];
    char pidpath[256];
    char hostsdir[256];
    char logpath[256];
    char worker_path[4096];
    uint64_t start_ms;
    uint64_t idle_ms;
    bool idle_exit;
    /* The options (main.c's table: docs/lifecycle.md, "Limits"). */
    uint64_t max_client_inflight, max_host_inflight;
    bool reload; /* hosts reload on change unless their config says */
    uint64_t ping_ms, ping_timeout_ms, kill_grace_ms, start_timeout_ms;
    /* stop, restart, shutdown: how long a worker's calls may run on before
     * they are cancelled (the host's timeout, at most this) */
    uint64_t drain_grace_ms;
    uint64_t max_message; /* 0 = proto's default (64 MiB) */
    uint64_t max_clients, max_vms, max_client_vms;
    uint64_t max_partial_total, partial_idle_ms;
    uint64_t crash_limit, young_ms, recycle_limit;
    uint64_t quarantine_ms, quarantine_max_ms;
    uint64_t log_max_bytes, log_keep;
    struct logfile *vmlog; /* manager.log, for private VMs' output */
    bool trim_due;         /* memory was given back: malloc_trim soon */
    struct clients clients;
    unsigned nclients;
    struct hosts hosts;
    bool shutting_down;
    uint64_t next_client_id;
};

extern struct manager mgr;

/* Rechecks the idle state (no hosts, no clients) after any change. */
void manager_check_idle(void);
/* Stops every host, then exits the loop (shutdown, SIGTERM). */
void manager_shutdown(void);
uint64_t manager_now(void);

#endif
