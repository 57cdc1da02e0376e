/*
 * libjshost: the C client of jshost. This header is its whole public API; the
 * protocol under it is docs/protocol.md.
 *
 * A handle (`jshost`) is one connection to a manager (or to a worker started
 * with `jshost host CONFIG --listen PATH`). In the hiredis style, every
 * function returns JSHOST_OK (0) or -1 and leaves the reason in `c->err`,
 * `c->errstr` and, for errors the server sent, `c->remote`. Nothing in this
 * library exits, aborts or prints: a program must never die because of jshost.
 *
 * Values cross as msgpack bytes (one packed value each: docs/values.md says how
 * JavaScript sees them); jshost_json_pack and jshost_json_dump convert from and
 * to JSON.
 *
 * Threads: a handle may be shared by threads. Every blocking function takes the
 * handle's lock only while it writes its request and while it reads; blocking
 * calls from several threads are pipelined on the one connection (whichever
 * waiting thread reads hands each reply to its owner), so they are not
 * serialized. The pipelined interface (jshost_send / jshost_read) is for one
 * owner (an event loop) and must not be mixed with blocking calls from other
 * threads on the same handle. `err`/`errstr`/`remote` of a shared handle are
 * only meaningful to the thread that just got -1; use jshost_call_r to get them
 * per call.
 *
 * Fork: a handle used in a child process after fork() reconnects on its first
 * use (the parent's connection is left alone) and attaches again the hosts it
 * held. jshost_fd is not such a use: call jshost_send or a blocking function
 * first.
 *
 * Connection loss: a blocking call whose connection is lost before its request
 * was written reconnects (starting the manager again when allowed) and sends it
 * once more; a request already sent fails with JSHOST_ERR_IO ("connection
 * lost"), or JSHOST_ERR_PROTOCOL when the stream broke. Hosts held are
 * attached again on every reconnect; contexts (and private VMs) are not: they
 * belonged to the lost connection.
 */
#ifndef JSHOST_H
#define JSHOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JSHOST_OK 0

/* c->err */
enum jshost_err {
    JSHOST_ERR_NONE = 0,
    JSHOST_ERR_IO, /* connect/read/write failed or the connection was lost */
    JSHOST_ERR_PROTOCOL, /* the peer broke msgpack-RPC */
    JSHOST_ERR_TIMEOUT,  /* the client-side deadline passed (see below) */
    JSHOST_ERR_REMOTE,   /* the server answered an error: see c->remote */
    JSHOST_ERR_ARG,   /* a bad argument from the caller (bad JSON, bad value) */
    JSHOST_ERR_OOM,   /* out of memory */
    JSHOST_ERR_SPAWN, /* the manager could not be started */
    JSHOST_ERR_RUNTIME, /* the runtime dir is missing, unsafe or too long */
    /* The call was cancelled: the server answered `Cancelled` (c->remote
     * has its words: jshost_cancel, a stop past its grace), or the caller's
     * interrupt check stopped a blocking call, which libjshost then cancelled
     * on the server (jshost_set_interrupt_check). */
    JSHOST_ERR_CANCELLED,
};

/*
 * An error object the server sent (docs/protocol.md). type is one of "JSError",
 * "TimeoutError", "MemoryError", "NotFound", "InvalidArgument", "ConfigError",
 * "HostCrashed", "HostUnavailable", "Overloaded", "ProtocolError", "Cancelled"
 * (reported as JSHOST_ERR_CANCELLED). Strings are owned by whatever holds the
 * struct (NULL = nil).
 */
typedef struct jshost_error {
    char *type;
    char *message;
    char *name;    /* JSError: the JS error's name ("TypeError", ...) */
    char *stack;   /* JSError: the JS stack */
    char *logfile; /* HostCrashed, ConfigError: the host's log file */
} jshost_error;

/* One packed msgpack value, malloc'd; free with jshost_value_free. */
typedef struct jshost_value {
    char *data;
    size_t len;
} jshost_value;

/* Frees v's bytes and zeroes it (NULL and zeroed values are fine). */
void jshost_value_free(jshost_value *v);
/* Frees e's strings and zeroes it. */
void jshost_error_clear(jshost_error *e);

typedef struct jshost_priv jshost_priv;

typedef struct jshost {
    int err;          /* enum jshost_err of the last failure; 0 after success */
    char errstr[512]; /* words for it, naming what failed */
    jshost_error remote; /* when err == JSHOST_ERR_REMOTE */
    jshost_priv *priv;
} jshost;

struct jshost_options {
    /* Talk to this socket and never start a manager. NULL: $JSHOST_SOCKET, else
     * <runtime dir>/manager.sock with auto-start. */
    const char *socket;
    /* NULL: $JSHOST_RUNTIME_DIR, $XDG_RUNTIME_DIR/jshost, /tmp/jshost-<uid>. */
    const char *runtime_dir;
    /* 0: never start a manager. Default (options NULL) 1. */
    int spawn;
    /* The manager binary for auto-start. NULL: $JSHOST_MANAGER, else the
     * jshost-manager that belongs with this libjshost (beside it, in its
     * build tree or in its install prefix's libexec/jshost), else the one of
     * the prefix it was configured with, else jshost-manager on PATH. */
    const char *manager_path;
    /* Sent in hello. NULL: "libjshost". */
    const char *client_name;
    /* Bound on connecting and the hello handshake, including a manager start.
     * 0: 10000 ms. */
    int connect_timeout_ms;
    /* 1 (the default): calls of a host attached on this handle go straight
     * to the host's workers, on their own sockets, rather than through the
     * manager (docs/protocol.md, "Direct connections"); 0, or JSHOST_DIRECT=0
     * in the environment: always through the manager. */
    int direct;
};

/* Fills opts with the defaults. */
void jshost_options_init(struct jshost_options *opts);

/*
 * Connects (starting the manager if allowed and needed) and says hello.
 * Returns a handle even on failure, with c->err set (hiredis style); NULL only
 * when out of memory. opts NULL = defaults.
 */
jshost *jshost_connect(const struct jshost_options *opts);
/* Closes the connection (releasing every host held) and frees the handle. */
void jshost_free(jshost *c);
/* Drops the connection and connects again (hosts held are attached again). */
int jshost_reconnect(jshost *c);

/*
 * Deadlines: timeout_ms > 0 bounds the whole call on the client side (the
 * server is also told, as the call's "timeout_ms", so the JS is stopped there);
 * the client waits timeout_ms plus a small margin (2 s) for the server's
 * TimeoutError before giving up with JSHOST_ERR_TIMEOUT. timeout_ms 0: the
 * host's default deadline (the config's `timeout`), enforced by the server;
 * the client waits for its answer that deadline plus the margin when the host
 * was attached on this handle (attach says it), else up to 10 minutes, a
 * guard against a wedged server. -1: the same, with no client-side
 * guard at all.
 *
 * jshost_request (any method): timeout_ms > 0 waits that long plus the margin,
 * 0 waits up to 60 s, -1 as long as it takes; nothing is sent to the server.
 *
 * A blocking call that gives up at its client-side deadline sends `cancel` for
 * its request before it returns, so that the server stops it too.
 */

/*
 * Attaches a config. A relative path is made absolute against the caller's
 * working directory (the manager runs elsewhere) and the manager resolves it
 * further (symlinks: one host per real path). *host gets the host
 * id (malloc'd; free it); info (may be NULL) the packed attach result
 * {"host", "config", "functions", "workers", "logfile", "extras"}.
 */
int jshost_attach(jshost *c, const char *config_path, char **host,
                  jshost_value *info);
/* Releases one hold on the host (attach counts); the last release by anyone
 * starts the host's linger timer. */
int jshost_detach(jshost *c, const char *host);

/*
 * Calls `function` of the host with `data` (one packed value; NULL = nil).
 * *result gets the packed result.
 */
int jshost_call(jshost *c, const char *host, const char *function,
                const char *data, size_t data_len, int timeout_ms,
                jshost_value *result);
/* The same, with the error returned through *err (for shared handles): 0, or
 * -1 with *err filled (caller clears with jshost_error_clear) and *errcode an
 * enum jshost_err. Thread-safe as a whole. */
int jshost_call_r(jshost *c, const char *host, const char *function,
                  const char *data, size_t data_len, int timeout_ms,
                  jshost_value *result, int *errcode, jshost_error *err,
                  char *errstr, size_t errstr_len);

/*
 * Any request: params is a packed msgpack array. The building block of the
 * rest; thread-safe as jshost_call_r when err/errcode are given (may be NULL).
 */
int jshost_request(jshost *c, const char *method, const char *params,
                   size_t params_len, int timeout_ms, jshost_value *result,
                   int *errcode, jshost_error *err, char *errstr,
                   size_t errstr_len);

/* Contexts (docs/protocol.md; the JavaScript world they get: docs/config.md).
 * host NULL = a private VM owned by this connection, with memory_mb /
 * timeout_ms (0 = defaults). cwd NULL = getcwd(). */
int jshost_context_create(jshost *c, const char *host, const char *cwd,
                          uint32_t memory_mb, uint32_t timeout_ms,
                          uint64_t *ctx);
int jshost_context_eval(jshost *c, uint64_t ctx, const char *source,
                        const char *identifier, int timeout_ms,
                        jshost_value *result);
/* args: a packed msgpack array (NULL = no arguments). */
int jshost_context_call(jshost *c, uint64_t ctx, const char *expression,
                        const char *args, size_t args_len, int timeout_ms,
                        jshost_value *result);
int jshost_context_load(jshost *c, uint64_t ctx, const char *const *paths,
                        size_t npaths, int timeout_ms);
int jshost_context_destroy(jshost *c, uint64_t ctx);

/* Manager actions. config_or_host NULL for status = everything; a config path
 * (one that contains '/' or names an existing file) is made absolute as for
 * jshost_attach. */
int jshost_status(jshost *c, const char *config_or_host, jshost_value *result);
int jshost_restart(jshost *c, const char *config_or_host, jshost_value *result);
int jshost_stop(jshost *c, const char *config_or_host, jshost_value *result);
int jshost_shutdown(jshost *c);

/*
 * The pipelined interface, for event loops: queue requests with jshost_send,
 * poll jshost_fd for reading (and for writing while jshost_pending_write > 0),
 * and take replies with jshost_read in the order they arrive. A request sent
 * while none is in flight is written at once; one sent behind others in
 * flight waits in the handle (up to 64 KiB) for the next jshost_read that
 * finds no reply at hand, or for jshost_flush, so that a window of requests
 * costs one write rather than one each.
 */
typedef struct jshost_reply {
    uint32_t msgid;
    int ok; /* 1: value holds the result; 0: error holds it */
    jshost_value value;
    jshost_error error;
} jshost_reply;

/* Frees what a reply holds. */
void jshost_reply_free(jshost_reply *r);
/* Queues a request (params: one packed msgpack array) and writes what the
 * socket takes (or leaves it queued behind others in flight: see above);
 * *msgid (may be NULL) identifies its reply. Reconnects first when the
 * connection is gone and nothing is owed on it. */
int jshost_send(jshost *c, const char *method, const char *params,
                size_t params_len, uint32_t *msgid);
/* Writes what jshost_send queued, as far as the socket takes it. */
int jshost_flush(jshost *c);
/* The socket to poll; -1 when not connected. */
int jshost_fd(const jshost *c);
/* Bytes queued and not yet written. */
size_t jshost_pending_write(const jshost *c);
/* Requests sent whose replies have not been read. */
size_t jshost_in_flight(const jshost *c);
/*
 * Takes the next reply, first writing what jshost_send queued when none is at
 * hand. timeout_ms 0 = only what is already readable without blocking; -1 =
 * wait. Returns 1 with *reply filled, 0 when none came in time, -1 on failure
 * (c->err).
 */
int jshost_read(jshost *c, jshost_reply *reply, int timeout_ms);

/*
 * JSON helpers (the CLI's): jshost_json_pack packs a JSON text as one msgpack
 * value (-1 with errbuf, when given, naming the line and column at fault).
 * jshost_json_dump renders packed msgpack as JSON (bin as {"$bin": base64},
 * timestamps as {"$date": ISO}, big ints as {"$bigint": decimal}); malloc'd,
 * NULL on failure.
 */
int jshost_json_pack(const char *json, size_t len, jshost_value *out,
                     char *errbuf, size_t errbuf_len);
#define JSHOST_JSON_PRETTY 1
char *jshost_json_dump(const char *data, size_t len, int flags);

/*
 * Cancellation (docs/protocol.md, "cancel"). jshost_cancel asks the server to
 * stop the request sent with that msgid (jshost_send's): its JavaScript is
 * terminated if it runs, it is dropped if queued, abandoned if it awaits; its
 * reply is then an error of type "Cancelled" (unless it was answered first: a
 * cancel for a request already answered, or for none, is ignored). It only
 * writes the notification (what the socket does not take at once is written
 * with the next request, jshost_read or jshost_flush).
 */
int jshost_cancel(jshost *c, uint32_t msgid);

/*
 * Interrupting blocking calls. fn(user) is called by a thread waiting in a
 * blocking call of this handle (jshost_call, jshost_request, the context
 * functions...), with no lock held: at once when a signal interrupted its wait
 * (a handler installed without SA_RESTART), and at least every 100 ms while it
 * waits. When it returns nonzero the call is abandoned: libjshost sends
 * `cancel` for it and returns -1 with JSHOST_ERR_CANCELLED; its reply, if one
 * comes, is dropped. A command line tool sets a flag in its SIGINT handler and
 * returns it here; Python checks its own signal handlers. NULL (the default):
 * waits are never interrupted.
 */
typedef int (*jshost_interrupt_fn)(void *user);
void jshost_set_interrupt_check(jshost *c, jshost_interrupt_fn fn, void *user);

/*
 * Callables: JavaScript calling back into this program (docs/protocol.md,
 * "Callables and invoke"; docs/values.md, "Callables"). A value sent may hold
 * callables, each a callback id of the caller's choosing (unique on the
 * handle: the caller keeps its own table of ids). jshost_callable writes the
 * JSHOST_CALLABLE_SIZE bytes of one (msgpack ext 2) for the caller to put
 * where the value has it. JavaScript receives an async function; calling it
 * sends this handle an `invoke` with the callback id and the arguments (one
 * packed msgpack array).
 *
 * The handler gets each invoke on the thread that reads the connection (a
 * blocking call waiting for its reply, jshost_read, jshost_serve), with no
 * lock held: it must not block for long (hand the work to another thread)
 * and must answer each invoke exactly once, now or later, from any thread,
 * with jshost_invoke_reply (one packed value: the promise resolves with it) or
 * jshost_invoke_error (the promise rejects with an Error of that name, else
 * type, and message; stack is appended to the JavaScript one). It is called
 * with the handle the invoke came on (`c`, the one it was set on or one
 * libjshost opened for that handle's calls): answer on that handle. Without a
 * handler, invokes are answered NotFound at once. Answers to an invoke of a
 * connection since lost are refused (-1, JSHOST_ERR_ARG): nobody waits for
 * them.
 *
 * Invokes for callables a context holds (set in it by jshost_context_call)
 * may come when no call of this handle is in flight: a program without an
 * event loop calls jshost_serve from a thread of its own, which reads the
 * connection whenever no blocking call does.
 */
#define JSHOST_CALLABLE_SIZE 6
void jshost_callable(uint32_t callback_id, char out[JSHOST_CALLABLE_SIZE]);
typedef void (*jshost_invoke_fn)(jshost *c, uint32_t rid, uint32_t callback_id,
                                 const char *args, size_t args_len, void *user);
void jshost_set_invoke_handler(jshost *c, jshost_invoke_fn fn, void *user);
int jshost_invoke_reply(jshost *c, uint32_t rid, const char *value, size_t len);
/* type NULL = "JSError"; name, message and stack may be NULL. */
int jshost_invoke_error(jshost *c, uint32_t rid, const char *type,
                        const char *name, const char *message,
                        const char *stack);
/* Withdraws callables from this handle's contexts (`release`): JavaScript
 * calls to them reject at once from then on. */
int jshost_release(jshost *c, const uint32_t *callback_ids, size_t n);
/*
 * Reads the connection for up to timeout_ms (-1: until jshost_serve_wake),
 * handing invokes to the handler, while no blocking call of another thread
 * reads it (then it waits, and takes over when that call is answered).
 * Returns 0 at the timeout or after jshost_serve_wake (a wake while no
 * jshost_serve runs makes the next one return at once), -1 when the
 * connection is lost or was never made (JSHOST_ERR_IO), or when the interrupt
 * check stopped it (JSHOST_ERR_CANCELLED). Not for handles read with
 * jshost_read.
 */
int jshost_serve(jshost *c, int timeout_ms);
/* Makes every jshost_serve of the handle return now. Any thread. */
void jshost_serve_wake(jshost *c);

/*
 * Console output of this connection's contexts (docs/protocol.md, "Console
 * output"): what JavaScript running in a context made on this handle (a
 * private VM's, or a host's) writes with console.log, .warn and the rest.
 * `level` is the console method ("log", "info", "debug", "warn", "error",
 * "trace"), `text` the formatted line (NUL-terminated, len bytes), `ctx` the
 * context's id as jshost_context_create gave it. Lines arrive while the handle
 * reads: during a blocking call or jshost_read on it.
 *
 * The handler runs on the thread that is reading, with the handle's lock
 * held: it must not call any function of this handle, and should return
 * quickly (copy the line and hand it elsewhere). NULL (the default) drops the
 * lines; the host's log file (a private VM's: manager.log) has them either
 * way.
 */
typedef void (*jshost_console_fn)(void *user, uint64_t ctx, const char *level,
                                  const char *text, size_t len);
void jshost_set_console_handler(jshost *c, jshost_console_fn fn, void *user);

/* The library's version string. */
const char *jshost_version(void);

#ifdef __cplusplus
}
#endif

#endif
