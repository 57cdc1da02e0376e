/*
 * Deadlines (docs/lifecycle.md, "Calls" and "Crashes and quarantine"): every
 * call's, and each busy worker's liveness check, in one binary min-heap
 * under one timer. Arming and disarming are O(log n) with no handle of their
 * own, so a call costs no uv_timer_t; the timer is moved only when an
 * earlier deadline comes in, and otherwise re-armed when it fires (an entry
 * disarmed early is simply gone from the heap by then).
 */
#include <stdlib.h>

#include "manager.h"
#include "xmalloc.h"

static struct deadline **heap; /* heap[0] unused: slots count from 1 */
static size_t nheap, capheap;
static uv_timer_t timer;
static bool timer_up;
static uint64_t timer_at; /* when the timer fires; 0 = stopped */

static void
deadline_place(struct deadline *d, size_t slot)
{
    heap[slot] = d;
    d->slot = slot;
}

static void
deadline_up(size_t slot)
{
    struct deadline *d = heap[slot];

    while (slot > 1 && heap[slot / 2]->at_ms > d->at_ms) {
        deadline_place(heap[slot / 2], slot);
        slot /= 2;
    }
    deadline_place(d, slot);
}

static void
deadline_down(size_t slot)
{
    struct deadline *d = heap[slot];
    size_t child;

    for (;;) {
        child = slot * 2;
        if (child > nheap)
            break;
        if (child < nheap && heap[child + 1]->at_ms < heap[child]->at_ms)
            child++;
        if (heap[child]->at_ms >= d->at_ms)
            break;
        deadline_place(heap[child], slot);
        slot = child;
    }
    deadline_place(d, slot);
}

static void deadline_timer_cb(uv_timer_t *t);

/* Moves the timer to the earliest deadline if that is sooner than it is
 * set for (a later one waits for the timer to fire and re-arm). */
static void
deadline_rearm(void)
{
    uint64_t at, now;

    if (!timer_up || nheap == 0)
        return;
    at = heap[1]->at_ms;
    if (timer_at != 0 && timer_at <= at)
        return;
    now = uv_now(timer.loop);
    timer_at = at;
    uv_timer_start(&timer, deadline_timer_cb, at > now ? at - now : 0, 0);
}

void
deadline_arm(struct deadline *d, uint64_t at_ms)
{
    uint64_t old = d->at_ms;

    d->at_ms = at_ms;
    if (d->slot != 0) {
        if (at_ms < old)
            deadline_up(d->slot);
        else
            deadline_down(d->slot);
    } else {
        if (nheap + 1 >= capheap) {
            capheap = capheap ? capheap * 2 : 256;
            heap = xrealloc(heap, capheap * sizeof *heap);
        }
        heap[++nheap] = d;
        d->slot = nheap;
        deadline_up(nheap);
    }
    deadline_rearm();
}

void
deadline_disarm(struct deadline *d)
{
    size_t slot = d->slot;
    struct deadline *last;

    if (slot == 0)
        return;
    d->slot = 0;
    last = heap[nheap--];
    if (last == d)
        return;
    deadline_place(last, slot);
    if (slot > 1 && heap[slot / 2]->at_ms > last->at_ms)
        deadline_up(slot);
    else
        deadline_down(slot);
}

static void
deadline_timer_cb(uv_timer_t *t)
{
    uint64_t now = uv_now(t->loop);
    struct deadline *d;

    timer_at = 0;
    /* fire may arm or disarm others (itself included): take one at a time. */
    while (nheap > 0 && heap[1]->at_ms <= now) {
        d = heap[1];
        deadline_disarm(d);
        d->fire(d);
    }
    deadline_rearm();
}

void
deadline_setup(uv_loop_t *loop)
{
    uv_timer_init(loop, &timer);
    /* Deadlines are no reason to keep the loop alive. */
    uv_unref((uv_handle_t *)&timer);
    timer_up = true;
}

void
deadline_cleanup(void)
{
    if (timer_up) {
        timer_up = false;
        if (!uv_is_closing((uv_handle_t *)&timer))
            uv_close((uv_handle_t *)&timer, NULL);
    }
    free(heap);
    heap = NULL;
    nheap = capheap = 0;
}
