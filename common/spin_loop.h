/*
 * A libuv loop that busy-polls before it sleeps (spin.h says why): before
 * each blocking poll, the loop's own epoll descriptor is polled for a while.
 * For the daemons only (it allocates with xmalloc).
 */
#ifndef JSHOST_SPIN_LOOP_H
#define JSHOST_SPIN_LOOP_H

#include <stdbool.h>

#include <uv.h>

struct spin_loop;

/*
 * Starts spinning on loop; its handles do not keep the loop alive. A wait
 * spins only when may_spin (NULL: always) says so at its start.
 */
struct spin_loop *spin_loop_start(uv_loop_t *loop, bool (*may_spin)(void));

/* Stops, closes the handles and frees sl once they are closed (NULL: no-op). */
void spin_loop_close(struct spin_loop *sl);

#endif
