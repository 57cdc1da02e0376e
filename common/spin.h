/*
 * Busy-polling before sleeping (docs/performance.md). On a virtual machine,
 * putting a process to sleep and waking it costs far more than the message
 * that wakes it (measured: a 64-byte socketpair round trip is 55-78 us with
 * both ends blocking, 3-4 us with both polling), so a process that expects
 * its peer's next bytes soon polls for them a little while, yielding the CPU
 * on each turn, before it blocks. It spins when the last wait ended within
 * the budget, and otherwise once in SPIN_PROBE_EVERY waits (a peer that
 * answers slowly, or traffic that stopped, costs a budget per that many
 * waits at most), never on a single CPU, and never when JSHOST_SPIN_US=0.
 * Nothing here prints, exits or aborts.
 */
#ifndef JSHOST_SPIN_H
#define JSHOST_SPIN_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

/* The default budget of one wait, in microseconds. */
#define SPIN_DEFAULT_US 50
/* JSHOST_SPIN_US above this is taken as this. */
#define SPIN_MAX_US 10000
/* A wait that is not hopeful still spins once in this many: a wait that
 * blocked counts the wake-up too, which alone may pass the budget, so a peer
 * that answers quickly again would otherwise never be noticed. */
#define SPIN_PROBE_EVERY 8

struct spin {
    uint64_t budget_ns; /* 0: never spin */
    uint64_t start_ns;  /* when the wait under way began; 0: none */
    bool hopeful;       /* the last wait ended within the budget */
    unsigned skipped;   /* waits not spun since the last that was */
};

/*
 * Budget from JSHOST_SPIN_US (else SPIN_DEFAULT_US), 0 on a single CPU. 0,
 * or -EINVAL when JSHOST_SPIN_US is set to something other than a whole
 * number (the default is used; the caller may say so where it can).
 */
int spin_init(struct spin *s);

/*
 * Starts a wait on fds and spins (poll with no timeout, then sched_yield)
 * until one of them is ready, the budget passes, or max_ns does. The
 * number of ready fds (their revents set) when the wait is over, 0 when
 * the caller must block, or -errno of a failed poll. End every wait it
 * starts with spin_end.
 */
int spin_wait(struct spin *s, struct pollfd *fds, nfds_t nfds, uint64_t max_ns);

/* The wait is over: whether the next one spins depends on its length. */
void spin_end(struct spin *s);

#endif
