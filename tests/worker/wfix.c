/* wfix: starting, talking to and stopping a jshost-worker under test. */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "wfix.h"

/* How long a test waits for one answer: far beyond any deadline under test,
 * so only a hang trips it (no timing is asserted through it). */
#define WFIX_WAIT_MS 30000

const char *
wfix_config(const char *name)
{
    static char buf[4][1024];
    static int next;
    char *out = buf[next++ % 4];

    snprintf(out, sizeof(buf[0]), "%s/%s",
             tu_source_path("tests/worker/configs"), name);
    return out;
}

void
wfix_start(struct wfix *f, const char *config, const char *const *extra)
{
    const char *argv[32];
    int n = 0;

    memset(f, 0, sizeof(*f));
    f->dir = tu_tmpdir();
    assert_non_null(f->dir);
    if (asprintf(&f->sock, "%s/w.sock", f->dir) < 0 ||
        asprintf(&f->log, "%s/worker.log", f->dir) < 0)
        fail_msg("out of memory");
    argv[n++] = tu_build_path("worker/jshost-worker");
    argv[n++] = "--listen";
    argv[n++] = f->sock;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 28; i++)
        argv[n++] = extra[i];
    if (config != NULL)
        argv[n++] = config;
    argv[n] = NULL;
    f->pid = tu_spawn((char *const *)argv, NULL, f->log);
    assert_true(f->pid > 0);
    if (!tu_wait_socket(f->sock, WFIX_WAIT_MS)) {
        char *log = wfix_read_log(f);

        fail_msg("the worker never listened; its log:\n%s", log);
    }
}

struct tu_rpc *
wfix_connect(struct wfix *f)
{
    struct tu_rpc *c = tu_rpc_connect(f->sock);

    assert_non_null(c);
    return c;
}

int
wfix_wait(struct wfix *f, int timeout_ms)
{
    int status = tu_wait(f->pid, timeout_ms);

    if (status != -1)
        f->pid = 0;
    return status;
}

void
wfix_cleanup(struct wfix *f)
{
    if (f->pid > 0)
        tu_kill(f->pid);
    f->pid = 0;
    if (f->dir != NULL)
        tu_rmtree(f->dir);
    f->dir = NULL;
    free(f->sock);
    free(f->log);
    f->sock = f->log = NULL;
}

void
wfix_stop(struct wfix *f)
{
    int status;

    assert_int_equal(kill(f->pid, SIGTERM), 0);
    status = wfix_wait(f, WFIX_WAIT_MS);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *log = wfix_read_log(f);

        fail_msg("the worker did not exit cleanly on SIGTERM (status %#x); its "
                 "log:\n%s",
                 status, log);
    }
    wfix_cleanup(f);
}

char *
wfix_read_log(struct wfix *f)
{
    char *log = tu_read_file(f->log);

    return log != NULL ? log : strdup("");
}

void
wfix_expect_error(struct tu_rpc *c, uint32_t msgid, const char *type,
                  struct proto_msg *msg, struct proto_error *pe)
{
    const char *got;

    assert_int_equal(tu_rpc_wait(c, msgid, msg, WFIX_WAIT_MS), 1);
    assert_int_equal(msg->kind, PROTO_RESPONSE);
    assert_int_equal(msg->error.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(proto_error_from_object(&msg->error, pe), 0);
    got = proto_errtype_name(pe->type);
    if (got == NULL || strcmp(got, type) != 0)
        fail_msg("expected a %s, got %s: %.*s", type, got ? got : "?",
                 (int)pe->message_len, pe->message ? pe->message : "");
}

void
wfix_expect_result(struct tu_rpc *c, uint32_t msgid, struct proto_msg *msg)
{
    assert_int_equal(tu_rpc_wait(c, msgid, msg, WFIX_WAIT_MS), 1);
    assert_int_equal(msg->kind, PROTO_RESPONSE);
    if (msg->error.type != MSGPACK_OBJECT_NIL) {
        struct proto_error pe;

        memset(&pe, 0, sizeof(pe));
        proto_error_from_object(&msg->error, &pe);
        fail_msg("expected a result, got %s: %.*s", proto_errtype_name(pe.type),
                 (int)pe.message_len, pe.message ? pe.message : "");
    }
}

void
wfix_check_call(struct tu_rpc *c, const char *method, const char *params,
                const char *expect)
{
    char *got = tu_rpc_call(c, method, params, WFIX_WAIT_MS);

    assert_non_null(got);
    if (strcmp(got, expect) != 0)
        fail_msg("%s %s: expected %s, got %s", method, params, expect, got);
    free(got);
}

uint32_t
wfix_request_begin(struct tu_rpc *c, msgpack_sbuffer *sb, msgpack_packer *pk,
                   const char *method, uint32_t nparams)
{
    uint32_t msgid = tu_rpc_next_msgid(c);

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    proto_write_request(pk, msgid, method, nparams);
    return msgid;
}

void
wfix_request_send(struct tu_rpc *c, msgpack_sbuffer *sb)
{
    tu_rpc_send_raw(c, sb->data, sb->size);
    msgpack_sbuffer_destroy(sb);
}

const msgpack_object *
wfix_get(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = proto_map_get(map, key);

    if (o == NULL)
        fail_msg("no key '%s' in the map", key);
    return o;
}

bool
wfix_streq(const msgpack_object *o, const char *s)
{
    return proto_obj_streq(o, s);
}
