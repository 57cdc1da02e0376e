/*
 * tu_rpc: a blocking msgpack-RPC client over a Unix socket (built on proto/),
 * for tests that play a client of the manager, of a worker or of a fake peer;
 * replies as JSON text or jansson values, and the manager's status read as a
 * test needs it.
 */
#ifndef JSHOST_TU_RPC_H
#define JSHOST_TU_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <msgpack.h>

#include "proto.h"
#include "tu.h"

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
/* Starts a hand-packed request in a fresh sb: its head, for nparams params
 * the caller packs next; returns its msgid. */
uint32_t tu_rpc_request_begin(struct tu_rpc *c, msgpack_sbuffer *sb,
                              msgpack_packer *pk, const char *method,
                              uint32_t nparams);
/* Sends what sb holds and frees it. */
void tu_rpc_request_send(struct tu_rpc *c, msgpack_sbuffer *sb);
/* The head of a `ping` request whose one param is a str32 of len bytes, the
 * str's bytes not included (for half messages and the limits on them); its
 * length, the msgid in *msgid. buf holds 32 bytes. */
size_t tu_rpc_ping_head(struct tu_rpc *c, unsigned char *buf, uint32_t len,
                        uint32_t *msgid);
/* JSON packed as msgpack into a fresh sb (mpjson's special forms allowed). */
void tu_rpc_pack_json(msgpack_sbuffer *sb, const char *json);
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
 * Reverse calls (a peer's invoke requests) answered while waiting: fn gets
 * each request that arrives meanwhile, at once, and must answer it (with
 * tu_rpc_respond or tu_rpc_respond_error) now or later.
 */
typedef void (*tu_rpc_request_fn)(void *arg, struct tu_rpc *c,
                                  const struct proto_msg *req);
/* As tu_rpc_wait, but requests that arrive meanwhile go to fn, not the
 * queue. */
int tu_rpc_wait_serving(struct tu_rpc *c, uint32_t msgid, struct proto_msg *msg,
                        int timeout_ms, tu_rpc_request_fn fn, void *arg);
/* Answers a request: [1, msgid, nil, result] with result given as JSON. */
void tu_rpc_respond(struct tu_rpc *c, uint32_t msgid, const char *result_json);
/* Answers a request with an error map {type, message, name, stack} (name
 * and stack may be NULL). */
void tu_rpc_respond_error(struct tu_rpc *c, uint32_t msgid, const char *type,
                          const char *name, const char *message,
                          const char *stack);
/* Sends a notification whose params are given as JSON. */
void tu_rpc_notify(struct tu_rpc *c, const char *method,
                   const char *params_json);

/*
 * A response as tu_rpc_call renders it (result as JSON, or "!Type: message"),
 * malloc'd; NULL when msg is not a response.
 */
char *tu_rpc_result(const struct proto_msg *msg);

/*
 * Request + wait (TU_WAIT_MS); returns the response's result as JSON
 * (malloc'd), or, for an error response, "!" followed by the error type and
 * ": " and the message, e.g. "!NotFound: no function 'nope'". NULL when the
 * stream ended or no answer came.
 */
char *tu_rpc_call(struct tu_rpc *c, const char *method,
                  const char *params_json);
/* tu_rpc_call while the peer's requests (invokes) go to fn, which answers
 * them; asserts an answer came. */
char *tu_rpc_call_serving(struct tu_rpc *c, const char *method,
                          const char *params_json, tu_rpc_request_fn fn,
                          void *arg);
/* tu_rpc_call of the `call` method: host's function fn with data (JSON) and
 * options (JSON; NULL: none). */
char *tu_rpc_call_fn(struct tu_rpc *c, const char *host, const char *fn,
                     const char *data_json, const char *opts_json);
/* tu_rpc_call asserting the exact text it gives. */
void tu_rpc_check(struct tu_rpc *c, const char *method, const char *params_json,
                  const char *expect);
/* tu_rpc_call asserting an error of `type` whose message contains `words`
 * (NULL: any message). */
void tu_rpc_check_error(struct tu_rpc *c, const char *method,
                        const char *params_json, const char *type,
                        const char *words);
/* tu_rpc_call asserting success; the result as a jansson value. */
json_t *tu_rpc_ok(struct tu_rpc *c, const char *method,
                  const char *params_json);

/* Waits (TU_WAIT_MS) for the response to msgid and asserts success;
 * msg->result holds it (release msg afterwards). */
void tu_rpc_expect_result(struct tu_rpc *c, uint32_t msgid,
                          struct proto_msg *msg);
/* Waits for the response to msgid and asserts it is an error of `type`; *msg
 * and *pe hold it (release msg afterwards). */
void tu_rpc_expect_error(struct tu_rpc *c, uint32_t msgid, const char *type,
                         struct proto_msg *msg, struct proto_error *pe);
/* Sends the `cancel` notification for request msgid. */
void tu_rpc_cancel(struct tu_rpc *c, uint32_t msgid);
/* tu_rpc_expect_error of a Cancelled, the message released. */
void tu_rpc_expect_cancelled(struct tu_rpc *c, uint32_t msgid);
/* Reads the next message and asserts it is the `error` notification of a
 * refused connection with words in its message, and that the stream ends
 * right after it. */
void tu_rpc_expect_refused(struct tu_rpc *c, const char *words);
/* A map's value by str key, asserting it is there. */
const msgpack_object *tu_rpc_field(const msgpack_object *map, const char *key);

/* One integer figure of the manager's own status (clients, partial_bytes...;
 * 0 when it has none). */
long tu_rpc_manager_figure(struct tu_rpc *c, const char *key);
/* The pid of host's worker that answers a call of `pid` (the fake worker's
 * function), asserting success. */
pid_t tu_rpc_serving_pid(struct tu_rpc *c, const char *host);
/* attach CONFIG; returns the host id (malloc'd), asserting success. */
char *tu_rpc_attach(struct tu_rpc *c, const char *config);
/* The manager's status of one host, NULL when there is no such host. */
json_t *tu_rpc_host(struct tu_rpc *c, const char *host);
/* One integer figure of a host's status (holders, crashes, queued...),
 * asserting the host is there. */
long tu_rpc_host_figure(struct tu_rpc *c, const char *host, const char *key);
/* Whether the host's state is `state` ("ready", "quarantined"...); "gone":
 * there is no such host (any more). */
bool tu_rpc_host_in(struct tu_rpc *c, const char *host, const char *state);
/* The pids of a host's workers in `state` (NULL: any); returns how many. */
int tu_rpc_worker_pids(struct tu_rpc *c, const char *host, const char *state,
                       pid_t *pids, int max);
/* The pid of a worker of host (NULL: of any host) with a call in flight, 0
 * when none has one. */
pid_t tu_rpc_busy_worker(struct tu_rpc *c, const char *host);

#endif
