#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mtest.h"

const char *
mt_manager_path(void)
{
    return tu_build_path("manager/jshost-manager");
}

const char *
mt_fake_path(void)
{
    return tu_build_path("tests/manager/fake_worker");
}

const char *
mt_worker_path(void)
{
    return tu_build_path("worker/jshost-worker");
}

void
mt_init(struct mt *m)
{
    memset(m, 0, sizeof *m);
    m->dir = tu_tmpdir();
    snprintf(m->rundir, sizeof m->rundir, "%s/run", m->dir);
    snprintf(m->sock, sizeof m->sock, "%s/manager.sock", m->rundir);
}

void
mt_start(struct mt *m, const char *const *args, const char *const *env)
{
    char *argv[32], *envv[32], worker[512];
    int n = 0, e = 0, i;

    if (m->dir == NULL)
        mt_init(m);
    argv[n++] = (char *)mt_manager_path();
    argv[n++] = "--foreground";
    argv[n++] = "--runtime-dir";
    argv[n++] = m->rundir;
    for (i = 0; args != NULL && args[i] != NULL && n < 30; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    snprintf(worker, sizeof worker, "JSHOST_WORKER=%s",
             m->real ? mt_worker_path() : mt_fake_path());
    envv[e++] = worker;
    for (i = 0; env != NULL && env[i] != NULL && e < 30; i++)
        envv[e++] = (char *)env[i];
    envv[e] = NULL;
    m->pid = tu_spawn(argv, envv, NULL);
    assert_true(tu_wait_socket(m->sock, 10000));
}

int
mt_wait_exit(struct mt *m, int ms)
{
    int st = tu_wait(m->pid, ms);

    if (st != -1)
        m->pid = 0;
    return st;
}

void
mt_stop(struct mt *m)
{
    int st;

    if (m->pid > 0) {
        kill(m->pid, SIGTERM);
        st = mt_wait_exit(m, 15000);
        if (st == -1) {
            kill(m->pid, SIGKILL);
            tu_wait(m->pid, 5000);
        }
        assert_int_not_equal(st, -1);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        /* An orderly exit leaves no socket and no pid file behind. */
        assert_false(mt_exists(m->sock));
    }
    tu_rmtree(m->dir);
    m->dir = NULL;
}

const char *
mt_config(struct mt *m, const char *name, const char *text)
{
    static char ring[4][512];
    static int pos;
    char *p = tu_write_file(m->dir, name, text);
    char *r = ring[pos++ % 4];

    snprintf(r, 512, "%s", p);
    free(p);
    return r;
}

struct tu_rpc *
mt_connect(struct mt *m)
{
    struct tu_rpc *c = tu_rpc_connect(m->sock);

    assert_non_null(c);
    return c;
}

char *
mt_call(struct tu_rpc *c, const char *method, const char *params)
{
    return tu_rpc_call(c, method, params, 30000);
}

json_t *
mt_ok(struct tu_rpc *c, const char *method, const char *params)
{
    char *r = mt_call(c, method, params);
    json_t *j;
    json_error_t err;

    if (r == NULL || r[0] == '!')
        fail_msg("%s %s: %s", method, params, r ? r : "no answer");
    j = json_loads(r, JSON_DECODE_ANY, &err);
    if (j == NULL)
        fail_msg("%s: not JSON: %s", method, r);
    free(r);
    return j;
}

char *
mt_attach(struct tu_rpc *c, const char *config)
{
    char params[1024];
    json_t *j;
    char *id;

    snprintf(params, sizeof params, "[\"%s\", {}]", config);
    j = mt_ok(c, "attach", params);
    id = strdup(json_string_value(json_object_get(j, "host")));
    json_decref(j);
    return id;
}

json_t *
mt_host_status(struct tu_rpc *c, const char *host)
{
    char params[256];
    char *r;
    json_t *j;

    snprintf(params, sizeof params, "[\"%s\"]", host);
    r = mt_call(c, "status", params);
    assert_non_null(r);
    if (r[0] == '!') {
        free(r);
        return NULL;
    }
    j = json_loads(r, JSON_DECODE_ANY, NULL);
    free(r);
    return j;
}

int
mt_worker_pids(struct tu_rpc *c, const char *host, const char *state,
               pid_t *pids, int max)
{
    json_t *h = mt_host_status(c, host), *ws, *w;
    size_t i;
    int n = 0;

    if (h == NULL)
        return 0;
    ws = json_object_get(h, "workers");
    json_array_foreach(ws, i, w)
    {
        const char *s = json_string_value(json_object_get(w, "state"));

        if (state != NULL && (s == NULL || strcmp(s, state) != 0))
            continue;
        if (n < max)
            pids[n++] = (pid_t)json_integer_value(json_object_get(w, "pid"));
    }
    json_decref(h);
    return n;
}

bool
mt_until(bool (*fn)(void *), void *arg, int ms)
{
    struct timespec ts = {0, 20 * 1000000L};
    int waited = 0;

    for (;;) {
        if (fn(arg))
            return true;
        if (waited >= ms)
            return false;
        nanosleep(&ts, NULL);
        waited += 20;
    }
}

static bool
mt__pid_gone(void *arg)
{
    return mt_pid_gone(*(pid_t *)arg);
}

bool
mt_until_gone(pid_t pid, int ms)
{
    return mt_until(mt__pid_gone, &pid, ms);
}

bool
mt_pid_gone(pid_t pid)
{
    char path[64], buf[512];
    FILE *f;
    bool zombie = false;

    if (kill(pid, 0) != 0)
        return errno == ESRCH;
    /* Not our child: a zombie of another parent counts as gone. */
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return true;
    if (fgets(buf, sizeof buf, f) != NULL) {
        char *p = strrchr(buf, ')');

        zombie = p != NULL && p[1] == ' ' && p[2] == 'Z';
    }
    fclose(f);
    return zombie;
}

char *
mt_slurp(const char *path)
{
    char *s = tu_read_file(path);

    return s != NULL ? s : strdup("");
}

bool
mt_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}
