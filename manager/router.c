/*
 * The msgid remap (docs/protocol.md, "msgids"): each worker connection has its
 * own msgid space, and a table worker-msgid -> call (client, client msgid)
 * restores the client's msgid on the way back, whatever order the replies
 * come in.
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

struct call *
router_find(const struct router *r, uint32_t wid)
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
    } while (c->wid == 0 || router_find(r, c->wid) != NULL);
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

void
router_foreach(const struct router *r, void (*fn)(struct call *, void *),
               void *arg)
{
    size_t i;
    struct call *c;

    for (i = 0; i < r->nbuckets; i++)
        for (c = r->buckets[i]; c != NULL; c = c->hnext)
            fn(c, arg);
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
