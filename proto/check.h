/*
 * One checker per method (docs/protocol.md gives each method's params): the
 * shape and types of a request's params, read into a struct proto_params,
 * with words that name the parameter at fault. The manager and the worker
 * both check through these, so a request means the same to either server;
 * what a value then names (a host, a context) is each server's business.
 *
 * A checker returns 0, or a negative errno with `cause` filled
 * (PROTO_CAUSE_MAX bytes):
 *   -EINVAL           params of the wrong shape or type: InvalidArgument
 *   -EPROTONOSUPPORT  hello in a protocol this side does not speak:
 *                     ProtocolError
 * proto_check_errtype() maps the result to the error type to answer with.
 */
#ifndef JSHOST_PROTO_CHECK_H
#define JSHOST_PROTO_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds of the options (docs/protocol.md, "Limits"). */
#define PROTO_TIMEOUT_MAX_MS UINT32_MAX
/* The worker's own --memory bound: 1 TiB of heap. */
#define PROTO_MEMORY_MAX_MB (1024u * 1024u)
/* A config or cwd param: shorter than this, and no NUL inside. */
#define PROTO_PATH_MAX 4096

/*
 * A request's params as its method's checker read them. Strings point into
 * the message (not NUL-terminated) and are NULL where the param is nil or
 * absent; objects point into the message or to static empty ones. A message
 * taken as bytes (proto_reader_take) has no objects: they stand in as nil or
 * empty, and its value params are given as bytes in the *_bytes spans (each
 * one whole msgpack item, len 0 where the param is absent). Fields a method
 * does not have stay zero.
 */
struct proto_params {
    /* call, detach, status, restart, stop, context.create: the host param
     * as given (a nil object when absent), and its text when it is a string.
     * Any value passes the checker: a server that routes by it answers
     * NotFound for one that names no host, and a worker ignores it. */
    const msgpack_object *host_obj;
    const char *host;
    size_t host_len;
    /* attach */
    const char *config;
    size_t config_len;
    /* call */
    const char *function;
    size_t function_len;
    const msgpack_object *data;
    /* context.eval, .call, .load, .destroy */
    uint64_t context;
    /* context.eval (identifier NULL = nil: the server's default) */
    const char *source;
    size_t source_len;
    const char *identifier;
    size_t identifier_len;
    /* context.call (args: an array; empty when absent) */
    const char *expression;
    size_t expression_len;
    const msgpack_object *args;
    /* context.load: an array of strings */
    const msgpack_object *paths;
    /* The options map (a nil object when absent) and what was read from it:
     * timeout_ms 0 = the host's default; memory_mb, vm 0 = not given. */
    const msgpack_object *options;
    uint32_t timeout_ms;
    uint32_t memory_mb;
    uint64_t vm;
    const char *cwd;
    size_t cwd_len;
    /* context.eval: "string": the value as String(value) */
    bool as_string;
    /* hello */
    uint64_t protocol;
    const char *client;
    size_t client_len;
    /* cancel: the msgid of the request to stop */
    uint32_t msgid;
    /* invoke: the callback id, its args (an array), and on the manager's
     * connection to a worker the owner: a call's msgid (owner_call) or a
     * context id (owner_context), the other 0; neither without the param */
    uint32_t callback_id;
    uint32_t owner_call;
    uint64_t owner_context;
    /* release: the callback ids (an array of unsigned 32-bit integers) and,
     * from the manager to a worker, the contexts they were set in (an array
     * of unsigned integers; empty when absent) */
    const msgpack_object *callbacks;
    const msgpack_object *contexts;
    /* A message taken as bytes: host_obj, data, args, paths, options,
     * callbacks and contexts as bytes. */
    struct proto_span host_bytes;
    struct proto_span data_bytes;
    struct proto_span args_bytes;
    struct proto_span paths_bytes;
    struct proto_span options_bytes;
    struct proto_span callbacks_bytes;
    struct proto_span contexts_bytes;
};

typedef int (*proto_check_fn)(const struct proto_msg *msg,
                              struct proto_params *p, char *cause);

int proto_check_hello(const struct proto_msg *msg, struct proto_params *p,
                      char *cause);
int proto_check_attach(const struct proto_msg *msg, struct proto_params *p,
                       char *cause);
int proto_check_detach(const struct proto_msg *msg, struct proto_params *p,
                       char *cause);
int proto_check_status(const struct proto_msg *msg, struct proto_params *p,
                       char *cause);
int proto_check_direct(const struct proto_msg *msg, struct proto_params *p,
                       char *cause);
int proto_check_restart(const struct proto_msg *msg, struct proto_params *p,
                        char *cause);
int proto_check_stop(const struct proto_msg *msg, struct proto_params *p,
                     char *cause);
int proto_check_shutdown(const struct proto_msg *msg, struct proto_params *p,
                         char *cause);
int proto_check_call(const struct proto_msg *msg, struct proto_params *p,
                     char *cause);
int proto_check_context_create(const struct proto_msg *msg,
                               struct proto_params *p, char *cause);
int proto_check_context_eval(const struct proto_msg *msg,
                             struct proto_params *p, char *cause);
int proto_check_context_call(const struct proto_msg *msg,
                             struct proto_params *p, char *cause);
int proto_check_context_load(const struct proto_msg *msg,
                             struct proto_params *p, char *cause);
int proto_check_context_destroy(const struct proto_msg *msg,
                                struct proto_params *p, char *cause);
int proto_check_ping(const struct proto_msg *msg, struct proto_params *p,
                     char *cause);
int proto_check_stats(const struct proto_msg *msg, struct proto_params *p,
                      char *cause);
/* Reverse calls and cancellation (docs/protocol.md, "Callbacks and
 * cancellation"): cancel and release are notifications, invoke a request. */
int proto_check_drain(const struct proto_msg *msg, struct proto_params *p,
                      char *cause);
int proto_check_cancel(const struct proto_msg *msg, struct proto_params *p,
                       char *cause);
int proto_check_release(const struct proto_msg *msg, struct proto_params *p,
                        char *cause);
int proto_check_invoke(const struct proto_msg *msg, struct proto_params *p,
                       char *cause);

/*
 * The one reader of the timeout_ms option: an unsigned integer up to
 * PROTO_TIMEOUT_MAX_MS, or absent/nil (then 0: the host's default). `index`
 * is where the options map sits in params, for the words.
 */
int proto_check_timeout(const msgpack_object *options, uint32_t index,
                        uint32_t *timeout_ms, char *cause);

/* The error type a checker's negative result is answered with. */
enum proto_errtype proto_check_errtype(int rc);

/*
 * A server's dispatch table is an array of entries that each begin with a
 * struct proto_method (the name and its checker), followed by the server's
 * own handler. proto_method_find looks msg's method up in such a table
 * (`n` entries, `stride` bytes apart) and checks its params into *p: the
 * entry, or NULL with *type and cause set (NotFound for an unknown method,
 * the checker's type for bad params).
 */
struct proto_method {
    const char *name;
    proto_check_fn check;
};

const struct proto_method *
proto_method_find(const void *table, size_t n, size_t stride,
                  const struct proto_msg *msg, struct proto_params *p,
                  enum proto_errtype *type, char *cause);

#ifdef __cplusplus
}
#endif

#endif
