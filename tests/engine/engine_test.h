/*
 * The engine tests' binding to engine.h: a js_engine on a uv loop of each
 * test's own, calls and evals waited for on that loop, results printed from
 * msgpack to text. Apart from tests/support because it links the engine (V8),
 * which no other suite may; dirs, files and waits are tu's.
 */
#ifndef JSHOST_TESTS_ENGINE_TEST_H
#define JSHOST_TESTS_ENGINE_TEST_H

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>
#include <uv.h>

#include "engine.h"
#include "tu_loop.h"

struct fx {
    char *dir; /* tu_tmpdir */
    uv_loop_t loop;
    js_engine *e;
    struct js_error err;
};

struct result {
    int done;
    int ok;
    char text[8192]; /* the value, printed */
    struct js_error err;
};

static inline int
fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->dir = tu_tmpdir();
    if (uv_loop_init(&f->loop) != 0)
        return -1;
    *state = f;
    return 0;
}

static inline int
fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->e != NULL)
        js_engine_free(f->e);
    f->e = NULL;
    TU_LOOP_DRAIN(&f->loop, TU_WAIT_MS);
    int rc = uv_loop_close(&f->loop);
    js_error_free(&f->err);
    tu_rmtree(f->dir);
    free(f);
    assert_int_equal(rc, 0);
    return 0;
}

/* Writes dir/name (making parent folders). */
static inline void
put(struct fx *f, const char *name, const char *text)
{
    free(tu_write_file(f->dir, name, text));
}

static inline const char *
path_of(struct fx *f, const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    return path;
}

/* Loads name as the config; 0 or the js_engine_new error (f->err set). */
static inline int
load_opts(struct fx *f, const char *name, uint32_t memory_mb,
          uint32_t timeout_ms)
{
    struct js_engine_options o;
    memset(&o, 0, sizeof o);
    o.config_path = name ? path_of(f, name) : NULL;
    o.memory_mb = memory_mb;
    o.timeout_ms = timeout_ms;
    o.cwd = f->dir;
    js_error_free(&f->err);
    return js_engine_new(&f->loop, &o, &f->e, &f->err);
}

static inline void
load(struct fx *f, const char *name)
{
    int rc = load_opts(f, name, 0, 0);
    if (rc != 0)
        fprintf(stderr, "config error: %s\n", f->err.message);
    assert_int_equal(rc, 0);
    assert_non_null(f->e);
}

static inline char *
jdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void
done_cb(void *arg, const char *value, size_t len, const struct js_error *error)
{
    struct result *r = arg;
    assert_int_equal(r->done, 0); /* exactly once */
    r->done = 1;
    if (error != NULL) {
        r->ok = 0;
        r->err.type = error->type;
        r->err.message = jdup(error->message);
        r->err.name = jdup(error->name);
        r->err.stack = jdup(error->stack);
        r->err.file = jdup(error->file);
        r->err.line = error->line;
        r->err.column = error->column;
        return;
    }
    r->ok = 1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, value, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    msgpack_object_print_buffer(r->text, sizeof r->text, u.data);
    msgpack_unpacked_destroy(&u);
}

/* The callback runs exactly once (done_cb asserts it); a run that never
 * calls back fails the test with words instead of hanging it. */
static inline void
wait_for(struct fx *f, struct result *r)
{
    TU_LOOP_UNTIL(&f->loop, r->done, TU_WAIT_MS);
}

static inline void
result_free(struct result *r)
{
    js_error_free(&r->err);
}

/* A msgpack object packed, as the engine takes values: one item's bytes,
 * malloc'd (release with span_free). */
static inline struct proto_span
packed(const msgpack_object *o)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct proto_span s;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_object(&pk, *o), 0);
    s.ptr = sb.data;
    s.len = sb.size;
    return s;
}

static inline void
span_free(struct proto_span s)
{
    free((void *)s.ptr);
}

/* js_call with data given as an object built by the caller (its bytes are
 * only needed while js_call runs). */
static inline void
start_obj(struct fx *f, const char *name, const msgpack_object *data,
          uint32_t timeout_ms, struct result *r)
{
    struct proto_span s = packed(data);

    memset(r, 0, sizeof *r);
    assert_int_equal(
        js_call(f->e, name, strlen(name), s, timeout_ms, done_cb, r), 0);
    span_free(s);
}

/* Calls name with data given as JSON-ish msgpack built by the caller. */
static inline void
call_obj(struct fx *f, const char *name, const msgpack_object *data,
         uint32_t timeout_ms, struct result *r)
{
    start_obj(f, name, data, timeout_ms, r);
    wait_for(f, r);
}

static inline void
call(struct fx *f, const char *name, struct result *r)
{
    msgpack_object nil;
    memset(&nil, 0, sizeof nil);
    nil.type = MSGPACK_OBJECT_NIL;
    call_obj(f, name, &nil, 0, r);
}

/* A call with an int as data. */
static inline void
call_int(struct fx *f, const char *name, int64_t n, struct result *r)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    if (n >= 0) {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = (uint64_t)n;
    } else {
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = n;
    }
    call_obj(f, name, &o, 0, r);
}

static inline uint32_t
new_context(struct fx *f)
{
    uint32_t id = 0;
    struct js_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(js_context_create(f->e, f->dir, &id, &err), 0);
    assert_true(id > 0);
    js_error_free(&err);
    return id;
}

static inline void
eval_t(struct fx *f, uint32_t ctx, const char *src, const char *ident,
       uint32_t timeout_ms, struct result *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(js_context_eval(f->e, ctx, src, strlen(src), ident,
                                     ident ? strlen(ident) : 0, timeout_ms, 0,
                                     done_cb, r),
                     0);
    wait_for(f, r);
}

static inline void
eval(struct fx *f, uint32_t ctx, const char *src, struct result *r)
{
    eval_t(f, ctx, src, "test.js", 0, r);
}

/* Evaluates src in ctx and checks its printed value. */
static inline void
expect_eval(struct fx *f, uint32_t ctx, const char *src, const char *want)
{
    struct result r;
    eval(f, ctx, src, &r);
    if (!r.ok)
        fprintf(stderr, "eval %s failed: %s\n", src,
                r.err.stack ? r.err.stack : r.err.message);
    assert_true(r.ok);
    assert_string_equal(r.text, want);
    result_free(&r);
}

static inline void
expect_ok(struct result *r, const char *want)
{
    if (!r->ok)
        fprintf(stderr, "failed: %s: %s\n", r->err.message,
                r->err.stack ? r->err.stack : "");
    assert_true(r->ok);
    assert_string_equal(r->text, want);
}

#endif
