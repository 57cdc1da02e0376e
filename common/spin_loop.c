/*
 * Spinning hooked into a libuv loop: a prepare handle runs just before the
 * loop polls for I/O, a check handle just after. The epoll descriptor is
 * readable when an event is ready, so polling it with no timeout asks
 * whether the blocking poll would return at once.
 */
#include <stdint.h>
#include <stdlib.h>

#include "log.h"
#include "spin.h"
#include "spin_loop.h"
#include "xmalloc.h"

struct spin_loop {
    uv_prepare_t prepare;
    uv_check_t check;
    struct spin spin;
    bool (*may_spin)(void);
    int open_handles;
};

static void
prepare_cb(uv_prepare_t *h)
{
    struct spin_loop *sl = h->data;
    int timeout = uv_backend_timeout(h->loop);
    struct pollfd pfd = {.fd = uv_backend_fd(h->loop), .events = POLLIN};

    /* The loop will not block (work is pending, or a timer is due), or the
     * owner says this wait is not one to spin in. */
    if (timeout == 0 || (sl->may_spin != NULL && !sl->may_spin()))
        return;
    spin_wait(&sl->spin, &pfd, 1,
              timeout < 0 ? UINT64_MAX : (uint64_t)timeout * 1000000u);
}

static void
check_cb(uv_check_t *h)
{
    struct spin_loop *sl = h->data;

    spin_end(&sl->spin);
}

struct spin_loop *
spin_loop_start(uv_loop_t *loop, bool (*may_spin)(void))
{
    struct spin_loop *sl = xcalloc(1, sizeof(*sl));

    if (spin_init(&sl->spin) < 0)
        log_warn("JSHOST_SPIN_US: '%s' is not a whole number of microseconds; "
                 "polling %d us before sleeping",
                 getenv("JSHOST_SPIN_US"), SPIN_DEFAULT_US);
    sl->may_spin = may_spin;
    uv_prepare_init(loop, &sl->prepare);
    uv_check_init(loop, &sl->check);
    sl->prepare.data = sl->check.data = sl;
    sl->open_handles = 2;
    uv_prepare_start(&sl->prepare, prepare_cb);
    uv_check_start(&sl->check, check_cb);
    uv_unref((uv_handle_t *)&sl->prepare);
    uv_unref((uv_handle_t *)&sl->check);
    return sl;
}

static void
close_cb(uv_handle_t *h)
{
    struct spin_loop *sl = h->data;

    if (--sl->open_handles == 0)
        free(sl);
}

void
spin_loop_close(struct spin_loop *sl)
{
    if (sl == NULL)
        return;
    uv_close((uv_handle_t *)&sl->prepare, close_cb);
    uv_close((uv_handle_t *)&sl->check, close_cb);
}
