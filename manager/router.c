/*
 * The msgid remap (DESIGN §1): each worker connection has its own msgid space,
 * and a table worker-msgid -> call (client, client msgid) restores the client's
 * msgid on the way back, whatever order the replies come in. Also the
 * manager-wide context ids, which pin a context to the worker that made it.
 */
#include <stdlib.h>

#include "manager.h"
#include "xmalloc.h"

struct router {
    struct call **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    uint32_t next;
};

struct router *
router_new(void)
{
    struct router *r = xcalloc(1, sizeof *r);

    r->nbuckets = 64;
    r->buckets = xcalloc(r->nbuckets, sizeof *r->buckets);
    r->next = 1;
    return r;
}

void
router_free(struct router *r)
{
    if (r == NULL)
        return;
    free(r->buckets);
    free(r);
}

static void
router_grow(struct router *r)
{
    size_t n = r->nbuckets * 2, i;
    struct call **b = xcalloc(n, sizeof *b);
    struct call *c, *next;

    for (i = 0; i < r->nbuckets; i++) {
        for (c = r->buckets[i]; c != NULL; c = next) {
            next = c->hnext;
            c->hnext = b[c->wid & (n - 1)];
            b[c->wid & (n - 1)] = c;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

static struct call *
router_lookup(const struct router *r, uint32_t wid)
{
    struct call *c;

    for (c = r->buckets[wid & (r->nbuckets - 1)]; c != NULL; c = c->hnext)
        if (c->wid == wid)
            return c;
    return NULL;
}

void
router_add(struct router *r, struct call *c)
{
    if (r->count >= r->nbuckets)
        router_grow(r);
    /* msgids wrap after 2^32; skip any still in use (a very slow call). */
    do {
        c->wid = r->next++;
    } while (c->wid == 0 || router_lookup(r, c->wid) != NULL);
    c->hnext = r->buckets[c->wid & (r->nbuckets - 1)];
    r->buckets[c->wid & (r->nbuckets - 1)] = c;
    r->count++;
}

struct call *
router_take(struct router *r, uint32_t wid)
{
    struct call **pp, *c;

    for (pp = &r->buckets[wid & (r->nbuckets - 1)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        c = *pp;
        if (c->wid == wid) {
            *pp = c->hnext;
            c->hnext = NULL;
            r->count--;
            return c;
        }
    }
    return NULL;
}

struct call *
router_pop(struct router *r)
{
    size_t i;
    struct call *c;

    for (i = 0; i < r->nbuckets && r->count > 0; i++) {
        c = r->buckets[i];
        if (c != NULL) {
            r->buckets[i] = c->hnext;
            c->hnext = NULL;
            r->count--;
            return c;
        }
    }
    return NULL;
}

size_t
router_count(const struct router *r)
{
    return r->count;
}

void
router__set_next(struct router *r, uint32_t next)
{
    r->next = next;
}

struct call *
call_new(enum call_kind kind, struct client *client, uint32_t cid)
{
    struct call *c = xcalloc(1, sizeof *c);

    c->kind = kind;
    c->cid = cid;
    c->client = client;
    if (client != NULL)
        client_ref(client);
    c->start_ns = uv_hrtime();
    return c;
}

void
call_free(struct call *c)
{
    if (c == NULL)
        return;
    if (c->has_msg)
        proto_msg_release(&c->msg);
    if (c->client != NULL)
        client_unref(c->client);
    free(c);
}

/* ---- contexts ---- */

static struct mctx **ctx_buckets;
static size_t ctx_nbuckets, ctx_count;
static uint64_t ctx_next = 1;

static void
ctx_grow(void)
{
    size_t n = ctx_nbuckets == 0 ? 64 : ctx_nbuckets * 2, i;
    struct mctx **b = xcalloc(n, sizeof *b);
    struct mctx *x, *next;

    for (i = 0; i < ctx_nbuckets; i++) {
        for (x = ctx_buckets[i]; x != NULL; x = next) {
            next = x->hnext;
            x->hnext = b[x->id & (n - 1)];
            b[x->id & (n - 1)] = x;
        }
    }
    free(ctx_buckets);
    ctx_buckets = b;
    ctx_nbuckets = n;
}

struct mctx *
ctx_new(struct host *h, struct worker *w, uint64_t wctx, struct client *owner)
{
    struct mctx *x = xcalloc(1, sizeof *x);

    if (ctx_count >= ctx_nbuckets)
        ctx_grow();
    x->id = ctx_next++;
    x->wctx = wctx;
    x->worker = w;
    x->host = h;
    x->owner = owner;
    x->hnext = ctx_buckets[x->id & (ctx_nbuckets - 1)];
    ctx_buckets[x->id & (ctx_nbuckets - 1)] = x;
    ctx_count++;
    return x;
}

struct mctx *
ctx_find(uint64_t id)
{
    struct mctx *x;

    if (ctx_nbuckets == 0)
        return NULL;
    for (x = ctx_buckets[id & (ctx_nbuckets - 1)]; x != NULL; x = x->hnext)
        if (x->id == id)
            return x;
    return NULL;
}

void
ctx_free(struct mctx *x)
{
    struct mctx **pp;

    for (pp = &ctx_buckets[x->id & (ctx_nbuckets - 1)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        if (*pp == x) {
            *pp = x->hnext;
            ctx_count--;
            break;
        }
    }
    free(x);
}

void
ctx_foreach(void (*fn)(struct mctx *, void *), void *arg)
{
    size_t i;
    struct mctx *x, *next;

    for (i = 0; i < ctx_nbuckets; i++) {
        for (x = ctx_buckets[i]; x != NULL; x = next) {
            next = x->hnext;
            fn(x, arg);
        }
    }
}

unsigned
ctx_count_host(const struct host *h)
{
    size_t i;
    struct mctx *x;
    unsigned n = 0;

    for (i = 0; i < ctx_nbuckets; i++)
        for (x = ctx_buckets[i]; x != NULL; x = x->hnext)
            if (x->host == h)
                n++;
    return n;
}

static void
ctx_free_cb(struct mctx *x, void *arg)
{
    (void)arg;
    ctx_free(x);
}

void
ctx_cleanup(void)
{
    ctx_foreach(ctx_free_cb, NULL);
    free(ctx_buckets);
    ctx_buckets = NULL;
    ctx_nbuckets = 0;
}
