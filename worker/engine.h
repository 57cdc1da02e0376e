/*
 * engine: the worker's one V8 isolate, behind a C interface (the only C++
 * boundary in jshost). Opaque handles and ids; no C++ exception crosses it;
 * V8 is touched only on the loop thread that created the engine (the
 * watchdog thread only calls TerminateExecution).
 *
 * Values come in and go out as msgpack bytes, converted directly between
 * the bytes and V8 (docs/values.md), never through JSON or a msgpack-c
 * object tree. A value coming in is a struct proto_span: one whole msgpack
 * item (len 0 = none), read before any JavaScript runs, so it may point into
 * a buffer that changes once JS runs (a connection's reader). What JavaScript
 * sees is in docs/config.md.
 *
 * A call's way through the engine, out and back. js_call, js_context_eval,
 * js_context_call and js_context_load each start one call (struct jse::Call):
 *
 *   engine.cc   js_call
 *   js_call.cc    CallStart           registers it (or answers at once)
 *                 CallFunction        enters JS under the call's deadline
 *                                     (Entry); functions[name](data, cb)
 *                                     (CallEval, CallExpression, CallLoad
 *                                     for the context functions)
 *                 SettleWith          a plain value, a promise, a throw
 *                   CallSettle        the first settlement wins: the call
 *                                     joins e->settled
 *   js_entry.cc   Entry::Leave        ticks and microtasks run (they may
 *                                     settle it: cb, promises), deadline
 *                                     disarmed
 *   js_call.cc    CallsAfterEntry     timeout or heap limit; then
 *                   AnswerSettled     for each settled call:
 *                     CallAnswer      converts the value (under the deadline)
 *                       CallDone      forgets the call, then
 *   caller      js_done_cb            exactly once
 *
 * A call still waiting after its synchronous part gets a deadline timer
 * (StartDeadlineTimer). Later its JS runs again as a macrotask: a timer or
 * immediate (js_world.cc RunCallback), a V8 task (PumpTasks). There the
 * settle.js closures (its cb, its promise's reactions) reach CallSettle
 * through SettleFromJs; when the macrotask ends, CallsAfterEntry answers as
 * above. The deadline timer (CallTimedOut), context destruction and
 * js_engine_free answer through CallFail -> CallDone. A C++ exception (an
 * allocation failing) comes back to the engine.cc function that started
 * the call, which answers it through CallAbandon -> CallFail -> CallDone.
 *
 * Callables and cancellation (docs/protocol.md, "Callbacks and
 * cancellation"). A callable (ext 2) in a call's data or a context.call's
 * args becomes an async function (js_callable.cc); calling it hands a
 * struct js_invoke to the embedder's invoke hook, and the promise settles
 * when the embedder brings the answer (js_invoke_settle). js_cancel answers
 * a waiting call Cancelled. Running JS cannot be reached from the loop: while
 * one entry runs past a few milliseconds, the watchdog interrupts it every
 * few milliseconds to call the embedder's poll hook (js_entry.cc), which may
 * read its sockets and terminate what runs (js_cancel, js_context_interrupt,
 * js_engine_stop); the entry then ends kTerminated and CallsAfterEntry
 * answers what was cancelled.
 */
#ifndef JSHOST_ENGINE_H
#define JSHOST_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct js_engine js_engine;

/* Config settings (docs/config.md), read from the config's exports or
 * defaulted. */
struct js_config {
    uint32_t workers;    /* default 1 */
    uint32_t timeout_ms; /* default 10000 */
    uint32_t memory_mb;  /* default 512 */
    uint32_t linger_ms;  /* default 5000 */
    int reload;          /* `reload`: -1 not set (the manager decides), 0, 1 */
};

struct js_engine_options {
    /* .js (CommonJS) or .mjs (ES module); NULL = no config: no functions,
     * contexts only (private VM) */
    const char *config_path;
    /* 0 = the config's `memory`, else 512 (a config asking for another limit
     * is loaded twice: the limit is fixed when the isolate is made) */
    uint32_t memory_mb;
    /* 0 = the config's `timeout`, else 10000 */
    uint32_t timeout_ms;
    /* require() root for contexts; NULL = getcwd */
    const char *cwd;
    /* "NAME=value" strings, NULL-terminated: the environment of the client
     * that started the host, where process.env takes NODE_ENV and the
     * config's `env` names from; NULL = this process's environment */
    const char *const *env;
};

/*
 * A failure with words: type (proto_errtype), message, and for JS errors and
 * config errors the JS name, stack and position. Every string is malloc'd and
 * NUL-terminated or NULL; js_error_free releases them.
 */
struct js_error {
    enum proto_errtype type;
    char *message;
    char *name;
    char *stack;
    char *file; /* ConfigError: the file at fault */
    int line;   /* 1-based, 0 = unknown */
    int column; /* 1-based, 0 = unknown */
};
void js_error_free(struct js_error *err);
/* As a proto_error view (pointers into err) for proto_write_error. */
void js_error_view(const struct js_error *err, struct proto_error *out);

/*
 * Completion of one call (js_call, js_context_eval, js_context_call or
 * js_context_load). Those functions always return 0 and call cb exactly once,
 * failures included (an unknown function is a NotFound through cb, a bad
 * value an InvalidArgument, an allocation that failed a HostUnavailable).
 * Exactly one of value/error is set: `value` is the packed msgpack of the
 * result (len bytes), valid only during the callback; `error` likewise.
 * Called on the loop thread, possibly before the starting function returns
 * (sync JS).
 */
typedef void (*js_done_cb)(void *arg, const char *value, size_t len,
                           const struct js_error *error);

/*
 * Creates the isolate and loads the config on `loop`. On a config failure
 * returns -EINVAL with *err a ConfigError (file, line, column, reason). Other
 * negative errnos for system failures (with *err when words help).
 * js_engine_global_init must have been called once per process.
 */
void js_engine_global_init(const char *argv0);
int js_engine_new(uv_loop_t *loop, const struct js_engine_options *opts,
                  js_engine **out, struct js_error *err);
/*
 * Tears down: pending calls complete with HostUnavailable first. The engine's
 * uv handles are closed, not yet freed: run the loop once more before
 * uv_loop_close(). Not from inside a js_done_cb of this engine.
 */
void js_engine_free(js_engine *e);

/* The config's effective settings. */
void js_engine_config(const js_engine *e, struct js_config *out);
/* Function names as NUL-terminated strings (owned by the engine). */
size_t js_engine_functions(const js_engine *e, const char *const **names);
/* The files the config loaded (its own real path first, then every module it
 * required or imported while loading), for the manager's reload. */
size_t js_engine_loaded_files(const js_engine *e, const char *const **paths);
/* What loading the config warned about (an export that looks like a misspelt
 * setting), each also written to the log. */
size_t js_engine_config_warnings(const js_engine *e,
                                 const char *const **warnings);
/* Packs the config's extras (every export but `functions`, as a map). */
int js_engine_pack_extras(js_engine *e, msgpack_packer *pk);

/* Calls functions[name] with data (docs/config.md; none: null). timeout_ms
 * 0 = the default. */
int js_call(js_engine *e, const char *name, size_t name_len,
            struct proto_span data, uint32_t timeout_ms, js_done_cb cb,
            void *arg);

/* Contexts: fresh global scopes with the same globals. Ids are > 0. */
int js_context_create(js_engine *e, const char *cwd, uint32_t *id,
                      struct js_error *err);
int js_context_destroy(js_engine *e, uint32_t id); /* -ENOENT when unknown */
/* js_context_eval's flags. */
#define JS_EVAL_STRING 1u /* the value as String(value) (v8-cffi's result) */
/* Runs `source` named `identifier`; a promise result is awaited. */
int js_context_eval(js_engine *e, uint32_t id, const char *source,
                    size_t source_len, const char *identifier,
                    size_t identifier_len, uint32_t timeout_ms, unsigned flags,
                    js_done_cb cb, void *arg);
/* Evaluates `expression` (e.g. "Math.max") and calls it with args (an array,
 * nil or none: no args). */
int js_context_call(js_engine *e, uint32_t id, const char *expression,
                    size_t expression_len, struct proto_span args,
                    uint32_t timeout_ms, js_done_cb cb, void *arg);
/* Runs files in order (paths: an array of str, relative to the context's cwd)
 * as plain scripts; an unreadable file is a NotFound. */
int js_context_load(js_engine *e, uint32_t id, struct proto_span paths,
                    uint32_t timeout_ms, js_done_cb cb, void *arg);

struct js_stats {
    uint64_t heap_used;
    uint64_t heap_limit;
    uint64_t calls;  /* calls answered */
    uint64_t errors; /* of which failed */
    uint64_t in_flight;
    uint64_t contexts;
    double uptime_s;
};
void js_engine_stats(js_engine *e, struct js_stats *out);

/*
 * True once the isolate hit its heap limit: the call that did is answered
 * MemoryError and the worker must exit with JSHOST_EXIT_RECYCLE as soon as its
 * replies are written.
 */
int js_engine_doomed(const js_engine *e);

/* ---- callables, reverse calls, cancellation ---------------------------- */

/*
 * A reverse call: JavaScript called a callable (ext 2) whose callback id is
 * callback_id, with args (a packed msgpack array, valid during the hook
 * only). The callable came in the data of the call whose js_done_cb arg is
 * call_arg, or, when call_arg is NULL, in a context.call's args for context
 * `context`. The hook sets `peer` to an id of the connection it sent the
 * request on: only an answer from that peer settles it.
 */
struct js_invoke {
    uint32_t id; /* answered with js_invoke_settle(e, id, peer, ...) */
    uint32_t callback_id;
    void *call_arg;
    uint32_t context;
    const char *args;
    size_t args_len;
    uint64_t peer;
};

/*
 * The embedder's side, all called on the loop thread:
 *   invoke  sends inv to the callable's owner: 0, or a negative errno when
 *           there is none any more (the promise then rejects at once).
 *           Called from inside JS: it must not run JS or start calls.
 *   poll    called every few milliseconds while one entry into JS runs
 *           longer than that (a V8 interrupt, from inside the JS): it may
 *           read sockets and call js_cancel, js_context_interrupt and
 *           js_engine_stop; it must not run JS, start calls or free
 *           anything the engine holds.
 *   console a console line written by the code of context `context` (never
 *           the config's own: that only goes to the log), for the client
 *           that owns the context. Called from inside JS: it must not run
 *           JS or start calls.
 */
struct js_engine_hooks {
    int (*invoke)(void *arg, struct js_invoke *inv);
    void (*poll)(void *arg);
    void (*console)(void *arg, uint32_t context, const char *level,
                    const char *text, size_t len);
    void *arg;
};
void js_engine_set_hooks(js_engine *e, const struct js_engine_hooks *hooks);

/*
 * The answer to reverse call `id` from `peer`: the promise rejects with an
 * Error made from `error` when it is an error map (its name, message, and
 * its stack after the JS one), else resolves with `result` (callables in it
 * belong to the owner of the callable called). Runs JS (the promise's
 * reactions). 0, or -ENOENT when no such call waits for that peer. Not from
 * inside an engine callback.
 */
int js_invoke_settle(js_engine *e, uint32_t id, uint64_t peer,
                     struct proto_span error, struct proto_span result);
/* Every reverse call sent to `peer` rejects with `message` (the connection
 * closed). Runs JS; not from inside an engine callback. */
void js_invoke_fail_peer(js_engine *e, uint64_t peer, const char *message);
/* Withdraws callables set in context `id`: JS calls to them reject at once
 * ("callback expired"). */
void js_context_release(js_engine *e, uint32_t id, const uint32_t *callbacks,
                        size_t n);

/*
 * Cancels the unanswered call whose js_done_cb arg is `arg`. From the loop
 * it is answered Cancelled now (a promise it awaits is abandoned, its
 * callables expire). From the poll hook its JS is terminated if it is the
 * JS running, and it is answered Cancelled once that entry ends. -ENOENT
 * when there is no such call.
 */
int js_cancel(js_engine *e, void *arg);
/* From the poll hook: terminates the JS running, if it runs in context `id`
 * (about to be destroyed). 1 when it did, else 0. */
int js_context_interrupt(js_engine *e, uint32_t id);
/* The worker is stopping: the JS running (from the poll hook) is terminated,
 * every later entry into JS is, and new calls are answered HostUnavailable. */
void js_engine_stop(js_engine *e);
/* The worker drains (a stop or restart): a stop from now on comes after the
 * drain's grace ran out, and the calls it cuts short are answered Cancelled
 * rather than HostUnavailable (docs/lifecycle.md, "Restart, stop, shutdown").
 */
void js_engine_stop_cancels(js_engine *e);

/*
 * Tests only: the n-th value conversion of `e` from now on (1 = the next; a
 * call's data or args, an eval's source, a load's file, a result) throws
 * std::bad_alloc, as an allocation failing there would; 0 disarms. Lets the
 * tests show that such a call is still answered, once.
 */
void js_engine_test_fault(js_engine *e, unsigned n);

#ifdef __cplusplus
}
#endif

#endif
