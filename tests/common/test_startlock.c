/*
 * startlock: tmux's try → wait → retry, with real processes racing. The
 * "manager" is simulated by a marker file: whoever holds the lock and finds no
 * marker creates it (O_EXCL, so a second creator would be caught). A process
 * blocked on the lock is seen in /proc/locks, so the tests wait for that
 * rather than hope the scheduler made it happen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "startlock.h"

static void
read_byte(int fd, char *c)
{
    assert_int_equal(tu_read_full(fd, c, 1, TU_WAIT_MS), 1);
}

/* Waits for a child and returns its exit code (failing on a signal). */
static int
reap(pid_t pid)
{
    int status = tu_wait(pid, TU_WAIT_MS);

    if (status == -1)
        fail_msg("child %ld still runs", (long)pid);
    if (!WIFEXITED(status))
        fail_msg("child %ld died of signal %d", (long)pid, WTERMSIG(status));
    return WEXITSTATUS(status);
}

/* How many processes wait, blocked, for the lock on path: /proc/locks has a
 * "N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ..." line for each. */
static int
lock_waiters(const char *path)
{
    char line[256], want[64];
    struct stat sb;
    FILE *f;
    int n = 0;

    if (stat(path, &sb) == -1)
        return 0;
    snprintf(want, sizeof want, " %02x:%02x:%llu ", major(sb.st_dev),
             minor(sb.st_dev), (unsigned long long)sb.st_ino);
    f = fopen("/proc/locks", "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        n += strstr(line, " -> FLOCK ") != NULL && strstr(line, want) != NULL;
    fclose(f);
    return n;
}

static void
test_single_process(void **state)
{
    char *tmp = tu_tmpdir(), *lock = tu_path(tmp, "manager.lock");
    struct stat sb;
    int fd;

    (void)state;
    fd = startlock_acquire(lock);
    assert_true(fd >= 0);
    assert_int_equal(stat(lock, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Not leaked into children that exec. */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    startlock_release(fd);
    /* Released: it can be taken again. */
    fd = startlock_acquire(lock);
    assert_true(fd >= 0);
    startlock_release(fd);
    startlock_release(-1); /* harmless */

    assert_int_equal(startlock_acquire("/nonexistent-dir/x.lock"), -ENOENT);
    free(lock);
    tu_rmtree(tmp);
}

/*
 * Two racers: one holds, the other blocks until the holder lets go and then
 * gets -EAGAIN. Each reports on `res`: 'H' holding, 'A' -EAGAIN, 'E' other.
 */
static void
test_two_racers(void **state)
{
    char *tmp = tu_tmpdir(), *lock = tu_path(tmp, "manager.lock");
    int go[2], res[2], rel[2], i, r;
    pid_t pids[2];
    struct pollfd pfd;
    char c, first, second;

    (void)state;
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(res), 0);
    assert_int_equal(pipe(rel), 0);
    for (i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(res[0]);
            close(rel[1]);
            if (read(go[0], &c, 1) != 1)
                _exit(2);
            r = startlock_acquire(lock);
            c = r >= 0 ? 'H' : r == -EAGAIN ? 'A' : 'E';
            if (write(res[1], &c, 1) != 1)
                _exit(2);
            if (r >= 0) {
                if (read(rel[0], &c, 1) != 1)
                    _exit(2);
                startlock_release(r);
            }
            _exit(0);
        }
    }
    close(go[0]);
    close(res[1]);
    close(rel[0]);
    assert_int_equal(write(go[1], "gg", 2), 2);

    /* The waiter cannot report before the holder lets go, so the first word
     * is the holder's. */
    read_byte(res[0], &first);
    assert_int_equal(first, 'H');
    /* Once the other is blocked on the lock, it has nothing to say while
     * the lock is held. */
    TU_UNTIL(lock_waiters(lock) == 1, TU_WAIT_MS);
    pfd.fd = res[0];
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_int_equal(write(rel[1], "r", 1), 1);
    read_byte(res[0], &second);
    assert_int_equal(second, 'A');

    for (i = 0; i < 2; i++)
        assert_int_equal(reap(pids[i]), 0);
    close(go[1]);
    close(res[0]);
    close(rel[1]);
    free(lock);
    tu_rmtree(tmp);
}

enum racer_outcome {
    RACER_STARTED = 10, /* held the lock, found no manager, started one */
    RACER_FOUND = 11,   /* the manager was already there ("connect" worked) */
    RACER_RETRIED = 12, /* waited on the lock, then found the manager */
    RACER_BROKEN = 13,  /* waited, and still no manager: the bug we test for */
    RACER_ERROR = 14,
};

/* What a client does (docs/lifecycle.md, "The manager"): connect; on failure take the lock; holding
 * it, retry connect once, and start the manager only if still refused. */
static int
racer(const char *lock, const char *marker, int go)
{
    char c;
    int fd, r;

    if (read(go, &c, 1) != 1)
        return RACER_ERROR;
    if (access(marker, F_OK) == 0)
        return RACER_FOUND;
    r = startlock_acquire(lock);
    if (r == -EAGAIN)
        return access(marker, F_OK) == 0 ? RACER_RETRIED : RACER_BROKEN;
    if (r < 0)
        return RACER_ERROR;
    if (access(marker, F_OK) == 0) {
        startlock_release(r);
        return RACER_FOUND;
    }
    /* "Start the manager" once another racer waits on the lock, so that
     * the wait-then-retry path is taken. O_EXCL catches a second starter. */
    {
        struct tu_deadline d = tu_deadline_start(TU_WAIT_MS);

        while (lock_waiters(lock) == 0)
            if (!tu_deadline_wait(&d))
                return RACER_ERROR;
    }
    fd = open(marker, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd == -1)
        return RACER_ERROR;
    close(fd);
    startlock_release(r);
    return RACER_STARTED;
}

static void
test_twenty_racers_one_start(void **state)
{
    char *tmp = tu_tmpdir(), *lock = tu_path(tmp, "manager.lock");
    char *marker = tu_path(tmp, "manager.sock");
    int go[2], i, counts[16] = {0}, code;
    pid_t pids[20];
    char gobytes[20];

    (void)state;
    assert_int_equal(pipe(go), 0);
    for (i = 0; i < 20; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            _exit(racer(lock, marker, go[0]));
        }
    }
    close(go[0]);
    memset(gobytes, 'g', sizeof gobytes);
    assert_int_equal(write(go[1], gobytes, sizeof gobytes), sizeof gobytes);
    close(go[1]);
    for (i = 0; i < 20; i++) {
        code = reap(pids[i]);
        assert_in_range(code, RACER_STARTED, RACER_ERROR);
        counts[code - RACER_STARTED]++;
    }
    print_message("20 racers: %d started, %d found it, %d waited and retried\n",
                  counts[0], counts[1], counts[2]);
    assert_int_equal(counts[0], 1);
    assert_true(counts[RACER_RETRIED - RACER_STARTED] >= 1);
    assert_int_equal(counts[RACER_BROKEN - RACER_STARTED], 0);
    assert_int_equal(counts[RACER_ERROR - RACER_STARTED], 0);
    free(lock);
    free(marker);
    tu_rmtree(tmp);
}

/* A holder that dies without releasing frees the lock (flock is per open file
 * description): a crashed starter cannot wedge everyone else. */
static void
test_dead_holder_releases(void **state)
{
    char *tmp = tu_tmpdir(), *lock = tu_path(tmp, "manager.lock");
    int p[2], fd;
    pid_t pid;
    char c;

    (void)state;
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        fd = startlock_acquire(lock);
        c = fd >= 0 ? 'H' : 'E';
        if (write(p[1], &c, 1) != 1)
            _exit(2);
        pause(); /* killed while holding */
        _exit(0);
    }
    close(p[1]);
    read_byte(p[0], &c);
    assert_int_equal(c, 'H');
    kill(pid, SIGKILL);
    assert_int_not_equal(tu_wait(pid, TU_WAIT_MS), -1);
    fd = startlock_acquire(lock);
    assert_true(fd >= 0);
    startlock_release(fd);
    close(p[0]);
    free(lock);
    tu_rmtree(tmp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_process),
        cmocka_unit_test(test_two_racers),
        cmocka_unit_test(test_twenty_racers_one_start),
        cmocka_unit_test(test_dead_holder_releases),
    };

    return cmocka_run_group_tests_name("common/startlock", tests, NULL, NULL);
}
