/*
 * libjshost against the real manager and worker (built in this tree; meson
 * passes JSHOST_MANAGER and JSHOST_WORKER). Every test has its own runtime dir,
 * starts the manager by auto-start and shuts it down at the end.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "tu_daemon.h"
#include "tu_jshost.h"

static const char config_text[] =
    "let n = 0;\n"
    "module.exports = {\n"
    "  functions: {\n"
    "    hello_world(data, cb) { cb(null, 'Hello, ' + (data.name || 'World') + "
    "'!'); },\n"
    "    double(data) { return data.number * 2; },\n"
    "    async later(data) { await new Promise((r) => setTimeout(r, 5)); "
    "return data; },\n"
    "    echo(data) { return data; },\n"
    "    count() { return ++n; },\n"
    "    fail(data) { throw new TypeError('bad ' + data.what); },\n"
    "    spin() { for (;;) {} },\n"
    "    hang() { return new Promise(() => {}); },\n"
    "    cycle() { const a = {}; a.a = a; return a; },\n"
    "    extra() { return this.host.config.anything; },\n"
    "    async loopcb(d) { let s = 0;\n"
    "      for (let i = 0; i < d.n; i++) s += await d.f(i);\n"
    "      return s; },\n"
    "  },\n"
    "  anything: 'else',\n"
    "};\n";

struct fx {
    char *dir;
    char rt[256];
    char config[300];
    jshost *c;
    char *host;
};

static jshost *
connect_rt(const char *rt, int spawn)
{
    struct jshost_options o;

    jshost_options_init(&o);
    o.runtime_dir = rt;
    o.spawn = spawn;
    return jshost_connect(&o);
}

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
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    free(f->host);
    jshost_free(f->c);
    /* leave nothing running: shut the manager down and see it go */
    tu_daemon_shutdown(f->rt);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* Connects (auto-start) and attaches the test config. */
static void
attach(struct fx *f)
{
    f->c = connect_rt(f->rt, 1);
    assert_non_null(f->c);
    if (f->c->err != 0)
        fail_msg("connect: %s", f->c->errstr);
    if (jshost_attach(f->c, f->config, &f->host, NULL) != 0)
        fail_msg("attach: %s", f->c->errstr);
}

static char *
call_json(struct fx *f, const char *fn, const char *json, int timeout_ms)
{
    return tu_jshost_call(f->c, f->host, fn, json, timeout_ms);
}

static void
expect_call(struct fx *f, const char *fn, const char *json, const char *want)
{
    char *s = call_json(f, fn, json, 0);

    if (s == NULL)
        fail_msg("call %s: %s", fn, f->c->errstr);
    assert_string_equal(s, want);
    free(s);
}

static void
expect_remote(struct fx *f, const char *type)
{
    assert_int_equal(f->c->err, JSHOST_ERR_REMOTE);
    assert_non_null(f->c->remote.type);
    if (strcmp(f->c->remote.type, type) != 0)
        fail_msg("expected %s, got %s", type, f->c->errstr);
}

static void
test_happy_paths(void **state)
{
    struct fx *f = *state;
    jshost_value info = {0}, st = {0};
    char *s, *host2 = NULL;

    attach(f);
    /* auto-start left its traces */
    assert_true(tu_daemon_manager_pid(f->rt) > 0);
    expect_call(f, "hello_world", "{\"name\": \"Foo\"}", "\"Hello, Foo!\"");
    expect_call(f, "hello_world", "{}", "\"Hello, World!\"");
    expect_call(f, "double", "{\"number\": 20}", "40");
    expect_call(f, "later", "{\"a\": [1, 2.5, null, \"x\"]}",
                "{\"a\":[1,2.5,null,\"x\"]}");
    expect_call(f, "count", "null", "1");
    expect_call(f, "count", "null", "2");
    expect_call(f, "extra", "null", "\"else\"");

    /* attach again: same host, the info names functions and log file */
    assert_int_equal(jshost_attach(f->c, f->config, &host2, &info), 0);
    assert_string_equal(host2, f->host);
    s = jshost_json_dump(info.data, info.len, 0);
    assert_non_null(strstr(s, "\"hello_world\""));
    assert_non_null(strstr(s, "\"logfile\""));
    free(s);
    assert_int_equal(jshost_detach(f->c, host2), 0);
    free(host2);
    jshost_value_free(&info);

    assert_int_equal(jshost_status(f->c, f->host, &st), 0);
    s = jshost_json_dump(st.data, st.len, 0);
    assert_non_null(strstr(s, "\"workers\""));
    free(s);
    jshost_value_free(&st);
    assert_int_equal(jshost_status(f->c, NULL, &st), 0);
    s = jshost_json_dump(st.data, st.len, 0);
    assert_non_null(strstr(s, "\"manager\""));
    assert_non_null(strstr(s, f->config));
    free(s);
    jshost_value_free(&st);

    /* restart resets the JS state; the host id stays */
    assert_int_equal(jshost_restart(f->c, f->config, &st), 0);
    jshost_value_free(&st);
    expect_call(f, "count", "null", "1");
}

static void
test_contexts(void **state)
{
    struct fx *f = *state;
    jshost_value r = {0}, args = {0};
    const char *paths[1];
    char err[64], *s, *lib;
    uint64_t ctx;

    attach(f);
    assert_int_equal(jshost_context_create(f->c, f->host, f->dir, 0, 0, &ctx),
                     0);
    assert_int_equal(
        jshost_context_eval(f->c, ctx, "var x = 20; x + 1", "first.js", 0, &r),
        0);
    s = jshost_json_dump(r.data, r.len, 0);
    assert_string_equal(s, "21");
    free(s);
    jshost_value_free(&r);
    lib =
        tu_write_file(f->dir, "lib.js", "globalThis.triple = (v) => v * 3;\n");
    paths[0] = lib;
    assert_int_equal(jshost_context_load(f->c, ctx, paths, 1, 0), 0);
    assert_int_equal(jshost_json_pack("[7]", 3, &args, err, sizeof(err)), 0);
    assert_int_equal(
        jshost_context_call(f->c, ctx, "triple", args.data, args.len, 0, &r),
        0);
    s = jshost_json_dump(r.data, r.len, 0);
    assert_string_equal(s, "21");
    free(s);
    jshost_value_free(&r);
    jshost_value_free(&args);
    /* a stack names the script's identifier */
    assert_int_equal(jshost_context_eval(f->c, ctx, "\n\nthrow new Error('x')",
                                         "page.js", 0, &r),
                     -1);
    expect_remote(f, "JSError");
    assert_non_null(strstr(f->c->remote.stack, "page.js:3"));
    assert_int_equal(jshost_context_destroy(f->c, ctx), 0);
    assert_int_equal(jshost_context_eval(f->c, ctx, "1", NULL, 0, &r), -1);
    expect_remote(f, "NotFound");
    free(lib);
}

/* The console handler gets a context's console lines, with its id. */
struct console_seen {
    int n;
    uint64_t ctx[4];
    char level[4][16], text[4][64];
};

static void
console_cb(void *user, uint64_t ctx, const char *level, const char *text,
           size_t len)
{
    struct console_seen *s = user;

    assert_int_equal(strlen(text), len);
    if (s->n < 4) {
        s->ctx[s->n] = ctx;
        snprintf(s->level[s->n], sizeof s->level[0], "%s", level);
        snprintf(s->text[s->n], sizeof s->text[0], "%s", text);
    }
    s->n++;
}

static void
test_console(void **state)
{
    struct fx *f = *state;
    struct console_seen seen;
    jshost_value r = {0};
    uint64_t vm, other;

    memset(&seen, 0, sizeof seen);
    attach(f);
    /* without a handler the lines are dropped */
    assert_int_equal(jshost_context_create(f->c, NULL, NULL, 0, 0, &vm), 0);
    assert_int_equal(
        jshost_context_eval(f->c, vm, "console.log('dropped'); 1", NULL, 0, &r),
        0);
    jshost_value_free(&r);
    jshost_set_console_handler(f->c, console_cb, &seen);
    assert_int_equal(jshost_context_eval(f->c, vm,
                                         "console.log('a', [1]); "
                                         "console.warn('b'); 2",
                                         NULL, 0, &r),
                     0);
    jshost_value_free(&r);
    /* they came before the answer */
    assert_int_equal(seen.n, 2);
    assert_true(seen.ctx[0] == vm && seen.ctx[1] == vm);
    assert_string_equal(seen.level[0], "log");
    assert_string_equal(seen.text[0], "a [ 1 ]");
    assert_string_equal(seen.level[1], "warn");
    assert_string_equal(seen.text[1], "b");
    /* a context on a host's worker, told apart by its id */
    assert_int_equal(jshost_context_create(f->c, f->host, f->dir, 0, 0, &other),
                     0);
    assert_int_equal(
        jshost_context_eval(f->c, other, "console.error('c'); 3", NULL, 0, &r),
        0);
    jshost_value_free(&r);
    assert_int_equal(seen.n, 3);
    assert_true(seen.ctx[2] == other && other != vm);
    assert_string_equal(seen.level[2], "error");
    assert_string_equal(seen.text[2], "c");
    jshost_set_console_handler(f->c, NULL, NULL);
    assert_int_equal(jshost_context_destroy(f->c, other), 0);
    assert_int_equal(jshost_context_destroy(f->c, vm), 0);
}

static void
test_errors(void **state)
{
    struct fx *f = *state;
    char *s;

    attach(f);
    /* JSError with name, message and stack */
    assert_null(call_json(f, "fail", "{\"what\": \"thing\"}", 0));
    expect_remote(f, "JSError");
    assert_string_equal(f->c->remote.name, "TypeError");
    assert_string_equal(f->c->remote.message, "bad thing");
    assert_non_null(strstr(f->c->remote.stack, "host.config.js"));
    /* NotFound */
    assert_null(call_json(f, "nope", "null", 0));
    expect_remote(f, "NotFound");
    assert_null(tu_jshost_call(f->c, "no-such-host", "double", "null", 0));
    expect_remote(f, "NotFound");
    /* InvalidArgument: a result that cannot cross */
    assert_null(call_json(f, "cycle", "null", 0));
    expect_remote(f, "InvalidArgument");
    /* TimeoutError: sync JS terminated, async JS abandoned; the worker lives */
    assert_null(call_json(f, "spin", "null", 200));
    expect_remote(f, "TimeoutError");
    assert_null(call_json(f, "hang", "null", 200));
    expect_remote(f, "TimeoutError");
    s = call_json(f, "double", "{\"number\": 2}", 0);
    assert_string_equal(s, "4");
    free(s);
    /* ProtocolError: a hello in a protocol the manager does not speak, through
     * jshost_request with the error in the caller's own slots */
    {
        jshost_value params = {0}, r = {0};
        jshost_error e = {0};
        char words[256], err[64];
        int code = 0;
        const char *json = "[{\"client\": \"t\", \"protocol\": 99}]";

        assert_int_equal(
            jshost_json_pack(json, strlen(json), &params, err, sizeof(err)), 0);
        assert_int_equal(jshost_request(f->c, "hello", params.data, params.len,
                                        0, &r, &code, &e, words, sizeof(words)),
                         -1);
        assert_int_equal(code, JSHOST_ERR_REMOTE);
        assert_string_equal(e.type, "ProtocolError");
        assert_non_null(strstr(words, "99"));
        jshost_error_clear(&e);
        jshost_value_free(&params);
    }
}

static void
test_config_error(void **state)
{
    struct fx *f = *state;
    char *bad, *host = NULL;

    f->c = connect_rt(f->rt, 1);
    assert_int_equal(f->c->err, 0);
    bad = tu_write_file(
        f->dir, "bad.config.js",
        "module.exports = {\n  functions: {\n    a() { return 1 +; }\n"
        "  }\n};\n");
    assert_int_equal(jshost_attach(f->c, bad, &host, NULL), -1);
    expect_remote(f, "ConfigError");
    assert_null(host);
    /* file and line */
    assert_non_null(strstr(f->c->remote.message, "bad.config.js:3"));
    assert_non_null(f->c->remote.logfile);
    free(bad);
    /* a missing config is a ConfigError too */
    assert_int_equal(jshost_attach(f->c, "does-not-exist.js", &host, NULL), -1);
    expect_remote(f, "ConfigError");
}

/* The host's first worker (0 when it has none), as the manager sees it. */
static pid_t
worker_pid(struct fx *f)
{
    struct tu_rpc *c = tu_daemon_rundir_connect(f->rt);
    pid_t pid = 0;

    tu_rpc_worker_pids(c, f->host, NULL, &pid, 1);
    tu_rpc_close(c);
    return pid;
}

/* The host's worker with a call in flight (0 when none has one). */
static pid_t
busy_worker(struct fx *f)
{
    struct tu_rpc *c = tu_daemon_rundir_connect(f->rt);
    pid_t pid = tu_rpc_busy_worker(c, f->host);

    tu_rpc_close(c);
    return pid;
}

/* The params of a call of host's fn with {"number": number}. */
static void
pack_call(msgpack_sbuffer *sb, const char *host, const char *fn, int number)
{
    char json[512];

    snprintf(json, sizeof json, "[\"%s\", \"%s\", {\"number\": %d}, {}]", host,
             fn, number);
    tu_rpc_pack_json(sb, json);
}

static void
test_host_crashed(void **state)
{
    struct fx *f = *state;
    msgpack_sbuffer sb;
    jshost_reply r;
    uint32_t id;
    pid_t pid;
    char *s;

    attach(f);
    pid = worker_pid(f);
    assert_true(pid > 0);
    /* a call in flight when the worker dies is answered HostCrashed */
    pack_call(&sb, f->host, "hang", 0);
    assert_int_equal(jshost_send(f->c, "call", sb.data, sb.size, &id), 0);
    msgpack_sbuffer_destroy(&sb);
    TU_UNTIL(busy_worker(f) == pid, TU_WAIT_MS);
    assert_int_equal(jshost_read(f->c, &r, 0), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(jshost_read(f->c, &r, TU_WAIT_MS), 1);
    assert_int_equal(r.msgid, id);
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.error.type, "HostCrashed");
    assert_non_null(r.error.logfile);
    jshost_reply_free(&r);
    /* the manager replaced the worker: calls work again */
    TU_UNTIL((s = call_json(f, "double", "{\"number\": 5}", 0)) != NULL,
             TU_WAIT_MS);
    assert_string_equal(s, "10");
    free(s);
    assert_true(worker_pid(f) != pid);
}

/* One step towards quarantine: true once a call is answered HostUnavailable;
 * else the host's worker, when it is a new one, is killed. */
static bool
quarantined(struct fx *f, pid_t *last, int *kills)
{
    char *s = call_json(f, "double", "{\"number\": 1}", 0);
    pid_t pid;

    if (s == NULL && f->c->err == JSHOST_ERR_REMOTE &&
        strcmp(f->c->remote.type, "HostUnavailable") == 0)
        return true;
    free(s);
    pid = worker_pid(f);
    if (pid > 0 && pid != *last) {
        if (*kills == 8)
            fail_msg("%d crashes, and the host is not quarantined", *kills);
        kill(pid, SIGKILL);
        *last = pid;
        (*kills)++;
    }
    return false;
}

/* Five crashes in thirty seconds quarantine the host: HostUnavailable until a
 * restart. */
static void
test_host_unavailable(void **state)
{
    struct fx *f = *state;
    jshost_value st = {0};
    pid_t last = 0;
    int kills = 0;

    attach(f);
    TU_UNTIL(quarantined(f, &last, &kills), TU_WAIT_MS);
    expect_remote(f, "HostUnavailable");
    assert_non_null(strstr(f->c->remote.message, "quarantined"));
    /* a restart brings it back */
    assert_int_equal(jshost_restart(f->c, f->host, &st), 0);
    jshost_value_free(&st);
    expect_call(f, "double", "{\"number\": 3}", "6");
}

static void
test_memory_error(void **state)
{
    struct fx *f = *state;
    jshost_value r = {0};
    uint64_t ctx;

    f->c = connect_rt(f->rt, 1);
    assert_int_equal(f->c->err, 0);
    /* a private VM with a small heap */
    assert_int_equal(jshost_context_create(f->c, NULL, f->dir, 32, 20000, &ctx),
                     0);
    assert_int_equal(jshost_context_eval(f->c, ctx, "6 * 7", NULL, 0, &r), 0);
    jshost_value_free(&r);
    assert_int_equal(
        jshost_context_eval(
            f->c, ctx,
            "const a = []; for (;;) a.push(new Array(100000).fill(1.5));",
            "hog.js", 30000, &r),
        -1);
    expect_remote(f, "MemoryError");
}

static void
test_pipeline_10000(void **state)
{
    struct fx *f = *state;
    enum { N = 10000, WINDOW = 256 };
    static uint32_t ids[N];
    msgpack_sbuffer sb;
    jshost_reply r;
    size_t max_in_flight = 0;
    int sent = 0, got = 0, i, k;

    attach(f);
    while (got < N) {
        while (sent < N && jshost_in_flight(f->c) < WINDOW) {
            pack_call(&sb, f->host, "double", sent);
            assert_int_equal(
                jshost_send(f->c, "call", sb.data, sb.size, &ids[sent]), 0);
            msgpack_sbuffer_destroy(&sb);
            sent++;
        }
        if (jshost_in_flight(f->c) > max_in_flight)
            max_in_flight = jshost_in_flight(f->c);
        k = jshost_read(f->c, &r, TU_WAIT_MS);
        if (k != 1)
            fail_msg("read: %d %s", k, f->c->errstr);
        if (!r.ok)
            fail_msg("reply: %s: %s", r.error.type, r.error.message);
        /* the reply is 2 * i where ids[i] == msgid */
        i = (int)(tu_jshost_int(r.value.data, r.value.len) / 2);
        assert_true(i >= 0 && i < sent);
        assert_int_equal(r.msgid, ids[i]);
        jshost_reply_free(&r);
        got++;
    }
    assert_true(max_in_flight >= 64);
    assert_int_equal(jshost_in_flight(f->c), 0);
}

/* Backpressure: past the manager's per-connection limit a call is answered
 * Overloaded at once, never dropped. The manager this test starts inherits a
 * limit of 8 from our environment. */
static void
test_overloaded(void **state)
{
    struct fx *f = *state;
    msgpack_sbuffer sb;
    jshost_reply r;
    int i, overloaded = 0, others = 0;

    setenv("JSHOST_MAX_CLIENT_INFLIGHT", "8", 1);
    attach(f);
    unsetenv("JSHOST_MAX_CLIENT_INFLIGHT");
    for (i = 0; i < 20; i++) {
        pack_call(&sb, f->host, "hang", i);
        assert_int_equal(jshost_send(f->c, "call", sb.data, sb.size, NULL), 0);
        msgpack_sbuffer_destroy(&sb);
    }
    /* the 12 over the limit come back at once; the 8 hang */
    for (i = 0; i < 12; i++) {
        assert_int_equal(jshost_read(f->c, &r, TU_WAIT_MS), 1);
        if (!r.ok && strcmp(r.error.type, "Overloaded") == 0)
            overloaded++;
        else
            others++;
        jshost_reply_free(&r);
    }
    assert_int_equal(overloaded, 12);
    assert_int_equal(others, 0);
    assert_int_equal(jshost_read(f->c, &r, 200), 0);
    assert_int_equal(jshost_in_flight(f->c), 8);
}

struct targ {
    struct fx *f;
    int id;
    int failures;
    char first_error[256];
};

static void *
thread_main(void *arg)
{
    struct targ *a = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value r;
    jshost_error e;
    int code;

    for (int i = 0; i < 500; i++) {
        int want = a->id * 1000 + i;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "number", 6);
        msgpack_pack_int(&pk, want);
        if (jshost_call_r(a->f->c, a->f->host, "double", sb.data, sb.size, 0,
                          &r, &code, &e,
                          a->first_error[0] ? NULL : a->first_error,
                          sizeof(a->first_error)) != 0) {
            a->failures++;
            jshost_error_clear(&e);
        } else {
            if (tu_jshost_int(r.data, r.len) != 2 * want)
                a->failures++;
            jshost_value_free(&r);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    return NULL;
}

static void
test_threads_shared_handle(void **state)
{
    struct fx *f = *state;
    pthread_t t[8];
    struct targ a[8];
    int i;

    attach(f);
    memset(a, 0, sizeof(a));
    for (i = 0; i < 8; i++) {
        a[i].f = f;
        a[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        if (a[i].failures != 0)
            fail_msg("thread %d: %d failures, first: %s", i, a[i].failures,
                     a[i].first_error);
    }
}

static void
test_fork(void **state)
{
    struct fx *f = *state;
    char *s;
    pid_t pid;
    int st;

    attach(f);
    expect_call(f, "count", "null", "1");
    pid = fork();
    if (pid == 0) {
        /* the child reconnects on first use and attaches the host again */
        int ok = 1;

        for (int i = 0; i < 20 && ok; i++) {
            s = call_json(f, "double", "{\"number\": 4}", 0);
            ok = s != NULL && strcmp(s, "8") == 0;
            if (!ok)
                fprintf(stderr, "child: %s\n", f->c->errstr);
            free(s);
        }
        jshost_free(f->c);
        _exit(ok ? 0 : 1);
    }
    for (int i = 0; i < 20; i++)
        expect_call(f, "double", "{\"number\": 3}", "6");
    st = tu_wait(pid, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* the parent's connection and state are untouched */
    expect_call(f, "count", "null", "2");
}

/* The manager dies between calls: the next call finds the connection dead
 * before writing, starts a new manager, attaches the host again and is sent
 * once more. Through the manager (direct 0): a direct call could still find
 * the old worker alive for a moment, and never need the manager. */
static void
test_manager_restart_resend(void **state)
{
    struct fx *f = *state;
    struct jshost_options o;
    pid_t old;
    char *s;

    jshost_options_init(&o);
    o.runtime_dir = f->rt;
    o.direct = 0;
    f->c = jshost_connect(&o);
    assert_non_null(f->c);
    if (f->c->err != 0)
        fail_msg("connect: %s", f->c->errstr);
    if (jshost_attach(f->c, f->config, &f->host, NULL) != 0)
        fail_msg("attach: %s", f->c->errstr);
    expect_call(f, "double", "{\"number\": 1}", "2");
    old = tu_daemon_manager_pid(f->rt);
    assert_true(old > 0);
    assert_int_equal(kill(old, SIGKILL), 0);
    TU_UNTIL(tu_pid_gone(old), TU_WAIT_MS);
    /* the EOF has reached our socket, so the next call sees it first */
    assert_true(tu_readable(jshost_fd(f->c), TU_WAIT_MS));
    s = call_json(f, "double", "{\"number\": 2}", 0);
    if (s == NULL)
        fail_msg("call after the manager died: %s", f->c->errstr);
    assert_string_equal(s, "4");
    free(s);
    assert_true(tu_daemon_manager_pid(f->rt) != old);
}

/* Production mode: one worker on its own socket (`jshost host CONFIG --listen
 * PATH`), clients pointed at it by JSHOST_SOCKET, no manager anywhere. */
static void
test_env_socket_listen_worker(void **state)
{
    struct fx *f = *state;
    char sock[300], log[300], *argv[6];
    struct stat st;
    pid_t pid;

    snprintf(sock, sizeof(sock), "%s/w.sock", f->dir);
    snprintf(log, sizeof(log), "%s/w.log", f->dir);
    argv[0] = (char *)tu_build_path(TU_CLI);
    argv[1] = "host";
    argv[2] = f->config;
    argv[3] = "--listen";
    argv[4] = sock;
    argv[5] = NULL;
    pid = tu_spawn(argv, NULL, log);
    assert_true(tu_wait_socket(sock, TU_WAIT_MS));
    setenv("JSHOST_SOCKET", sock, 1);
    {
        struct jshost_options o;

        jshost_options_init(&o);
        o.runtime_dir = f->rt; /* would be used if JSHOST_SOCKET were not */
        f->c = jshost_connect(&o);
    }
    unsetenv("JSHOST_SOCKET");
    assert_int_equal(f->c->err, 0);
    assert_int_equal(jshost_attach(f->c, f->config, &f->host, NULL), 0);
    expect_call(f, "hello_world", "{\"name\": \"worker\"}",
                "\"Hello, worker!\"");
    expect_call(f, "count", "null", "1");
    /* nothing was started in the runtime dir */
    assert_int_equal(stat(f->rt, &st) == 0 && tu_daemon_manager_pid(f->rt) > 0,
                     0);
    jshost_free(f->c);
    f->c = NULL;
    tu_kill(pid);
}

/* ---- callbacks and cancellation ---------------------------------------- */

/* An invoke handler that doubles its one integer argument, answering at once
 * from the thread that reads (allowed: it holds no lock). */
struct doubler {
    atomic_int n;
    atomic_int bad;
};

static void
double_it(jshost *c, uint32_t rid, uint32_t id, const char *args, size_t len,
          void *user)
{
    struct doubler *d = user;
    msgpack_unpacked u;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    (void)id;
    msgpack_unpacked_init(&u);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_unpack_next(&u, args, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 1 &&
        u.data.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        msgpack_pack_uint64(&pk, u.data.via.array.ptr[0].via.u64 * 2);
        if (jshost_invoke_reply(c, rid, sb.data, sb.size) != 0)
            atomic_fetch_add(&d->bad, 1);
    } else {
        jshost_invoke_error(c, rid, NULL, "TypeError", "not one integer", NULL);
        atomic_fetch_add(&d->bad, 1);
    }
    atomic_fetch_add(&d->n, 1);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
}

/* JavaScript awaits a C callable 10,000 times in a loop. */
static void
test_callbacks(void **state)
{
    struct fx *f = *state;
    struct doubler d = {0};
    char *s;

    attach(f);
    jshost_set_invoke_handler(f->c, double_it, &d);
    s = call_json(f, "loopcb",
                  "{\"f\": {\"$ext\": [2, \"AAAAAQ==\"]}, \"n\": 10000}", 0);
    if (s == NULL)
        fail_msg("loopcb: %s", f->c->errstr);
    assert_string_equal(s, "99990000");
    free(s);
    assert_int_equal(atomic_load(&d.n), 10000);
    assert_int_equal(atomic_load(&d.bad), 0);
}

struct server {
    jshost *c;
    atomic_int stop;
};

static void *
serving(void *arg)
{
    struct server *sv = arg;

    while (!atomic_load(&sv->stop))
        if (jshost_serve(sv->c, -1) < 0)
            break;
    return NULL;
}

static char *
eval_json(struct fx *f, uint64_t ctx, const char *src)
{
    jshost_value r = {0};
    char *s;

    if (jshost_context_eval(f->c, ctx, src, NULL, 0, &r) != 0)
        fail_msg("eval %s: %s", src, f->c->errstr);
    s = jshost_json_dump(r.data, r.len, 0);
    jshost_value_free(&r);
    return s;
}

/* A callable a context holds, called by a timer with no call in flight:
 * jshost_serve reads it; released, it rejects at once. */
static void
test_context_callable_served(void **state)
{
    struct fx *f = *state;
    struct doubler d = {0};
    struct server sv = {0};
    jshost_value args = {0}, r = {0};
    uint32_t id = 2;
    char err[64], *s = NULL;
    uint64_t ctx;
    pthread_t t;

    attach(f);
    jshost_set_invoke_handler(f->c, double_it, &d);
    assert_int_equal(jshost_context_create(f->c, f->host, f->dir, 0, 0, &ctx),
                     0);
    assert_int_equal(jshost_json_pack("[{\"$ext\": [2, \"AAAAAg==\"]}]", 27,
                                      &args, err, sizeof err),
                     0);
    assert_int_equal(jshost_context_call(f->c, ctx,
                                         "(function (f) { globalThis.f = f; })",
                                         args.data, args.len, 0, &r),
                     0);
    jshost_value_free(&args);
    jshost_value_free(&r);
    sv.c = f->c;
    pthread_create(&t, NULL, serving, &sv);
    s = eval_json(f, ctx,
                  "setTimeout(() => f(21).then((v) => { globalThis.r = v; }), "
                  "50); 0");
    free(s);
    s = NULL;
    TU_UNTIL((free(s), s = eval_json(f, ctx, "globalThis.r ?? null")) &&
                 strcmp(s, "42") == 0,
             TU_WAIT_MS);
    free(s);
    assert_int_equal(jshost_release(f->c, &id, 1), 0);
    s = eval_json(f, ctx, "f(1).then(() => 'called', (e) => e.message)");
    assert_non_null(strstr(s, "callback expired"));
    free(s);
    atomic_store(&sv.stop, 1);
    jshost_serve_wake(f->c);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&d.n), 1);
}

static atomic_int stop_asked;

static int
check_stop(void *user)
{
    (void)user;
    return atomic_load(&stop_asked);
}

static void
on_usr1(int sig)
{
    (void)sig;
}

struct blocked {
    struct fx *f;
    int rc, err;
};

static void *
spin_call(void *arg)
{
    struct blocked *b = arg;
    jshost_value v = {0};

    b->rc = jshost_call(b->f->c, b->f->host, "spin", NULL, 0, 60000, &v);
    b->err = b->f->c->err;
    jshost_value_free(&v);
    return NULL;
}

/* Interrupted while its JavaScript spins: the call is cancelled on the
 * worker, and the same worker answers the next call (before the spin's
 * deadline: the next call's own deadline is shorter). */
static void
test_interrupt_cancels(void **state)
{
    struct fx *f = *state;
    struct blocked b = {.f = f};
    struct sigaction sa;
    pthread_t t;
    pid_t pid;
    char *s;

    attach(f);
    pid = worker_pid(f);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    jshost_set_interrupt_check(f->c, check_stop, NULL);
    pthread_create(&t, NULL, spin_call, &b);
    TU_UNTIL(busy_worker(f) == pid, TU_WAIT_MS);
    atomic_store(&stop_asked, 1);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    atomic_store(&stop_asked, 0);
    assert_int_equal(b.rc, -1);
    assert_int_equal(b.err, JSHOST_ERR_CANCELLED);
    s = call_json(f, "count", "null", 20000);
    if (s == NULL)
        fail_msg("count after the cancel: %s", f->c->errstr);
    free(s);
    assert_int_equal(worker_pid(f), pid);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_happy_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_console, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_crashed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overloaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_10000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_shared_handle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_socket_listen_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_callable_served, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interrupt_cancels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_manager_restart_resend, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
