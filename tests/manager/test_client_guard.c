/*
 * The client's own guard (docs/protocol.md, "Direct connections"; the
 * README's "no call waits past its deadline plus 2 s, even when the manager
 * is frozen"): with the manager and the worker both frozen (SIGSTOP), a call
 * made through libjshost with no timeout of its own still ends, by the
 * host's deadline (attach's timeout_ms) plus the client's margin, whichever
 * way it went (through the manager or straight to the worker).
 *
 * The manager's and the worker's side of it are tested in test_reliability.c;
 * this one tests libjshost, and is registered in tests/manager/meson.build
 * once libjshost's guard uses attach's timeout_ms (client_guard_ready).
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
#include "tu_jshost.h"

static const char config_js[] =
    "module.exports = {\n"
    "  functions: { never() { return new Promise(() => {}); } },\n"
    "  timeout: 1000,\n"
    "  linger: 60000,\n"
    "};\n";

/* The child: attach, say so, wait for the go, call with no timeout. Exits
 * 0 when the call ended with a timeout of either kind. */
static void
caller(const char *sock, const char *cfg, int ready, int go)
{
    struct jshost_options o;
    jshost *c;
    char *host = NULL, *r, b;

    jshost_options_init(&o);
    o.socket = sock;
    o.spawn = 0;
    c = jshost_connect(&o);
    if (c == NULL || c->err != 0 || jshost_attach(c, cfg, &host, NULL) != 0)
        _exit(10);
    if (write(ready, "r", 1) != 1 || read(go, &b, 1) != 1)
        _exit(11);
    r = tu_jshost_call(c, host, "never", "null", 0);
    if (r != NULL)
        _exit(12);
    if (c->err == JSHOST_ERR_TIMEOUT ||
        (c->err == JSHOST_ERR_REMOTE &&
         strcmp(c->remote.type, "TimeoutError") == 0))
        _exit(0);
    fprintf(stderr, "caller: %d %s\n", c->err, c->errstr);
    _exit(13);
}

static void
test_frozen_manager_call_ends_by_deadline(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, b;
    pid_t kid, worker;
    int ready[2], go[2], st;

    (void)state;
    tu_daemon_init(&m);
    m.real = true;
    cfg = tu_daemon_file(&m, "host.config.js", config_js);
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    assert_int_equal(tu_rpc_worker_pids(c, id, "ready", &worker, 1), 1);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0)
        caller(m.sock, cfg, ready[1], go[0]);
    assert_int_equal(tu_read_full(ready[0], &b, 1, TU_WAIT_MS), 1);
    kill(m.pid, SIGSTOP);
    kill(worker, SIGSTOP);
    assert_int_equal(write(go[1], "g", 1), 1);
    /* 1 s of deadline plus the client's margin: far under TU_WAIT_MS; a
     * guard of minutes (the old default) never comes in time. */
    st = tu_wait(kid, TU_WAIT_MS);
    kill(worker, SIGCONT);
    kill(m.pid, SIGCONT);
    if (st == -1) {
        tu_kill(kid);
        fail_msg("a call with no timeout was held past its deadline by a "
                 "frozen manager");
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    tu_daemon_stop_host(&m, c, id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frozen_manager_call_ends_by_deadline),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
