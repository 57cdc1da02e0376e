/*
 * engine: the worker's one V8 isolate, behind a C interface (the only C++
 * boundary in jshost). Opaque handles and ids; no C++ exception crosses it;
 * V8 is touched only on the loop thread that created the engine (the
 * watchdog thread only calls TerminateExecution).
 *
 * Values come in as msgpack objects and go out as packed msgpack bytes,
 * converted directly between msgpack-c and V8 (docs/values.md), never
 * through JSON. What JavaScript sees is in docs/config.md.
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

/* Calls functions[name] with data (docs/config.md). timeout_ms 0 = the
 * default. */
int js_call(js_engine *e, const char *name, size_t name_len,
            const msgpack_object *data, uint32_t timeout_ms, js_done_cb cb,
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
/* Evaluates `expression` (e.g. "Math.max") and calls it with args (an array).
 */
int js_context_call(js_engine *e, uint32_t id, const char *expression,
                    size_t expression_len, const msgpack_object *args,
                    uint32_t timeout_ms, js_done_cb cb, void *arg);
/* Runs files in order (paths: an array of str, relative to the context's cwd)
 * as plain scripts; an unreadable file is a NotFound. */
int js_context_load(js_engine *e, uint32_t id, const msgpack_object *paths,
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

/*
 * A console line written by the code of context `context` (never the
 * config's own: that only goes to the log), for the client that owns the
 * context. Called from inside JS: the hook must not run JS or start calls.
 */
typedef void (*js_console_cb)(void *arg, uint32_t context, const char *level,
                              const char *text, size_t len);
void js_engine_set_console(js_engine *e, js_console_cb cb, void *arg);

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
