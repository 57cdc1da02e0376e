/*
 * libjshost against a scripted fake server (fake_server.c): connection logic,
 * auto-start, pipelining, threads, fork, timeouts and connection loss, with no
 * manager or V8 involved. Each test gets its own temp dir and server.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "tu_jshost.h"
#include "tu_rpc.h"

struct fx {
    char *dir;
    char sock[256];
    pid_t server;
};

static const char *
fake_path(void)
{
    return tu_build_path("tests/client/fake_server");
}

/* The pid on line n (from 1) of the fake's pid log, failing without one. */
static pid_t
nth_pid(const char *path, int n)
{
    char *s = tu_read_text(path), *p = s;
    pid_t pid;
    int i;

    for (i = 1; i < n && p != NULL; i++)
        if ((p = strchr(p, '\n')) != NULL)
            p++;
    if (p == NULL || *p == '\0')
        fail_msg("%s has no line %d: %s", path, n, s);
    pid = (pid_t)atoi(p);
    free(s);
    return pid;
}

/* Lines in a file (0 when it is missing): the fake server logs a pid a line. */
static int
count_lines(const char *path)
{
    char *s = tu_read_file(path);
    int n = 0;

    if (s == NULL)
        return 0;
    for (char *p = s; *p; p++)
        n += *p == '\n';
    free(s);
    return n;
}

/* Starts the fake server on f->sock and waits until it listens. */
static void
start_server(struct fx *f)
{
    char *argv[] = {(char *)fake_path(), "--listen", f->sock, NULL};

    f->server = tu_spawn(argv, NULL, NULL);
    if (!tu_wait_socket(f->sock, TU_WAIT_MS))
        fail_msg("the fake server never listened on %s", f->sock);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->dir = tu_tmpdir();
    snprintf(f->sock, sizeof(f->sock), "%s/s.sock", f->dir);
    start_server(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    tu_kill(f->server);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static jshost *
connect_to(const char *sock)
{
    struct jshost_options o;

    jshost_options_init(&o);
    o.socket = sock;
    return jshost_connect(&o);
}

/* Calls the fake's host "h"; the result as JSON (malloc'd) or NULL. */
static char *
call_json(jshost *c, const char *fn, const char *json, int timeout_ms)
{
    return tu_jshost_call(c, "h", fn, json, timeout_ms);
}

static void
test_json_helpers(void **state)
{
    static const char json[] = "{\"a\": [1, 2.5, \"x\", null, true]}";
    jshost_value v = {0};
    char err[256] = "", *s;

    (void)state;
    assert_int_equal(jshost_json_pack(json, strlen(json), &v, err, sizeof(err)),
                     0);
    s = jshost_json_dump(v.data, v.len, 0);
    assert_non_null(s);
    assert_string_equal(s, "{\"a\":[1,2.5,\"x\",null,true]}");
    free(s);
    s = jshost_json_dump(v.data, v.len, JSHOST_JSON_PRETTY);
    assert_non_null(strchr(s, '\n'));
    free(s);
    jshost_value_free(&v);
    assert_int_equal(
        jshost_json_pack("{\"a\":\n [1,", 11, &v, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 2"));
    assert_null(v.data);
    assert_null(jshost_json_dump("\xc1", 1, 0));
}

static void
test_options_defaults(void **state)
{
    struct jshost_options o;

    (void)state;
    memset(&o, 0x5a, sizeof(o));
    jshost_options_init(&o);
    assert_null(o.socket);
    assert_null(o.runtime_dir);
    assert_null(o.manager_path);
    assert_null(o.client_name);
    assert_int_equal(o.spawn, 1);
    assert_int_equal(o.connect_timeout_ms, 0);
    assert_string_equal(jshost_version(), JSHOST_VERSION);
}

static void
test_refused_without_spawn(void **state)
{
    struct fx *f = *state;
    char path[300];
    jshost *c;

    snprintf(path, sizeof(path), "%s/none.sock", f->dir);
    c = connect_to(path);
    assert_non_null(c);
    assert_int_equal(c->err, JSHOST_ERR_IO);
    assert_non_null(strstr(c->errstr, path));
    /* a call on it fails the same way instead of crashing */
    assert_null(call_json(c, "echo", "1", 0));
    assert_int_equal(c->err, JSHOST_ERR_IO);
    jshost_free(c);

    /* the runtime dir's socket with spawn off */
    struct jshost_options o;

    jshost_options_init(&o);
    o.runtime_dir = f->dir;
    o.spawn = 0;
    c = jshost_connect(&o);
    assert_int_equal(c->err, JSHOST_ERR_IO);
    assert_non_null(strstr(c->errstr, "manager.sock"));
    jshost_free(c);
}

static void
test_runtime_dir_unsafe(void **state)
{
    struct fx *f = *state;
    struct jshost_options o;
    char dir[300];
    jshost *c;

    snprintf(dir, sizeof(dir), "%s/open", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    chmod(dir, 0755);
    jshost_options_init(&o);
    o.runtime_dir = dir;
    c = jshost_connect(&o);
    assert_int_equal(c->err, JSHOST_ERR_RUNTIME);
    assert_non_null(strstr(c->errstr, dir));
    jshost_free(c);

    /* a file where the dir should be */
    free(tu_write_file(f->dir, "file", "x"));
    snprintf(dir, sizeof(dir), "%s/file", f->dir);
    o.runtime_dir = dir;
    c = jshost_connect(&o);
    assert_int_equal(c->err, JSHOST_ERR_RUNTIME);
    jshost_free(c);
}

static void
test_socket_path_too_long(void **state)
{
    struct fx *f = *state;
    char path[400];
    jshost *c;

    snprintf(path, sizeof(path), "%s/%0150d.sock", f->dir, 7);
    c = connect_to(path);
    assert_int_equal(c->err, JSHOST_ERR_RUNTIME);
    assert_non_null(strstr(c->errstr, "0000007.sock"));
    jshost_free(c);
}

static void
test_call_and_errors(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    char *s;
    char *host = NULL;
    jshost_value info = {0};

    assert_int_equal(c->err, 0);
    assert_int_equal(jshost_attach(c, "cfg.js", &host, &info), 0);
    /* relative config paths go out absolute (the manager runs elsewhere) */
    assert_true(host[2] == '/');
    assert_non_null(strstr(host, "/cfg.js"));
    s = jshost_json_dump(info.data, info.len, 0);
    assert_non_null(strstr(s, "\"functions\""));
    free(s);
    jshost_value_free(&info);

    s = call_json(c, "echo", "{\"x\": [1, \"two\"]}", 0);
    assert_string_equal(s, "{\"x\":[1,\"two\"]}");
    free(s);

    assert_null(call_json(c, "fail", "null", 0));
    assert_int_equal(c->err, JSHOST_ERR_REMOTE);
    assert_string_equal(c->remote.type, "JSError");
    assert_string_equal(c->remote.message, "boom");
    assert_string_equal(c->remote.name, "Error");
    assert_non_null(strstr(c->remote.stack, "fake.js:1:1"));
    assert_non_null(strstr(c->errstr, "JSError: boom"));

    assert_null(call_json(c, "nope", "null", 0));
    assert_string_equal(c->remote.type, "NotFound");

    /* a success clears the error */
    s = call_json(c, "echo", "3", 0);
    assert_string_equal(s, "3");
    free(s);
    assert_int_equal(c->err, 0);
    assert_null(c->remote.type);

    /* call_r reports through its own slots */
    int code = 0;
    jshost_error e = {0};
    char words[200];
    jshost_value r = {0};

    assert_int_equal(jshost_call_r(c, host, "fail", NULL, 0, 0, &r, &code, &e,
                                   words, sizeof(words)),
                     -1);
    assert_int_equal(code, JSHOST_ERR_REMOTE);
    assert_string_equal(e.type, "JSError");
    assert_non_null(strstr(words, "boom"));
    jshost_error_clear(&e);

    /* bad arguments never reach the wire */
    assert_int_equal(jshost_call(c, host, "echo", "\xc1", 1, 0, &r), -1);
    assert_int_equal(c->err, JSHOST_ERR_ARG);
    assert_int_equal(
        jshost_request(c, "status", "\x01", 1, 0, &r, NULL, NULL, NULL, 0), -1);
    assert_int_equal(c->err, JSHOST_ERR_ARG);

    assert_int_equal(jshost_status(c, NULL, &r), 0);
    s = jshost_json_dump(r.data, r.len, 0);
    assert_non_null(strstr(s, "\"manager\""));
    free(s);
    jshost_value_free(&r);
    /* an explicit reconnect attaches the held host again and goes on */
    assert_int_equal(jshost_reconnect(c), 0);
    s = call_json(c, "echo", "\"after\"", 0);
    assert_string_equal(s, "\"after\"");
    free(s);
    assert_int_equal(jshost_detach(c, host), 0);
    free(host);
    jshost_free(c);
}

static void
test_timeout_and_late_reply(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    char *s;

    /* "hold" is never answered until "release": the client gives up */
    assert_null(call_json(c, "hold", "null", 100));
    assert_int_equal(c->err, JSHOST_ERR_TIMEOUT);
    assert_non_null(strstr(c->errstr, "call"));
    /* the late reply to it is dropped; the connection goes on */
    s = call_json(c, "release", "null", 0);
    assert_string_equal(s, "\"released\"");
    free(s);
    s = call_json(c, "echo", "[7]", 0);
    assert_string_equal(s, "[7]");
    free(s);
    jshost_free(c);
}

static void
test_connection_lost_and_resend(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    char *s;

    /* the request was written when the server hung up: not sent again */
    assert_null(call_json(c, "close", "null", 0));
    assert_int_equal(c->err, JSHOST_ERR_IO);
    assert_non_null(strstr(c->errstr, "connection lost"));
    /* the next call reconnects by itself */
    s = call_json(c, "echo", "\"again\"", 0);
    assert_string_equal(s, "\"again\"");
    free(s);

    /* a stream that is not msgpack-RPC is a protocol error */
    assert_null(call_json(c, "garbage", "null", 0));
    assert_int_equal(c->err, JSHOST_ERR_PROTOCOL);
    s = call_json(c, "echo", "1", 0);
    assert_string_equal(s, "1");
    free(s);
    jshost_free(c);
}

static void
test_server_restart_resend(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    char *s;

    assert_int_equal(c->err, 0);
    /* the server goes away between calls: the next call finds the dead
     * connection before writing, reconnects to the new server and succeeds */
    tu_kill(f->server);
    start_server(f);
    s = call_json(c, "echo", "5", 0);
    if (s == NULL) {
        /* written before the EOF was seen: one failure is allowed, then it
         * reconnects */
        assert_int_equal(c->err, JSHOST_ERR_IO);
        s = call_json(c, "echo", "5", 0);
    }
    assert_string_equal(s, "5");
    free(s);
    jshost_free(c);
}

/* The params of a call of the fake's fn with i as data. */
static void
pack_call_params(msgpack_sbuffer *sb, const char *fn, int i)
{
    char json[128];

    snprintf(json, sizeof json, "[\"h\", \"%s\", %d, {}]", fn, i);
    tu_rpc_pack_json(sb, json);
}

static int64_t
reply_int(const jshost_reply *r)
{
    return tu_jshost_int(r->value.data, r->value.len);
}

static void
test_pipeline_10000(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    enum { N = 10000, WINDOW = 128 };
    static uint32_t ids[N];
    msgpack_sbuffer sb;
    jshost_reply r;
    size_t max_in_flight = 0;
    int sent = 0, got = 0, i;

    assert_int_equal(c->err, 0);
    assert_true(jshost_fd(c) >= 0);
    while (got < N) {
        while (sent < N && jshost_in_flight(c) < WINDOW) {
            pack_call_params(&sb, "echo", sent);
            assert_int_equal(
                jshost_send(c, "call", sb.data, sb.size, &ids[sent]), 0);
            msgpack_sbuffer_destroy(&sb);
            sent++;
        }
        if (jshost_in_flight(c) > max_in_flight)
            max_in_flight = jshost_in_flight(c);
        assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
        assert_int_equal(r.ok, 1);
        i = (int)reply_int(&r);
        assert_true(i >= 0 && i < sent);
        assert_int_equal(r.msgid, ids[i]);
        jshost_reply_free(&r);
        got++;
    }
    assert_true(max_in_flight >= 64);
    assert_int_equal(jshost_in_flight(c), 0);
    /* nothing more: a zero-timeout read says so */
    assert_int_equal(jshost_read(c, &r, 0), 0);
    jshost_free(c);
}

static void
test_pipeline_out_of_order(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    msgpack_sbuffer sb;
    jshost_reply r;
    uint32_t held[3], rel;
    int i;

    for (i = 0; i < 3; i++) {
        pack_call_params(&sb, "hold", i);
        assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &held[i]), 0);
        msgpack_sbuffer_destroy(&sb);
    }
    assert_int_equal(jshost_read(c, &r, 50), 0);
    pack_call_params(&sb, "release", 0);
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &rel), 0);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(jshost_in_flight(c), 4);
    /* the release comes first, then the held ones newest first */
    assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
    assert_int_equal(r.msgid, rel);
    jshost_reply_free(&r);
    for (i = 2; i >= 0; i--) {
        assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
        assert_int_equal(r.msgid, held[i]);
        assert_int_equal(reply_int(&r), i);
        jshost_reply_free(&r);
    }
    /* a pipelined error reply */
    pack_call_params(&sb, "fail", 0);
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &rel), 0);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.error.type, "JSError");
    jshost_reply_free(&r);
    /* loss with requests in flight is reported once by jshost_read */
    pack_call_params(&sb, "hold", 0);
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &rel), 0);
    msgpack_sbuffer_destroy(&sb);
    pack_call_params(&sb, "close", 0);
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &rel), 0);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), -1);
    assert_int_equal(c->err, JSHOST_ERR_IO);
    assert_int_equal(jshost_in_flight(c), 0);
    jshost_free(c);
}

/* Pipelined requests behind others in flight wait in the handle for the next
 * read (or flush), so that a window costs one write; a request with nothing
 * in flight goes at once, and a full cork (64 KiB) is written without one. */
static void
test_pipeline_cork(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    enum { BIG = 10000, NBIG = 30 };
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_reply r;
    uint32_t held[3], rel;
    char *blob = calloc(1, BIG);
    size_t queued;
    int i, got, sent_early = 0;

    for (i = 0; i < 3; i++) {
        pack_call_params(&sb, "hold", i);
        assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &held[i]), 0);
        msgpack_sbuffer_destroy(&sb);
        if (i == 0)
            assert_int_equal(jshost_pending_write(c), 0);
        else
            assert_true(jshost_pending_write(c) > 0);
    }
    assert_int_equal(jshost_flush(c), 0);
    assert_int_equal(jshost_pending_write(c), 0);
    pack_call_params(&sb, "release", 0);
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &rel), 0);
    msgpack_sbuffer_destroy(&sb);
    assert_true(jshost_pending_write(c) > 0);
    /* the read writes the release before it waits */
    assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
    assert_int_equal(r.msgid, rel);
    assert_int_equal(jshost_pending_write(c), 0);
    jshost_reply_free(&r);
    for (i = 2; i >= 0; i--) {
        assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
        assert_int_equal(r.msgid, held[i]);
        jshost_reply_free(&r);
    }
    /* 300 KB behind a held request: written as the cork fills */
    pack_call_params(&sb, "hold", 9);
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, NULL), 0);
    msgpack_sbuffer_destroy(&sb);
    for (i = 0; i < NBIG; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_str_with_body(&pk, "h", 1);
        msgpack_pack_str_with_body(&pk, "echo", 4);
        msgpack_pack_bin_with_body(&pk, blob, BIG);
        msgpack_pack_map(&pk, 0);
        queued = jshost_pending_write(c);
        assert_int_equal(jshost_send(c, "call", sb.data, sb.size, NULL), 0);
        sent_early += jshost_pending_write(c) < queued + sb.size;
        msgpack_sbuffer_destroy(&sb);
    }
    assert_true(sent_early > 0);
    /* the echoes come back (the hold stays held) */
    for (got = 0; got < NBIG; got++) {
        assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
        assert_int_equal(r.ok, 1);
        assert_true(r.value.len > BIG);
        jshost_reply_free(&r);
    }
    assert_int_equal(jshost_in_flight(c), 1);
    free(blob);
    jshost_free(c);
}

/* Data nesting deeper than a request can carry is refused before anything is
 * sent (the server would have to drop the connection); what fits, passes. */
static void
test_deep_data_refused(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value r = {0};
    char *s;
    int depth, i;

    /* packed here: the JSON helpers refuse such nesting themselves */
    for (depth = 29; depth <= 32; depth++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        for (i = 0; i < depth; i++)
            msgpack_pack_array(&pk, 1);
        msgpack_pack_int(&pk, 1);
        if (depth <= 30) {
            assert_int_equal(
                jshost_call(c, "h", "echo", sb.data, sb.size, 0, &r), 0);
            assert_int_equal(r.len, sb.size);
            assert_memory_equal(r.data, sb.data, sb.size);
            jshost_value_free(&r);
        } else {
            assert_int_equal(
                jshost_call(c, "h", "echo", sb.data, sb.size, 0, &r), -1);
            assert_int_equal(c->err, JSHOST_ERR_ARG);
            assert_non_null(strstr(c->errstr, "30 levels"));
        }
        msgpack_sbuffer_destroy(&sb);
    }
    /* the connection is still fine */
    s = call_json(c, "echo", "7", 0);
    assert_string_equal(s, "7");
    free(s);
    jshost_free(c);
}

struct holder {
    jshost *c;
    atomic_int started;
    int rc;
};

static void *
hold_thread(void *arg)
{
    struct holder *h = arg;
    jshost_value r = {0};
    int code;

    atomic_store(&h->started, 1);
    h->rc = jshost_call_r(h->c, "h", "hold", "\x01", 1, 0, &r, &code, NULL,
                          NULL, 0);
    jshost_value_free(&r);
    return NULL;
}

/* A request the socket does not take at once, while another thread waits on
 * a call that will not end by itself: its own thread writes it (nobody
 * needs to interrupt the other's wait), and its reply comes. */
static void
test_write_while_another_waits(void **state)
{
    struct fx *f = *state;
    struct holder h = {connect_to(f->sock), 0, -1};
    size_t size = 4 * 1024 * 1024;
    char *blob = malloc(size);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value r;
    pthread_t t;
    char *s;

    memset(blob, 'q', size);
    assert_int_equal(pthread_create(&t, NULL, hold_thread, &h), 0);
    while (!atomic_load(&h.started))
        sched_yield();
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_bin_with_body(&pk, blob, size);
        assert_int_equal(jshost_call(h.c, "h", "echo", sb.data, sb.size, 0, &r),
                         0);
        assert_int_equal(r.len, sb.size);
        assert_memory_equal(r.data, sb.data, sb.size);
        jshost_value_free(&r);
        msgpack_sbuffer_destroy(&sb);
    }
    s = call_json(h.c, "release", "0", 0);
    assert_string_equal(s, "\"released\"");
    free(s);
    pthread_join(t, NULL);
    assert_int_equal(h.rc, 0);
    free(blob);
    jshost_free(h.c);
}

/* Requests bigger than the socket buffers: writes stay pending, the reads
 * flush them (POLLOUT) as replies come. */
static void
test_pipeline_large(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    enum { N = 300, SIZE = 100000 };
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_reply r;
    char *blob = malloc(SIZE);
    size_t max_pending = 0;
    int i;

    memset(blob, 'x', SIZE);
    for (i = 0; i < N; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_str_with_body(&pk, "h", 1);
        msgpack_pack_str_with_body(&pk, "echo", 4);
        msgpack_pack_bin_with_body(&pk, blob, SIZE);
        msgpack_pack_map(&pk, 0);
        assert_int_equal(jshost_send(c, "call", sb.data, sb.size, NULL), 0);
        msgpack_sbuffer_destroy(&sb);
        if (jshost_pending_write(c) > max_pending)
            max_pending = jshost_pending_write(c);
    }
    /* 30 MB cannot all have gone into the socket */
    assert_true(max_pending > 0);
    for (i = 0; i < N; i++) {
        assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
        assert_int_equal(r.ok, 1);
        assert_true(r.value.len > SIZE);
        jshost_reply_free(&r);
    }
    assert_int_equal(jshost_pending_write(c), 0);
    free(blob);
    jshost_free(c);
}

struct big_arg {
    jshost *c;
    int failures;
};

static void *
big_thread(void *arg)
{
    struct big_arg *a = arg;
    size_t size = 300000;
    char *blob = malloc(size);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value r;
    int code;

    for (int i = 0; i < 40; i++) {
        memset(blob, 'a' + i % 26, size);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_bin_with_body(&pk, blob, size);
        if (jshost_call_r(a->c, "h", "echo", sb.data, sb.size, 0, &r, &code,
                          NULL, NULL, 0) != 0 ||
            r.len != sb.size || memcmp(r.data, sb.data, sb.size) != 0)
            a->failures++;
        jshost_value_free(&r);
        msgpack_sbuffer_destroy(&sb);
    }
    free(blob);
    return NULL;
}

/* Threads whose requests do not fit the socket at once: the one driving must
 * be woken to write the others' bytes. */
static void
test_threads_large(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    pthread_t t[4];
    struct big_arg a[4];
    int i;

    for (i = 0; i < 4; i++) {
        a[i].c = c;
        a[i].failures = 0;
        assert_int_equal(pthread_create(&t[i], NULL, big_thread, &a[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    jshost_free(c);
}

struct thread_arg {
    jshost *c;
    int id;
    int failures;
};

static void *
thread_main(void *arg)
{
    struct thread_arg *a = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value r;
    jshost_error e;
    char words[256];
    int i, code;

    for (i = 0; i < 500; i++) {
        int64_t want = (int64_t)a->id * 100000 + i;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_int64(&pk, want);
        if (jshost_call_r(a->c, "h", "echo", sb.data, sb.size, 0, &r, &code, &e,
                          words, sizeof(words)) != 0) {
            a->failures++;
            jshost_error_clear(&e);
        } else {
            if (tu_jshost_int(r.data, r.len) != want)
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
    jshost *c = connect_to(f->sock);
    pthread_t t[8];
    struct thread_arg a[8];
    int i;

    assert_int_equal(c->err, 0);
    for (i = 0; i < 8; i++) {
        a[i].c = c;
        a[i].id = i;
        a[i].failures = 0;
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    jshost_free(c);
}

static void
test_fork_child_reconnects(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    char *s;
    pid_t pid;
    int st;

    s = call_json(c, "echo", "1", 0);
    assert_string_equal(s, "1");
    free(s);
    pid = fork();
    if (pid == 0) {
        int ok = 1;

        for (int i = 0; i < 50 && ok; i++) {
            char want[32];

            snprintf(want, sizeof(want), "%d", 1000 + i);
            s = call_json(c, "echo", want, 0);
            ok = s != NULL && strcmp(s, want) == 0;
            free(s);
        }
        jshost_free(c);
        _exit(ok ? 0 : 1);
    }
    /* the parent keeps calling on its own connection meanwhile */
    for (int i = 0; i < 50; i++) {
        char want[32];

        snprintf(want, sizeof(want), "%d", i);
        s = call_json(c, "echo", want, 0);
        assert_non_null(s);
        assert_string_equal(s, want);
        free(s);
    }
    st = tu_wait(pid, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    s = call_json(c, "echo", "2", 0);
    assert_string_equal(s, "2");
    free(s);
    jshost_free(c);
}

struct busy {
    jshost *c;
    atomic_int stop;
    int failures;
    atomic_int calls; /* made so far */
};

static void *
busy_thread(void *arg)
{
    struct busy *b = arg;

    while (!atomic_load(&b->stop)) {
        char *s = call_json(b->c, "echo", "[1,2,3]", 0);

        if (s == NULL || strcmp(s, "[1,2,3]") != 0)
            b->failures++;
        free(s);
        atomic_fetch_add(&b->calls, 1);
    }
    return NULL;
}

/* fork() while another thread is in the middle of calls on the same handle
 * (holding its lock, or polling as the driver): the child still gets a
 * working connection of its own, the parent's thread goes on. */
static void
test_fork_with_busy_thread(void **state)
{
    struct fx *f = *state;
    struct busy b = {connect_to(f->sock), 0, 0, 0};
    pthread_t t;
    int i, st, ok = 0, made;

    assert_int_equal(b.c->err, 0);
    assert_int_equal(pthread_create(&t, NULL, busy_thread, &b), 0);
    for (i = 0; i < 20; i++) {
        pid_t pid;

        /* Each fork finds the thread at work: a call more since the last. */
        made = atomic_load(&b.calls);
        TU_UNTIL(atomic_load(&b.calls) > made, TU_WAIT_MS);
        pid = fork();
        if (pid == 0) {
            char *s = call_json(b.c, "echo", "\"child\"", 0);

            _exit(s != NULL && strcmp(s, "\"child\"") == 0 ? 0 : 1);
        }
        st = tu_wait(pid, TU_WAIT_MS);
        assert_int_not_equal(st, -1);
        ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    atomic_store(&b.stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(ok, 20);
    assert_int_equal(b.failures, 0);
    jshost_free(b.c);
}

static void
test_env_socket(void **state)
{
    struct fx *f = *state;
    jshost *c;
    char *s;

    setenv("JSHOST_SOCKET", f->sock, 1);
    c = jshost_connect(NULL);
    unsetenv("JSHOST_SOCKET");
    assert_int_equal(c->err, 0);
    s = call_json(c, "echo", "9", 0);
    assert_string_equal(s, "9");
    free(s);
    jshost_free(c);
}

/* Auto-start with the fake as "manager": connect spawns it, later handles use
 * it, and it is started once. */
static void
test_autostart(void **state)
{
    struct fx *f = *state;
    struct jshost_options o;
    char rt[300], pids[320];
    jshost *c;
    char *s;

    snprintf(rt, sizeof(rt), "%s/rt", f->dir);
    snprintf(pids, sizeof(pids), "%s/fake.pids", rt);
    jshost_options_init(&o);
    o.runtime_dir = rt;
    o.manager_path = fake_path();
    /* a descriptor of ours without FD_CLOEXEC must not live on in the daemon */
    int pfd[2];
    struct stat pst;

    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(fstat(pfd[0], &pst), 0);
    c = jshost_connect(&o);
    assert_int_equal(c->err, 0);
    s = call_json(c, "echo", "\"cold\"", 0);
    assert_string_equal(s, "\"cold\"");
    free(s);
    assert_int_equal(count_lines(pids), 1);
    {
        char *pidtext = tu_read_file(pids), dirpath[64], link[320], want[64];
        char target[128];
        struct dirent *de;
        DIR *d;
        ssize_t n;

        snprintf(dirpath, sizeof(dirpath), "/proc/%d/fd", atoi(pidtext));
        snprintf(want, sizeof(want), "pipe:[%lu]", (unsigned long)pst.st_ino);
        d = opendir(dirpath);
        assert_non_null(d);
        while ((de = readdir(d)) != NULL) {
            snprintf(link, sizeof(link), "%s/%s", dirpath, de->d_name);
            n = readlink(link, target, sizeof(target) - 1);
            if (n <= 0)
                continue;
            target[n] = '\0';
            assert_string_not_equal(target, want);
        }
        closedir(d);
        free(pidtext);
    }
    close(pfd[0]);
    close(pfd[1]);
    jshost_free(c);

    /* a second client finds it running */
    c = jshost_connect(&o);
    assert_int_equal(c->err, 0);
    assert_int_equal(count_lines(pids), 1);
    assert_int_equal(jshost_shutdown(c), 0);
    jshost_free(c);

    /* a stale socket file (nobody listening) is replaced */
    TU_UNTIL(tu_pid_gone(nth_pid(pids, 1)), TU_WAIT_MS);
    free(tu_write_file(rt, "manager.sock", "stale"));
    c = jshost_connect(&o);
    assert_int_equal(c->err, 0);
    assert_int_equal(count_lines(pids), 2);
    assert_int_equal(jshost_shutdown(c), 0);
    jshost_free(c);

    /* a manager that cannot be run is a SPAWN error naming it (once the
     * second fake is gone, its socket with it) */
    TU_UNTIL(tu_pid_gone(nth_pid(pids, 2)), TU_WAIT_MS);
    o.manager_path = "/nonexistent/jshost-manager";
    c = jshost_connect(&o);
    if (c->err != JSHOST_ERR_SPAWN)
        fprintf(stderr, "got: %s\n", c->errstr);
    assert_int_equal(c->err, JSHOST_ERR_SPAWN);
    assert_non_null(strstr(c->errstr, "/nonexistent/jshost-manager"));
    jshost_free(c);
}

/* Many clients racing on a cold runtime dir start exactly one manager. */
static void
test_autostart_race(void **state)
{
    struct fx *f = *state;
    char rt[300], pids[320];
    pid_t kids[20];
    int i, st, ok = 0;

    snprintf(rt, sizeof(rt), "%s/race", f->dir);
    snprintf(pids, sizeof(pids), "%s/fake.pids", rt);
    for (i = 0; i < 20; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            struct jshost_options o;
            jshost *c;
            char *s;

            jshost_options_init(&o);
            o.runtime_dir = rt;
            o.manager_path = fake_path();
            c = jshost_connect(&o);
            s = c->err == 0 ? call_json(c, "echo", "1", 0) : NULL;
            _exit(s != NULL && strcmp(s, "1") == 0 ? 0 : 1);
        }
    }
    for (i = 0; i < 20; i++) {
        st = tu_wait(kids[i], TU_WAIT_MS);
        ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    assert_int_equal(ok, 20);
    assert_int_equal(count_lines(pids), 1);
    {
        struct jshost_options o;
        jshost *c;

        jshost_options_init(&o);
        o.runtime_dir = rt;
        o.spawn = 0;
        c = jshost_connect(&o);
        assert_int_equal(c->err, 0);
        assert_int_equal(jshost_shutdown(c), 0);
        jshost_free(c);
    }
}

/* ---- callbacks and cancellation ---------------------------------------- */

/* What the invoke handler saw, and how it answers: 0 echoes the args, 1
 * answers an error, 2 does not answer (the test does, later). */
struct seen {
    atomic_int n;
    int mode;
    jshost *c;
    uint32_t rid, id;
    char args[256];
};

static void
on_invoke(jshost *c, uint32_t rid, uint32_t id, const char *args, size_t len,
          void *user)
{
    struct seen *s = user;
    char *j = jshost_json_dump(args, len, 0);

    snprintf(s->args, sizeof s->args, "%s", j != NULL ? j : "?");
    free(j);
    s->c = c;
    s->rid = rid;
    s->id = id;
    /* no cmocka asserts here: it may run on a serve thread */
    if (s->mode == 0)
        jshost_invoke_reply(c, rid, args, len);
    else if (s->mode == 1)
        jshost_invoke_error(c, rid, NULL, "KeyError", "'k'",
                            "Traceback (most recent call last):\n  in f");
    atomic_fetch_add(&s->n, 1);
}

static void
expect_call(jshost *c, const char *fn, const char *json, const char *want)
{
    char *s = call_json(c, fn, json, 0);

    if (s == NULL)
        fail_msg("call %s: %s", fn, c->errstr);
    assert_string_equal(s, want);
    free(s);
}

static void
test_invoke(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    struct seen s = {0};
    msgpack_sbuffer sb;
    jshost_reply r;
    uint32_t msgid;
    char *j;

    assert_int_equal(c->err, 0);
    /* No handler: answered NotFound at once, as any unknown request. */
    j = call_json(c, "invoke", "[7, [1, \"a\"]]", 0);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"NotFound\""));
    free(j);

    jshost_set_invoke_handler(c, on_invoke, &s);
    /* The callback id and the args' bytes; the answer goes back as is. */
    expect_call(c, "invoke", "[7, [1, \"a\", {\"k\": null}]]",
                "{\"error\":null,\"result\":[1,\"a\",{\"k\":null}]}");
    assert_int_equal(atomic_load(&s.n), 1);
    assert_int_equal(s.id, 7);
    assert_ptr_equal(s.c, c);
    assert_string_equal(s.args, "[1,\"a\",{\"k\":null}]");
    /* An error answer is an error map: type JSError unless given. */
    s.mode = 1;
    j = call_json(c, "invoke", "[4294967295, []]", 0);
    assert_non_null(j);
    assert_int_equal(s.id, 4294967295u);
    assert_non_null(strstr(j, "\"type\":\"JSError\""));
    assert_non_null(strstr(j, "\"name\":\"KeyError\""));
    assert_non_null(strstr(j, "\"message\":\"'k'\""));
    assert_non_null(strstr(j, "\"stack\":\"Traceback"));
    assert_non_null(strstr(j, "\"result\":null"));
    free(j);
    /* Params that are not [callback_id, args]: InvalidArgument, and the
     * handler never hears of them. */
    j = call_json(c, "invoke", "[\"x\", []]", 0);
    assert_non_null(strstr(j, "\"InvalidArgument\""));
    free(j);
    j = call_json(c, "invoke", "[7, 5]", 0);
    assert_non_null(strstr(j, "\"InvalidArgument\""));
    free(j);
    j = call_json(c, "invoke", "[7]", 0);
    assert_non_null(strstr(j, "\"InvalidArgument\""));
    free(j);
    j = call_json(c, "invoke", "[-1, []]", 0);
    assert_non_null(strstr(j, "\"InvalidArgument\""));
    free(j);
    assert_int_equal(atomic_load(&s.n), 2);

    /* Answered later, outside the handler (pipelined here): once only. */
    s.mode = 2;
    tu_rpc_pack_json(&sb, "[\"h\", \"invoke\", [9, [true]], {}]");
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &msgid), 0);
    msgpack_sbuffer_destroy(&sb);
    TU_UNTIL(jshost_read(c, &r, 10) == 0 && atomic_load(&s.n) == 3, TU_WAIT_MS);
    assert_int_equal(jshost_invoke_reply(c, s.rid, "\x93\x01\x02\x03", 4), 0);
    assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
    assert_int_equal(r.msgid, msgid);
    j = jshost_json_dump(r.value.data, r.value.len, 0);
    assert_string_equal(j, "{\"error\":null,\"result\":[1,2,3]}");
    free(j);
    jshost_reply_free(&r);
    assert_int_equal(jshost_invoke_reply(c, s.rid, "\xc0", 1), -1);
    assert_int_equal(c->err, JSHOST_ERR_ARG);
    assert_non_null(strstr(c->errstr, "no such reverse call"));
    /* Answers to nothing, or that are not one value, never leave. */
    assert_int_equal(jshost_invoke_error(c, 424242, "JSError", NULL, "x", NULL),
                     -1);
    assert_int_equal(c->err, JSHOST_ERR_ARG);
    assert_int_equal(jshost_invoke_reply(c, 1, "\xc1", 1), -1);
    assert_int_equal(c->err, JSHOST_ERR_ARG);
    expect_call(c, "echo", "1", "1");
    jshost_free(c);
}

static void
test_invoke_lost_with_its_connection(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    struct seen s = {.mode = 2};
    msgpack_sbuffer sb;
    jshost_reply r;

    jshost_set_invoke_handler(c, on_invoke, &s);
    tu_rpc_pack_json(&sb, "[\"h\", \"invoke\", [1, []], {}]");
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, NULL), 0);
    msgpack_sbuffer_destroy(&sb);
    TU_UNTIL(jshost_read(c, &r, 10) == 0 && atomic_load(&s.n) == 1, TU_WAIT_MS);
    /* The connection goes, and with it the reverse call: an answer now
     * would go to whatever a new connection numbered so. */
    assert_int_equal(jshost_read(c, &r, 0), 0);
    tu_kill(f->server);
    start_server(f);
    assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), -1);
    assert_int_equal(jshost_reconnect(c), 0);
    assert_int_equal(jshost_invoke_reply(c, s.rid, "\xc0", 1), -1);
    assert_int_equal(c->err, JSHOST_ERR_ARG);
    jshost_free(c);
}

static atomic_int checks, stop_asked;

static int
check_stop(void *user)
{
    (void)user;
    atomic_fetch_add(&checks, 1);
    return atomic_load(&stop_asked);
}

static void
on_usr1(int sig)
{
    (void)sig;
}

struct blocked {
    jshost *c;
    int rc, err;
    char errstr[512];
};

static void *
blocked_call(void *arg)
{
    struct blocked *b = arg;
    jshost_value v = {0};

    b->rc = jshost_call(b->c, "h", "waitcancel", NULL, 0, 0, &v);
    b->err = b->c->err;
    snprintf(b->errstr, sizeof b->errstr, "%s", b->c->errstr);
    jshost_value_free(&v);
    return NULL;
}

static void
test_cancel(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    struct sigaction sa;
    struct blocked b = {.c = c};
    msgpack_sbuffer sb;
    jshost_reply r;
    jshost_value v = {0};
    pthread_t t;
    uint32_t msgid;
    char *j, want[64];

    /* Pipelined: jshost_cancel, and the request is answered Cancelled. */
    tu_rpc_pack_json(&sb, "[\"h\", \"waitcancel\", null, {}]");
    assert_int_equal(jshost_send(c, "call", sb.data, sb.size, &msgid), 0);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(jshost_cancel(c, msgid), 0);
    assert_int_equal(jshost_read(c, &r, TU_WAIT_MS), 1);
    assert_int_equal(r.msgid, msgid);
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.error.type, "Cancelled");
    jshost_reply_free(&r);
    snprintf(want, sizeof want, "[%u]", msgid);
    expect_call(c, "cancels", "null", want);

    /* The server's Cancelled has an error code of its own. */
    assert_null(call_json(c, "cancelled", "null", 0));
    assert_int_equal(c->err, JSHOST_ERR_CANCELLED);
    assert_string_equal(c->remote.type, "Cancelled");

    /* A blocking call the interrupt check stops: a signal ends its wait
     * (no SA_RESTART), the check says stop, libjshost cancels it. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    atomic_store(&checks, 0);
    atomic_store(&stop_asked, 0);
    jshost_set_interrupt_check(c, check_stop, NULL);
    pthread_create(&t, NULL, blocked_call, &b);
    TU_UNTIL(atomic_load(&checks) > 0, TU_WAIT_MS); /* it waits */
    atomic_store(&stop_asked, 1);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    assert_int_equal(b.rc, -1);
    assert_int_equal(b.err, JSHOST_ERR_CANCELLED);
    assert_non_null(strstr(b.errstr, "interrupted"));
    atomic_store(&stop_asked, 0);
    /* the cancel went out for it; its late Cancelled answer is dropped */
    j = call_json(c, "cancels", "null", 0);
    assert_non_null(j);
    assert_int_equal(strchr(j, ',') != NULL, 1);
    free(j);
    expect_call(c, "echo", "2", "2");

    /* Without a signal the check still runs (at least every 100 ms). */
    pthread_create(&t, NULL, blocked_call, &b);
    atomic_store(&checks, 0);
    TU_UNTIL(atomic_load(&checks) > 1, TU_WAIT_MS);
    atomic_store(&stop_asked, 1);
    pthread_join(t, NULL);
    assert_int_equal(b.err, JSHOST_ERR_CANCELLED);
    atomic_store(&stop_asked, 0);
    jshost_set_interrupt_check(c, NULL, NULL);

    /* A blocking call that gives up at its deadline cancels it too. */
    assert_int_equal(jshost_call(c, "h", "waitcancel", NULL, 0, 1, &v), -1);
    assert_int_equal(c->err, JSHOST_ERR_TIMEOUT);
    j = call_json(c, "cancels", "null", 0);
    assert_non_null(j);
    assert_int_equal(strchr(strchr(j, ',') + 1, ',') != NULL, 1);
    free(j);
    jshost_free(c);
}

static void
test_release(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    uint32_t ids[] = {3, 4, 70000};
    char buf[JSHOST_CALLABLE_SIZE];

    assert_int_equal(jshost_release(c, ids, 3), 0);
    assert_int_equal(jshost_release(c, NULL, 0), 0);
    expect_call(c, "releases", "null", "[3,4,70000]");
    /* a callable's bytes: msgpack ext 2, the id big-endian */
    jshost_callable(0x01020304, buf);
    assert_memory_equal(buf, "\xd6\x02\x01\x02\x03\x04", 6);
    jshost_free(c);
}

struct server {
    jshost *c;
    atomic_int stop;
    int rc;
};

static void *
serving(void *arg)
{
    struct server *sv = arg;

    while (!atomic_load(&sv->stop))
        if ((sv->rc = jshost_serve(sv->c, -1)) < 0)
            break;
    return NULL;
}

static void
test_serve(void **state)
{
    struct fx *f = *state;
    jshost *c = connect_to(f->sock);
    struct seen s = {0};
    struct server sv = {.c = c};
    pthread_t t;
    char *j = NULL;

    jshost_set_invoke_handler(c, on_invoke, &s);
    /* A wake with no serve running makes the next one return at once. */
    jshost_serve_wake(c);
    assert_int_equal(jshost_serve(c, -1), 0);
    assert_int_equal(jshost_serve(c, 1), 0); /* and only that one */
    /* An invoke with no call in flight: the serve thread reads it (and the
     * replies of this thread's calls meanwhile). */
    pthread_create(&t, NULL, serving, &sv);
    expect_call(c, "invokelater", "[5, [\"x\"]]", "\"sent\"");
    TU_UNTIL((free(j), j = call_json(c, "lastanswer", "null", 0)) != NULL &&
                 strcmp(j, "null") != 0,
             TU_WAIT_MS);
    assert_string_equal(j, "{\"error\":null,\"result\":[\"x\"]}");
    free(j);
    assert_int_equal(s.id, 5);
    atomic_store(&sv.stop, 1);
    jshost_serve_wake(c);
    pthread_join(t, NULL);
    assert_int_equal(sv.rc, 0);
    /* No connection: serve says so. */
    tu_kill(f->server);
    TU_UNTIL(jshost_serve(c, 50) < 0, TU_WAIT_MS);
    assert_int_equal(c->err, JSHOST_ERR_IO);
    jshost_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_helpers),
        cmocka_unit_test(test_options_defaults),
        cmocka_unit_test_setup_teardown(test_refused_without_spawn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_runtime_dir_unsafe, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_socket_path_too_long, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_call_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_late_reply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost_and_resend, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_restart_resend, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_10000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_out_of_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_threads_shared_handle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_cork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_data_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_while_another_waits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_threads_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_child_reconnects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fork_with_busy_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autostart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autostart_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoke_lost_with_its_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve, setup, teardown),
    };

    signal(SIGPIPE, SIG_DFL); /* the library must not need SIGPIPE ignored */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
