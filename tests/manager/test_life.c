/*
 * The manager's life (docs/lifecycle.md): hello, attach/detach and linger, idle
 * exit, auto-start races, stale sockets, peer uid, shutdown and signals, bad
 * bytes on the socket, config errors. Each scenario has its own runtime dir
 * and manager; workers are the scripted fake.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu_daemon.h"

/* Whether the host has no holder left and its linger timer runs. */
static bool
lingering(struct tu_rpc *c, const char *id)
{
    json_t *h = tu_rpc_host(c, id);
    bool yes = h != NULL &&
               json_integer_value(json_object_get(h, "holders")) == 0 &&
               json_integer_value(json_object_get(h, "linger_left_ms")) > 0;

    json_decref(h);
    return yes;
}

/*
 * Waits past idle_ms of idleness as a manager measures it: a second manager
 * started now with that idle time, nothing to do and no client, exits after
 * it. What a test checks afterwards cannot have been decided yet.
 */
static void
wait_idle_time(int idle_ms)
{
    struct tu_daemon w;
    char ms[16];
    const char *args[] = {"--idle-ms", ms, NULL};
    int st;

    snprintf(ms, sizeof ms, "%d", idle_ms);
    tu_daemon_init(&w);
    tu_daemon_manager(&w, args, NULL);
    st = tu_daemon_wait(&w, TU_WAIT_MS);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    tu_daemon_stop(&w);
}

static void
test_hello_attach_call(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    json_t *j, *fns;
    char *id, *r, *log;
    const char *cfg;
    pid_t pids[4];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "workers=2\nlinger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    c = tu_daemon_connect(&m);
    j = tu_rpc_ok(c, "hello", "[{\"client\": \"test\", \"protocol\": 1}]");
    assert_int_equal(json_integer_value(json_object_get(j, "protocol")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), m.pid);
    json_decref(j);
    r = tu_rpc_call(c, "hello", "[{\"client\": \"test\", \"protocol\": 99}]");
    assert_non_null(r);
    assert_true(strncmp(r, "!ProtocolError", 14) == 0);
    free(r);
    /* One checker with the worker's (proto/check.c): a hello must say its
     * protocol. */
    r = tu_rpc_call(c, "hello", "[{\"client\": \"test\"}]");
    assert_non_null(r);
    assert_true(strncmp(r, "!InvalidArgument", 16) == 0);
    assert_non_null(strstr(r, "protocol is missing"));
    free(r);

    id = NULL;
    {
        char params[600];

        snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
        j = tu_rpc_ok(c, "attach", params);
        id = strdup(json_string_value(json_object_get(j, "host")));
        fns = json_object_get(j, "functions");
        assert_true(json_array_size(fns) >= 3);
        assert_int_equal(json_integer_value(json_object_get(j, "workers")), 2);
        assert_true(json_is_true(
            json_object_get(json_object_get(j, "extras"), "fake")));
        assert_non_null(strstr(json_string_value(json_object_get(j, "logfile")),
                               "/hosts/"));
        json_decref(j);
    }
    {
        char params[256];

        snprintf(params, sizeof params, "[\"%s\", \"echo\", {\"a\": [1, 2]}]",
                 id);
        r = tu_rpc_call(c, "call", params);
        assert_string_equal(r, "{\"a\":[1,2]}");
        free(r);
        snprintf(params, sizeof params, "[\"%s\", \"fail\", null]", id);
        r = tu_rpc_call(c, "call", params);
        assert_true(strncmp(r, "!JSError: boom", 14) == 0);
        free(r);
        r = tu_rpc_call(c, "call", "[\"nohost\", \"echo\", 1]");
        assert_true(strncmp(r, "!NotFound", 9) == 0);
        free(r);
        r = tu_rpc_call(c, "frobnicate", "[]");
        assert_true(strncmp(r, "!NotFound", 9) == 0);
        free(r);
        r = tu_rpc_call(c, "call", "[1]");
        assert_true(strncmp(r, "!InvalidArgument", 16) == 0);
        free(r);
    }
    /* The pool fills to the config's two workers. */
    TU_UNTIL(tu_rpc_worker_pids(c, id, "ready", pids, 4) == 2, TU_WAIT_MS);
    j = tu_rpc_ok(c, "status", "[null]");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(j, "manager"), "clients")),
                     1);
    assert_int_equal(json_array_size(json_object_get(j, "hosts")), 1);
    json_decref(j);

    /* The host log has the manager's lines and the worker's output. */
    log = tu_read_text(tu_daemon_host_log(&m, id, 0));
    assert_non_null(strstr(log, "ready"));
    assert_non_null(strstr(log, "fake worker"));
    free(log);
    tu_daemon_stop_host(&m, c, id);
}

static void
test_missing_config(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    char *r;

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, NULL, NULL);
    c = tu_daemon_connect(&m);
    r = tu_rpc_call(c, "attach", "[\"/nonexistent/dir/x.js\", {}]");
    assert_non_null(r);
    assert_true(strncmp(r, "!ConfigError", 12) == 0);
    assert_non_null(strstr(r, "/nonexistent/dir/x.js"));
    free(r);
    tu_rpc_close(c);
    tu_daemon_stop(&m);
}

static void
test_config_error(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    char params[600], *r;
    const char *cfg;
    json_t *j;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "bad.conf", "config_error=1\n");
    tu_daemon_manager(&m, NULL, NULL);
    c = tu_daemon_connect(&m);
    snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
    r = tu_rpc_call(c, "attach", params);
    assert_non_null(r);
    assert_true(strncmp(r, "!ConfigError", 12) == 0);
    assert_non_null(strstr(r, "bad.conf:3:7"));
    assert_non_null(strstr(r, "/hosts/"));
    free(r);
    /* Not retried in a loop: the host is gone until someone asks again. */
    j = tu_rpc_ok(c, "status", "[]");
    assert_int_equal(json_array_size(json_object_get(j, "hosts")), 0);
    json_decref(j);
    /* Asking again tries again; a fixed file then works. */
    tu_daemon_file(&m, "bad.conf", "linger=100\n");
    r = tu_rpc_call(c, "attach", params);
    assert_non_null(r);
    assert_true(r[0] == '{');
    free(r);
    /* A worker exiting 78 without a word is a config error too. */
    cfg = tu_daemon_file(&m, "quiet.conf", "exit78=1\n");
    snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
    r = tu_rpc_call(c, "attach", params);
    assert_true(strncmp(r, "!ConfigError", 12) == 0);
    free(r);
    tu_rpc_close(c);
    tu_daemon_stop(&m);
}

/*
 * The linger: none while another holder is left; after the last one, the
 * host stays for `linger` ms, an attach in that time cancels the timer, and
 * without one the worker is stopped and the host gone.
 */
static void
test_linger_expiry_and_cancel(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c, *c2;
    char *id, *id2, *wid, params[256], call[256], *r;
    const char *cfg, *wcfg;
    pid_t pids[4], pids2[4], wpids[4];
    int64_t t0;
    json_t *j;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=2000\n");
    /* A witness: another host with the same linger, left at the same moment
     * as a.conf's, whose linger is not cancelled. */
    wcfg = tu_daemon_file(&m, "witness.conf", "linger=2000\n");
    tu_daemon_manager(&m, NULL, NULL);
    c = tu_daemon_connect(&m);
    c2 = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    id2 = tu_rpc_attach(c2, cfg);
    assert_string_equal(id, id2);
    wid = tu_rpc_attach(c2, wcfg);
    assert_int_equal(tu_rpc_worker_pids(c, id, "ready", pids, 4), 1);
    assert_int_equal(tu_rpc_worker_pids(c, wid, "ready", wpids, 4), 1);
    assert_int_equal(tu_rpc_host_figure(c, id, "holders"), 2);

    /* Not the last holder: no linger. */
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(c, "detach", params);
    assert_int_equal(json_integer_value(json_object_get(j, "linger_ms")), 0);
    json_decref(j);
    /* The last holder of both leaves by closing: both lingers start in the
     * same pass of the manager's loop, due at the same time. */
    t0 = tu_now_ms();
    tu_rpc_close(c2);
    TU_UNTIL(lingering(c, id), TU_WAIT_MS);
    /* Cancel: attach again within the linger. */
    free(tu_rpc_attach(c, cfg));
    tu_daemon_expect_host_log(&m, id, "linger cancelled: attached again");
    /* The witness's linger runs out and it is stopped: a timer of a.conf
     * that the attach had not cancelled would have fired in that same pass
     * and stopped a.conf's worker as well. */
    TU_UNTIL(tu_rpc_host_in(c, wid, "gone"), TU_WAIT_MS);
    TU_UNTIL(tu_pid_gone(wpids[0]), TU_WAIT_MS);
    assert_true(tu_now_ms() - t0 >= 2000);
    /* The same worker still answers for a.conf. */
    snprintf(call, sizeof call, "[\"%s\", \"pid\", null]", id);
    r = tu_rpc_call(c, "call", call);
    assert_non_null(r);
    if (atoi(r) != pids[0])
        fail_msg("after the witness's linger: %s, not worker %d", r,
                 (int)pids[0]);
    free(r);
    assert_int_equal(tu_rpc_worker_pids(c, id, "ready", pids2, 4), 1);
    assert_int_equal(pids[0], pids2[0]);
    assert_int_equal(tu_rpc_host_figure(c, id, "linger_left_ms"), 0);
    /* Expiry: the worker is stopped, the host gone. */
    j = tu_rpc_ok(c, "detach", params);
    assert_int_equal(json_integer_value(json_object_get(j, "linger_ms")), 2000);
    json_decref(j);
    TU_UNTIL(tu_rpc_host_in(c, id, "gone"), TU_WAIT_MS);
    TU_UNTIL(tu_pid_gone(pids[0]), TU_WAIT_MS);
    tu_rpc_close(c);
    free(id);
    free(id2);
    free(wid);
    tu_daemon_stop(&m);
}

static void
test_idle_exit(void **state)
{
    struct tu_daemon m;
    const char *args[] = {"--idle-ms", "300", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, pidpath[512];
    pid_t pids[2];
    int st;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=200\n");
    tu_daemon_manager(&m, args, NULL);
    snprintf(pidpath, sizeof pidpath, "%s/manager.pid", m.rundir);
    assert_true(tu_exists(pidpath));
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    assert_int_equal(tu_rpc_worker_pids(c, id, NULL, pids, 2), 1);
    /* A client or a host keeps it alive past the idle time (thrice it). */
    wait_idle_time(900);
    assert_int_equal(tu_wait(m.pid, 0), -1);
    tu_rpc_close(c);
    st = tu_daemon_wait(&m, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(tu_pid_gone(pids[0]));
    assert_false(tu_exists(m.sock));
    assert_false(tu_exists(pidpath));
    free(id);
    tu_daemon_stop(&m);
}

/* --no-idle-exit (production) keeps an idle manager; SIGINT stops it as
 * SIGTERM does: workers gone, socket and pid file removed, exit 0. */
static void
test_no_idle_exit_and_sigint(void **state)
{
    struct tu_daemon m;
    const char *args[] = {"--idle-ms", "200", "--no-idle-exit", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, pidpath[512];
    pid_t pids[2];
    int st;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=100\n");
    tu_daemon_manager(&m, args, NULL);
    snprintf(pidpath, sizeof pidpath, "%s/manager.pid", m.rundir);
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    assert_int_equal(tu_rpc_worker_pids(c, id, NULL, pids, 2), 1);
    tu_rpc_close(c);
    /* The host lingers out; the manager, idle for several idle times, stays. */
    TU_UNTIL(tu_pid_gone(pids[0]), TU_WAIT_MS);
    wait_idle_time(1000);
    assert_int_equal(tu_wait(m.pid, 0), -1);
    c = tu_daemon_connect(&m);
    free(id);
    id = tu_rpc_attach(c, cfg);
    assert_int_equal(tu_rpc_worker_pids(c, id, NULL, pids, 2), 1);
    kill(m.pid, SIGINT);
    st = tu_daemon_wait(&m, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    TU_UNTIL(tu_pid_gone(pids[0]), TU_WAIT_MS);
    assert_false(tu_exists(m.sock));
    assert_false(tu_exists(pidpath));
    tu_daemon_stop_host(&m, c, id);
}

/* A daemonized manager (it moves to /) given a relative JSHOST_WORKER still
 * starts workers: the path is resolved before it detaches. */
static void
test_daemon_relative_worker_path(void **state)
{
    struct tu_daemon m;
    char dir[4096], env[64], *slash, *r, pidpath[512];
    const char *cfg;
    const char *argv[] = {tu_build_path(TU_MANAGER), "--runtime-dir", NULL,
                          NULL};
    char *envv[] = {env, NULL};
    struct tu_rpc *c;
    char *id;
    pid_t pid;
    int st;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=100\n");
    argv[2] = m.rundir;
    snprintf(dir, sizeof dir, "%s", tu_build_path(TU_FAKE_WORKER));
    slash = strrchr(dir, '/');
    assert_non_null(slash);
    *slash = '\0';
    snprintf(env, sizeof env, "JSHOST_WORKER=./%s", slash + 1);
    assert_int_equal(chdir(dir), 0);
    pid = tu_spawn((char *const *)argv, envv, NULL);
    st =
        tu_wait(pid, TU_WAIT_MS); /* the first process returns once it serves */
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(chdir("/"), 0);
    snprintf(pidpath, sizeof pidpath, "%s/manager.pid", m.rundir);
    m.pid = 0;
    c = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    {
        char params[256];

        snprintf(params, sizeof params, "[\"%s\", \"echo\", 7, {}]", id);
        r = tu_rpc_call(c, "call", params);
        assert_non_null(r);
        assert_string_equal(r, "7");
        free(r);
    }
    pid = tu_read_pid(pidpath);
    assert_true(pid > 0);
    r = tu_rpc_call(c, "shutdown", "[]");
    assert_string_equal(r, "null");
    free(r);
    tu_rpc_close(c);
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    free(id);
    tu_daemon_stop(&m);
}

static void
test_race_autostart(void **state)
{
    struct tu_daemon m;
    enum { N = 20 };
    pid_t kids[N];
    int i, st, mpid = 0, pid;
    char pidpath[512], env[600], out[N][300];
    char *envv[] = {env, NULL};
    char *argv[] = {(char *)tu_build_path("tests/manager/autostart"),
                    (char *)tu_build_path(TU_MANAGER), NULL, NULL};

    (void)state;
    tu_daemon_init(&m);
    argv[2] = m.rundir;
    mkdir(m.rundir, 0700);
    snprintf(env, sizeof env, "JSHOST_WORKER=%s",
             tu_build_path(TU_FAKE_WORKER));
    for (i = 0; i < N; i++) {
        snprintf(out[i], sizeof out[i], "%s/autostart.%d", m.dir, i);
        kids[i] = tu_spawn(argv, envv, out[i]);
    }
    for (i = 0; i < N; i++) {
        st = tu_wait(kids[i], TU_WAIT_MS);
        assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        /* It printed the pid of the manager it said hello to. */
        pid = tu_read_pid(out[i]);
        assert_true(pid > 0);
        if (mpid == 0)
            mpid = pid;
        /* Exactly one manager: everyone talked to the same one. */
        assert_int_equal(pid, mpid);
    }
    snprintf(pidpath, sizeof pidpath, "%s/manager.pid", m.rundir);
    assert_int_equal(tu_read_pid(pidpath), mpid);
    /* The daemon is not our child: stop it with its pid and wait. */
    kill(mpid, SIGTERM);
    TU_UNTIL(tu_pid_gone(mpid), TU_WAIT_MS);
    assert_false(tu_exists(m.sock));
    tu_daemon_stop(&m);
}

static void
test_stale_socket(void **state)
{
    struct tu_daemon m;
    struct sockaddr_un sa;
    int fd, st, mpid;
    char pidpath[512], env[600], *envv[] = {env, NULL}, *out, *err;
    char *argv[] = {(char *)tu_build_path("tests/manager/autostart"),
                    (char *)tu_build_path(TU_MANAGER), NULL, NULL};

    (void)state;
    tu_daemon_init(&m);
    argv[2] = m.rundir;
    mkdir(m.rundir, 0700);
    /* A socket file nobody listens on, as a crashed manager leaves. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    assert_true(strlen(m.sock) < sizeof sa.sun_path);
    memcpy(sa.sun_path, m.sock, strlen(m.sock) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    assert_true(tu_exists(m.sock));

    /* Auto-start clears it under the lock and starts a daemon. */
    snprintf(env, sizeof env, "JSHOST_WORKER=%s",
             tu_build_path(TU_FAKE_WORKER));
    st = tu_run(argv, envv, NULL, &out, &err, TU_WAIT_MS);
    if (st != 0)
        fail_msg("autostart: %d\n%s", st, err);
    mpid = atoi(out);
    assert_true(mpid > 0);
    free(out);
    free(err);
    snprintf(pidpath, sizeof pidpath, "%s/manager.pid", m.rundir);
    assert_int_equal(tu_read_pid(pidpath), mpid);
    kill(mpid, SIGTERM);
    TU_UNTIL(tu_pid_gone(mpid), TU_WAIT_MS);

    /* By hand in the foreground: a refusing socket is stale, a live one is
     * not touched (a second manager refuses to start). */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    tu_daemon_manager(&m, NULL, NULL);
    {
        char *argv[] = {(char *)tu_build_path(TU_MANAGER), "--foreground",
                        "--runtime-dir", m.rundir, NULL};
        pid_t second = tu_spawn(argv, NULL, NULL);

        st = tu_wait(second, TU_WAIT_MS);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        assert_true(tu_wait_socket(m.sock, TU_WAIT_MS));
    }
    tu_daemon_stop(&m);
}

/*
 * Whether nobody (uid 65534) can run the build's manager and worker: a child
 * that became nobody runs `jshost-manager --version`. A checkout in a
 * directory nobody cannot enter (under /root, in a 0700 temp dir) cannot;
 * then *why says so. Root only.
 */
static bool
nobody_can_run_manager(char *why, size_t len)
{
    const char *manager = tu_build_path(TU_MANAGER);
    const char *worker = tu_build_path(TU_FAKE_WORKER);
    int p[2], st;
    char buf[256];
    ssize_t n;
    pid_t pid;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *bad = NULL;
        int fd;

        close(p[0]);
        if (setgid(65534) != 0 || setuid(65534) != 0) {
            dprintf(p[1], "cannot become uid 65534: %s", strerror(errno));
            _exit(1);
        }
        if (access(manager, X_OK) != 0)
            bad = manager;
        else if (access(worker, X_OK) != 0)
            bad = worker;
        if (bad != NULL) {
            dprintf(p[1], "uid 65534 cannot run %s: %s", bad, strerror(errno));
            _exit(1);
        }
        fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(manager, manager, "--version", (char *)NULL);
        dprintf(p[1], "uid 65534 cannot run %s: %s", manager, strerror(errno));
        _exit(1);
    }
    close(p[1]);
    n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    buf[n > 0 ? n : 0] = '\0';
    st = tu_wait(pid, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return true;
    snprintf(why, len, "%s",
             buf[0] != '\0' ? buf
                            : "jshost-manager --version failed as uid "
                              "65534 (a library it needs out of reach?)");
    return false;
}

static void
test_wrong_uid(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    struct proto_msg msg;
    char *argv[8], worker[600], why[512];
    pid_t pid;
    int rc, st;

    (void)state;
    if (geteuid() != 0) {
        print_message("[     SKIP ] test_wrong_uid: only root can play a "
                      "second user (this runs as uid %lu)\n",
                      (unsigned long)geteuid());
        skip();
        return;
    }
    /* The manager must run as nobody; where the checkout lives may forbid
     * it, which says nothing about the refusal under test. */
    if (!nobody_can_run_manager(why, sizeof why)) {
        print_message("[     SKIP ] test_wrong_uid: %s (the build tree is "
                      "out of uid 65534's reach)\n",
                      why);
        skip();
        return;
    }
    /*
     * The manager runs as nobody in a runtime dir of nobody's; we connect as
     * root (root may enter any dir): a different uid, refused.
     */
    tu_daemon_init(&m);
    assert_int_equal(chown(m.dir, 65534, 65534), 0);
    snprintf(worker, sizeof worker, "JSHOST_WORKER=%s",
             tu_build_path(TU_FAKE_WORKER));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(m.log, O_WRONLY | O_CREAT | O_APPEND, 0666);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(126);
        putenv(worker);
        argv[0] = (char *)tu_build_path(TU_MANAGER);
        argv[1] = "--foreground";
        argv[2] = "--runtime-dir";
        argv[3] = m.rundir;
        argv[4] = NULL;
        execv(argv[0], argv);
        _exit(127);
    }
    m.pid = pid;
    {
        struct tu_deadline dl = tu_deadline_start(TU_WAIT_MS);

        /* It can run as nobody (checked above): not listening is a bug. */
        while (!tu_wait_socket(m.sock, 0)) {
            st = tu_wait(pid, 0);
            if (st != -1 || !tu_deadline_wait(&dl)) {
                if (st != -1)
                    m.pid = 0;
                fail_msg("the manager, as uid 65534, never listened (%s "
                         "%#x); its output:\n%s",
                         st != -1 ? "wait status" : "still running", st,
                         tu_daemon_log(&m));
            }
        }
    }
    c = tu_daemon_connect(&m);
    tu_rpc_send(c, "hello", "[{\"client\": \"x\", \"protocol\": 1}]");
    rc = tu_rpc_read(c, &msg, TU_WAIT_MS);
    assert_int_equal(rc, 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    {
        const msgpack_object *e = &msg.params.via.array.ptr[0];
        const msgpack_object *t = proto_map_get(e, "type");

        assert_true(proto_obj_streq(t, "ProtocolError"));
    }
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), -1);
    tu_rpc_close(c);
    kill(pid, SIGTERM);
    st = tu_daemon_wait(&m, TU_WAIT_MS);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    tu_daemon_stop(&m);
}

static void
test_garbage_and_half_messages(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *bad, *half, *good;
    struct proto_msg msg;
    char *id, params[256], *r;
    const char *cfg;
    static const unsigned char garbage[] = {0xc1, 0xc1, 0xff, 0x00, 0x13};
    /* [0, 1, "call", [... cut short */
    static const unsigned char cut[] = {0x94, 0x00, 0x01, 0xa4, 'c', 'a'};
    int rc;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &good);

    bad = tu_daemon_connect(&m);
    tu_rpc_send_raw(bad, garbage, sizeof garbage);
    rc = tu_rpc_read(bad, &msg, TU_WAIT_MS);
    assert_int_equal(rc, 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(bad, &msg, TU_WAIT_MS), -1);
    tu_rpc_close(bad);

    /* A valid msgpack value that is not a message is refused too. */
    bad = tu_daemon_connect(&m);
    tu_rpc_send_raw(bad, "\x93\x07\x07\x07", 4);
    rc = tu_rpc_read(bad, &msg, TU_WAIT_MS);
    assert_int_equal(rc, 1);
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(bad, &msg, TU_WAIT_MS), -1);
    tu_rpc_close(bad);

    /* Nesting past the reader's limit is refused, not a crash. */
    bad = tu_daemon_connect(&m);
    {
        unsigned char deep[64];

        memset(deep, 0x91, sizeof deep); /* 64 arrays of one element */
        tu_rpc_send_raw(bad, deep, sizeof deep);
    }
    rc = tu_rpc_read(bad, &msg, TU_WAIT_MS);
    assert_int_equal(rc, 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(bad, &msg, TU_WAIT_MS), -1);
    tu_rpc_close(bad);

    /* Half a message, then the peer leaves. */
    half = tu_daemon_connect(&m);
    tu_rpc_send_raw(half, cut, sizeof cut);
    tu_rpc_close(half);
    /* Half a message and the peer stays: others are served meanwhile. */
    half = tu_daemon_connect(&m);
    tu_rpc_send_raw(half, cut, sizeof cut);

    snprintf(params, sizeof params, "[\"%s\", \"echo\", \"still here\"]", id);
    r = tu_rpc_call(good, "call", params);
    assert_string_equal(r, "\"still here\"");
    free(r);
    tu_rpc_close(half);
    tu_daemon_stop_host(&m, good, id);
}

static void
test_shutdown(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r;
    pid_t pids[4];
    int st;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "workers=2\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    TU_UNTIL(tu_rpc_worker_pids(c, id, "ready", pids, 4) == 2, TU_WAIT_MS);
    r = tu_rpc_call(c, "shutdown", "[]");
    assert_string_equal(r, "null");
    free(r);
    st = tu_daemon_wait(&m, TU_WAIT_MS);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(tu_pid_gone(pids[0]));
    assert_true(tu_pid_gone(pids[1]));
    assert_false(tu_exists(m.sock));
    tu_daemon_stop_host(&m, c, id);
}

static void
test_sigterm_stops_workers(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id;
    pid_t pids[4];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    assert_int_equal(tu_rpc_worker_pids(c, id, NULL, pids, 4), 1);
    tu_daemon_stop(&m); /* asserts exit 0 and no socket */
    TU_UNTIL(tu_pid_gone(pids[0]), TU_WAIT_MS);
    tu_rpc_close(c);
    free(id);
}

/* The manager dies hard: its workers see the socket end and go; the next
 * manager starts over the stale socket and pid file. */
static void
test_manager_killed(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, pidpath[512];
    pid_t pids[2];
    int st;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    assert_int_equal(tu_rpc_worker_pids(c, id, NULL, pids, 2), 1);
    kill(m.pid, SIGKILL);
    st = tu_daemon_wait(&m, TU_WAIT_MS);
    assert_true(WIFSIGNALED(st));
    TU_UNTIL(tu_pid_gone(pids[0]), TU_WAIT_MS);
    tu_rpc_close(c);
    snprintf(pidpath, sizeof pidpath, "%s/manager.pid", m.rundir);
    assert_true(tu_exists(m.sock));
    tu_daemon_manager(&m, NULL, NULL);
    assert_int_equal(tu_read_pid(pidpath), m.pid);
    c = tu_daemon_connect(&m);
    free(id);
    id = tu_rpc_attach(c, cfg);
    tu_daemon_stop_host(&m, c, id);
}

/* A message past the size limit closes that connection only. */
static void
test_message_too_big(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_MAX_MESSAGE=4096", NULL};
    struct tu_rpc *big, *ok;
    struct proto_msg msg;
    char *data, *params, *r;

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, NULL, env);
    big = tu_daemon_connect(&m);
    ok = tu_daemon_connect(&m);
    data = malloc(8193);
    memset(data, 'y', 8192);
    data[8192] = '\0';
    params = malloc(8300);
    snprintf(params, 8300, "[\"x\", \"echo\", \"%s\"]", data);
    tu_rpc_send(big, "call", params);
    assert_int_equal(tu_rpc_read(big, &msg, TU_WAIT_MS), 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(big, &msg, TU_WAIT_MS), -1);
    r = tu_rpc_call(ok, "ping", "[]");
    assert_string_equal(r, "\"pong\"");
    free(r);
    free(data);
    free(params);
    tu_rpc_close(big);
    tu_rpc_close(ok);
    tu_daemon_stop(&m);
}

/*
 * Random bytes from many connections at once, some of them valid message
 * heads: each bad connection is closed on its own, good clients are served
 * throughout, the manager stays up.
 */
static void
test_random_bytes_from_many(void **state)
{
    enum { BAD = 8, GOOD = 3, ROUNDS = 50 };
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id;
    pid_t kids[BAD + GOOD];
    int i, st;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "workers=2\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    for (i = 0; i < BAD + GOOD; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] > 0)
            continue;
        if (i < BAD) {
            unsigned seed = 1234u + (unsigned)i;
            int r;

            for (r = 0; r < ROUNDS; r++) {
                struct tu_rpc *b = tu_rpc_connect(m.sock);
                unsigned char buf[512];
                size_t n = 1 + (size_t)(rand_r(&seed) % sizeof buf), k;

                if (b == NULL)
                    _exit(1);
                for (k = 0; k < n; k++)
                    buf[k] = (unsigned char)rand_r(&seed);
                /* Half the time, start like a request. */
                if (r % 2 == 0 && n > 4) {
                    buf[0] = 0x94;
                    buf[1] = 0x00;
                    buf[2] = 0x01;
                }
                tu_rpc_send_raw(b, buf, n);
                tu_rpc_close(b);
            }
            _exit(0);
        } else {
            struct tu_rpc *g = tu_rpc_connect(m.sock);
            char params[256], *r;
            int k;

            if (g == NULL)
                _exit(1);
            for (k = 0; k < 200; k++) {
                snprintf(params, sizeof params, "[\"%s\", \"echo\", %d]", id,
                         k);
                r = tu_rpc_call(g, "call", params);
                if (r == NULL || atoi(r) != k)
                    _exit(2);
                free(r);
            }
            _exit(0);
        }
    }
    for (i = 0; i < BAD + GOOD; i++) {
        st = tu_wait(kids[i], 60000);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    free(tu_rpc_call(c, "ping", "[]"));
    tu_daemon_stop_host(&m, c, id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_attach_call),
        cmocka_unit_test(test_missing_config),
        cmocka_unit_test(test_config_error),
        cmocka_unit_test(test_linger_expiry_and_cancel),
        cmocka_unit_test(test_idle_exit),
        cmocka_unit_test(test_no_idle_exit_and_sigint),
        cmocka_unit_test(test_daemon_relative_worker_path),
        cmocka_unit_test(test_race_autostart),
        cmocka_unit_test(test_stale_socket),
        cmocka_unit_test(test_wrong_uid),
        cmocka_unit_test(test_garbage_and_half_messages),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_sigterm_stops_workers),
        cmocka_unit_test(test_manager_killed),
        cmocka_unit_test(test_message_too_big),
        cmocka_unit_test(test_random_bytes_from_many),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
