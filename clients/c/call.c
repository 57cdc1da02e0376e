/* Blocking requests (docs/protocol.md) and everything built on them: attach,
 * call, contexts, the manager's actions. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jshost_defs.h"
#include "jshost_priv.h"

/*
 * The manager runs in another directory: a relative config path is made
 * absolute here, against the caller's cwd (not realpath'd, so a missing file
 * is still the manager's ConfigError). Host ids pass unchanged. Returns the
 * string to send (s itself or buf).
 */
static const char *
absolute(const char *s, char *buf, size_t len, bool always)
{
    char cwd[PATH_MAX];

    if (s == NULL || s[0] == '/' || s[0] == '\0')
        return s;
    if (!always && strchr(s, '/') == NULL && access(s, F_OK) != 0)
        return s;
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return s;
    if (snprintf(buf, len, "%s/%s", cwd, s) >= (int)len)
        return s;
    return buf;
}

/* Where a request's error goes: the handle itself, or the caller's own slots
 * (shared handles). The sink is a jshost struct so jshost__seterr fits both. */
struct errout {
    jshost sink;
    int *errcode;
    jshost_error *err;
    char *errstr;
    size_t errstr_len;
};

static void
errout_init(struct errout *eo, jshost *c, int *errcode, jshost_error *err,
            char *errstr, size_t errstr_len)
{
    jshost__sink_init(&eo->sink, c->priv);
    eo->errcode = errcode;
    eo->err = err;
    eo->errstr = errstr;
    eo->errstr_len = errstr_len;
}

/* Hands the sink's error to whoever asked for it. */
static int
errout_finish(struct errout *eo, jshost *c, int r)
{
    if (eo->errcode == NULL && eo->err == NULL && eo->errstr == NULL) {
        pthread_mutex_lock(&c->priv->errlock);
        jshost_error_clear(&c->remote);
        c->err = eo->sink.err;
        snprintf(c->errstr, sizeof(c->errstr), "%s", eo->sink.errstr);
        c->remote = eo->sink.remote;
        pthread_mutex_unlock(&c->priv->errlock);
        return r;
    }
    if (eo->errcode != NULL)
        *eo->errcode = eo->sink.err;
    if (eo->errstr != NULL && eo->errstr_len > 0) {
        if (eo->sink.err == JSHOST_ERR_NONE)
            eo->errstr[0] = '\0';
        else
            snprintf(eo->errstr, eo->errstr_len, "%s", eo->sink.errstr);
    }
    if (eo->err != NULL)
        *eo->err = eo->sink.remote;
    else
        jshost_error_clear(&eo->sink.remote);
    return r;
}

/* A blocking call: send, wait, and send once more when the connection was
 * lost before any byte of it left. A call of a host attached here goes to
 * one of its workers directly when it can (direct.c). */
int
jshost__request(jshost *c, jshost *eo, const char *method,
                const struct iovec *parts, int nparts, int64_t wait_ms,
                char *buf, size_t cap, jshost_value *result)
{
    jshost_priv *p = c->priv;
    struct jshost__call call;
    int64_t deadline;
    bool resent = false;
    int r;

    if (strcmp(method, "call") == 0 &&
        (r = jshost__direct_call(c, eo, parts, nparts, &wait_ms, buf, cap,
                                 result)) <= 0)
        return r;
    if (wait_ms == JSHOST__WAIT_HOST)
        wait_ms = JSHOST__JS_DEFAULT_WAIT_MS;
    deadline = wait_ms < 0 ? -1 : jshost__now_ms() + wait_ms;
    jshost__enter(c);
again:
    if (p->fd < 0 && p->direct_conn) {
        /* A worker's socket is not connected again: it went. */
        jshost__leave(c);
        return JSHOST__UNSENT;
    }
    if (p->fd < 0 && jshost__reconnect_locked(eo) < 0) {
        jshost__leave(c);
        return -1;
    }
    jshost__call_init(&call, false);
    call.buf = buf;
    call.cap = cap;
    if (jshost__call_send(p, &call, method, parts, nparts) == -ENOMEM) {
        jshost__leave(c);
        return jshost__seterr(eo, JSHOST_ERR_OOM, "%s: out of memory", method);
    }
    r = jshost__call_wait(p, &call, deadline, false);
    if (r == 1) /* answered, and the lock is no longer ours */
        return jshost__call_result(eo, &call, method, result);
    if (r == -ETIMEDOUT || r == -EINTR) {
        /* Given up on here: stopped on the server too (its answer, if one
         * comes, is dropped). */
        if (p->fd >= 0)
            (void)jshost__cancel_locked(p, call.msgid);
        jshost__leave(c);
        if (r == -EINTR)
            return jshost__seterr(eo, JSHOST_ERR_CANCELLED,
                                  "%s: interrupted (cancelled)", method);
        return jshost__seterr(eo, JSHOST_ERR_TIMEOUT,
                              "%s: no reply within %lld ms", method,
                              (long long)wait_ms);
    }
    if (p->direct_conn && call.state != JSHOST__CALL_DONE &&
        atomic_load(&p->draining)) {
        /* The worker said it drains, then closed: it had stopped reading,
         * and answers all it read before it closes, so this call never
         * ran. It may go elsewhere. */
        jshost__leave(c);
        return JSHOST__UNSENT;
    }
    if (call.state == JSHOST__CALL_LOST_UNSENT && !resent) {
        /* Nothing of it reached the server: safe to send once more. */
        resent = true;
        goto again;
    }
    /* Under the lock: the words of a lost connection live in the handle. */
    r = jshost__call_result(eo, &call, method, result);
    jshost__leave(c);
    return r;
}

/* jshost_request's wait: timeout_ms plus the margin, 0 the default (for a
 * call, its host's deadline plus the margin), -1 none. */
static int64_t
request_wait(const char *method, int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    if (timeout_ms == 0)
        return strcmp(method, "call") == 0 ? JSHOST__WAIT_HOST
                                           : JSHOST__REQUEST_DEFAULT_MS;
    return (int64_t)timeout_ms + JSHOST__MARGIN_MS;
}

int
jshost_request(jshost *c, const char *method, const char *params,
               size_t params_len, int timeout_ms, jshost_value *result,
               int *errcode, jshost_error *err, char *errstr, size_t errstr_len)
{
    struct errout eo;
    struct iovec part = {(void *)params, params_len};
    int r;

    if (result != NULL) {
        result->data = NULL;
        result->len = 0;
    }
    errout_init(&eo, c, errcode, err, errstr, errstr_len);
    /* The params sit one level down in the request. */
    if (method == NULL ||
        !jshost__valid_value(params, params_len, true, PROTO_MAX_DEPTH - 1))
        r = jshost__seterr(&eo.sink, JSHOST_ERR_ARG,
                           "%s: params are not one packed msgpack array",
                           method != NULL ? method : "(no method)");
    else
        r = jshost__request(c, &eo.sink, method, &part, 1,
                            request_wait(method, timeout_ms), NULL, 0, result);
    return errout_finish(&eo, c, r);
}

int
jshost__request_into(jshost *c, const char *method, const char *params,
                     size_t params_len, int timeout_ms, char *buf, size_t cap,
                     jshost_value *result, int *errcode, jshost_error *err,
                     char *errstr, size_t errstr_len)
{
    struct errout eo;
    struct iovec part = {(void *)params, params_len};

    result->data = NULL;
    result->len = 0;
    errout_init(&eo, c, errcode, err, errstr, errstr_len);
    return errout_finish(&eo, c,
                         jshost__request(c, &eo.sink, method, &part, 1,
                                         request_wait(method, timeout_ms), buf,
                                         cap, result));
}

/* A packer over a fresh sbuffer (the caller destroys it). */
static void
packer_init(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static void
pack_timeout_opts(msgpack_packer *pk, int timeout_ms)
{
    if (timeout_ms > 0) {
        msgpack_pack_map(pk, 1);
        proto_pack_cstr(pk, "timeout_ms");
        msgpack_pack_uint32(pk, (uint32_t)timeout_ms);
    } else {
        msgpack_pack_map(pk, 0);
    }
}

/* The client-side wait for a JS run with the given deadline (see jshost.h). */
static int64_t
js_wait(int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    if (timeout_ms == 0)
        return JSHOST__WAIT_HOST;
    return (int64_t)timeout_ms + JSHOST__MARGIN_MS;
}

/* Sends sb as params, then frees it. */
static int
send_packed(jshost *c, const char *method, msgpack_sbuffer *sb, int64_t wait,
            jshost_value *result)
{
    struct errout eo;
    struct iovec part = {sb->data, sb->size};
    int r;

    if (result != NULL) {
        result->data = NULL;
        result->len = 0;
    }
    errout_init(&eo, c, NULL, NULL, NULL, 0);
    r = jshost__request(c, &eo.sink, method, &part, 1, wait, NULL, 0, result);
    msgpack_sbuffer_destroy(sb);
    return errout_finish(&eo, c, r);
}

/*
 * A call of a host's function (the data already checked), its params
 * [host, function, data, options] written as pieces around the caller's own
 * bytes: nothing copied, nothing allocated.
 */
static int
call_function(jshost *c, jshost *eo, const char *host, const char *function,
              const char *data, size_t data_len, int timeout_ms,
              jshost_value *result)
{
    static const char nil = (char)0xc0;
    unsigned char head[8], fhead[8], opts[20];
    size_t host_len = strlen(host), function_len = strlen(function);
    struct iovec iov[6];

    head[0] = 0x94;
    iov[0] = (struct iovec){head, 1 + jshost__str_head(head + 1, host_len)};
    iov[1] = (struct iovec){(void *)host, host_len};
    iov[2] = (struct iovec){fhead, jshost__str_head(fhead, function_len)};
    iov[3] = (struct iovec){(void *)function, function_len};
    if (data != NULL)
        iov[4] = (struct iovec){(void *)data, data_len};
    else
        iov[4] = (struct iovec){(void *)&nil, 1};
    if (timeout_ms > 0) {
        opts[0] = 0x81;
        opts[1] = 0xaa;
        memcpy(opts + 2, "timeout_ms", 10);
        iov[5] = (struct iovec){
            opts, 12 + jshost__pack_uint(opts + 12, (uint32_t)timeout_ms)};
    } else {
        opts[0] = 0x80;
        iov[5] = (struct iovec){opts, 1};
    }
    return jshost__request(c, eo, "call", iov, 6, js_wait(timeout_ms), NULL, 0,
                           result);
}

int
jshost_call_r(jshost *c, const char *host, const char *function,
              const char *data, size_t data_len, int timeout_ms,
              jshost_value *result, int *errcode, jshost_error *err,
              char *errstr, size_t errstr_len)
{
    struct errout eo;
    int r;

    errout_init(&eo, c, errcode, err, errstr, errstr_len);
    if (result != NULL) {
        result->data = NULL;
        result->len = 0;
    }
    if (host == NULL || function == NULL)
        r = jshost__seterr(&eo.sink, JSHOST_ERR_ARG,
                           "call: host and function are required");
    else if (data != NULL &&
             !jshost__valid_value(data, data_len, false, PROTO_VALUE_MAX_DEPTH))
        r = jshost__seterr(&eo.sink, JSHOST_ERR_ARG,
                           "call %s: data is not one packed msgpack value "
                           "(nesting at most %d levels)",
                           function, PROTO_VALUE_MAX_DEPTH);
    else
        r = call_function(c, &eo.sink, host, function, data, data_len,
                          timeout_ms, result);
    return errout_finish(&eo, c, r);
}

int
jshost_call(jshost *c, const char *host, const char *function, const char *data,
            size_t data_len, int timeout_ms, jshost_value *result)
{
    return jshost_call_r(c, host, function, data, data_len, timeout_ms, result,
                         NULL, NULL, NULL, 0);
}

void
jshost__held_free(jshost_priv *p)
{
    struct jshost__held *h, *next;

    for (h = p->held; h != NULL; h = next) {
        next = h->next;
        free(h->config);
        free(h->host);
        free(h);
    }
    p->held = NULL;
}

static int
held_add(jshost_priv *p, const char *config, const char *host)
{
    struct jshost__held *h;

    for (h = p->held; h != NULL; h = h->next) {
        if (strcmp(h->host, host) == 0) {
            h->count++;
            return 0;
        }
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->config = strdup(config);
    h->host = strdup(host);
    if (h->config == NULL || h->host == NULL) {
        free(h->config);
        free(h->host);
        free(h);
        return -ENOMEM;
    }
    h->count = 1;
    h->next = p->held;
    p->held = h;
    return 0;
}

/* Releases one hold; true when it was the last. */
static bool
held_remove(jshost_priv *p, const char *host)
{
    struct jshost__held **pp, *h;

    for (pp = &p->held; *pp != NULL; pp = &(*pp)->next) {
        h = *pp;
        if (strcmp(h->host, host) != 0)
            continue;
        if (--h->count > 0)
            return false;
        *pp = h->next;
        free(h->config);
        free(h->host);
        free(h);
        return true;
    }
    return false;
}

int
jshost_attach(jshost *c, const char *config_path, char **host,
              jshost_value *info)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value v = {0};
    msgpack_unpacked u;
    const msgpack_object *id;
    char *s = NULL;
    char abs[PATH_MAX];
    int r;

    *host = NULL;
    config_path = absolute(config_path, abs, sizeof(abs), true);
    if (info != NULL) {
        info->data = NULL;
        info->len = 0;
    }
    if (config_path == NULL)
        return jshost__seterr(c, JSHOST_ERR_ARG, "attach: no config path");
    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 2);
    proto_pack_cstr(&pk, config_path);
    msgpack_pack_map(&pk, 0);
    if (send_packed(c, "attach", &sb, JSHOST__REQUEST_DEFAULT_MS, &v) < 0)
        return -1;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, v.data, v.len, NULL) ==
            MSGPACK_UNPACK_SUCCESS &&
        (id = proto_map_get(&u.data, "host")) != NULL &&
        (s = proto_obj_strdup(id)) != NULL)
        jshost__direct_attached(c, s, config_path, &u.data);
    msgpack_unpacked_destroy(&u);
    if (s == NULL) {
        jshost_value_free(&v);
        return jshost__seterr(c, JSHOST_ERR_PROTOCOL,
                              "attach %s: the reply names no host",
                              config_path);
    }
    jshost__enter(c);
    r = held_add(c->priv, config_path, s);
    jshost__leave(c);
    if (r < 0) {
        free(s);
        jshost_value_free(&v);
        return jshost__seterr(c, JSHOST_ERR_OOM, "out of memory");
    }
    *host = s;
    if (info != NULL)
        *info = v;
    else
        jshost_value_free(&v);
    return 0;
}

int
jshost_detach(jshost *c, const char *host)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    if (host == NULL)
        return jshost__seterr(c, JSHOST_ERR_ARG, "detach: no host");
    /* Forget it first: even if detach fails, it is not ours to re-attach. */
    jshost__enter(c);
    if (held_remove(c->priv, host))
        jshost__direct_detached(c, host);
    jshost__leave(c);
    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 1);
    proto_pack_cstr(&pk, host);
    return send_packed(c, "detach", &sb, JSHOST__REQUEST_DEFAULT_MS, NULL);
}

int
jshost_context_create(jshost *c, const char *host, const char *cwd,
                      uint32_t memory_mb, uint32_t timeout_ms, uint64_t *ctx)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value v = {0};
    msgpack_unpacked u;
    char here[PATH_MAX];
    int r = 0;

    *ctx = 0;
    if (cwd == NULL)
        cwd = getcwd(here, sizeof(here)) != NULL ? here : "/";
    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 2);
    proto_pack_cstr(&pk, host);
    msgpack_pack_map(&pk, 1 + (memory_mb > 0) + (timeout_ms > 0));
    proto_pack_cstr(&pk, "cwd");
    proto_pack_cstr(&pk, cwd);
    if (memory_mb > 0) {
        proto_pack_cstr(&pk, "memory");
        msgpack_pack_uint32(&pk, memory_mb);
    }
    if (timeout_ms > 0) {
        proto_pack_cstr(&pk, "timeout_ms");
        msgpack_pack_uint32(&pk, timeout_ms);
    }
    /* A private VM is a worker start: allow for it. */
    if (send_packed(c, "context.create", &sb, JSHOST__REQUEST_DEFAULT_MS, &v) <
        0)
        return -1;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, v.data, v.len, NULL) ==
            MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *ctx = u.data.via.u64;
    else
        r = jshost__seterr(c, JSHOST_ERR_PROTOCOL,
                           "context.create: the reply is not a context id");
    msgpack_unpacked_destroy(&u);
    jshost_value_free(&v);
    return r;
}

int
jshost_context_eval(jshost *c, uint64_t ctx, const char *source,
                    const char *identifier, int timeout_ms,
                    jshost_value *result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    if (source == NULL)
        return jshost__seterr(c, JSHOST_ERR_ARG, "context.eval: no source");
    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, ctx);
    proto_pack_cstr(&pk, source);
    proto_pack_cstr(&pk, identifier != NULL ? identifier : "<eval>");
    pack_timeout_opts(&pk, timeout_ms);
    return send_packed(c, "context.eval", &sb, js_wait(timeout_ms), result);
}

int
jshost_context_call(jshost *c, uint64_t ctx, const char *expression,
                    const char *args, size_t args_len, int timeout_ms,
                    jshost_value *result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    if (expression == NULL)
        return jshost__seterr(c, JSHOST_ERR_ARG, "context.call: no expression");
    if (args != NULL &&
        !jshost__valid_value(args, args_len, true, PROTO_VALUE_MAX_DEPTH))
        return jshost__seterr(c, JSHOST_ERR_ARG,
                              "context.call %s: args are not one packed array",
                              expression);
    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, ctx);
    proto_pack_cstr(&pk, expression);
    if (args != NULL)
        msgpack_sbuffer_write(&sb, args, args_len);
    else
        msgpack_pack_array(&pk, 0);
    pack_timeout_opts(&pk, timeout_ms);
    return send_packed(c, "context.call", &sb, js_wait(timeout_ms), result);
}

int
jshost_context_load(jshost *c, uint64_t ctx, const char *const *paths,
                    size_t npaths, int timeout_ms)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t i;

    if (npaths > 0 && paths == NULL)
        return jshost__seterr(c, JSHOST_ERR_ARG, "context.load: no paths");
    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, ctx);
    msgpack_pack_array(&pk, (uint32_t)npaths);
    for (i = 0; i < npaths; i++)
        proto_pack_cstr(&pk, paths[i]);
    pack_timeout_opts(&pk, timeout_ms);
    return send_packed(c, "context.load", &sb, js_wait(timeout_ms), NULL);
}

int
jshost_context_destroy(jshost *c, uint64_t ctx)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, ctx);
    return send_packed(c, "context.destroy", &sb, JSHOST__REQUEST_DEFAULT_MS,
                       NULL);
}

static int
manager_action(jshost *c, const char *method, const char *what,
               jshost_value *result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char abs[PATH_MAX];

    what = absolute(what, abs, sizeof(abs), false);
    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 1);
    proto_pack_cstr(&pk, what); /* NULL packs nil */
    return send_packed(c, method, &sb, JSHOST__REQUEST_DEFAULT_MS, result);
}

int
jshost_status(jshost *c, const char *config_or_host, jshost_value *result)
{
    return manager_action(c, "status", config_or_host, result);
}

int
jshost_restart(jshost *c, const char *config_or_host, jshost_value *result)
{
    if (config_or_host == NULL)
        return jshost__seterr(c, JSHOST_ERR_ARG, "restart: no config or host");
    return manager_action(c, "restart", config_or_host, result);
}

int
jshost_stop(jshost *c, const char *config_or_host, jshost_value *result)
{
    if (config_or_host == NULL)
        return jshost__seterr(c, JSHOST_ERR_ARG, "stop: no config or host");
    return manager_action(c, "stop", config_or_host, result);
}

int
jshost_shutdown(jshost *c)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    packer_init(&sb, &pk);
    msgpack_pack_array(&pk, 0);
    r = send_packed(c, "shutdown", &sb, JSHOST__REQUEST_DEFAULT_MS, NULL);
    /* A manager that exits before its reply gets through did shut down. */
    if (r < 0 && c->err == JSHOST_ERR_IO &&
        strstr(c->errstr, "connection lost") != NULL)
        r = 0;
    if (r == 0) {
        jshost__enter(c);
        jshost__held_free(c->priv);
        if (!c->priv->driving)
            jshost__disconnect(c->priv);
        jshost__leave(c);
        c->err = JSHOST_ERR_NONE;
        c->errstr[0] = '\0';
    }
    return r;
}
