/*
 * The jshost command as a user runs it: stdout JSON, stderr words, exit
 * statuses 0/1/2/3 (docs/cli.md). Each test has its own runtime dir; the
 * manager it auto-starts is shut down at the end.
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "jshost.h"
#include "tu_daemon.h"

static const char config_text[] =
    "module.exports = {\n"
    "  functions: {\n"
    "    hello_world(data, cb) { cb(null, 'Hello, ' + (data.name || 'World') + "
    "'!'); },\n"
    "    double(data) { return data.number * 2; },\n"
    "    echo(data) { console.log('echo called'); return data; },\n"
    "    fail() { throw new RangeError('out of range'); },\n"
    "    spin() { console.log('spin started'); for (;;) {} },\n"
    "  },\n"
    "};\n";

struct fx {
    char *dir;
    char rt[256];
    char config[300];
    char *out, *err;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char *p;

    f->dir = tu_tmpdir();
    snprintf(f->rt, sizeof(f->rt), "%s/rt", f->dir);
    p = tu_write_file(f->dir, "host.config.js", config_text);
    snprintf(f->config, sizeof(f->config), "%s", p);
    free(p);
    /* the jshost binaries under test find everything through these */
    setenv("JSHOST_RUNTIME_DIR", f->rt, 1);
    unsetenv("JSHOST_SOCKET");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    tu_daemon_shutdown(f->rt);
    free(f->out);
    free(f->err);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* Runs jshost with the given arguments (NULL-terminated) and stdin. */
static int
run(struct fx *f, const char *input, ...)
{
    char *argv[16];
    va_list ap;
    int n = 0, rc;

    argv[n++] = (char *)tu_build_path(TU_CLI);
    va_start(ap, input);
    while (n < 15 && (argv[n] = va_arg(ap, char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    free(f->out);
    free(f->err);
    rc = tu_run(argv, NULL, input, &f->out, &f->err, 60000);
    return rc;
}

static void
test_call(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, NULL, "call", f->config, "hello_world",
                         "{\"name\": \"Foo\"}", NULL),
                     0);
    assert_string_equal(f->out, "\"Hello, Foo!\"\n");
    assert_string_equal(f->err, "");
    /* no JSON: the data is {} */
    assert_int_equal(run(f, NULL, "call", f->config, "hello_world", NULL), 0);
    assert_string_equal(f->out, "\"Hello, World!\"\n");
    /* data from stdin */
    assert_int_equal(
        run(f, "{\"number\": 21}", "call", f->config, "double", "-", NULL), 0);
    assert_string_equal(f->out, "42\n");
    /* a negative number is data, not an option */
    assert_int_equal(run(f, NULL, "call", f->config, "echo", "-5", NULL), 0);
    assert_string_equal(f->out, "-5\n");
    /* a relative config path works from the caller's directory */
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(run(f, NULL, "call", "host.config.js", "echo",
                         "[1, {\"a\": null}]", "--timeout", "5", NULL),
                     0);
    assert_string_equal(f->out, "[1,{\"a\":null}]\n");
    assert_int_equal(chdir("/"), 0);
}

static void
test_js_errors_exit_1(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, NULL, "call", f->config, "fail", NULL), 1);
    assert_string_equal(f->out, "");
    assert_non_null(strstr(f->err, "JSError"));
    assert_non_null(strstr(f->err, "RangeError"));
    assert_non_null(strstr(f->err, "out of range"));
    assert_non_null(strstr(f->err, "host.config.js:6")); /* the stack */
    /* a deadline: the JS did not finish */
    assert_int_equal(
        run(f, NULL, "call", f->config, "spin", "--timeout", "0.2", NULL), 1);
    assert_non_null(strstr(f->err, "TimeoutError"));
    /* an unknown function */
    assert_int_equal(run(f, NULL, "call", f->config, "nope", NULL), 1);
    assert_non_null(strstr(f->err, "NotFound"));
    assert_non_null(strstr(f->err, "nope"));
    /* eval errors */
    assert_int_equal(run(f, NULL, "eval", "null.x", NULL), 1);
    assert_non_null(strstr(f->err, "TypeError"));
}

static void
test_usage_exit_2(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, NULL, "frobnicate", NULL), 2);
    assert_non_null(strstr(f->err, "unknown command 'frobnicate'"));
    assert_int_equal(run(f, NULL, NULL), 2);
    assert_int_equal(run(f, NULL, "call", f->config, "double", "{oops", NULL),
                     2);
    assert_non_null(strstr(f->err, "bad JSON"));
    assert_non_null(strstr(f->err, "column"));
    assert_int_equal(run(f, "[1,", "call", f->config, "double", "-", NULL), 2);
    assert_int_equal(run(f, NULL, "call", f->config, NULL), 2);
    assert_non_null(strstr(f->err, "usage: jshost call"));
    assert_int_equal(run(f, NULL, "call", f->config, "double", "--bogus", NULL),
                     2);
    assert_non_null(strstr(f->err, "--bogus"));
    assert_int_equal(
        run(f, NULL, "call", f->config, "double", "--timeout", "soon", NULL),
        2);
    assert_int_equal(run(f, NULL, "status", "--yaml", NULL), 2);
    assert_int_equal(run(f, NULL, "stop", NULL), 2);
    assert_int_equal(run(f, NULL, "host", f->config, NULL), 2);
    assert_int_equal(run(f, NULL, "eval", NULL), 2);
    /* none of these started anything */
    assert_int_equal(access(f->rt, F_OK), -1);
}

static void
test_jshost_failures_exit_3(void **state)
{
    struct fx *f = *state;
    char *bad;

    /* (no manager running is not a failure of status: test_no_manager) */
    /* a broken config: file and line */
    bad = tu_write_file(
        f->dir, "bad.config.js",
        "module.exports = {\n  functions: {\n    a() { return 1 +; }\n"
        "  }\n};\n");
    assert_int_equal(run(f, NULL, "call", bad, "a", NULL), 3);
    assert_non_null(strstr(f->err, "ConfigError"));
    assert_non_null(strstr(f->err, "bad.config.js:3"));
    free(bad);
    /* a socket nobody listens on, and no spawning with JSHOST_SOCKET */
    {
        char sock[300];

        snprintf(sock, sizeof(sock), "%s/nobody.sock", f->dir);
        setenv("JSHOST_SOCKET", sock, 1);
        assert_int_equal(run(f, NULL, "call", f->config, "double", NULL), 3);
        unsetenv("JSHOST_SOCKET");
        assert_non_null(strstr(f->err, "nobody.sock"));
    }
    /* an unusable runtime dir */
    {
        char rt[300];

        snprintf(rt, sizeof(rt), "%s/open", f->dir);
        mkdir(rt, 0755);
        chmod(rt, 0755);
        setenv("JSHOST_RUNTIME_DIR", rt, 1);
        assert_int_equal(run(f, NULL, "call", f->config, "double", NULL), 3);
        setenv("JSHOST_RUNTIME_DIR", f->rt, 1);
        assert_non_null(strstr(f->err, "runtime dir"));
    }
}

/* A worker killed under a running `jshost call` is jshost's failure, not the
 * JavaScript's: exit 3, HostCrashed with the signal and the log file. */
/* Whether a host log of the fixture's runtime dir holds `words`. */
static bool
host_log_has(struct fx *f, const char *words)
{
    char pattern[320];
    glob_t g;
    bool found = false;

    snprintf(pattern, sizeof(pattern), "%s/hosts/*.log", f->rt);
    if (glob(pattern, 0, NULL, &g) != 0)
        return false;
    for (size_t i = 0; i < g.gl_pathc && !found; i++) {
        char *text = tu_read_file(g.gl_pathv[i]);

        found = text != NULL && strstr(text, words) != NULL;
        free(text);
    }
    globfree(&g);
    return found;
}

static void
test_crash_exit_3(void **state)
{
    struct fx *f = *state;
    char log[320], *out;
    struct tu_rpc *c;
    pid_t cli, worker = 0;
    int st;

    /* Start the host, then run a call that never finishes on it. */
    assert_int_equal(run(f, NULL, "start", f->config, NULL), 0);
    snprintf(log, sizeof(log), "%s/cli.log", f->dir);
    {
        char *argv[] = {(char *)tu_build_path(TU_CLI),
                        "call",
                        f->config,
                        "spin",
                        "--timeout",
                        "60",
                        NULL};

        cli = tu_spawn(argv, NULL, log);
    }
    /* Killed once the call runs on it (a direct call is not the manager's
     * to count: the worker's log says it started). */
    TU_UNTIL(host_log_has(f, "spin started"), TU_WAIT_MS);
    c = tu_daemon_rundir_connect(f->rt);
    assert_int_equal(tu_rpc_worker_pids(c, NULL, "ready", &worker, 1), 1);
    tu_rpc_close(c);
    assert_int_equal(kill(worker, SIGKILL), 0);
    st = tu_wait(cli, TU_WAIT_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    out = tu_read_file(log);
    assert_non_null(out);
    assert_non_null(strstr(out, "HostCrashed"));
    assert_non_null(strstr(out, "signal 9"));
    assert_non_null(strstr(out, ".log"));
    free(out);
}

/* The busy worker (0: none yet) and the command's pid once it runs the
 * given JavaScript (a call or an eval that never ends) on it. */
static pid_t
spawn_busy(struct fx *f, char **argv, const char *log, pid_t *worker)
{
    struct tu_rpc *c;
    pid_t cli = tu_spawn(argv, NULL, log);

    c = tu_daemon_rundir_connect(f->rt);
    TU_UNTIL((*worker = tu_rpc_busy_worker(c, NULL)) > 0, TU_WAIT_MS);
    tu_rpc_close(c);
    return cli;
}

/* Ctrl-C on jshost call / eval: exit 130, and the JavaScript is stopped on
 * the worker, which serves the next call (before the interrupted call's own
 * deadline: the next call's is shorter). */
static void
test_ctrl_c_cancels(void **state)
{
    struct fx *f = *state;
    char log[320], *out,
        *call_argv[] = {(char *)tu_build_path(TU_CLI),
                        "call",
                        f->config,
                        "spin",
                        "--timeout",
                        "120",
                        NULL};
    char *eval_argv[] = {(char *)tu_build_path(TU_CLI),
                         "eval",
                         "--timeout",
                         "120",
                         "for (;;) {}",
                         NULL};
    struct tu_rpc *c;
    pid_t cli, worker, after = 0;
    int st;

    assert_int_equal(run(f, NULL, "start", f->config, NULL), 0);
    snprintf(log, sizeof(log), "%s/cli.log", f->dir);
    cli = spawn_busy(f, call_argv, log, &worker);
    assert_int_equal(kill(cli, SIGINT), 0);
    st = tu_wait(cli, TU_WAIT_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);
    out = tu_read_file(log);
    assert_non_null(strstr(out, "interrupted"));
    free(out);
    assert_int_equal(run(f, NULL, "call", f->config, "double",
                         "{\"number\": 4}", "--timeout", "20", NULL),
                     0);
    assert_string_equal(f->out, "8\n");
    c = tu_daemon_rundir_connect(f->rt);
    assert_int_equal(tu_rpc_worker_pids(c, NULL, NULL, &after, 1), 1);
    tu_rpc_close(c);
    assert_int_equal(after, worker);

    /* eval's private VM goes with the command. */
    cli = spawn_busy(f, eval_argv, log, &worker);
    assert_true(worker != after);
    assert_int_equal(kill(cli, SIGINT), 0);
    st = tu_wait(cli, TU_WAIT_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);
    TU_UNTIL(tu_pid_gone(worker), TU_WAIT_MS);
}

static void
test_eval(void **state)
{
    struct fx *f = *state;

    /* a private VM */
    assert_int_equal(run(f, NULL, "eval", "[1, 2, 3].map((x) => x * x)", NULL),
                     0);
    assert_string_equal(f->out, "[1,4,9]\n");
    /* on the config's worker, script from stdin */
    assert_int_equal(
        run(f, "typeof setTimeout", "eval", "--config", f->config, "-", NULL),
        0);
    assert_string_equal(f->out, "\"function\"\n");
    assert_int_equal(
        run(f, NULL, "eval", "--timeout", "0.2", "for (;;) {}", NULL), 1);
    assert_non_null(strstr(f->err, "TimeoutError"));
}

/* What the script logs prints on stderr, as Node prints it; stdout keeps the
 * result alone. */
static void
test_eval_console(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, NULL, "eval",
                         "console.log('hello', {a: 1}); console.error('%d "
                         "bad', 2); 7",
                         NULL),
                     0);
    assert_string_equal(f->out, "7\n");
    assert_string_equal(f->err, "hello { a: 1 }\n2 bad\n");
    /* on a host's worker too; the config's own console stays in its log */
    assert_int_equal(run(f, NULL, "eval", "--config", f->config,
                         "console.warn('from the context'); 8", NULL),
                     0);
    assert_string_equal(f->out, "8\n");
    assert_string_equal(f->err, "from the context\n");
    assert_int_equal(run(f, NULL, "call", f->config, "echo", "1", NULL), 0);
    assert_string_equal(f->out, "1\n");
    assert_string_equal(f->err, "");
    /* an awaited promise's logs come before the result */
    assert_int_equal(
        run(f, NULL, "eval",
            "new Promise((r) => setTimeout(() => { console.log('later'); "
            "r(9); }, 10))",
            NULL),
        0);
    assert_string_equal(f->out, "9\n");
    assert_string_equal(f->err, "later\n");
}

static void
test_lifecycle_status_logs(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, NULL, "start", f->config, NULL), 0);
    assert_non_null(strstr(f->out, "started host"));
    assert_non_null(strstr(f->out, "hello_world"));
    assert_int_equal(run(f, NULL, "call", f->config, "echo", "1", NULL), 0);
    assert_int_equal(run(f, NULL, "status", NULL), 0);
    assert_non_null(strstr(f->out, "manager pid"));
    assert_non_null(strstr(f->out, f->config));
    assert_non_null(strstr(f->out, "PID"));
    assert_int_equal(run(f, NULL, "status", "--json", NULL), 0);
    assert_non_null(strstr(f->out, "\"manager\""));
    assert_non_null(strstr(f->out, "\"hosts\""));
    assert_int_equal(run(f, NULL, "logs", f->config, NULL), 0);
    assert_non_null(strstr(f->out, "echo called"));
    assert_int_equal(run(f, NULL, "restart", f->config, NULL), 0);
    assert_int_equal(run(f, NULL, "stop", f->config, NULL), 0);
    assert_non_null(strstr(f->out, "stopped"));
    assert_int_equal(run(f, NULL, "stop", "--all", NULL), 0);
    assert_int_equal(run(f, NULL, "version", NULL), 0);
    assert_string_equal(f->out, "jshost " JSHOST_VERSION "\n");
    assert_int_equal(run(f, NULL, "help", NULL), 0);
    assert_non_null(strstr(f->out, "Exit status"));
    assert_non_null(strstr(f->out, "TimeoutError"));
}

/* jshost logs -f follows the log as the host writes it. */
static void
test_logs_follow(void **state)
{
    struct fx *f = *state;
    char out[320], *argv[5], *text;
    pid_t pid;

    assert_int_equal(run(f, NULL, "start", f->config, NULL), 0);
    snprintf(out, sizeof(out), "%s/follow.out", f->dir);
    argv[0] = (char *)tu_build_path(TU_CLI);
    argv[1] = "logs";
    argv[2] = f->config;
    argv[3] = "-f";
    argv[4] = NULL;
    pid = tu_spawn(argv, NULL, out);
    /* It has printed the log as it was (the host's start) and follows. */
    TU_UNTIL(tu_file_size(out) > 0, TU_WAIT_MS);
    text = tu_read_text(out);
    assert_null(strstr(text, "echo called"));
    free(text);
    assert_int_equal(run(f, NULL, "call", f->config, "echo", "1", NULL), 0);
    TU_UNTIL(tu_file_contains(out, "echo called"), TU_WAIT_MS);
    /* still following, not exited */
    assert_int_equal(tu_wait(pid, 0), -1);
    tu_kill(pid);
}

/* jshost host CONFIG --listen PATH + JSHOST_SOCKET: no manager at all. */
static void
test_host_listen(void **state)
{
    struct fx *f = *state;
    char sock[300], *argv[6];
    pid_t pid;

    snprintf(sock, sizeof(sock), "%s/w.sock", f->dir);
    argv[0] = (char *)tu_build_path(TU_CLI);
    argv[1] = "host";
    argv[2] = f->config;
    argv[3] = "--listen";
    argv[4] = sock;
    argv[5] = NULL;
    pid = tu_spawn(argv, NULL, NULL);
    assert_true(tu_wait_socket(sock, TU_WAIT_MS));
    setenv("JSHOST_SOCKET", sock, 1);
    assert_int_equal(
        run(f, NULL, "call", f->config, "double", "{\"number\": 4}", NULL), 0);
    unsetenv("JSHOST_SOCKET");
    assert_string_equal(f->out, "8\n");
    assert_int_equal(access(f->rt, F_OK), -1); /* nothing auto-started */
    tu_kill(pid);
}

/* examples/c/hello.c, the C API's walk-through, runs as documented. */
static void
test_c_example(void **state)
{
    struct fx *f = *state;
    char *argv[3];
    int rc;

    argv[0] = (char *)tu_build_path("tests/client/example_hello");
    argv[1] = f->config;
    argv[2] = NULL;

    free(f->out);
    free(f->err);
    rc = tu_run(argv, NULL, NULL, &f->out, &f->err, 60000);
    if (rc != 0)
        fail_msg("example: %d\n%s\n%s", rc, f->out, f->err);
    assert_non_null(
        strstr(f->out, "hello_world({\"name\": \"C\"}) -> \"Hello, C!\""));
    assert_non_null(strstr(f->out, "-> 42"));
    assert_non_null(strstr(f->out, "JSError"));
    /* sum of 2*i for i < 1000 */
    assert_non_null(
        strstr(f->out, "pipelined: 1000 calls, sum of results 999000"));
}

/* A variable the sanitizer build needs in every child (its runtime's
 * options); it tells jshost nothing. */
static bool
sanitizer_var(const char *kv)
{
    static const char *const names[] = {
        "ASAN_OPTIONS=", "LSAN_OPTIONS=", "UBSAN_OPTIONS=", "LD_PRELOAD="};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strncmp(kv, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/*
 * The README's first call from a clean environment: the build tree's jshost
 * finds the build's own manager and worker with no JSHOST_* variable (only
 * XDG_RUNTIME_DIR is set, so that this test's manager is its own).
 */
static void
test_clean_env_build_tree(void **state)
{
    struct fx *f = *state;
    extern char **environ;
    char xdg[300], xdgvar[320], path[400], exe[4096], want[4096];
    char *argv[16], *s, *log;
    int n = 0, rc;
    pid_t pid;
    ssize_t len;

    snprintf(xdg, sizeof(xdg), "%s/xdg", f->dir);
    assert_int_equal(mkdir(xdg, 0700), 0);
    snprintf(xdgvar, sizeof(xdgvar), "XDG_RUNTIME_DIR=%s", xdg);
    argv[n++] = "/usr/bin/env";
    argv[n++] = "-i";
    argv[n++] = "PATH=/usr/bin:/bin";
    argv[n++] = xdgvar;
    for (char **e = environ; *e != NULL && n < 12; e++)
        if (sanitizer_var(*e))
            argv[n++] = *e;
    argv[n++] = (char *)tu_build_path(TU_CLI);
    argv[n++] = "call";
    argv[n++] = "examples/hello/host.config.js";
    argv[n++] = "hello_world";
    argv[n++] = "{\"name\": \"Foo\"}";
    argv[n] = NULL;
    assert_int_equal(chdir(tu_source_path(".")), 0);
    free(f->out);
    free(f->err);
    rc = tu_run(argv, NULL, NULL, &f->out, &f->err, 60000);
    assert_int_equal(chdir("/"), 0);
    if (rc != 0)
        fail_msg("jshost call: %d\n%s\n%s", rc, f->out, f->err);
    assert_string_equal(f->out, "\"Hello, Foo!\"\n");

    /* The manager that answered is this build's, and so is its worker. */
    snprintf(path, sizeof(path), "%s/jshost/manager.pid", xdg);
    s = tu_read_file(path);
    assert_non_null(s);
    pid = atoi(s);
    free(s);
    assert_true(pid > 0);
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    len = readlink(path, exe, sizeof(exe) - 1);
    assert_true(len > 0);
    exe[len] = '\0';
    assert_non_null(realpath(tu_build_path("manager/jshost-manager"), want));
    assert_string_equal(exe, want);
    snprintf(path, sizeof(path), "%s/jshost/manager.log", xdg);
    log = tu_read_file(path);
    assert_non_null(log);
    assert_non_null(realpath(tu_build_path("worker/jshost-worker"), want));
    if (strstr(log, want) == NULL)
        fail_msg("the manager's worker is not %s:\n%s", want, log);
    free(log);
    /* Not our child: SIGTERM, then wait for it (it stops its worker first). */
    assert_int_equal(kill(pid, SIGTERM), 0);
    for (int i = 0; i < 1000 && kill(pid, 0) == 0; i++)
        usleep(10000);
    assert_int_equal(kill(pid, 0), -1);
}

/* Occurrences of needle in s. */
static int
count(const char *s, const char *needle)
{
    int n = 0;

    while (s != NULL && (s = strstr(s, needle)) != NULL) {
        n++;
        s += strlen(needle);
    }
    return n;
}

/* Whether the manager of the fixture's runtime dir is up (its socket is
 * there). */
static int
manager_up(struct fx *f)
{
    char sock[320];

    snprintf(sock, sizeof(sock), "%s/manager.sock", f->rt);
    return access(sock, F_OK) == 0;
}

/* jshost help, jshost COMMAND --help for every command it lists, jshost help
 * COMMAND: exit 0, on stdout, ending with a newline, starting nothing. */
static void
test_help(void **state)
{
    struct fx *f = *state;
    char *help, *p, name[32], *line;
    int ncmds = 0;

    assert_int_equal(run(f, NULL, "help", NULL), 0);
    assert_string_equal(f->err, "");
    assert_true(strlen(f->out) > 0);
    assert_int_equal(f->out[strlen(f->out) - 1], '\n');
    help = strdup(f->out);
    assert_int_equal(run(f, NULL, "--help", NULL), 0);
    assert_string_equal(f->out, help);
    /* each "  jshost NAME ..." line of the Commands list */
    for (p = help; (p = strstr(p, "\n  jshost ")) != NULL; p++) {
        assert_int_equal(sscanf(p + 10, "%31[a-z]", name), 1);
        ncmds++;
        assert_int_equal(run(f, NULL, name, "--help", NULL), 0);
        assert_string_equal(f->err, "");
        if (asprintf(&line, "usage: jshost %s", name) < 0)
            fail();
        if (strncmp(f->out, line, strlen(line)) != 0)
            fail_msg("jshost %s --help printed: %s", name, f->out);
        free(line);
        assert_int_equal(f->out[strlen(f->out) - 1], '\n');
        line = strdup(f->out);
        assert_int_equal(run(f, NULL, "help", name, NULL), 0);
        assert_string_equal(f->out, line);
        assert_int_equal(run(f, NULL, name, "-h", NULL), 0);
        assert_string_equal(f->out, line);
        free(line);
    }
    /* the commands of docs/cli.md, shutdown among them */
    assert_int_equal(ncmds, 12);
    assert_non_null(strstr(help, "\n  jshost shutdown"));
    free(help);
    /* --help wins wherever it is, and the usage says where to look */
    assert_int_equal(run(f, NULL, "call", f->config, "nope", "--help", NULL),
                     0);
    assert_non_null(strstr(f->out, "usage: jshost call"));
    assert_non_null(strstr(f->out, "--timeout SECONDS"));
    assert_int_equal(run(f, NULL, "call", f->config, NULL), 2);
    assert_non_null(strstr(f->err, "jshost call --help"));
    assert_int_equal(run(f, NULL, "help", "frobnicate", NULL), 2);
    assert_int_equal(run(f, NULL, "help", "call", "eval", NULL), 2);
    /* none of these started a manager */
    assert_false(manager_up(f));
    /* after "--" it is an argument (a script here), not a request for help */
    assert_int_equal(run(f, NULL, "eval", "--", "--help", NULL), 1);
    assert_non_null(strstr(f->err, "help is not defined")); /* -(-help) */
}

/* status and shutdown with no manager: an answer, exit 0, nothing started. */
static void
test_no_manager(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, NULL, "status", NULL), 0);
    assert_string_equal(f->out, "no manager running\n");
    assert_string_equal(f->err, "");
    assert_int_equal(run(f, NULL, "status", "--json", NULL), 0);
    assert_string_equal(f->err, "");
    {
        /* {"manager": null, "hosts": []}, whatever the spacing */
        char flat[64];
        size_t n = 0;

        for (const char *p = f->out; *p != '\0' && n + 1 < sizeof(flat); p++)
            if (*p != ' ' && *p != '\n')
                flat[n++] = *p;
        flat[n] = '\0';
        assert_string_equal(flat, "{\"manager\":null,\"hosts\":[]}");
    }
    assert_int_equal(run(f, NULL, "shutdown", NULL), 0);
    assert_string_equal(f->out, "no manager running\n");
    assert_false(manager_up(f));
}

/* Whether pid has exited. The manager is not our child: a zombie that its
 * parent (init here) has not reaped yet has exited too. */
static int
pid_exited(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *fp;
    int zombie = 0;

    if (kill(pid, 0) < 0)
        return errno == ESRCH;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fp = fopen(path, "r")) == NULL)
        return 1;
    if (fgets(buf, sizeof(buf), fp) != NULL && (p = strrchr(buf, ')')) != NULL)
        zombie = p[1] == ' ' && p[2] == 'Z';
    fclose(fp);
    return zombie;
}

/* jshost shutdown stops the manager and returns once it is gone. */
static void
test_shutdown(void **state)
{
    struct fx *f = *state;
    char path[320], *s;
    pid_t pid;

    assert_int_equal(run(f, NULL, "start", f->config, NULL), 0);
    snprintf(path, sizeof(path), "%s/manager.pid", f->rt);
    s = tu_read_file(path);
    assert_non_null(s);
    pid = atoi(s);
    free(s);
    assert_true(pid > 0);
    assert_int_equal(run(f, NULL, "shutdown", NULL), 0);
    assert_string_equal(f->err, "");
    assert_non_null(strstr(f->out, "manager stopped"));
    /* gone by the time the command returned: nothing to wait for */
    assert_true(pid_exited(pid));
    assert_false(manager_up(f));
    assert_int_equal(run(f, NULL, "status", NULL), 0);
    assert_string_equal(f->out, "no manager running\n");
}

/* jshost logs only reads: a stopped host's log, a broken config's log, and
 * no manager or host started for it. */
static void
test_logs_read_only(void **state)
{
    struct fx *f = *state;
    char *bad;

    /* never run here: said, exit 3, and nothing started */
    assert_int_equal(run(f, NULL, "logs", f->config, NULL), 3);
    assert_non_null(strstr(f->err, "no log"));
    assert_false(manager_up(f));
    /* a host that ran, then everything stopped */
    assert_int_equal(run(f, NULL, "call", f->config, "echo", "1", NULL), 0);
    assert_int_equal(run(f, NULL, "shutdown", NULL), 0);
    assert_int_equal(run(f, NULL, "logs", f->config, NULL), 0);
    assert_non_null(strstr(f->out, "echo called"));
    assert_false(manager_up(f));
    /* a relative path names the same log */
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(run(f, NULL, "logs", "host.config.js", NULL), 0);
    assert_int_equal(chdir("/"), 0);
    assert_non_null(strstr(f->out, "echo called"));
    /* a config that fails to load: its log says why, read with no manager */
    bad = tu_write_file(f->dir, "bad.config.js",
                        "module.exports = {\n  functions: {\n    a() { "
                        "return 1 +; }\n  }\n};\n");
    assert_int_equal(run(f, NULL, "call", bad, "a", NULL), 3);
    assert_int_equal(run(f, NULL, "shutdown", NULL), 0);
    assert_int_equal(run(f, NULL, "logs", bad, NULL), 0);
    assert_non_null(strstr(f->out, "bad.config.js:3"));
    assert_false(manager_up(f));
    /* while the manager runs, its word is the same file */
    assert_int_equal(run(f, NULL, "start", f->config, NULL), 0);
    assert_int_equal(run(f, NULL, "logs", f->config, NULL), 0);
    assert_non_null(strstr(f->out, "echo called"));
    free(bad);
}

/* restart of a host that is not running starts it and says so. */
static void
test_restart_not_running(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, NULL, "restart", f->config, NULL), 0);
    assert_null(strstr(f->out, "started host"));
    assert_non_null(strstr(f->out, "was not running: started it"));
    assert_non_null(strstr(f->out, f->config));
    /* running now: a real restart */
    assert_int_equal(run(f, NULL, "restart", f->config, NULL), 0);
    assert_non_null(strstr(f->out, "restarted"));
    assert_null(strstr(f->out, "not running"));
}

/* An error names the log file once, and the JS error's first line once. */
static void
test_errors_said_once(void **state)
{
    struct fx *f = *state;
    char *bad, log[400], *p, *q;

    bad = tu_write_file(f->dir, "bad.config.js",
                        "module.exports = {\n  functions: {\n    a() { "
                        "return 1 +; }\n  }\n};\n");
    assert_int_equal(run(f, NULL, "call", bad, "a", NULL), 3);
    /* the log path: "<rt>/hosts/<id>.log" */
    p = strstr(f->err, f->rt);
    assert_non_null(p);
    q = strstr(p, ".log");
    assert_non_null(q);
    snprintf(log, sizeof(log), "%.*s", (int)(q + 4 - p), p);
    if (count(f->err, log) != 1)
        fail_msg("the log path is said %d times:\n%s", count(f->err, log),
                 f->err);
    free(bad);
    assert_int_equal(run(f, NULL, "call", f->config, "fail", NULL), 1);
    if (count(f->err, "RangeError: out of range") != 1)
        fail_msg("the error's first line is said %d times:\n%s",
                 count(f->err, "RangeError: out of range"), f->err);
    assert_non_null(strstr(f->err, "host.config.js:6")); /* the stack */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_js_errors_exit_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_exit_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jshost_failures_exit_3, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_exit_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctrl_c_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_console, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle_status_logs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_logs_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_c_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_env_build_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_manager, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_not_running, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_errors_said_once, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
