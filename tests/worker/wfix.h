/*
 * wfix: a jshost-worker under test. Each fixture gets its own temp dir holding
 * the socket and the worker's log (its stdout and stderr), so scenarios never
 * share a process or a path.
 */
#ifndef JSHOST_WFIX_H
#define JSHOST_WFIX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "proto.h"
#include "testutil.h"

struct wfix {
    char *dir;
    char *sock;
    char *log;
    pid_t pid;
};

/* A config under tests/worker/configs (source tree), as an absolute path. */
const char *wfix_config(const char *name);

/*
 * Starts `jshost-worker --listen <dir>/w.sock [extra...] CONFIG` (config may be
 * NULL: a private VM; extra a NULL-terminated list or NULL) and waits until it
 * accepts connections.
 */
void wfix_start(struct wfix *f, const char *config, const char *const *extra);
/* Connects a fresh client to the fixture's worker. */
struct tu_rpc *wfix_connect(struct wfix *f);
/* SIGTERM; asserts a clean exit (status 0); removes the temp dir. */
void wfix_stop(struct wfix *f);
/* Waits for the worker to exit on its own; returns its wait status. */
int wfix_wait(struct wfix *f, int timeout_ms);
/* Removes the temp dir (after the worker is gone). */
void wfix_cleanup(struct wfix *f);
/* The log so far (malloc'd, NUL-terminated). */
char *wfix_read_log(struct wfix *f);

/*
 * Waits for the response to msgid and asserts it is an error of `type`; *pe and
 * *msg hold it (release msg afterwards).
 */
void wfix_expect_error(struct tu_rpc *c, uint32_t msgid, const char *type,
                       struct proto_msg *msg, struct proto_error *pe);
/* Waits for the response to msgid and asserts success; msg->result holds it. */
void wfix_expect_result(struct tu_rpc *c, uint32_t msgid,
                        struct proto_msg *msg);

/* tu_rpc_call asserting the JSON (or "!Type: message") it gives. */
void wfix_check_call(struct tu_rpc *c, const char *method, const char *params,
                     const char *expect);

/* Starts a hand-packed request: packs its head for nparams params into sb. */
uint32_t wfix_request_begin(struct tu_rpc *c, msgpack_sbuffer *sb,
                            msgpack_packer *pk, const char *method,
                            uint32_t nparams);
/* Sends what sb holds and frees it. */
void wfix_request_send(struct tu_rpc *c, msgpack_sbuffer *sb);

/* A map's value by str key, asserting it is there. */
const msgpack_object *wfix_get(const msgpack_object *map, const char *key);
/* Whether a str object equals s. */
bool wfix_streq(const msgpack_object *o, const char *s);

#endif
