/* Reverse calls (jshost.h): invokes read from the server, handed to the
 * invoke handler and answered; and what goes with calls besides requests:
 * cancel, release, and jshost_serve / jshost_serve_wake. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ext.h"
#include "jshost_priv.h"
#include "methods.h"

/* Notes rid as awaiting its answer (lock held). 0 or -ENOMEM. */
static int
rid_add(jshost_priv *p, uint32_t rid)
{
    uint32_t *rids;
    size_t cap;

    if (p->inv_nrids == p->inv_cap) {
        cap = p->inv_cap > 0 ? p->inv_cap * 2 : 16;
        if ((rids = realloc(p->inv_rids, cap * sizeof(*rids))) == NULL)
            return -ENOMEM;
        p->inv_rids = rids;
        p->inv_cap = cap;
    }
    p->inv_rids[p->inv_nrids++] = rid;
    return 0;
}

/* Takes rid off those awaiting an answer; false when it is not one. */
static bool
rid_take(jshost_priv *p, uint32_t rid)
{
    size_t i;

    for (i = 0; i < p->inv_nrids; i++) {
        if (p->inv_rids[i] == rid) {
            p->inv_rids[i] = p->inv_rids[--p->inv_nrids];
            return true;
        }
    }
    return false;
}

/* An invoke's params, [callback_id, args]: the id and the args' bytes. */
static bool
invoke_params(const struct proto_raw *raw, uint32_t *id, const char **args,
              size_t *len)
{
    struct proto_cur cur;
    struct proto_item it;
    size_t end;

    if (raw->nparams < 2)
        return false;
    proto_cur_init(&cur, raw->bytes + raw->param_at[0],
                   raw->size - raw->param_at[0]);
    if (proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_UINT ||
        it.v.u > UINT32_MAX)
        return false;
    *id = (uint32_t)it.v.u;
    /* The args run to the next param, or to the end of the message. */
    end = raw->nparams > 2 ? raw->param_at[2] : raw->size;
    *args = raw->bytes + raw->param_at[1];
    *len = end - raw->param_at[1];
    proto_cur_init(&cur, *args, *len);
    return proto_cur_next(&cur, &it) == 0 && it.type == PROTO_T_ARRAY;
}

/*
 * [0, rid, "invoke", [callback_id, args]]: queued for the handler, which
 * jshost__drive calls once the lock is released. Answered at once when there
 * is no handler or nobody may be called now (a connection being set up), and
 * when its params are not what docs/protocol.md says.
 */
void
jshost__handle_invoke(jshost_priv *p, const struct proto_raw *raw)
{
    struct jshost__invoke *inv = NULL;
    msgpack_packer pk;
    const char *args, *words = NULL;
    enum proto_errtype type = PROTO_ERR_NONE;
    uint32_t id;
    size_t len, before;

    if (p->invoke_fn == NULL || !p->driving) {
        type = PROTO_ERR_NOT_FOUND;
        words = "this client serves no callables";
    } else if (!invoke_params(raw, &id, &args, &len)) {
        type = PROTO_ERR_INVALID_ARGUMENT;
        words = "invoke: params must be [callback_id, args]";
    } else if ((inv = malloc(sizeof(*inv) + len)) == NULL ||
               rid_add(p, raw->msgid) < 0) {
        free(inv);
        type = PROTO_ERR_MEMORY;
        words = "libjshost ran out of memory taking this invoke";
    }
    if (type != PROTO_ERR_NONE) {
        before = jshost__queue_begin(p, &pk);
        /* Out of memory: no answer, as if the request had not come. */
        (void)jshost__queue_end(
            p, before, proto_write_errorf(&pk, raw->msgid, type, "%s", words));
        return;
    }
    inv->next = NULL;
    inv->rid = raw->msgid;
    inv->callback_id = id;
    inv->len = len;
    memcpy(inv->args, args, len);
    if (p->inv_tail != NULL)
        p->inv_tail->next = inv;
    else
        p->inv_head = inv;
    p->inv_tail = inv;
}

/* Hands the invokes read to the handler, the lock released meanwhile (the
 * driver role stays ours, so nobody else reads). */
void
jshost__run_invokes(jshost_priv *p)
{
    struct jshost__invoke *inv = p->inv_head, *next;
    jshost_invoke_fn fn = p->invoke_fn;
    void *user = p->invoke_user;

    p->inv_head = p->inv_tail = NULL;
    jshost__unlock(p);
    for (; inv != NULL; inv = next) {
        next = inv->next;
        fn(p->self, inv->rid, inv->callback_id, inv->args, inv->len, user);
        free(inv);
    }
    pthread_mutex_lock(&p->lock);
}

/* A notification [2, method, [ids...]] (or [[ids...]] when `nested`) sent
 * with jshost__send_msg (lock held). */
static int
send_ids(jshost_priv *p, const char *method, const uint32_t *ids, size_t n,
         bool nested)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct iovec iov;
    size_t i;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    r = proto_write_notification(&pk, method, nested ? 1 : (uint32_t)n);
    if (nested)
        r |= msgpack_pack_array(&pk, n);
    for (i = 0; i < n; i++)
        r |= msgpack_pack_uint32(&pk, ids[i]);
    if (r != 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    iov = (struct iovec){sb.data, sb.size};
    r = jshost__send_msg(p, &iov, 1);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int
jshost__cancel_locked(jshost_priv *p, uint32_t msgid)
{
    return send_ids(p, PROTO_N_CANCEL, &msgid, 1, false);
}

/* The words for a failed jshost__send_msg of `what`. Returns -1. */
static int
send_failed(jshost *c, const char *what, int r)
{
    if (r == -ENOMEM)
        return jshost__seterr(c, JSHOST_ERR_OOM, "%s: out of memory", what);
    if (r == -ENOTCONN)
        return jshost__seterr(c, JSHOST_ERR_IO, "%s: not connected", what);
    return jshost__seterr(c, JSHOST_ERR_IO, "%s: write: %s", what,
                          strerror(-r));
}

int
jshost_cancel(jshost *c, uint32_t msgid)
{
    int r;

    jshost__enter(c);
    r = jshost__cancel_locked(c->priv, msgid);
    jshost__leave(c);
    if (r < 0)
        return send_failed(c, "cancel", r);
    return 0;
}

void
jshost_callable(uint32_t callback_id, char out[JSHOST_CALLABLE_SIZE])
{
    out[0] = (char)0xd6; /* fixext 4 */
    out[1] = PROTO_EXT_CALLABLE;
    out[2] = (char)(callback_id >> 24);
    out[3] = (char)(callback_id >> 16);
    out[4] = (char)(callback_id >> 8);
    out[5] = (char)callback_id;
}

void
jshost_set_invoke_handler(jshost *c, jshost_invoke_fn fn, void *user)
{
    jshost__enter(c);
    c->priv->invoke_fn = fn;
    c->priv->invoke_user = user;
    jshost__leave(c);
    jshost__direct_inherit_all(c->priv);
}

/* [1, rid, error, result] from the error's and the result's bytes (one of
 * them nil). */
static int
invoke_answer(jshost *c, uint32_t rid, const char *error, size_t error_len,
              const char *value, size_t len)
{
    static const char nil = (char)0xc0;
    jshost_priv *p = c->priv;
    unsigned char head[8] = {0x94, 0x01};
    struct iovec iov[3];
    int r;

    iov[0] = (struct iovec){head, 2 + jshost__pack_uint(head + 2, rid)};
    iov[1] = error != NULL ? (struct iovec){(void *)error, error_len}
                           : (struct iovec){(void *)&nil, 1};
    iov[2] = value != NULL ? (struct iovec){(void *)value, len}
                           : (struct iovec){(void *)&nil, 1};
    jshost__enter(c);
    if (!rid_take(p, rid)) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_ARG,
                              "invoke %u: no such reverse call awaits an "
                              "answer (answered already, or its connection "
                              "was lost)",
                              rid);
    }
    r = jshost__send_msg(p, iov, 3);
    jshost__leave(c);
    /* c->err is left alone on success: the handle's other threads may be
     * reporting their own failure through it. */
    if (r < 0)
        return send_failed(c, "invoke answer", r);
    return 0;
}

int
jshost_invoke_reply(jshost *c, uint32_t rid, const char *value, size_t len)
{
    if (!jshost__valid_value(value, len, false, PROTO_VALUE_MAX_DEPTH))
        return jshost__seterr(c, JSHOST_ERR_ARG,
                              "invoke %u: the answer is not one packed msgpack "
                              "value (nesting at most %d levels)",
                              rid, PROTO_VALUE_MAX_DEPTH);
    return invoke_answer(c, rid, NULL, 0, value, len);
}

int
jshost_invoke_error(jshost *c, uint32_t rid, const char *type, const char *name,
                    const char *message, const char *stack)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, 5) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_TYPE) != 0 ||
        proto_pack_cstr(&pk, type != NULL ? type : "JSError") != 0 ||
        proto_pack_cstr(&pk, PROTO_K_MESSAGE) != 0 ||
        proto_pack_cstr(&pk, message) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_NAME) != 0 ||
        proto_pack_cstr(&pk, name) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_STACK) != 0 ||
        proto_pack_cstr(&pk, stack) != 0 ||
        proto_pack_cstr(&pk, PROTO_K_LOGFILE) != 0 ||
        msgpack_pack_nil(&pk) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return jshost__seterr(c, JSHOST_ERR_OOM, "invoke %u: out of memory",
                              rid);
    }
    r = invoke_answer(c, rid, sb.data, sb.size, NULL, 0);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int
jshost_release(jshost *c, const uint32_t *callback_ids, size_t n)
{
    int r;

    if (n == 0)
        return 0;
    if (callback_ids == NULL || n > UINT32_MAX)
        return jshost__seterr(c, JSHOST_ERR_ARG, "release: no callback ids");
    /* [2, "release", [[ids...]]] */
    jshost__enter(c);
    r = send_ids(c->priv, PROTO_N_RELEASE, callback_ids, n, true);
    jshost__leave(c);
    if (r < 0)
        return send_failed(c, "release", r);
    return 0;
}

int
jshost_serve(jshost *c, int timeout_ms)
{
    jshost_priv *p = c->priv;
    struct jshost__call call, *other;
    int64_t deadline = timeout_ms < 0 ? -1 : jshost__now_ms() + timeout_ms;
    int r;

    jshost__enter(c);
    /* Made once: the driver polls it beside the socket, so that a wake ends
     * a serve's poll. Without it (out of descriptors) a wake waits for the
     * poll's slice to end. */
    if (p->wake_fd < 0)
        p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->serve_woken) {
        p->serve_woken = false;
        jshost__leave(c);
        return 0;
    }
    if (p->fd < 0) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_IO, "serve: not connected");
    }
    jshost__call_init(&call, false);
    call.serving = true;
    call.start = call.end = p->queued;
    jshost__call_add(p, &call);
    r = jshost__call_wait(p, &call, deadline, false);
    if (r == 0 && call.state == JSHOST__CALL_PENDING) {
        /* Woken: the wake is spent once no other serve waits for it. */
        jshost__call_remove(p, &call);
        for (other = p->calls; other != NULL; other = other->next)
            if (other->serving)
                break;
        if (other == NULL)
            p->serve_woken = false;
    } else if (r == 0) {
        r = jshost__seterr(c, p->lost_err, "serve: connection lost: %s",
                           p->lost_cause);
        jshost__leave(c);
        return r;
    }
    jshost__leave(c);
    if (r == -EINTR)
        return jshost__seterr(c, JSHOST_ERR_CANCELLED, "serve: interrupted");
    return 0;
}

void
jshost_serve_wake(jshost *c)
{
    jshost_priv *p = c->priv;
    struct jshost__call *call;
    uint64_t one = 1;

    jshost__enter(c);
    p->serve_woken = true;
    for (call = p->calls; call != NULL; call = call->next)
        if (call->serving)
            jshost__word_bump(p, call);
    if (p->wake_fd >= 0)
        (void)!write(p->wake_fd, &one, sizeof(one));
    jshost__leave(c);
}
