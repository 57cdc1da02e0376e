/*
 * The method checkers (proto/check.c): for each method, params that pass and
 * what they read as, every typed error with its exact words, every bound at
 * and past its edge; the timeout reader, the error-type map and the
 * dispatch-table lookup both servers use.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "methods.h"
#include "mpjson.h"

/* The request [0, 1, method, <params as JSON>], packed into sb. */
static void
pack_request(msgpack_sbuffer *sb, const char *method, const char *params)
{
    char cause[PROTO_CAUSE_MAX] = "";
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_array(&pk, 4), 0);
    assert_int_equal(msgpack_pack_uint8(&pk, PROTO_REQUEST), 0);
    assert_int_equal(msgpack_pack_uint32(&pk, 1), 0);
    assert_int_equal(proto_pack_cstr(&pk, method), 0);
    if (mpjson_pack_depth(&pk, params, strlen(params), MPJSON_MAX_DEPTH + 1,
                          cause) != 0)
        fail_msg("bad test params %s: %s", params, cause);
}

/* The request in a reader: taken as bytes (proto_reader_take: they live in
 * the reader, which the caller frees after it is done with *m) or unpacked
 * (the reader is freed here, NULL returned). */
static struct proto_reader *
request_as(struct proto_msg *m, const char *method, const char *params,
           bool bytes)
{
    struct proto_reader *r = proto_reader_new(0);
    char cause[PROTO_CAUSE_MAX] = "";
    msgpack_sbuffer sb;

    assert_non_null(r);
    pack_request(&sb, method, params);
    assert_int_equal(proto_reader_feed(r, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
    if ((bytes ? proto_reader_take(r, m, cause)
               : proto_reader_next(r, m, cause)) != 1)
        fail_msg("test message did not parse: %s", cause);
    if (!bytes) {
        proto_reader_free(r);
        return NULL;
    }
    assert_non_null(m->raw.bytes);
    assert_null(m->zone);
    return r;
}

static void
request(struct proto_msg *m, const char *method, const char *params)
{
    request_as(m, method, params, false);
}

static struct proto_reader *
request_bytes(struct proto_msg *m, const char *method, const char *params)
{
    return request_as(m, method, params, true);
}

static bool
same_text(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL)
        return a == b;
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* A value param of the bytes form holds what the unpacked form's object
 * does: the span unpacks to an equal object (an absent one to the
 * stand-in). */
static void
same_value(const char *what, const msgpack_object *o, struct proto_span b)
{
    msgpack_unpacked u;
    size_t off = 0;

    if (b.len == 0) {
        if (o->type == MSGPACK_OBJECT_NIL ||
            (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0 &&
             o->via.array.ptr == NULL))
            return;
        fail_msg("%s: the bytes form has no value", what);
    }
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, b.ptr, b.len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != b.len || !msgpack_object_equal(u.data, *o))
        fail_msg("%s: the bytes form differs", what);
    msgpack_unpacked_destroy(&u);
}

/* Both forms of a message read as the same params. */
static void
same_params(const struct proto_params *t, const struct proto_params *b)
{
    assert_true(same_text(t->host, t->host_len, b->host, b->host_len));
    assert_true(same_text(t->config, t->config_len, b->config, b->config_len));
    assert_true(
        same_text(t->function, t->function_len, b->function, b->function_len));
    assert_true(same_text(t->source, t->source_len, b->source, b->source_len));
    assert_true(same_text(t->identifier, t->identifier_len, b->identifier,
                          b->identifier_len));
    assert_true(same_text(t->expression, t->expression_len, b->expression,
                          b->expression_len));
    assert_true(same_text(t->cwd, t->cwd_len, b->cwd, b->cwd_len));
    assert_true(same_text(t->client, t->client_len, b->client, b->client_len));
    assert_int_equal(t->context, b->context);
    assert_int_equal(t->timeout_ms, b->timeout_ms);
    assert_int_equal(t->memory_mb, b->memory_mb);
    assert_int_equal(t->vm, b->vm);
    assert_int_equal(t->as_string, b->as_string);
    assert_int_equal(t->protocol, b->protocol);
    assert_int_equal(t->msgid, b->msgid);
    assert_int_equal(t->callback_id, b->callback_id);
    assert_int_equal(t->owner_call, b->owner_call);
    assert_int_equal(t->owner_context, b->owner_context);
    same_value("host", t->host_obj, b->host_bytes);
    same_value("data", t->data, b->data_bytes);
    same_value("args", t->args, b->args_bytes);
    same_value("paths", t->paths, b->paths_bytes);
    same_value("options", t->options, b->options_bytes);
    same_value("callbacks", t->callbacks, b->callbacks_bytes);
    same_value("contexts", t->contexts, b->contexts_bytes);
}

/* Checks params with fn: it must pass; *p holds what it read. The message
 * stays alive in *m for the caller to look into, then release. The same
 * request taken as bytes must pass too and read the same. */
static void
pass(proto_check_fn fn, const char *params, struct proto_msg *m,
     struct proto_params *p)
{
    char cause[PROTO_CAUSE_MAX] = "";
    struct proto_params bp;
    struct proto_msg bm;
    struct proto_reader *r;
    int rc;

    request(m, "m", params);
    rc = fn(m, p, cause);
    if (rc != 0)
        fail_msg("%s: expected to pass, got %d: %s", params, rc, cause);
    r = request_bytes(&bm, "m", params);
    rc = fn(&bm, &bp, cause);
    if (rc != 0)
        fail_msg("%s: expected to pass as bytes, got %d: %s", params, rc,
                 cause);
    same_params(p, &bp);
    proto_msg_release(&bm);
    proto_reader_free(r);
}

/* Checks params with fn: it must fail with rc and exactly these words, in
 * either form of the message. */
static void
refuse(proto_check_fn fn, const char *params, int rc, const char *words)
{
    char cause[PROTO_CAUSE_MAX] = "";
    struct proto_params p;
    struct proto_msg m;
    struct proto_reader *rd;
    int r;

    request(&m, "m", params);
    r = fn(&m, &p, cause);
    if (r != rc || strcmp(cause, words) != 0)
        fail_msg("%s: expected %d \"%s\", got %d \"%s\"", params, rc, words, r,
                 cause);
    proto_msg_release(&m);
    cause[0] = '\0';
    rd = request_bytes(&m, "m", params);
    r = fn(&m, &p, cause);
    if (r != rc || strcmp(cause, words) != 0)
        fail_msg("%s (as bytes): expected %d \"%s\", got %d \"%s\"", params, rc,
                 words, r, cause);
    proto_msg_release(&m);
    proto_reader_free(rd);
}

static bool
text_is(const char *s, size_t len, const char *want)
{
    return s != NULL && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* before + a JSON string of n bytes ("/aaa...") + after. */
static char *
long_path_params(size_t n, const char *before, const char *after)
{
    size_t nb = strlen(before), na = strlen(after);
    char *s = malloc(nb + n + na + 3);

    assert_non_null(s);
    memcpy(s, before, nb);
    s[nb] = '"';
    s[nb + 1] = '/';
    memset(s + nb + 2, 'a', n - 1);
    s[nb + n + 1] = '"';
    memcpy(s + nb + n + 2, after, na + 1);
    return s;
}

static void
test_hello(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX];
    (void)state;

    pass(proto_check_hello, "[{\"client\": \"t\", \"protocol\": 1}]", &m, &p);
    assert_int_equal(p.protocol, PROTO_VERSION);
    assert_true(text_is(p.client, p.client_len, "t"));
    proto_msg_release(&m);
    pass(proto_check_hello, "[{\"protocol\": 1}]", &m, &p);
    assert_null(p.client);
    proto_msg_release(&m);
    pass(proto_check_hello, "[{\"client\": null, \"protocol\": 1}]", &m, &p);
    assert_null(p.client);
    proto_msg_release(&m);

    refuse(proto_check_hello, "[]", -EINVAL,
           "params: expected 1 parameter, got 0");
    refuse(proto_check_hello, "[{\"protocol\": 1}, {}]", -EINVAL,
           "params: expected 1 parameter, got 2");
    refuse(proto_check_hello, "[1]", -EINVAL,
           "params[0] (options): expected a map or nil, got an integer");
    refuse(proto_check_hello, "[{}]", -EINVAL,
           "params[0] (options): protocol is missing");
    refuse(proto_check_hello, "[null]", -EINVAL,
           "params[0] (options): protocol is missing");
    refuse(proto_check_hello, "[{\"protocol\": null}]", -EINVAL,
           "params[0] (options): protocol is missing");
    refuse(proto_check_hello, "[{\"protocol\": \"1\"}]", -EINVAL,
           "params[0] (options): protocol: expected an unsigned integer, "
           "got a string");
    refuse(proto_check_hello, "[{\"protocol\": -1}]", -EINVAL,
           "params[0] (options): protocol: expected an unsigned integer, "
           "got a negative integer");
    refuse(proto_check_hello, "[{\"client\": 5, \"protocol\": 1}]", -EINVAL,
           "params[0] (options): client: expected a string, got an integer");
    /* Another protocol is the peer's fault, not a bad argument. */
    refuse(proto_check_hello, "[{\"protocol\": 2}]", -EPROTONOSUPPORT,
           "protocol 2 is not supported: this side speaks protocol 1");
    refuse(proto_check_hello, "[{\"protocol\": 0}]", -EPROTONOSUPPORT,
           "protocol 0 is not supported: this side speaks protocol 1");
    request(&m, PROTO_M_HELLO, "[{\"protocol\": 99}]");
    assert_int_equal(proto_check_errtype(proto_check_hello(&m, &p, cause)),
                     PROTO_ERR_PROTOCOL);
    proto_msg_release(&m);
}

static void
test_attach(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    char *params;
    (void)state;

    pass(proto_check_attach, "[\"/etc/a.config.js\", {}]", &m, &p);
    assert_true(text_is(p.config, p.config_len, "/etc/a.config.js"));
    assert_int_equal(p.options->type, MSGPACK_OBJECT_MAP);
    proto_msg_release(&m);
    pass(proto_check_attach, "[\"a.js\"]", &m, &p);
    assert_int_equal(p.options->type, MSGPACK_OBJECT_NIL);
    proto_msg_release(&m);
    pass(proto_check_attach, "[\"\", null]", &m, &p);
    assert_non_null(p.config); /* empty, not nil */
    assert_int_equal(p.config_len, 0);
    proto_msg_release(&m);

    refuse(proto_check_attach, "[]", -EINVAL,
           "params: expected 1 to 2 parameters, got 0");
    refuse(proto_check_attach, "[\"a\", {}, 3]", -EINVAL,
           "params: expected 1 to 2 parameters, got 3");
    refuse(proto_check_attach, "[1]", -EINVAL,
           "params[0] (config): expected a string, got an integer");
    refuse(proto_check_attach, "[null]", -EINVAL,
           "params[0] (config): expected a string, got nil");
    refuse(proto_check_attach, "[\"a\", 5]", -EINVAL,
           "params[1] (options): expected a map or nil, got an integer");
    refuse(proto_check_attach, "[\"a\\u0000b\"]", -EINVAL,
           "params[0] (config): too long or not a path");
    /* The bound: PROTO_PATH_MAX - 1 bytes fit a path buffer, one more not. */
    params = long_path_params(PROTO_PATH_MAX - 1, "[", "]");
    pass(proto_check_attach, params, &m, &p);
    assert_int_equal(p.config_len, PROTO_PATH_MAX - 1);
    proto_msg_release(&m);
    free(params);
    params = long_path_params(PROTO_PATH_MAX, "[", "]");
    refuse(proto_check_attach, params, -EINVAL,
           "params[0] (config): too long or not a path");
    free(params);
}

/* detach, restart and stop take [host]: any value passes (a server answers
 * NotFound for one that names no host). */
static void
check_host_only(proto_check_fn fn)
{
    struct proto_params p;
    struct proto_msg m;

    pass(fn, "[\"0123abcd\"]", &m, &p);
    assert_true(text_is(p.host, p.host_len, "0123abcd"));
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_STR);
    proto_msg_release(&m);
    pass(fn, "[5]", &m, &p);
    assert_null(p.host);
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    proto_msg_release(&m);
    pass(fn, "[null]", &m, &p);
    assert_null(p.host);
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_NIL);
    proto_msg_release(&m);
    refuse(fn, "[]", -EINVAL, "params: expected 1 parameter, got 0");
    refuse(fn, "[\"a\", \"b\"]", -EINVAL,
           "params: expected 1 parameter, got 2");
}

static void
test_detach_direct_restart_stop(void **state)
{
    (void)state;
    check_host_only(proto_check_detach);
    check_host_only(proto_check_direct);
    check_host_only(proto_check_restart);
    check_host_only(proto_check_stop);
}

static void
test_status(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_status, "[]", &m, &p);
    assert_null(p.host);
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_NIL);
    proto_msg_release(&m);
    pass(proto_check_status, "[null]", &m, &p);
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_NIL);
    proto_msg_release(&m);
    pass(proto_check_status, "[\"\"]", &m, &p);
    assert_non_null(p.host);
    assert_int_equal(p.host_len, 0);
    proto_msg_release(&m);
    refuse(proto_check_status, "[1, 2]", -EINVAL,
           "params: expected 0 to 1 parameters, got 2");
}

static void
test_no_params(void **state)
{
    static const proto_check_fn fns[] = {proto_check_shutdown, proto_check_ping,
                                         proto_check_stats};
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        pass(fns[i], "[]", &m, &p);
        proto_msg_release(&m);
        refuse(fns[i], "[1]", -EINVAL, "params: expected 0 parameters, got 1");
        refuse(fns[i], "[null, null]", -EINVAL,
               "params: expected 0 parameters, got 2");
    }
}

static void
test_call(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_call, "[\"h\", \"double\", {\"number\": 2}]", &m, &p);
    assert_true(text_is(p.host, p.host_len, "h"));
    assert_true(text_is(p.function, p.function_len, "double"));
    assert_int_equal(p.data->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(p.timeout_ms, 0);
    proto_msg_release(&m);
    pass(proto_check_call, "[null, \"f\", 1, {\"timeout_ms\": 500}]", &m, &p);
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(p.data->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(p.timeout_ms, 500);
    proto_msg_release(&m);
    pass(proto_check_call, "[0, \"f\", null, {\"timeout_ms\": null}]", &m, &p);
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(p.data->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(p.timeout_ms, 0);
    proto_msg_release(&m);
    /* The bound: the largest deadline a uint32 holds. */
    pass(proto_check_call, "[\"h\", \"f\", 1, {\"timeout_ms\": 4294967295}]",
         &m, &p);
    assert_int_equal(p.timeout_ms, UINT32_MAX);
    proto_msg_release(&m);

    refuse(proto_check_call, "[\"h\"]", -EINVAL,
           "params: expected 3 to 4 parameters, got 1");
    refuse(proto_check_call, "[\"h\", \"f\", 1, {}, 5]", -EINVAL,
           "params: expected 3 to 4 parameters, got 5");
    refuse(proto_check_call, "[\"h\", 7, {}]", -EINVAL,
           "params[1] (function): expected a string, got an integer");
    refuse(proto_check_call, "[\"h\", \"f\", {}, 5]", -EINVAL,
           "params[3] (options): expected a map or nil, got an integer");
    refuse(proto_check_call, "[\"h\", \"f\", {}, {\"timeout_ms\": \"soon\"}]",
           -EINVAL,
           "params[3] (options): timeout_ms: expected an unsigned integer, "
           "got a string");
    refuse(proto_check_call, "[\"h\", \"f\", {}, {\"timeout_ms\": -5}]",
           -EINVAL,
           "params[3] (options): timeout_ms: expected an unsigned integer, "
           "got a negative integer");
    refuse(proto_check_call, "[\"h\", \"f\", {}, {\"timeout_ms\": 1.5}]",
           -EINVAL,
           "params[3] (options): timeout_ms: expected an unsigned integer, "
           "got a float");
    refuse(proto_check_call, "[\"h\", \"f\", {}, {\"timeout_ms\": 4294967296}]",
           -EINVAL,
           "params[3] (options): timeout_ms 4294967296 is too large (at most "
           "4294967295)");
    refuse(proto_check_context_eval, "[1, \"x\", \"i\", {\"string\": 1}]",
           -EINVAL,
           "params[3] (options): string: expected a bool, got an "
           "integer");
}

static void
test_context_create(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    char *params;
    (void)state;

    pass(proto_check_context_create, "[]", &m, &p);
    assert_int_equal(p.host_obj->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(p.options->type, MSGPACK_OBJECT_NIL);
    assert_null(p.cwd);
    assert_int_equal(p.memory_mb, 0);
    assert_int_equal(p.vm, 0);
    proto_msg_release(&m);
    pass(proto_check_context_create,
         "[\"h\", {\"cwd\": \"/tmp\", \"memory\": 64, \"timeout_ms\": 10, "
         "\"vm\": 3}]",
         &m, &p);
    assert_true(text_is(p.host, p.host_len, "h"));
    assert_true(text_is(p.cwd, p.cwd_len, "/tmp"));
    assert_int_equal(p.memory_mb, 64);
    assert_int_equal(p.timeout_ms, 10);
    assert_int_equal(p.vm, 3);
    proto_msg_release(&m);
    /* The memory bound: the worker's own --memory limit. */
    pass(proto_check_context_create, "[null, {\"memory\": 1048576}]", &m, &p);
    assert_int_equal(p.memory_mb, PROTO_MEMORY_MAX_MB);
    proto_msg_release(&m);

    refuse(proto_check_context_create, "[null, {}, 1]", -EINVAL,
           "params: expected 0 to 2 parameters, got 3");
    refuse(proto_check_context_create, "[null, 5]", -EINVAL,
           "params[1] (options): expected a map or nil, got an integer");
    refuse(proto_check_context_create, "[null, {\"cwd\": 1}]", -EINVAL,
           "params[1] (options): cwd: expected a string, got an integer");
    refuse(proto_check_context_create, "[null, {\"memory\": 1048577}]", -EINVAL,
           "params[1] (options): memory 1048577 is too large (at most "
           "1048576)");
    refuse(proto_check_context_create, "[null, {\"memory\": \"big\"}]", -EINVAL,
           "params[1] (options): memory: expected an unsigned integer, got a "
           "string");
    refuse(proto_check_context_create, "[null, {\"vm\": -1}]", -EINVAL,
           "params[1] (options): vm: expected an unsigned integer, got a "
           "negative integer");
    refuse(proto_check_context_create, "[null, {\"timeout_ms\": 4294967296}]",
           -EINVAL,
           "params[1] (options): timeout_ms 4294967296 is too large (at most "
           "4294967295)");
    refuse(proto_check_context_create, "[null, {\"cwd\": \"a\\u0000\"}]",
           -EINVAL, "params[1] (options: cwd): too long or not a path");
    params = long_path_params(PROTO_PATH_MAX, "[null, {\"cwd\": ", "}]");
    refuse(proto_check_context_create, params, -EINVAL,
           "params[1] (options: cwd): too long or not a path");
    free(params);
}

static void
test_context_eval(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_context_eval, "[7, \"1 + 1\", null]", &m, &p);
    assert_int_equal(p.context, 7);
    assert_true(text_is(p.source, p.source_len, "1 + 1"));
    assert_null(p.identifier);
    assert_int_equal(p.timeout_ms, 0);
    proto_msg_release(&m);
    pass(proto_check_context_eval,
         "[18446744073709551615, \"x\", \"page.js\", {\"timeout_ms\": 9}]", &m,
         &p);
    assert_true(p.context == UINT64_MAX);
    assert_true(text_is(p.identifier, p.identifier_len, "page.js"));
    assert_int_equal(p.timeout_ms, 9);
    proto_msg_release(&m);
    pass(proto_check_context_eval, "[1, \"x\", null]", &m, &p);
    assert_null(p.identifier);
    assert_false(p.as_string);
    proto_msg_release(&m);
    pass(proto_check_context_eval, "[1, \"x\", null, {\"string\": true}]", &m,
         &p);
    assert_true(p.as_string);
    proto_msg_release(&m);

    /* The identifier must be there, if only as nil. */
    refuse(proto_check_context_eval, "[1, \"x\"]", -EINVAL,
           "params: expected 3 to 4 parameters, got 2");
    refuse(proto_check_context_eval, "[1, \"x\", \"i\", {}, 5]", -EINVAL,
           "params: expected 3 to 4 parameters, got 5");
    refuse(proto_check_context_eval, "[\"one\", \"1\", \"x.js\"]", -EINVAL,
           "params[0] (context): expected an unsigned integer, got a string");
    refuse(proto_check_context_eval, "[-1, \"1\", null]", -EINVAL,
           "params[0] (context): expected an unsigned integer, got a "
           "negative integer");
    refuse(proto_check_context_eval, "[1, 2, \"x.js\"]", -EINVAL,
           "params[1] (source): expected a string, got an integer");
    refuse(proto_check_context_eval, "[1, \"x\", 3]", -EINVAL,
           "params[2] (identifier): expected a string or nil, got an "
           "integer");
    refuse(proto_check_context_eval, "[1, \"x\", \"i\", []]", -EINVAL,
           "params[3] (options): expected a map or nil, got an array");
    refuse(proto_check_context_eval,
           "[1, \"x\", \"i\", {\"timeout_ms\": 4294967296}]", -EINVAL,
           "params[3] (options): timeout_ms 4294967296 is too large (at most "
           "4294967295)");
}

static void
test_context_call(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_context_call, "[1, \"Math.max\"]", &m, &p);
    assert_true(text_is(p.expression, p.expression_len, "Math.max"));
    assert_int_equal(p.args->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(p.args->via.array.size, 0);
    proto_msg_release(&m);
    pass(proto_check_context_call,
         "[1, \"Math.max\", [1, 2], {\"timeout_ms\": 3}]", &m, &p);
    assert_int_equal(p.args->via.array.size, 2);
    assert_int_equal(p.timeout_ms, 3);
    proto_msg_release(&m);

    refuse(proto_check_context_call, "[1]", -EINVAL,
           "params: expected 2 to 4 parameters, got 1");
    refuse(proto_check_context_call, "[1, 2]", -EINVAL,
           "params[1] (expression): expected a string, got an integer");
    refuse(proto_check_context_call, "[1, \"f\", 3]", -EINVAL,
           "params[2] (args): expected an array, got an integer");
    refuse(proto_check_context_call, "[1, \"f\", null]", -EINVAL,
           "params[2] (args): expected an array, got nil");
    refuse(proto_check_context_call, "[1, \"f\", [], {\"timeout_ms\": {}}]",
           -EINVAL,
           "params[3] (options): timeout_ms: expected an unsigned integer, "
           "got a map");
}

static void
test_context_load(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_context_load, "[1, [\"a.js\", \"b.js\"]]", &m, &p);
    assert_int_equal(p.paths->via.array.size, 2);
    proto_msg_release(&m);
    pass(proto_check_context_load, "[1, [], {\"timeout_ms\": 4}]", &m, &p);
    assert_int_equal(p.timeout_ms, 4);
    proto_msg_release(&m);

    refuse(proto_check_context_load, "[1]", -EINVAL,
           "params: expected 2 to 3 parameters, got 1");
    refuse(proto_check_context_load, "[1, [], {}, 4]", -EINVAL,
           "params: expected 2 to 3 parameters, got 4");
    refuse(proto_check_context_load, "[1, \"a.js\"]", -EINVAL,
           "params[1] (paths): expected an array, got a string");
    refuse(proto_check_context_load, "[1, [3]]", -EINVAL,
           "params[1] (paths): element 0 is not a string, it is an integer");
    refuse(proto_check_context_load, "[1, [\"a\", null]]", -EINVAL,
           "params[1] (paths): element 1 is not a string, it is nil");
    refuse(proto_check_context_load, "[1, [], {\"timeout_ms\": \"x\"}]",
           -EINVAL,
           "params[2] (options): timeout_ms: expected an unsigned integer, "
           "got a string");
}

static void
test_context_destroy(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_context_destroy, "[42]", &m, &p);
    assert_int_equal(p.context, 42);
    proto_msg_release(&m);
    refuse(proto_check_context_destroy, "[]", -EINVAL,
           "params: expected 1 parameter, got 0");
    refuse(proto_check_context_destroy, "[1, 2]", -EINVAL,
           "params: expected 1 parameter, got 2");
    refuse(proto_check_context_destroy, "[\"x\"]", -EINVAL,
           "params[0] (context): expected an unsigned integer, got a string");
}

static void
test_cancel(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_cancel, "[5]", &m, &p);
    assert_int_equal(p.msgid, 5);
    proto_msg_release(&m);
    pass(proto_check_cancel, "[4294967295]", &m, &p);
    assert_int_equal(p.msgid, UINT32_MAX);
    proto_msg_release(&m);
    refuse(proto_check_cancel, "[]", -EINVAL,
           "params: expected 1 parameter, got 0");
    refuse(proto_check_cancel, "[1, 2]", -EINVAL,
           "params: expected 1 parameter, got 2");
    refuse(proto_check_cancel, "[\"x\"]", -EINVAL,
           "params[0] (msgid): expected an unsigned integer, got a string");
    refuse(proto_check_cancel, "[4294967296]", -EINVAL,
           "params[0] (msgid): 4294967296 does not fit 32 bits");
}

static void
test_release(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    pass(proto_check_release, "[[1, 4294967295]]", &m, &p);
    assert_int_equal(p.callbacks->via.array.size, 2);
    assert_int_equal(p.callbacks->via.array.ptr[1].via.u64, UINT32_MAX);
    assert_int_equal(p.contexts->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(p.contexts->via.array.size, 0);
    proto_msg_release(&m);
    /* The manager's form for a worker: the contexts too. */
    pass(proto_check_release, "[[], [3, 18446744073709551615]]", &m, &p);
    assert_int_equal(p.callbacks->via.array.size, 0);
    assert_int_equal(p.contexts->via.array.size, 2);
    proto_msg_release(&m);
    refuse(proto_check_release, "[]", -EINVAL,
           "params: expected 1 to 2 parameters, got 0");
    refuse(proto_check_release, "[1]", -EINVAL,
           "params[0] (callbacks): expected an array, got an integer");
    refuse(proto_check_release, "[[\"x\"]]", -EINVAL,
           "params[0] (callbacks): element 0 is not an unsigned 32-bit "
           "integer, it is a string");
    refuse(proto_check_release, "[[1, 4294967296]]", -EINVAL,
           "params[0] (callbacks): element 1 is not an unsigned 32-bit "
           "integer, it is a larger one");
    refuse(proto_check_release, "[[1], [-1]]", -EINVAL,
           "params[1] (contexts): element 0 is not an unsigned 64-bit "
           "integer, it is a negative integer");
    refuse(proto_check_release, "[[1], null]", -EINVAL,
           "params[1] (contexts): expected an array, got nil");
}

static void
test_invoke(void **state)
{
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    /* A client's view: [callback, args]. */
    pass(proto_check_invoke, "[7, [1, \"x\"]]", &m, &p);
    assert_int_equal(p.callback_id, 7);
    assert_int_equal(p.args->via.array.size, 2);
    assert_int_equal(p.owner_call, 0);
    assert_int_equal(p.owner_context, 0);
    proto_msg_release(&m);
    /* A worker's to the manager: the owner too. */
    pass(proto_check_invoke, "[7, [], {\"call\": 4294967295}]", &m, &p);
    assert_int_equal(p.owner_call, UINT32_MAX);
    assert_int_equal(p.owner_context, 0);
    proto_msg_release(&m);
    pass(proto_check_invoke, "[7, [], {\"context\": 9}]", &m, &p);
    assert_int_equal(p.owner_call, 0);
    assert_int_equal(p.owner_context, 9);
    proto_msg_release(&m);
    refuse(proto_check_invoke, "[7]", -EINVAL,
           "params: expected 2 to 3 parameters, got 1");
    refuse(proto_check_invoke, "[-7, []]", -EINVAL,
           "params[0] (callback): expected an unsigned integer, got a "
           "negative integer");
    refuse(proto_check_invoke, "[4294967296, []]", -EINVAL,
           "params[0] (callback): 4294967296 does not fit 32 bits");
    refuse(proto_check_invoke, "[7, {}]", -EINVAL,
           "params[1] (args): expected an array, got a map");
    refuse(proto_check_invoke, "[7, [], 1]", -EINVAL,
           "params[2] (owner): expected a map, got an integer");
    refuse(proto_check_invoke, "[7, [], null]", -EINVAL,
           "params[2] (owner): expected a map, got nil");
    refuse(proto_check_invoke, "[7, [], {}]", -EINVAL,
           "params[2] (owner): expected {\"call\": msgid} or "
           "{\"context\": id}");
    refuse(proto_check_invoke, "[7, [], {\"call\": 1, \"context\": 2}]",
           -EINVAL,
           "params[2] (owner): expected {\"call\": msgid} or "
           "{\"context\": id}");
    refuse(proto_check_invoke, "[7, [], {\"call\": 1, \"x\": 2}]", -EINVAL,
           "params[2] (owner): expected {\"call\": msgid} or "
           "{\"context\": id}");
    refuse(proto_check_invoke, "[7, [], {\"call\": 0}]", -EINVAL,
           "params[2] (owner): call: expected an unsigned 32-bit integer "
           "above 0, got another one");
    refuse(proto_check_invoke, "[7, [], {\"call\": 4294967296}]", -EINVAL,
           "params[2] (owner): call: expected an unsigned 32-bit integer "
           "above 0, got another one");
    refuse(proto_check_invoke, "[7, [], {\"context\": \"x\"}]", -EINVAL,
           "params[2] (owner): context: expected an unsigned 64-bit integer "
           "above 0, got a string");
}

static void
test_timeout_and_errtype(void **state)
{
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    char cause[PROTO_CAUSE_MAX];
    uint32_t t = 99;
    (void)state;

    /* No options at all: the host's default. */
    assert_int_equal(proto_check_timeout(&nil, 3, &t, cause), 0);
    assert_int_equal(t, 0);
    assert_int_equal(proto_check_timeout(NULL, 3, &t, NULL), 0);

    assert_int_equal(proto_check_errtype(0), PROTO_ERR_NONE);
    assert_int_equal(proto_check_errtype(-EINVAL), PROTO_ERR_INVALID_ARGUMENT);
    assert_int_equal(proto_check_errtype(-EPROTONOSUPPORT), PROTO_ERR_PROTOCOL);
}

/* A response has no params: every checker says so rather than reading. */
static void
test_not_a_request(void **state)
{
    static const char resp[] = "\x94\x01\x01\xc0\xc0";
    struct proto_reader *r = proto_reader_new(0);
    char cause[PROTO_CAUSE_MAX];
    struct proto_params p;
    struct proto_msg m;
    (void)state;

    assert_int_equal(proto_reader_feed(r, resp, sizeof(resp) - 1), 0);
    assert_int_equal(proto_reader_next(r, &m, cause), 1);
    proto_reader_free(r);
    assert_int_equal(proto_check_call(&m, &p, cause), -EINVAL);
    assert_string_equal(
        cause, "params: the message has none (not a request or notification)");
    assert_int_equal(proto_check_status(&m, &p, cause), -EINVAL);
    proto_msg_release(&m);

    /* Taken as bytes: the same words. */
    r = proto_reader_new(0);
    assert_int_equal(proto_reader_feed(r, resp, sizeof(resp) - 1), 0);
    assert_int_equal(proto_reader_take(r, &m, cause), 1);
    cause[0] = '\0';
    assert_int_equal(proto_check_call(&m, &p, cause), -EINVAL);
    assert_string_equal(
        cause, "params: the message has none (not a request or notification)");
    proto_msg_release(&m);
    proto_reader_free(r);
}

/* A server's table: struct proto_method first, then its own handler. */
struct test_method {
    struct proto_method m;
    int handler;
};

static const struct test_method table[] = {
    {{PROTO_M_PING, proto_check_ping}, 1},
    {{PROTO_M_CALL, proto_check_call}, 2},
    {{PROTO_M_HELLO, proto_check_hello}, 3},
};

static const struct test_method *
find(const char *method, const char *params, enum proto_errtype *type,
     char *cause)
{
    const struct test_method *e;
    struct proto_params p;
    struct proto_msg m;

    struct proto_reader *r;
    const struct test_method *eb;
    enum proto_errtype tb;
    char cb[PROTO_CAUSE_MAX] = "";

    request(&m, method, params);
    e = (const struct test_method *)proto_method_find(
        table, sizeof(table) / sizeof(table[0]), sizeof(table[0]), &m, &p, type,
        cause);
    proto_msg_release(&m);
    /* Taken as bytes: the same entry, type and words. */
    r = request_bytes(&m, method, params);
    eb = (const struct test_method *)proto_method_find(
        table, sizeof(table) / sizeof(table[0]), sizeof(table[0]), &m, &p, &tb,
        cb);
    assert_ptr_equal(e, eb);
    assert_int_equal(*type, tb);
    if (e == NULL)
        assert_string_equal(cause, cb);
    proto_msg_release(&m);
    proto_reader_free(r);
    return e;
}

static void
test_method_find(void **state)
{
    const struct test_method *e;
    enum proto_errtype type;
    char cause[PROTO_CAUSE_MAX], method[200];
    (void)state;

    e = find(PROTO_M_CALL, "[\"h\", \"f\", 1]", &type, cause);
    assert_non_null(e);
    assert_int_equal(e->handler, 2);
    assert_int_equal(type, PROTO_ERR_NONE);
    e = find(PROTO_M_PING, "[]", &type, cause);
    assert_non_null(e);
    assert_int_equal(e->handler, 1);

    assert_null(find("frobnicate", "[]", &type, cause));
    assert_int_equal(type, PROTO_ERR_NOT_FOUND);
    assert_string_equal(cause, "no method 'frobnicate'");
    /* A method name is not a prefix match. */
    assert_null(find("pingpong", "[]", &type, cause));
    assert_int_equal(type, PROTO_ERR_NOT_FOUND);
    /* The words keep the first 64 bytes of a long name. */
    memset(method, 'x', 150);
    method[150] = '\0';
    assert_null(find(method, "[]", &type, cause));
    assert_int_equal(strlen(cause), strlen("no method ''") + 64);

    assert_null(find(PROTO_M_CALL, "[\"h\"]", &type, cause));
    assert_int_equal(type, PROTO_ERR_INVALID_ARGUMENT);
    assert_string_equal(cause, "params: expected 3 to 4 parameters, got 1");
    assert_null(find(PROTO_M_HELLO, "[{\"protocol\": 7}]", &type, cause));
    assert_int_equal(type, PROTO_ERR_PROTOCOL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_attach),
        cmocka_unit_test(test_detach_direct_restart_stop),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_no_params),
        cmocka_unit_test(test_call),
        cmocka_unit_test(test_context_create),
        cmocka_unit_test(test_context_eval),
        cmocka_unit_test(test_context_call),
        cmocka_unit_test(test_context_load),
        cmocka_unit_test(test_context_destroy),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_invoke),
        cmocka_unit_test(test_timeout_and_errtype),
        cmocka_unit_test(test_not_a_request),
        cmocka_unit_test(test_method_find),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
