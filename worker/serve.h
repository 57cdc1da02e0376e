/*
 * serve: the worker's msgpack-RPC server (docs/protocol.md). Either the one
 * inherited connection of a manager (--fd) or every client accepted on a
 * listening socket (--listen). Requests are checked, dispatched to the engine
 * and answered as they complete, in any order (serve_internal.h says which
 * file does what).
 */
#ifndef JSHOST_SERVE_H
#define JSHOST_SERVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engine.h"

/* Pending reply bytes on one connection past which it is not read any more. */
#define SERVE_WRITE_HIGH_WATER ((size_t)8 * 1024 * 1024)

struct serve;

/*
 * Asks the owner to end the process with `status` (0: the manager's connection
 * ended; JSHOST_EXIT_RECYCLE: the heap limit was hit and every reply written).
 * Called at most once, possibly from inside an engine callback: the owner must
 * defer the teardown to a later loop iteration.
 */
typedef void (*serve_exit_cb)(void *arg, int status);

struct serve_options {
    js_engine *engine;
    const char *config_realpath; /* NULL = private VM (no config) */
    serve_exit_cb on_exit;
    void *arg;
    /* Set (to the signal's number) by the owner's signal handler when the
     * worker must stop: JS running long is then terminated at once rather
     * than when the loop next looks at the signal. May be NULL. */
    volatile sig_atomic_t *stop_signal;
    /* The listening socket's clients (docs/security.md): at most this many
     * at once (0: JSHOST_DEFAULT_MAX_CLIENTS), and what their unfinished
     * messages may hold together (0: no limit) and for how long without a
     * byte (0: for ever). The --fd connection takes none of them. */
    unsigned max_clients;
    size_t max_partial_total;
    uint64_t partial_idle_ms;
};

/* 0, or a negative errno (out of memory). */
int serve_new(uv_loop_t *loop, const struct serve_options *opts,
              struct serve **out);

/*
 * Serves the one connection on inherited fd (the manager's socketpair end).
 * EOF on it asks for exit status 0. 0 or negative errno with *cause (malloc'd).
 */
int serve_fd(struct serve *s, int fd, char **cause);
/* Queues the "ready" notification (docs/protocol.md) on the --fd connection. */
int serve_notify_ready(struct serve *s);

/*
 * Listens on a Unix socket at path (0600; a stale socket there is replaced, a
 * live one or another file is refused). 0 or negative errno with *cause.
 */
int serve_listen(struct serve *s, const char *path, char **cause);

/*
 * A config error's message without a leading "file:line:column: " (the engine
 * may put the place in its words; the protocol carries it in its own fields).
 * Points into err->message; never NULL.
 */
const char *serve_config_message(const struct js_error *err);

/*
 * Writes the "config_error" notification to fd with blocking writes (the engine
 * never started, there is no loop to speak of). 0 or negative errno.
 */
int serve_write_config_error(int fd, const struct js_error *err);

/*
 * Stops listening and closes every connection (replies still owed are dropped).
 * The listening socket's path is unlinked. The struct stays valid until
 * serve_free, which may only be called once the loop has run the close
 * callbacks (uv_run returned).
 */
void serve_close(struct serve *s);
void serve_free(struct serve *s);

#endif
