/* Busy-polling before sleeping: spin.h says when and why. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "spin.h"

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPUs this process may run on: spinning on one would only delay the peer. */
static int
usable_cpus(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

int
spin_init(struct spin *s)
{
    const char *env = getenv("JSHOST_SPIN_US");
    unsigned long us = SPIN_DEFAULT_US;
    char *end;
    int rc = 0;

    if (env != NULL && *env != '\0') {
        errno = 0;
        us = strtoul(env, &end, 10);
        /* Words that are not a number leave the default. */
        if (errno != 0 || *end != '\0' || *env == '-') {
            us = SPIN_DEFAULT_US;
            rc = -EINVAL;
        } else if (us > SPIN_MAX_US) {
            us = SPIN_MAX_US;
        }
    }
    s->budget_ns = usable_cpus() > 1 ? (uint64_t)us * 1000u : 0;
    s->start_ns = 0;
    s->hopeful = true;
    s->skipped = 0;
    return rc;
}

int
spin_wait(struct spin *s, struct pollfd *fds, nfds_t nfds, uint64_t max_ns)
{
    uint64_t now, end;
    int n;

    if (s->budget_ns == 0)
        return 0;
    now = s->start_ns = now_ns();
    if (max_ns == 0)
        return 0;
    if (!s->hopeful && ++s->skipped < SPIN_PROBE_EVERY)
        return 0;
    s->skipped = 0;
    end = now + (max_ns < s->budget_ns ? max_ns : s->budget_ns);
    do {
        n = poll(fds, nfds, 0);
        if (n != 0)
            return n < 0 ? -errno : n;
        /* Whoever shares this CPU (the peer, on a busy machine) goes first. */
        sched_yield();
    } while (now_ns() < end);
    return 0;
}

void
spin_end(struct spin *s)
{
    if (s->start_ns == 0)
        return;
    s->hopeful = now_ns() - s->start_ns <= s->budget_ns;
    s->start_ns = 0;
}
