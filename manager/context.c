/*
 * Manager-wide context ids (docs/protocol.md, "Contexts"): a client names a
 * context by the manager's id; the manager pins it to the worker that made
 * it and rewrites the id into that worker's own on the way out.
 */
#include <stdlib.h>

#include "manager.h"
#include "xmalloc.h"

/* Two tables of the same size: by the manager's id, and by the worker's own
 * id (a worker's invoke names its context so; each worker counts from 1, so
 * a chain there holds about one context per worker). */
static struct context **context_buckets, **context_wbuckets;
static size_t context_nbuckets, context_count;
static uint64_t context_next = 1;

static void
context_grow(void)
{
    size_t n = context_nbuckets == 0 ? 64 : context_nbuckets * 2, i;
    struct context **b = xcalloc(n, sizeof *b);
    struct context **wb = xcalloc(n, sizeof *wb);
    struct context *x, *next;

    for (i = 0; i < context_nbuckets; i++) {
        for (x = context_buckets[i]; x != NULL; x = next) {
            next = x->hnext;
            x->hnext = b[x->id & (n - 1)];
            b[x->id & (n - 1)] = x;
            x->wnext = wb[x->worker_context & (n - 1)];
            wb[x->worker_context & (n - 1)] = x;
        }
    }
    free(context_buckets);
    free(context_wbuckets);
    context_buckets = b;
    context_wbuckets = wb;
    context_nbuckets = n;
}

struct context *
context_new(struct host *h, struct worker *w, uint64_t worker_context,
            struct client *owner)
{
    struct context *x = xcalloc(1, sizeof *x);

    if (context_count >= context_nbuckets)
        context_grow();
    x->id = context_next++;
    x->worker_context = worker_context;
    x->worker = w;
    x->host = h;
    x->owner = owner;
    x->hnext = context_buckets[x->id & (context_nbuckets - 1)];
    context_buckets[x->id & (context_nbuckets - 1)] = x;
    x->wnext = context_wbuckets[worker_context & (context_nbuckets - 1)];
    context_wbuckets[worker_context & (context_nbuckets - 1)] = x;
    context_count++;
    return x;
}

struct context *
context_find(uint64_t id)
{
    struct context *x;

    if (context_nbuckets == 0)
        return NULL;
    for (x = context_buckets[id & (context_nbuckets - 1)]; x != NULL;
         x = x->hnext)
        if (x->id == id)
            return x;
    return NULL;
}

void
context_free(struct context *x)
{
    struct context **pp;

    for (pp = &context_buckets[x->id & (context_nbuckets - 1)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        if (*pp == x) {
            *pp = x->hnext;
            context_count--;
            break;
        }
    }
    for (pp = &context_wbuckets[x->worker_context & (context_nbuckets - 1)];
         *pp != NULL; pp = &(*pp)->wnext) {
        if (*pp == x) {
            *pp = x->wnext;
            break;
        }
    }
    free(x);
}

void
context_foreach(void (*fn)(struct context *, void *), void *arg)
{
    size_t i;
    struct context *x, *next;

    for (i = 0; i < context_nbuckets; i++) {
        for (x = context_buckets[i]; x != NULL; x = next) {
            next = x->hnext;
            fn(x, arg);
        }
    }
}

unsigned
context_count_host(const struct host *h)
{
    size_t i;
    struct context *x;
    unsigned n = 0;

    for (i = 0; i < context_nbuckets; i++)
        for (x = context_buckets[i]; x != NULL; x = x->hnext)
            if (x->host == h)
                n++;
    return n;
}

struct context *
context_find_worker(const struct worker *w, uint64_t worker_context)
{
    struct context *x;

    if (context_nbuckets == 0 || w == NULL)
        return NULL;
    for (x = context_wbuckets[worker_context & (context_nbuckets - 1)];
         x != NULL; x = x->wnext)
        if (x->worker == w && x->worker_context == worker_context)
            return x;
    return NULL;
}

static void
context_free_cb(struct context *x, void *arg)
{
    (void)arg;
    context_free(x);
}

void
context_cleanup(void)
{
    context_foreach(context_free_cb, NULL);
    free(context_buckets);
    free(context_wbuckets);
    context_buckets = context_wbuckets = NULL;
    context_nbuckets = 0;
}
