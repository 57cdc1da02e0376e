/*
 * Helpers for process-level tests: a private temp dir per scenario, child
 * processes, and a blocking msgpack-RPC client over a Unix socket (built on
 * proto/). For tests only: these assert (cmocka) instead of returning errors
 * where a failure means the test failed.
 */
#ifndef JSHOST_TESTUTIL_H
#define JSHOST_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "proto.h"

/* Build-tree paths, set by meson: JSHOST_BUILD_ROOT, JSHOST_SOURCE_ROOT. */
const char *tu_build_path(const char *rel); /* static buffer per call ring */
const char *tu_source_path(const char *rel);

/* A fresh 0700 temp dir (short path under /tmp, so sockets fit sun_path). */
char *tu_tmpdir(void);
/* rm -rf of a dir made by tu_tmpdir; frees the string. */
void tu_rmtree(char *dir);
/* Writes a file (dir/name) with the given text; returns the malloc'd path.
 * Folders in `name` ("node_modules/x/index.js") are created. */
char *tu_write_file(const char *dir, const char *name, const char *text);

/*
 * Spawns argv (argv[0] a path) with env additions (NULL-terminated "K=V" list,
 * may be NULL); stdout/stderr to `logpath` when not NULL. Returns the pid.
 */
pid_t tu_spawn(char *const argv[], char *const envadd[], const char *logpath);
/* Waits up to timeout_ms (< 0: no limit) for pid; returns its wait status, or
 * -1 on timeout. */
int tu_wait(pid_t pid, int timeout_ms);
/* SIGTERM, wait up to 2 s, then SIGKILL and reap. */
void tu_kill(pid_t pid);
/* A Unix stream socket connected to path (close-on-exec), or -1 with errno
 * set (ENAMETOOLONG: the path does not fit sun_path). */
int tu_connect(const char *path);
/* Waits up to timeout_ms until connect(path) succeeds. true when it did. */
bool tu_wait_socket(const char *path, int timeout_ms);

/*
 * Runs argv (argv[0] a path; env additions as tu_spawn) to its end: `input`
 * (NULL: nothing) is its stdin, then EOF; what it writes to stdout and stderr
 * comes back in *out and *err (malloc'd, NUL-terminated, set even on timeout).
 * Returns its exit status, 128 + the signal that ended it, or -1 when it still
 * ran after timeout_ms (< 0: no limit; it is then SIGKILLed and reaped).
 */
int tu_run(char *const argv[], char *const envadd[], const char *input,
           char **out, char **err, int timeout_ms);

/* The whole file, malloc'd and NUL-terminated; NULL (errno set) when it cannot
 * be opened, e.g. it does not exist (yet). */
char *tu_read_file(const char *path);

/* A blocking RPC connection. */
struct tu_rpc;
struct tu_rpc *tu_rpc_connect(const char *path); /* NULL on failure */
struct tu_rpc *tu_rpc_from_fd(int fd);
void tu_rpc_close(struct tu_rpc *c);
int tu_rpc_fd(const struct tu_rpc *c);

/*
 * Sends a request whose params are given as JSON (packed with mpjson, so
 * {"$bin": ...}, {"$date": ...}, {"$bigint": ...} give bin, timestamp, bigint)
 * and returns its msgid. params_json must be a JSON array; values in it may
 * nest PROTO_VALUE_MAX_DEPTH levels (deeper ones: tu_rpc_send_raw).
 */
uint32_t tu_rpc_send(struct tu_rpc *c, const char *method,
                     const char *params_json);
/* Sends raw bytes as they are (for garbage, half messages, hand-packed values).
 * A send to a peer that has gone is not fatal: the next read reports it. */
void tu_rpc_send_raw(struct tu_rpc *c, const void *buf, size_t len);
/* The next msgid this connection will use (for hand-packed requests); it is
 * taken, so a later tu_rpc_send uses the one after it. Ids start at 1. */
uint32_t tu_rpc_next_msgid(struct tu_rpc *c);
/* Why the last read ended the stream or a send failed ("end of stream", the
 * proto reader's cause, "send: Broken pipe"); "" when nothing went wrong. */
const char *tu_rpc_error(const struct tu_rpc *c);

/*
 * Reads the next message within timeout_ms (< 0: no limit). 1 got one, 0
 * timeout, -1 EOF or a broken stream. Notifications are returned too, and
 * messages queued by tu_rpc_wait come first.
 */
int tu_rpc_read(struct tu_rpc *c, struct proto_msg *msg, int timeout_ms);
/* Reads until the response to msgid arrives (other responses are queued and
 * given to later waits for their ids). 1 / 0 timeout / -1 as tu_rpc_read. */
int tu_rpc_wait(struct tu_rpc *c, uint32_t msgid, struct proto_msg *msg,
                int timeout_ms);

/*
 * A response as tu_rpc_call renders it (result as JSON, or "!Type: message"),
 * malloc'd; NULL when msg is not a response.
 */
char *tu_rpc_result(const struct proto_msg *msg);

/*
 * Request + wait; returns the response's result as JSON (malloc'd), or, for an
 * error response, "!" followed by the error type and ": " and the message,
 * e.g. "!NotFound: no function 'nope'". NULL on timeout or EOF.
 */
char *tu_rpc_call(struct tu_rpc *c, const char *method, const char *params_json,
                  int timeout_ms);

#endif
