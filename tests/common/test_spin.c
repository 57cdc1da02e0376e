/*
 * spin: the budget from JSHOST_SPIN_US, polling until an fd is ready, and the
 * rule that only a wait that ended within the budget makes the next one
 * spin; spin_loop on a real libuv loop, asking its owner before each wait.
 * Socketpairs stand in for peers.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "spin.h"
#include "spin_loop.h"

static bool
many_cpus(void)
{
    cpu_set_t set;

    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    return CPU_COUNT(&set) > 1;
}

/* The budget spin_init makes of JSHOST_SPIN_US=value (NULL: unset); *rc
 * gets what it returned. */
static uint64_t
budget_rc(const char *value, int *rc)
{
    struct spin s;

    if (value == NULL)
        unsetenv("JSHOST_SPIN_US");
    else
        setenv("JSHOST_SPIN_US", value, 1);
    *rc = spin_init(&s);
    unsetenv("JSHOST_SPIN_US");
    assert_true(s.hopeful);
    assert_int_equal(s.start_ns, 0);
    return s.budget_ns;
}

/* The same for a value spin_init takes (it returns 0). */
static uint64_t
budget_of(const char *value)
{
    int rc;
    uint64_t b = budget_rc(value, &rc);

    assert_int_equal(rc, 0);
    return b;
}

/* The same for one it refuses (-EINVAL): the default is used. */
static uint64_t
budget_refused(const char *value)
{
    int rc;
    uint64_t b = budget_rc(value, &rc);

    assert_int_equal(rc, -EINVAL);
    return b;
}

static void
test_budget_from_env(void **state)
{
    uint64_t def = (uint64_t)SPIN_DEFAULT_US * 1000;

    (void)state;
    if (!many_cpus()) {
        assert_int_equal(budget_of(NULL), 0);
        return;
    }
    assert_int_equal(budget_of(NULL), def);
    assert_int_equal(budget_of(""), def);
    assert_int_equal(budget_of("0"), 0);
    assert_int_equal(budget_of("120"), 120000);
    assert_int_equal(budget_of("99999999"), (uint64_t)SPIN_MAX_US * 1000);
    /* Words that are not a whole number leave the default. */
    assert_int_equal(budget_refused("fast"), def);
    assert_int_equal(budget_refused("-5"), def);
    assert_int_equal(budget_refused("12us"), def);
    assert_int_equal(budget_refused("99999999999999999999999"), def);
}

/* On one CPU the peer could not run while we spin: never. */
static void
test_one_cpu_never_spins(void **state)
{
    cpu_set_t old, one;

    (void)state;
    assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &old)) {
            CPU_SET(i, &one);
            break;
        }
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    assert_int_equal(budget_of("500"), 0);
    assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
}

static struct spin
spin_with(uint64_t budget_us)
{
    struct spin s;
    char v[32];

    snprintf(v, sizeof(v), "%llu", (unsigned long long)budget_us);
    setenv("JSHOST_SPIN_US", v, 1);
    spin_init(&s);
    unsetenv("JSHOST_SPIN_US");
    return s;
}

/* A socketpair whose first end pfd polls for input; skips the test on one
 * CPU, where nothing spins. */
static void
pair_polled(int sv[2], struct pollfd *pfd)
{
    if (!many_cpus())
        skip();
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    *pfd = (struct pollfd){.fd = sv[0], .events = POLLIN};
}

static void
test_ready_fd_ends_the_spin(void **state)
{
    struct spin s = spin_with(SPIN_MAX_US);
    struct pollfd pfd;
    int sv[2];

    (void)state;
    pair_polled(sv, &pfd);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(spin_wait(&s, &pfd, 1, UINT64_MAX), 1);
    assert_true(pfd.revents & POLLIN);
    assert_int_not_equal(s.start_ns, 0);
    spin_end(&s);
    assert_true(s.hopeful);
    assert_int_equal(s.start_ns, 0);
    close(sv[0]);
    close(sv[1]);
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A wait longer than the budget stops spinning; a short one brings it back. */
static void
test_long_wait_stops_spinning(void **state)
{
    struct spin s = spin_with(1000);
    struct pollfd pfd;
    int sv[2];

    (void)state;
    pair_polled(sv, &pfd);
    /* Nothing comes within the budget: the caller must block. */
    assert_int_equal(spin_wait(&s, &pfd, 1, UINT64_MAX), 0);
    sleep_ms(20); /* the caller's blocking wait, over the budget */
    spin_end(&s);
    assert_false(s.hopeful);
    /* Now the wait does not spin, though the byte is already there. */
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(spin_wait(&s, &pfd, 1, UINT64_MAX), 0);
    assert_int_not_equal(s.start_ns, 0);
    /* The caller's poll finds it at once: a short wait. */
    assert_int_equal(poll(&pfd, 1, 1000), 1);
    spin_end(&s);
    assert_true(s.hopeful);
    /* No deadline left (max_ns 0): no spinning either. */
    assert_int_equal(spin_wait(&s, &pfd, 1, 0), 0);
    spin_end(&s);
    close(sv[0]);
    close(sv[1]);
}

/* Not hopeful, a wait still spins once in SPIN_PROBE_EVERY: a peer that is
 * quick again (here: a byte already there) is found by that one. */
static void
test_probes_when_not_hopeful(void **state)
{
    struct spin s = spin_with(200);
    struct pollfd pfd;
    int sv[2];

    (void)state;
    pair_polled(sv, &pfd);
    assert_int_equal(spin_wait(&s, &pfd, 1, UINT64_MAX), 0);
    sleep_ms(2);
    spin_end(&s);
    assert_false(s.hopeful);
    assert_int_equal(write(sv[1], "x", 1), 1);
    for (int i = 1; i < SPIN_PROBE_EVERY; i++) {
        assert_int_equal(spin_wait(&s, &pfd, 1, UINT64_MAX), 0);
        sleep_ms(1); /* each wait blocks past the budget */
        spin_end(&s);
        assert_false(s.hopeful);
    }
    assert_int_equal(spin_wait(&s, &pfd, 1, UINT64_MAX), 1);
    spin_end(&s);
    assert_true(s.hopeful);
    close(sv[0]);
    close(sv[1]);
}

/* A budget of 0 never starts a wait. */
static void
test_zero_budget(void **state)
{
    struct spin s = spin_with(0);
    struct pollfd pfd = {.fd = -1, .events = POLLIN};

    (void)state;
    assert_int_equal(s.budget_ns, 0);
    assert_int_equal(spin_wait(&s, &pfd, 1, UINT64_MAX), 0);
    assert_int_equal(s.start_ns, 0);
    spin_end(&s);
    assert_true(s.hopeful);
}

/* spin_loop: bytes a thread writes, some while the loop spins and some
 * after it gave up and slept, all arrive; its handles keep no loop alive. */
struct loopfx {
    uv_pipe_t pipe;
    int peer;
    size_t got;
    char buf[64];
};

static void
alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct loopfx *f = h->data;

    (void)size;
    *buf = uv_buf_init(f->buf, sizeof(f->buf));
}

static void
read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct loopfx *f = st->data;

    (void)buf;
    if (n > 0)
        f->got += (size_t)n;
    if (n < 0 || f->got == 40)
        uv_close((uv_handle_t *)st, NULL);
}

static void *
writer(void *arg)
{
    struct loopfx *f = arg;

    for (int i = 0; i < 40; i++) {
        assert_int_equal(write(f->peer, "y", 1), 1);
        /* Alternately inside and well past a 200 us budget. */
        if (i % 2 == 0)
            sleep_ms(5);
    }
    return NULL;
}

/* spin_loop's may_spin: asked before each wait that would block. */
static unsigned may_spin_asked;

static bool
may_spin(void)
{
    may_spin_asked++;
    return may_spin_asked % 2 == 0;
}

static void
test_loop_gets_every_byte(void **state)
{
    uv_loop_t loop;
    struct loopfx f = {0};
    struct spin_loop *sl;
    pthread_t th;
    int sv[2];

    (void)state;
    setenv("JSHOST_SPIN_US", "200", 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    sl = spin_loop_start(&loop, may_spin);
    unsetenv("JSHOST_SPIN_US");
    /* Nothing else active: the spinner alone does not hold the loop. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    f.peer = sv[1];
    assert_int_equal(uv_pipe_init(&loop, &f.pipe, 0), 0);
    assert_int_equal(uv_pipe_open(&f.pipe, sv[0]), 0);
    f.pipe.data = &f;
    assert_int_equal(uv_read_start((uv_stream_t *)&f.pipe, alloc_cb, read_cb),
                     0);
    assert_int_equal(pthread_create(&th, NULL, writer, &f), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(f.got, 40);
    /* The writer's 5 ms pauses make the loop wait (and ask) 20 times. */
    assert_true(may_spin_asked >= 20);
    spin_loop_close(sl);
    spin_loop_close(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(sv[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_from_env),
        cmocka_unit_test(test_one_cpu_never_spins),
        cmocka_unit_test(test_ready_fd_ends_the_spin),
        cmocka_unit_test(test_long_wait_stops_spinning),
        cmocka_unit_test(test_probes_when_not_hopeful),
        cmocka_unit_test(test_zero_budget),
        cmocka_unit_test(test_loop_gets_every_byte),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
