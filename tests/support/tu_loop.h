/*
 * tu_loop: waiting on a libuv loop with a deadline, for tests that drive a
 * loop of their own (the engine's, an rpcstream's).
 */
#ifndef JSHOST_TU_LOOP_H
#define JSHOST_TU_LOOP_H

#include <uv.h>

#include "tu.h"

/* Runs the loop's ready work, blocking at most until the deadline for new
 * work; false (at once) when the deadline has passed. */
bool tu_loop_step(uv_loop_t *loop, const struct tu_deadline *d);

/*
 * Runs loop until cond holds; fails the test after ms with "file:line: waited
 * ms ms for: cond". No handle of its own is added to the loop, so what a test
 * asserts about the loop's handles afterwards is about the code under test.
 */
#define TU_LOOP_UNTIL(loop, cond, ms)                                          \
    do {                                                                       \
        struct tu_deadline tu_until_ = tu_deadline_start(ms);                  \
        while (!(cond))                                                        \
            if (!tu_loop_step((loop), &tu_until_))                             \
                tu_deadline_fail(&tu_until_, __FILE__, __LINE__, #cond);       \
    } while (0)

/* Runs loop until nothing is left in it, as uv_run(UV_RUN_DEFAULT) does,
 * but fails (at the caller's file and line) when it is not empty after ms. */
#define TU_LOOP_DRAIN(loop, ms)                                                \
    TU_LOOP_UNTIL((loop), !uv_loop_alive(loop), (ms))

#endif
