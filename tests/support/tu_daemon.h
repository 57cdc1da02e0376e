/*
 * tu_daemon: a jshost-manager or jshost-worker under test, each in a temp dir
 * of its own (socket, runtime dir, log, configs), so scenarios never share a
 * process or a path; and the managers that libjshost auto-starts, found and
 * stopped through their runtime dir.
 */
#ifndef JSHOST_TU_DAEMON_H
#define JSHOST_TU_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

#include "tu_rpc.h"

/* The programs under test, for tu_build_path. */
#define TU_MANAGER "manager/jshost-manager"
#define TU_WORKER "worker/jshost-worker"
#define TU_FAKE_WORKER "tests/manager/fake_worker"
#define TU_CLI "clients/cli/jshost"

struct tu_daemon {
    char *dir;        /* the scenario's temp dir */
    char rundir[200]; /* dir/run: a manager's runtime dir */
    char sock[256];   /* where it listens: RUNDIR/manager.sock, dir/w.sock */
    char log[256];    /* dir/daemon.log: a worker's stdout and stderr */
    pid_t pid;        /* ours to wait for: a manager runs in the foreground */
    bool manager;
    bool real; /* a manager's workers are jshost-worker, not the fake */
};

/* A fresh scenario dir, nothing started yet; what follows starts in it. */
void tu_daemon_init(struct tu_daemon *d);
/*
 * Starts `jshost-manager --foreground --runtime-dir RUNDIR [args]` with env
 * additions (both NULL-terminated, may be NULL) and JSHOST_WORKER set to the
 * fake worker (or jshost-worker when d->real); waits until it listens.
 */
void tu_daemon_manager(struct tu_daemon *d, const char *const *args,
                       const char *const *env);
/*
 * Starts `jshost-worker --listen SOCK [extra] CONFIG` (config NULL: a private
 * VM; extra NULL-terminated, may be NULL) logging to d->log, and waits until
 * it listens (failing with its log if it does not).
 */
void tu_daemon_worker(struct tu_daemon *d, const char *config,
                      const char *const *extra);
/* The same start without the wait, for a worker that must fail to start. */
void tu_daemon_spawn_worker(struct tu_daemon *d, const char *config,
                            const char *const *extra);
struct tu_rpc *tu_daemon_connect(struct tu_daemon *d);
/* Waits up to ms for it to exit; its wait status, or -1. */
int tu_daemon_wait(struct tu_daemon *d, int ms);
/* SIGTERM; asserts a clean exit (status 0; a manager leaves no socket behind);
 * removes the dir. Nothing to stop (it already exited): the dir only. */
void tu_daemon_stop(struct tu_daemon *d);
/*
 * The start most manager scenarios share, after tu_daemon_init (and d->real
 * when wanted): the manager with env (as tu_daemon_manager, no args), a
 * connection in *c and config attached on it; returns the host id
 * (malloc'd). tu_daemon_stop_host is its end.
 */
char *tu_daemon_manager_host(struct tu_daemon *d, const char *config,
                             const char *const *env, struct tu_rpc **c);
/* Closes c, frees id, then tu_daemon_stop. */
void tu_daemon_stop_host(struct tu_daemon *d, struct tu_rpc *c, char *id);
/* Kills what still runs and removes the dir, asserting nothing. */
void tu_daemon_cleanup(struct tu_daemon *d);
/* The worker's log so far (malloc'd, "" when none). */
char *tu_daemon_log(struct tu_daemon *d);
/* Writes a file into the scenario dir; its path (a static ring of eight). */
const char *tu_daemon_file(struct tu_daemon *d, const char *name,
                           const char *text);
/* A manager's log of host id, RUNDIR/hosts/ID.log, or with rotated > 0 its
 * rotated file ID.log.N (a static ring of eight, shared with
 * tu_daemon_file). */
const char *tu_daemon_host_log(struct tu_daemon *d, const char *id,
                               int rotated);
/* Asserts the host log of id has words, showing the log when it has not. */
void tu_daemon_expect_host_log(struct tu_daemon *d, const char *id,
                               const char *words);
/* A config under tests/worker/configs (a static ring of eight). */
const char *tu_daemon_worker_config(const char *name);

/* A connection to the manager of RUNDIR (of the test's own, for a look at
 * its status); fails the test when none answers. */
struct tu_rpc *tu_daemon_rundir_connect(const char *rundir);
/* The pid in RUNDIR/manager.pid, 0 when there is none. */
pid_t tu_daemon_manager_pid(const char *rundir);
/* Stops the manager of RUNDIR, if one answers there: a shutdown request,
 * then its pid gone; fails the test if it does not go. */
void tu_daemon_shutdown(const char *rundir);

#endif
