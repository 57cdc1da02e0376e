/* tu_rpc (tu_rpc.h): a blocking msgpack-RPC client for tests. */
#include "tu_rpc.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpjson.h"

struct tu_rpc {
    int fd;
    struct proto_reader *reader;
    uint32_t next_msgid;
    /* Messages read while waiting for another msgid, in arrival order. */
    struct proto_msg *queue;
    size_t nqueue;
    size_t capqueue;
    bool broken;
    char cause[PROTO_CAUSE_MAX];
};

struct tu_rpc *
tu_rpc_from_fd(int fd)
{
    struct tu_rpc *c = calloc(1, sizeof *c);

    assert_non_null(c);
    c->fd = fd;
    c->reader = proto_reader_new(0);
    assert_non_null(c->reader);
    c->next_msgid = 1;
    return c;
}

struct tu_rpc *
tu_rpc_connect(const char *path)
{
    int fd = tu_connect(path);

    return fd >= 0 ? tu_rpc_from_fd(fd) : NULL;
}

void
tu_rpc_close(struct tu_rpc *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < c->nqueue; i++)
        proto_msg_release(&c->queue[i]);
    free(c->queue);
    proto_reader_free(c->reader);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

int
tu_rpc_fd(const struct tu_rpc *c)
{
    return c->fd;
}

const char *
tu_rpc_error(const struct tu_rpc *c)
{
    return c->cause;
}

uint32_t
tu_rpc_next_msgid(struct tu_rpc *c)
{
    return c->next_msgid++;
}

/* Writes everything; a peer that went away is seen on the next read, and never
 * kills the test with SIGPIPE. */
static void
tu__send_all(struct tu_rpc *c, const char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n == -1 && errno == ENOTSOCK)
            n = write(c->fd, buf, len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            /* Not fatal here: what the peer said before it went (an error
             * notification) is still readable, and the read reports EOF. */
            snprintf(c->cause, sizeof c->cause, "send: %s", strerror(errno));
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void
tu_rpc_send_raw(struct tu_rpc *c, const void *buf, size_t len)
{
    tu__send_all(c, buf, len);
}

uint32_t
tu_rpc_request_begin(struct tu_rpc *c, msgpack_sbuffer *sb, msgpack_packer *pk,
                     const char *method, uint32_t nparams)
{
    uint32_t msgid = tu_rpc_next_msgid(c);

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    proto_write_request(pk, msgid, method, nparams);
    return msgid;
}

void
tu_rpc_request_send(struct tu_rpc *c, msgpack_sbuffer *sb)
{
    tu__send_all(c, sb->data, sb->size);
    msgpack_sbuffer_destroy(sb);
}

size_t
tu_rpc_ping_head(struct tu_rpc *c, unsigned char *buf, uint32_t len,
                 uint32_t *msgid)
{
    uint32_t id = tu_rpc_next_msgid(c);
    size_t n = 0;

    *msgid = id;
    buf[n++] = 0x94; /* [0, id, "ping", [str32]] */
    buf[n++] = 0x00;
    buf[n++] = 0xce;
    buf[n++] = (unsigned char)(id >> 24);
    buf[n++] = (unsigned char)(id >> 16);
    buf[n++] = (unsigned char)(id >> 8);
    buf[n++] = (unsigned char)id;
    buf[n++] = 0xa4;
    memcpy(buf + n, "ping", 4);
    n += 4;
    buf[n++] = 0x91;
    buf[n++] = 0xdb;
    buf[n++] = (unsigned char)(len >> 24);
    buf[n++] = (unsigned char)(len >> 16);
    buf[n++] = (unsigned char)(len >> 8);
    buf[n++] = (unsigned char)len;
    return n;
}

void
tu_rpc_pack_json(msgpack_sbuffer *sb, const char *json)
{
    msgpack_packer pk;
    char cause[256];

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (mpjson_pack(&pk, json, strlen(json), cause) != 0)
        fail_msg("tu_rpc_pack_json %s: %s", json, cause);
}

uint32_t
tu_rpc_send(struct tu_rpc *c, const char *method, const char *params_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char cause[256];
    uint32_t msgid = tu_rpc_next_msgid(c);
    size_t at;
    unsigned char first;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* The head by hand: proto_write_request wants the params count first,
     * and here the params come as one JSON array. */
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, PROTO_REQUEST);
    msgpack_pack_uint32(&pk, msgid);
    proto_pack_cstr(&pk, method);
    at = sb.size;
    /* params sits one level above the values in it, which may nest
     * PROTO_VALUE_MAX_DEPTH: the whole request then nests PROTO_MAX_DEPTH. */
    if (mpjson_pack_depth(&pk, params_json, strlen(params_json),
                          PROTO_MAX_DEPTH - 1, cause) != 0)
        fail_msg("tu_rpc_send %s: params %s: %s", method, params_json, cause);
    first = (unsigned char)sb.data[at];
    if (!((first >= 0x90 && first <= 0x9f) || first == 0xdc || first == 0xdd))
        fail_msg("tu_rpc_send %s: params must be a JSON array, not %s", method,
                 params_json);
    tu__send_all(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return msgid;
}

/* The next message from the stream itself (not the queue). */
static int
tu__read_stream(struct tu_rpc *c, struct proto_msg *msg, int64_t deadline)
{
    struct pollfd pfd;
    char *buf;
    size_t len;
    ssize_t n;
    int64_t left;
    int r;

    for (;;) {
        r = proto_reader_next(c->reader, msg, c->cause);
        if (r == 1)
            return 1;
        if (r < 0) {
            c->broken = true;
            return -1;
        }
        if (c->broken)
            return -1;
        pfd.fd = c->fd;
        pfd.events = POLLIN;
        left = deadline < 0 ? -1 : deadline - tu_now_ms();
        if (deadline >= 0 && left < 0)
            left = 0;
        r = poll(&pfd, 1, (int)left);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == 0)
            return 0;
        assert_int_equal(proto_reader_buffer(c->reader, 65536, &buf, &len), 0);
        n = read(c->fd, buf, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(c->cause, sizeof c->cause, "%s",
                     n == 0 ? "end of stream" : strerror(errno));
            c->broken = true;
            /* Whole messages that came before EOF are still handed out. */
            r = proto_reader_next(c->reader, msg, NULL);
            return r == 1 ? 1 : -1;
        }
        proto_reader_fill(c->reader, (size_t)n);
    }
}

static int64_t
tu__deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : tu_now_ms() + timeout_ms;
}

static void
tu__unqueue(struct tu_rpc *c, size_t i, struct proto_msg *msg)
{
    *msg = c->queue[i];
    memmove(&c->queue[i], &c->queue[i + 1],
            (c->nqueue - i - 1) * sizeof *c->queue);
    c->nqueue--;
}

int
tu_rpc_read(struct tu_rpc *c, struct proto_msg *msg, int timeout_ms)
{
    if (c->nqueue > 0) {
        tu__unqueue(c, 0, msg);
        return 1;
    }
    return tu__read_stream(c, msg, tu__deadline(timeout_ms));
}

int
tu_rpc_wait(struct tu_rpc *c, uint32_t msgid, struct proto_msg *msg,
            int timeout_ms)
{
    int64_t deadline = tu__deadline(timeout_ms);
    size_t i;
    int r;

    for (i = 0; i < c->nqueue; i++) {
        if (c->queue[i].kind == PROTO_RESPONSE && c->queue[i].msgid == msgid) {
            tu__unqueue(c, i, msg);
            return 1;
        }
    }
    for (;;) {
        r = tu__read_stream(c, msg, deadline);
        if (r != 1)
            return r;
        if (msg->kind == PROTO_RESPONSE && msg->msgid == msgid)
            return 1;
        if (c->nqueue == c->capqueue) {
            c->capqueue = c->capqueue ? c->capqueue * 2 : 8;
            c->queue = realloc(c->queue, c->capqueue * sizeof *c->queue);
            assert_non_null(c->queue);
        }
        c->queue[c->nqueue++] = *msg;
        memset(msg, 0, sizeof *msg);
    }
}

int
tu_rpc_wait_serving(struct tu_rpc *c, uint32_t msgid, struct proto_msg *msg,
                    int timeout_ms, tu_rpc_request_fn fn, void *arg)
{
    int64_t deadline = tu__deadline(timeout_ms);
    size_t i;
    int r;

    for (;;) {
        /* What an earlier plain wait queued: requests are served now. */
        for (i = 0; i < c->nqueue;) {
            if (c->queue[i].kind == PROTO_RESPONSE &&
                c->queue[i].msgid == msgid) {
                tu__unqueue(c, i, msg);
                return 1;
            }
            if (c->queue[i].kind == PROTO_REQUEST) {
                struct proto_msg req;

                tu__unqueue(c, i, &req);
                fn(arg, c, &req);
                proto_msg_release(&req);
                continue;
            }
            i++;
        }
        r = tu__read_stream(c, msg, deadline);
        if (r != 1)
            return r;
        if (msg->kind == PROTO_RESPONSE && msg->msgid == msgid)
            return 1;
        if (msg->kind == PROTO_REQUEST) {
            fn(arg, c, msg);
            proto_msg_release(msg);
            continue;
        }
        if (c->nqueue == c->capqueue) {
            c->capqueue = c->capqueue ? c->capqueue * 2 : 8;
            c->queue = realloc(c->queue, c->capqueue * sizeof *c->queue);
            assert_non_null(c->queue);
        }
        c->queue[c->nqueue++] = *msg;
        memset(msg, 0, sizeof *msg);
    }
}

void
tu_rpc_respond(struct tu_rpc *c, uint32_t msgid, const char *result_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char cause[256];

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_result(&pk, msgid);
    if (mpjson_pack(&pk, result_json, strlen(result_json), cause) != 0)
        fail_msg("tu_rpc_respond %s: %s", result_json, cause);
    tu__send_all(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void
tu_rpc_respond_error(struct tu_rpc *c, uint32_t msgid, const char *type,
                     const char *name, const char *message, const char *stack)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, PROTO_RESPONSE);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_map(&pk, 4);
    proto_pack_cstr(&pk, "type");
    proto_pack_cstr(&pk, type);
    proto_pack_cstr(&pk, "message");
    proto_pack_cstr(&pk, message);
    proto_pack_cstr(&pk, "name");
    proto_pack_cstr(&pk, name);
    proto_pack_cstr(&pk, "stack");
    proto_pack_cstr(&pk, stack);
    msgpack_pack_nil(&pk);
    tu__send_all(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void
tu_rpc_notify(struct tu_rpc *c, const char *method, const char *params_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char cause[256];

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, PROTO_NOTIFICATION);
    proto_pack_cstr(&pk, method);
    if (mpjson_pack(&pk, params_json, strlen(params_json), cause) != 0)
        fail_msg("tu_rpc_notify %s: %s", params_json, cause);
    tu__send_all(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

char *
tu_rpc_result(const struct proto_msg *msg)
{
    struct proto_error err;
    char *s;

    if (msg->kind != PROTO_RESPONSE)
        return NULL;
    if (msg->error.type == MSGPACK_OBJECT_NIL) {
        s = mpjson_dump(&msg->result, 0);
        assert_non_null(s);
        return s;
    }
    assert_int_equal(proto_error_from_object(&msg->error, &err), 0);
    if (asprintf(&s, "!%s: %.*s", proto_errtype_name(err.type),
                 (int)err.message_len, err.message ? err.message : "") < 0)
        fail_msg("out of memory");
    return s;
}

char *
tu_rpc_call(struct tu_rpc *c, const char *method, const char *params_json)
{
    struct proto_msg msg;
    uint32_t id;
    char *s;

    id = tu_rpc_send(c, method, params_json);
    if (tu_rpc_wait(c, id, &msg, TU_WAIT_MS) != 1)
        return NULL;
    s = tu_rpc_result(&msg);
    proto_msg_release(&msg);
    return s;
}

char *
tu_rpc_call_serving(struct tu_rpc *c, const char *method,
                    const char *params_json, tu_rpc_request_fn fn, void *arg)
{
    struct proto_msg msg;
    uint32_t id = tu_rpc_send(c, method, params_json);
    char *s;

    assert_int_equal(tu_rpc_wait_serving(c, id, &msg, TU_WAIT_MS, fn, arg), 1);
    s = tu_rpc_result(&msg);
    proto_msg_release(&msg);
    return s;
}

char *
tu_rpc_call_fn(struct tu_rpc *c, const char *host, const char *fn,
               const char *data_json, const char *opts_json)
{
    char *params, *r;

    if (asprintf(&params, "[\"%s\", \"%s\", %s%s%s]", host, fn, data_json,
                 opts_json ? ", " : "", opts_json ? opts_json : "") < 0)
        fail_msg("out of memory");
    r = tu_rpc_call(c, "call", params);
    free(params);
    return r;
}

void
tu_rpc_check(struct tu_rpc *c, const char *method, const char *params_json,
             const char *expect)
{
    char *got = tu_rpc_call(c, method, params_json);

    if (got == NULL)
        fail_msg("%s %s: no answer (%s)", method, params_json, c->cause);
    if (strcmp(got, expect) != 0)
        fail_msg("%s %s: expected %s, got %s", method, params_json, expect,
                 got);
    free(got);
}

void
tu_rpc_check_error(struct tu_rpc *c, const char *method,
                   const char *params_json, const char *type, const char *words)
{
    char *got = tu_rpc_call(c, method, params_json);
    size_t n = strlen(type);

    if (got == NULL)
        fail_msg("%s %s: no answer (%s)", method, params_json, c->cause);
    if (got[0] != '!' || strncmp(got + 1, type, n) != 0 || got[n + 1] != ':' ||
        (words != NULL && strstr(got + n + 1, words) == NULL))
        fail_msg("%s %s: expected a %s%s%s, got %s", method, params_json, type,
                 words ? " saying " : "", words ? words : "", got);
    free(got);
}

json_t *
tu_rpc_ok(struct tu_rpc *c, const char *method, const char *params_json)
{
    char *r = tu_rpc_call(c, method, params_json);
    json_error_t err;
    json_t *j;

    if (r == NULL || r[0] == '!')
        fail_msg("%s %s: %s", method, params_json, r ? r : "no answer");
    j = json_loads(r, JSON_DECODE_ANY, &err);
    if (j == NULL)
        fail_msg("%s: not JSON: %s", method, r);
    free(r);
    return j;
}

/* The error a response carries, named; fails when it has none. */
static const char *
tu__error_of(const struct proto_msg *msg, struct proto_error *pe)
{
    const char *name;

    memset(pe, 0, sizeof *pe);
    if (msg->error.type == MSGPACK_OBJECT_NIL)
        return NULL;
    assert_int_equal(proto_error_from_object(&msg->error, pe), 0);
    name = proto_errtype_name(pe->type);
    return name != NULL ? name : "?";
}

void
tu_rpc_expect_result(struct tu_rpc *c, uint32_t msgid, struct proto_msg *msg)
{
    struct proto_error pe;
    const char *type;

    if (tu_rpc_wait(c, msgid, msg, TU_WAIT_MS) != 1)
        fail_msg("no answer to request %u (%s)", msgid, c->cause);
    type = tu__error_of(msg, &pe);
    if (type != NULL)
        fail_msg("request %u: expected a result, got %s: %.*s", msgid, type,
                 (int)pe.message_len, pe.message ? pe.message : "");
}

void
tu_rpc_expect_error(struct tu_rpc *c, uint32_t msgid, const char *type,
                    struct proto_msg *msg, struct proto_error *pe)
{
    const char *got;
    char *res;

    if (tu_rpc_wait(c, msgid, msg, TU_WAIT_MS) != 1)
        fail_msg("no answer to request %u (%s)", msgid, c->cause);
    got = tu__error_of(msg, pe);
    if (got == NULL) {
        res = tu_rpc_result(msg);
        fail_msg("request %u: expected a %s, got the result %s", msgid, type,
                 res);
    }
    if (strcmp(got, type) != 0)
        fail_msg("request %u: expected a %s, got %s: %.*s", msgid, type, got,
                 (int)pe->message_len, pe->message ? pe->message : "");
}

void
tu_rpc_cancel(struct tu_rpc *c, uint32_t msgid)
{
    char params[32];

    snprintf(params, sizeof params, "[%u]", msgid);
    tu_rpc_notify(c, "cancel", params);
}

void
tu_rpc_expect_cancelled(struct tu_rpc *c, uint32_t msgid)
{
    struct proto_msg msg;
    struct proto_error pe;

    tu_rpc_expect_error(c, msgid, "Cancelled", &msg, &pe);
    proto_msg_release(&msg);
}

void
tu_rpc_expect_refused(struct tu_rpc *c, const char *words)
{
    struct proto_msg msg;
    struct proto_error pe;
    int rc;

    rc = tu_rpc_read(c, &msg, TU_WAIT_MS);
    if (rc != 1)
        fail_msg("no error notification (read: %d, %s)", rc, tu_rpc_error(c));
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&msg, "error"));
    assert_int_equal(msg.params.via.array.size, 1);
    assert_int_equal(proto_error_from_object(&msg.params.via.array.ptr[0], &pe),
                     0);
    assert_int_equal(pe.type, PROTO_ERR_PROTOCOL);
    if (pe.message == NULL ||
        memmem(pe.message, pe.message_len, words, strlen(words)) == NULL)
        fail_msg("error notification without '%s': %.*s", words,
                 (int)pe.message_len, pe.message ? pe.message : "");
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), -1);
}

const msgpack_object *
tu_rpc_field(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = proto_map_get(map, key);

    if (o == NULL)
        fail_msg("no key '%s' in the map", key);
    return o;
}

/* ------------------------------------------------- the manager's views */

long
tu_rpc_manager_figure(struct tu_rpc *c, const char *key)
{
    json_t *j = tu_rpc_ok(c, "status", "[]");
    long n = (long)json_integer_value(
        json_object_get(json_object_get(j, "manager"), key));

    json_decref(j);
    return n;
}

pid_t
tu_rpc_serving_pid(struct tu_rpc *c, const char *host)
{
    char *r = tu_rpc_call_fn(c, host, "pid", "null", NULL);
    pid_t pid;

    assert_non_null(r);
    if (r[0] == '!')
        fail_msg("pid: %s", r);
    pid = atoi(r);
    free(r);
    return pid;
}

char *
tu_rpc_attach(struct tu_rpc *c, const char *config)
{
    json_t *j, *params = json_pack("[s, {}]", config);
    char *p = json_dumps(params, JSON_COMPACT), *id;

    assert_non_null(p);
    j = tu_rpc_ok(c, "attach", p);
    id = strdup(json_string_value(json_object_get(j, "host")));
    assert_non_null(id);
    json_decref(j);
    json_decref(params);
    free(p);
    return id;
}

json_t *
tu_rpc_host(struct tu_rpc *c, const char *host)
{
    json_t *params = json_pack("[s]", host), *j;
    char *p = json_dumps(params, JSON_COMPACT), *r;

    assert_non_null(p);
    r = tu_rpc_call(c, "status", p);
    if (r == NULL)
        fail_msg("status %s: no answer (%s)", host, c->cause);
    j = r[0] == '!' ? NULL : json_loads(r, JSON_DECODE_ANY, NULL);
    if (r[0] != '!' && j == NULL)
        fail_msg("status %s: not JSON: %s", host, r);
    free(r);
    free(p);
    json_decref(params);
    return j;
}

long
tu_rpc_host_figure(struct tu_rpc *c, const char *host, const char *key)
{
    json_t *h = tu_rpc_host(c, host), *v;
    long n;

    if (h == NULL)
        fail_msg("status %s: no such host", host);
    v = json_object_get(h, key);
    if (!json_is_integer(v))
        fail_msg("status %s: no figure '%s'", host, key);
    n = (long)json_integer_value(v);
    json_decref(h);
    return n;
}

bool
tu_rpc_host_in(struct tu_rpc *c, const char *host, const char *state)
{
    json_t *h = tu_rpc_host(c, host);
    const char *s =
        h != NULL ? json_string_value(json_object_get(h, "state")) : "gone";
    bool in = s != NULL && strcmp(s, state) == 0;

    json_decref(h);
    return in;
}

/* The workers of one host, or of every host (host NULL), as a new array. */
static json_t *
tu__workers(struct tu_rpc *c, const char *host)
{
    json_t *all, *h, *out = json_array();
    size_t i;

    if (host != NULL) {
        h = tu_rpc_host(c, host);
        if (h != NULL)
            json_array_extend(out, json_object_get(h, "workers"));
        json_decref(h);
        return out;
    }
    all = tu_rpc_ok(c, "status", "[null]");
    json_array_foreach(json_object_get(all, "hosts"), i, h)
        json_array_extend(out, json_object_get(h, "workers"));
    json_decref(all);
    return out;
}

int
tu_rpc_worker_pids(struct tu_rpc *c, const char *host, const char *state,
                   pid_t *pids, int max)
{
    json_t *ws = tu__workers(c, host), *w;
    const char *s;
    size_t i;
    int n = 0;

    json_array_foreach(ws, i, w)
    {
        s = json_string_value(json_object_get(w, "state"));
        if (state != NULL && (s == NULL || strcmp(s, state) != 0))
            continue;
        if (n < max)
            pids[n++] = (pid_t)json_integer_value(json_object_get(w, "pid"));
    }
    json_decref(ws);
    return n;
}

pid_t
tu_rpc_busy_worker(struct tu_rpc *c, const char *host)
{
    json_t *ws = tu__workers(c, host), *w;
    pid_t pid = 0;
    size_t i;

    json_array_foreach(ws, i, w)
    {
        if (pid == 0 && json_integer_value(json_object_get(w, "in_flight")) > 0)
            pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    }
    json_decref(ws);
    return pid;
}
