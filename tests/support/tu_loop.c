/* tu_loop (tu_loop.h): a libuv loop run until a condition, with a deadline. */
#include "tu_loop.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

bool
tu_loop_step(uv_loop_t *loop, const struct tu_deadline *d)
{
    struct pollfd pfd = {uv_backend_fd(loop), POLLIN, 0};
    int64_t left = d->end_ms - tu_now_ms();
    int timeout = uv_backend_timeout(loop);

    if (left <= 0)
        return false;
    /* The embedding way (uv_backend_fd): wait for the loop's next event or
     * timer ourselves, bounded by the deadline, then let it run without
     * blocking. A timer of ours would change what the loop holds. */
    if (!uv_loop_alive(loop))
        timeout = 10; /* only unreferenced handles: look again soon */
    if (timeout < 0 || timeout > left)
        timeout = (int)left;
    if (poll(&pfd, 1, timeout) == -1 && errno != EINTR)
        fail_msg("poll: %s", strerror(errno));
    uv_run(loop, UV_RUN_NOWAIT);
    return true;
}
