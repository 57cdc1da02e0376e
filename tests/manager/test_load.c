/*
 * The "done when", with the fake worker and with the real one: 16
 * clients x 300 calls while the workers are SIGKILLed three times. Every call
 * is answered with its result or HostCrashed, none hangs, the host recovers,
 * the manager stays up; after the last client leaves the workers are gone
 * after the linger, the manager after its idle time, and no socket is left.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu_daemon.h"

#define NCLIENTS 16
#define NCALLS 300
#define NKILLS 3

/* Whether `want` workers are ready, none of them `killed`. */
static bool
pool_ready(struct tu_rpc *c, const char *id, int want, pid_t killed)
{
    pid_t pids[8];
    int n = tu_rpc_worker_pids(c, id, "ready", pids, 8), i;

    for (i = 0; i < n; i++)
        if (pids[i] == killed)
            return false;
    return n >= want;
}

/* The calls the host's present workers have answered, together. */
static long
pool_calls(struct tu_rpc *c, const char *id)
{
    json_t *h = tu_rpc_host(c, id), *w;
    long n = 0;
    size_t i;

    json_array_foreach(json_object_get(h, "workers"), i, w) n +=
        (long)json_integer_value(json_object_get(w, "calls"));
    json_decref(h);
    return n;
}

static bool
all_gone(const pid_t *pids, int n)
{
    int i;

    for (i = 0; i < n; i++)
        if (!tu_pid_gone(pids[i]))
            return false;
    return true;
}

/*
 * One client: attach, then NCALLS calls; each answer must be its own result
 * or HostCrashed. Exit status: 0 fine, else what went wrong. The number of
 * HostCrashed answers is written to `out`.
 */
static void
client(const char *sock, const char *cfg, const char *fmt, int out)
{
    struct tu_rpc *c = tu_rpc_connect(sock);
    char params[512], *r, *id;
    int i, crashed = 0;
    json_t *j;

    if (c == NULL)
        _exit(10);
    snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
    r = tu_rpc_call(c, "attach", params);
    if (r == NULL || r[0] == '!')
        _exit(11);
    j = json_loads(r, 0, NULL);
    id = strdup(json_string_value(json_object_get(j, "host")));
    json_decref(j);
    free(r);
    for (i = 0; i < NCALLS; i++) {
        snprintf(params, sizeof params, fmt, id, i);
        r = tu_rpc_call(c, "call", params);
        if (r == NULL)
            _exit(12); /* a call hung, or the manager went away */
        if (strncmp(r, "!HostCrashed", 12) == 0) {
            crashed++;
        } else if (r[0] == '!' || atoi(r) != i) {
            fprintf(stderr, "client %d call %d: %s\n", (int)getpid(), i, r);
            _exit(13);
        }
        free(r);
    }
    if (write(out, &crashed, sizeof crashed) != sizeof crashed)
        _exit(14);
    tu_rpc_close(c);
    free(id);
    _exit(0);
}

static void
done_when(bool real, const char *cfgname, const char *cfgtext, const char *fmt,
          int pool)
{
    struct tu_daemon m;
    const char *args[] = {"--idle-ms", "500", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, pidpath[512], *r;
    pid_t kids[NCLIENTS], pids[8], last[8];
    int i, k, st, n, fds[2], crashed = 0, got, kills_while_busy = 0;
    long base;
    json_t *h;

    tu_daemon_init(&m);
    m.real = real;
    cfg = tu_daemon_file(&m, cfgname, cfgtext);
    tu_daemon_manager(&m, args, NULL);
    snprintf(pidpath, sizeof pidpath, "%s/manager.pid", m.rundir);
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    TU_UNTIL(pool_ready(c, id, pool, 0), TU_WAIT_MS);
    assert_int_equal(pipe(fds), 0);
    for (i = 0; i < NCLIENTS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            close(fds[0]);
            client(m.sock, cfg, fmt, fds[1]);
        }
    }
    close(fds[1]);
    for (k = 0; k < NKILLS; k++) {
        /* Each kill hits a pool at work: it has answered calls since it was
         * whole again (unless the clients are through already). */
        base = pool_calls(c, id);
        TU_UNTIL(pool_calls(c, id) >= base + 20 || all_gone(kids, NCLIENTS),
                 TU_WAIT_MS);
        n = tu_rpc_worker_pids(c, id, "ready", pids, 8);
        assert_true(n >= 1);
        kill(pids[0], SIGKILL);
        if (!all_gone(kids, NCLIENTS))
            kills_while_busy++;
        /* The pool comes back without the killed one. */
        TU_UNTIL(pool_ready(c, id, pool, pids[0]), TU_WAIT_MS);
    }
    for (i = 0; i < NCLIENTS; i++) {
        st = tu_wait(kids[i], 120000);
        assert_int_not_equal(st, -1);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    while (read(fds[0], &got, sizeof got) == sizeof got)
        crashed += got;
    close(fds[0]);
    print_message("%s: %d kills during the load, %d calls answered "
                  "HostCrashed of %d\n",
                  real ? "real" : "fake", kills_while_busy, crashed,
                  NCLIENTS * NCALLS);

    /* The host recovered and the manager is up. */
    h = tu_rpc_host(c, id);
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "state")),
                        "ready");
    assert_int_equal(json_integer_value(json_object_get(h, "crashes")), NKILLS);
    json_decref(h);
    r = tu_rpc_call(c, "hello", "[{\"client\": \"t\", \"protocol\": 1}]");
    assert_true(r != NULL && r[0] == '{');
    free(r);
    n = tu_rpc_worker_pids(c, id, NULL, last, 8);
    assert_int_equal(n, pool);

    /* The last client leaves: linger, then idle exit, nothing left. */
    tu_rpc_close(c);
    for (i = 0; i < n; i++)
        TU_UNTIL(tu_pid_gone(last[i]), TU_WAIT_MS);
    st = tu_daemon_wait(&m, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_false(tu_exists(m.sock));
    assert_false(tu_exists(pidpath));
    free(id);
    tu_daemon_stop(&m);
}

static void
test_done_when_fake(void **state)
{
    (void)state;
    done_when(false, "load.conf", "workers=2\nslow_ms=1\nlinger=300\n",
              "[\"%s\", \"echo\", %d]", 2);
}

static void
test_done_when_real(void **state)
{
    (void)state;
    done_when(true, "load.config.js",
              "module.exports = {\n"
              "  functions: {\n"
              "    wait(data, cb) { setTimeout(() => cb(null, data.i), 3); },\n"
              "  },\n"
              "  workers: 2,\n"
              "  linger: 300,\n"
              "};\n",
              "[\"%s\", \"wait\", {\"i\": %d}]", 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_when_fake),
        cmocka_unit_test(test_done_when_real),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
