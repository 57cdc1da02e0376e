/* tu_daemon (tu_daemon.h): jshost daemons started, watched and stopped. */
#include "tu_daemon.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "jshost_defs.h"

void
tu_daemon_init(struct tu_daemon *d)
{
    memset(d, 0, sizeof *d);
    d->dir = tu_tmpdir();
    snprintf(d->rundir, sizeof d->rundir, "%s/run", d->dir);
    snprintf(d->sock, sizeof d->sock, "%s/%s", d->rundir, JSHOST_MANAGER_SOCK);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
}

/* Waits until d listens; fails, with what it said, when it exits or never
 * does. */
static void
tu__daemon_listening(struct tu_daemon *d)
{
    struct tu_deadline dl = tu_deadline_start(TU_WAIT_MS);
    char *log;
    int st;

    while (!tu_wait_socket(d->sock, 0)) {
        st = tu_wait(d->pid, 0);
        if (st != -1 || !tu_deadline_wait(&dl)) {
            if (st != -1)
                d->pid = 0;
            log = tu_daemon_log(d);
            fail_msg("%s never listened on %s (%s %#x); its log:\n%s",
                     d->manager ? "jshost-manager" : "jshost-worker", d->sock,
                     st != -1 ? "wait status" : "still running, status",
                     st != -1 ? st : 0, log);
        }
    }
}

void
tu_daemon_manager(struct tu_daemon *d, const char *const *args,
                  const char *const *env)
{
    char *argv[32], *envv[32], worker[600];
    int n = 0, e = 0, i;

    d->manager = true;
    snprintf(d->sock, sizeof d->sock, "%s/%s", d->rundir, JSHOST_MANAGER_SOCK);
    argv[n++] = (char *)tu_build_path(TU_MANAGER);
    argv[n++] = "--foreground";
    argv[n++] = "--runtime-dir";
    argv[n++] = d->rundir;
    for (i = 0; args != NULL && args[i] != NULL && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    snprintf(worker, sizeof worker, "JSHOST_WORKER=%s",
             tu_build_path(d->real ? TU_WORKER : TU_FAKE_WORKER));
    envv[e++] = worker;
    for (i = 0; env != NULL && env[i] != NULL && e < 31; i++)
        envv[e++] = (char *)env[i];
    envv[e] = NULL;
    /* Its output stays the test's: the manager's lines, in order, next to
     * what the test printed. */
    d->pid = tu_spawn(argv, envv, NULL);
    tu__daemon_listening(d);
}

void
tu_daemon_spawn_worker(struct tu_daemon *d, const char *config,
                       const char *const *extra)
{
    const char *argv[32];
    int n = 0, i;

    d->manager = false;
    snprintf(d->sock, sizeof d->sock, "%s/w.sock", d->dir);
    argv[n++] = tu_build_path(TU_WORKER);
    argv[n++] = "--listen";
    argv[n++] = d->sock;
    for (i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
        argv[n++] = extra[i];
    if (config != NULL)
        argv[n++] = config;
    argv[n] = NULL;
    d->pid = tu_spawn((char *const *)argv, NULL, d->log);
}

void
tu_daemon_worker(struct tu_daemon *d, const char *config,
                 const char *const *extra)
{
    tu_daemon_spawn_worker(d, config, extra);
    tu__daemon_listening(d);
}

struct tu_rpc *
tu_daemon_connect(struct tu_daemon *d)
{
    struct tu_rpc *c = tu_rpc_connect(d->sock);

    if (c == NULL)
        fail_msg("connect %s: %s", d->sock, strerror(errno));
    return c;
}

int
tu_daemon_wait(struct tu_daemon *d, int ms)
{
    int st;

    if (d->pid <= 0)
        fail_msg("tu_daemon_wait: nothing runs (already waited for)");
    st = tu_wait(d->pid, ms);
    if (st != -1)
        d->pid = 0;
    return st;
}

void
tu_daemon_stop(struct tu_daemon *d)
{
    char *log;
    int st;

    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        st = tu_daemon_wait(d, TU_WAIT_MS);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            log = tu_daemon_log(d);
            tu_daemon_cleanup(d);
            fail_msg("%s did not exit cleanly on SIGTERM (wait status %#x); "
                     "its log:\n%s",
                     d->manager ? "jshost-manager" : "jshost-worker", st, log);
        }
        /* An orderly exit leaves no socket behind. */
        if (d->manager && tu_exists(d->sock))
            fail_msg("jshost-manager left %s behind", d->sock);
    }
    tu_daemon_cleanup(d);
}

char *
tu_daemon_manager_host(struct tu_daemon *d, const char *config,
                       const char *const *env, struct tu_rpc **c)
{
    tu_daemon_manager(d, NULL, env);
    *c = tu_daemon_connect(d);
    return tu_rpc_attach(*c, config);
}

void
tu_daemon_stop_host(struct tu_daemon *d, struct tu_rpc *c, char *id)
{
    tu_rpc_close(c);
    free(id);
    tu_daemon_stop(d);
}

void
tu_daemon_cleanup(struct tu_daemon *d)
{
    if (d->pid > 0)
        tu_kill(d->pid);
    d->pid = 0;
    tu_rmtree(d->dir);
    d->dir = NULL;
}

char *
tu_daemon_log(struct tu_daemon *d)
{
    return tu_read_text(d->log);
}

/* A static ring of eight paths: a few can be used in one call. */
static const char *
tu__ring(const char *path)
{
    static char ring[8][1024];
    static unsigned next;
    char *r = ring[next++ % 8];

    snprintf(r, sizeof ring[0], "%s", path);
    return r;
}

const char *
tu_daemon_file(struct tu_daemon *d, const char *name, const char *text)
{
    char *p = tu_write_file(d->dir, name, text);
    const char *r = tu__ring(p);

    free(p);
    return r;
}

const char *
tu_daemon_host_log(struct tu_daemon *d, const char *id, int rotated)
{
    char path[1024];

    if (rotated > 0)
        snprintf(path, sizeof path, "%s/hosts/%s.log.%d", d->rundir, id,
                 rotated);
    else
        snprintf(path, sizeof path, "%s/hosts/%s.log", d->rundir, id);
    return tu__ring(path);
}

void
tu_daemon_expect_host_log(struct tu_daemon *d, const char *id,
                          const char *words)
{
    char *log = tu_read_text(tu_daemon_host_log(d, id, 0));

    if (strstr(log, words) == NULL)
        fail_msg("the host log has no '%s':\n%s", words, log);
    free(log);
}

const char *
tu_daemon_worker_config(const char *name)
{
    char *p = tu_path(tu_source_path("tests/worker/configs"), name);
    const char *r = tu__ring(p);

    free(p);
    return r;
}

struct tu_rpc *
tu_daemon_rundir_connect(const char *rundir)
{
    char *sock = tu_path(rundir, JSHOST_MANAGER_SOCK);
    struct tu_rpc *c = tu_rpc_connect(sock);

    if (c == NULL)
        fail_msg("no manager answers on %s: %s", sock, strerror(errno));
    free(sock);
    return c;
}

pid_t
tu_daemon_manager_pid(const char *rundir)
{
    char *path = tu_path(rundir, JSHOST_MANAGER_PID);
    pid_t pid = tu_read_pid(path);

    free(path);
    return pid;
}

void
tu_daemon_shutdown(const char *rundir)
{
    char *sock = tu_path(rundir, JSHOST_MANAGER_SOCK);
    struct tu_rpc *c = tu_rpc_connect(sock);
    struct tu_deadline dl;
    pid_t pid;

    free(sock);
    /* No manager answers: none runs (a pid file left by a killed one names
     * a pid that may be someone else's by now). */
    if (c == NULL)
        return;
    pid = tu_daemon_manager_pid(rundir);
    free(tu_rpc_call(c, "shutdown", "[]"));
    tu_rpc_close(c);
    dl = tu_deadline_start(TU_WAIT_MS);
    while (pid > 0 && !tu_pid_gone(pid)) {
        if (!tu_deadline_wait(&dl)) {
            kill(pid, SIGKILL);
            fail_msg("the manager of %s (pid %d) did not exit after shutdown",
                     rundir, (int)pid);
        }
    }
}
