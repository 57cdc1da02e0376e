/*
 * Fixtures for the manager's process-level tests: a private runtime dir per
 * scenario, a jshost-manager in the foreground (so that its pid is ours to
 * wait for), the fake worker or the real one, and JSON views of replies.
 */
#ifndef JSHOST_MTEST_H
#define JSHOST_MTEST_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "testutil.h"

struct mt {
    char *dir;       /* the scenario's temp dir */
    char rundir[200];
    char sock[256];
    pid_t pid;       /* the manager (foreground) */
    bool real;       /* real jshost-worker instead of the fake */
};

/* Starts a manager: extra args (NULL-terminated, may be NULL) and env. */
void mt_start(struct mt *m, const char *const *args, const char *const *env);
/* A fresh scenario dir without a manager yet. */
void mt_init(struct mt *m);
/* SIGTERM; asserts a clean exit; removes the dir. */
void mt_stop(struct mt *m);
/* Waits up to ms for the manager to exit; its wait status or -1. */
int mt_wait_exit(struct mt *m, int ms);

const char *mt_manager_path(void);
const char *mt_fake_path(void);
const char *mt_worker_path(void);

/* Writes a config file into the scenario dir; returns its path (static ring). */
const char *mt_config(struct mt *m, const char *name, const char *text);

struct tu_rpc *mt_connect(struct mt *m);
/* Request, reply as JSON (asserts success: no error, no timeout). */
json_t *mt_ok(struct tu_rpc *c, const char *method, const char *params);
/* Request, reply as tu_rpc_call gives it (malloc'd; NULL on timeout). */
char *mt_call(struct tu_rpc *c, const char *method, const char *params);
/* attach; returns the host id (malloc'd). */
char *mt_attach(struct tu_rpc *c, const char *config);
/* The pids of a host's workers in state `state` (NULL = any); count. */
int mt_worker_pids(struct tu_rpc *c, const char *host, const char *state,
                   pid_t *pids, int max);
/* status of one host as JSON (NULL when there is no such host). */
json_t *mt_host_status(struct tu_rpc *c, const char *host);
/* Polls fn(arg) every 20 ms up to ms; true once it holds. */
bool mt_until(bool (*fn)(void *), void *arg, int ms);
bool mt_pid_gone(pid_t pid);
/* Polls mt_pid_gone up to ms; true once the process is gone. */
bool mt_until_gone(pid_t pid, int ms);
/* Text of a file (malloc'd), "" when missing. */
char *mt_slurp(const char *path);
bool mt_exists(const char *path);

#endif
