/*
 * Reverse calls (docs/protocol.md, "Callbacks and cancellation"): a worker's
 * [0, wid, "invoke", [callback, args, owner]] goes to the client that owns
 * the callable (the client of the call, or of the context, the owner names)
 * as [0, cid, "invoke", [callback, args]], with a msgid from that client's
 * own space; the client's [1, cid, error, result] goes back to the worker as
 * [1, wid, error, result]. Both ways the params and the answer cross as the
 * bytes they came in. Each waiting reverse call is filed twice: in its
 * client's table by cid (the answer finds it) and in its worker's list (a
 * worker that dies drops them). A client that closes answers its workers'
 * reverse calls with an error, so that no promise waits forever.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "xmalloc.h"

struct invoke {
    struct invoke *hnext;          /* the client's table */
    struct invoke *wnext, **wprev; /* the worker's list */
    struct client *client;
    struct worker *worker;
    uint32_t cid; /* msgid towards the client */
    uint32_t wid; /* the worker's msgid */
};

void
invoke_fail(struct worker *w, uint32_t wid, enum proto_errtype type,
            const char *fmt, ...)
{
    struct rpcstream_msg om;
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rpcstream_msg_init(&om);
    proto_write_errorf(&om.pk, wid, type, "%s", msg);
    worker_send(w, &om);
}

/* ---- the client's table ------------------------------------------------- */

static struct invoke *
invoke_find(const struct client *c, uint32_t cid)
{
    struct invoke *iv;

    if (c->invokes_cap == 0)
        return NULL;
    for (iv = c->invokes[cid & (c->invokes_cap - 1)]; iv != NULL;
         iv = iv->hnext)
        if (iv->cid == cid)
            return iv;
    return NULL;
}

static void
invoke_grow(struct client *c)
{
    size_t n = c->invokes_cap ? c->invokes_cap * 2 : 16, i;
    struct invoke **b = xcalloc(n, sizeof *b);
    struct invoke *iv, *next;

    for (i = 0; i < c->invokes_cap; i++) {
        for (iv = c->invokes[i]; iv != NULL; iv = next) {
            next = iv->hnext;
            iv->hnext = b[iv->cid & (n - 1)];
            b[iv->cid & (n - 1)] = iv;
        }
    }
    free(c->invokes);
    c->invokes = b;
    c->invokes_cap = n;
}

/* Files a new reverse call: a fresh msgid of the client's, in both. */
static struct invoke *
invoke_new(struct client *c, struct worker *w, uint32_t wid)
{
    struct invoke *iv = xcalloc(1, sizeof *iv);

    if (c->ninvokes >= c->invokes_cap)
        invoke_grow(c);
    do {
        iv->cid = c->next_invoke++;
    } while (iv->cid == 0 || invoke_find(c, iv->cid) != NULL);
    iv->client = c;
    iv->worker = w;
    iv->wid = wid;
    iv->hnext = c->invokes[iv->cid & (c->invokes_cap - 1)];
    c->invokes[iv->cid & (c->invokes_cap - 1)] = iv;
    c->ninvokes++;
    iv->wnext = w->invokes;
    if (w->invokes != NULL)
        w->invokes->wprev = &iv->wnext;
    iv->wprev = &w->invokes;
    w->invokes = iv;
    return iv;
}

static void
invoke_free(struct invoke *iv)
{
    struct client *c = iv->client;
    struct invoke **pp;

    for (pp = &c->invokes[iv->cid & (c->invokes_cap - 1)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        if (*pp == iv) {
            *pp = iv->hnext;
            c->ninvokes--;
            break;
        }
    }
    if (iv->worker != NULL) {
        *iv->wprev = iv->wnext;
        if (iv->wnext != NULL)
            iv->wnext->wprev = iv->wprev;
    }
    free(iv);
}

/* ---- worker -> client --------------------------------------------------- */

/* The owner param, read from its bytes: {"call": msgid} or {"context": id}.
 * false when it is not one of those. */
static bool
invoke_owner(const struct proto_raw *raw, bool *is_call, uint64_t *id)
{
    struct proto_cur cur;
    struct proto_item it;

    proto_cur_init(&cur, raw->bytes + raw->param_at[2],
                   raw->size - raw->param_at[2]);
    if (proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_MAP ||
        it.len != 1 || proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_STR)
        return false;
    if (it.len == strlen(PROTO_K_CALL) &&
        memcmp(it.ptr, PROTO_K_CALL, it.len) == 0)
        *is_call = true;
    else if (it.len == strlen(PROTO_K_CONTEXT) &&
             memcmp(it.ptr, PROTO_K_CONTEXT, it.len) == 0)
        *is_call = false;
    else
        return false;
    if (proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_UINT ||
        it.v.u == 0 || (*is_call && it.v.u > UINT32_MAX))
        return false;
    *id = it.v.u;
    return true;
}

/* params[0] is a u32 and params[1] an array: what the client is given. */
static bool
invoke_shape(const struct proto_raw *raw)
{
    struct proto_cur cur;
    struct proto_item it;

    proto_cur_init(&cur, raw->bytes + raw->param_at[0],
                   raw->size - raw->param_at[0]);
    if (proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_UINT ||
        it.v.u > UINT32_MAX)
        return false;
    proto_cur_init(&cur, raw->bytes + raw->param_at[1],
                   raw->size - raw->param_at[1]);
    return proto_cur_next(&cur, &it) == 0 && it.type == PROTO_T_ARRAY;
}

bool
invoke_from_worker(struct worker *w, const struct proto_raw *raw)
{
    static const size_t invoke_len = sizeof PROTO_M_INVOKE - 1;
    struct client *owner = NULL;
    struct context *x;
    struct call *call;
    struct invoke *iv;
    msgpack_packer pk;
    uint64_t id;
    bool is_call;

    if (raw->method_len != invoke_len ||
        memcmp(raw->method, PROTO_M_INVOKE, invoke_len) != 0 ||
        raw->nparams != 3 || !invoke_shape(raw) ||
        !invoke_owner(raw, &is_call, &id))
        return false;
    if (is_call) {
        call = router_find(w->calls, (uint32_t)id);
        if (call != NULL && call->kind == CALL_FORWARD && !call->cancelled)
            owner = call->client;
    } else {
        x = context_find_worker(w, id);
        if (x != NULL)
            owner = x->owner;
    }
    if (owner == NULL || owner->closed) {
        invoke_fail(w, raw->msgid, PROTO_ERR_HOST_UNAVAILABLE,
                    "callback expired: the %s that passed it has ended",
                    is_call ? "call" : "context");
        return true;
    }
    iv = invoke_new(owner, w, raw->msgid);
    if (!rpcstream_begin(owner->stream, &pk)) {
        invoke_free(iv);
        invoke_fail(w, raw->msgid, PROTO_ERR_HOST_UNAVAILABLE,
                    "callback expired: its client is closing");
        return true;
    }
    proto_write_request(&pk, iv->cid, PROTO_M_INVOKE, 2);
    proto_pack_raw(&pk, raw->bytes + raw->param_at[0],
                   raw->param_at[2] - raw->param_at[0]);
    rpcstream_commit(owner->stream);
    w->forwarded_unread += raw->hinted;
    return true;
}

/* ---- client -> worker --------------------------------------------------- */

void
invoke_answer(struct client *c, const struct proto_raw *raw)
{
    struct invoke *iv = invoke_find(c, raw->msgid);
    struct worker *w;
    msgpack_packer pk;

    if (iv == NULL) {
        log_debug("client %llu: a response to %u, which it was not asked",
                  (unsigned long long)c->id, raw->msgid);
        return;
    }
    w = iv->worker;
    if (w != NULL && w->stream_open && w->stream != NULL &&
        rpcstream_begin(w->stream, &pk)) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, PROTO_RESPONSE);
        msgpack_pack_uint32(&pk, iv->wid);
        proto_pack_raw(&pk, raw->bytes + raw->error_at,
                       raw->size - raw->error_at);
        rpcstream_commit(w->stream);
    }
    invoke_free(iv);
}

void
invoke_client_closed(struct client *c)
{
    struct invoke *iv;
    size_t i;

    for (i = 0; i < c->invokes_cap; i++) {
        while ((iv = c->invokes[i]) != NULL) {
            if (iv->worker != NULL)
                invoke_fail(iv->worker, iv->wid, PROTO_ERR_HOST_UNAVAILABLE,
                            "callback expired: its client closed the "
                            "connection");
            invoke_free(iv);
        }
    }
    free(c->invokes);
    c->invokes = NULL;
    c->invokes_cap = 0;
}

void
invoke_worker_gone(struct worker *w)
{
    struct invoke *iv;

    /* Left in their clients' tables: an answer that comes is dropped. */
    while ((iv = w->invokes) != NULL) {
        w->invokes = iv->wnext;
        iv->worker = NULL;
        iv->wnext = NULL;
        iv->wprev = NULL;
    }
}
