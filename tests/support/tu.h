/*
 * tu: the helper library of every test suite (tests/support). Its parts, by
 * what each one links:
 *
 *   tu.h         temp dirs and files, child processes, Unix sockets, pid
 *                files, and waiting for an event with a deadline; needs only
 *                cmocka and common/, so common/'s tests use it without proto/
 *   tu_rpc.h     a blocking msgpack-RPC client (proto/), replies as JSON
 *   tu_daemon.h  a jshost-manager or jshost-worker under test
 *   tu_loop.h    waiting on a libuv loop with a deadline
 *   tu_jshost.h  calls through libjshost with JSON in and out (client tests)
 *
 * A test waits for the event it checks (a pid gone, a line in a file, a
 * reply), never for a while: TU_UNTIL below. Helpers assert (cmocka) where a
 * failure can only mean the test failed, and return where a test may want to
 * see the failure (EOF, timeouts, refused connections).
 */
#ifndef JSHOST_TU_H
#define JSHOST_TU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * How long a test waits for something that must happen (a reply, a process
 * to start or go): far past any deadline under test and any slowness of a
 * sanitizer build, so only a hang trips it. Speed is measured in bench/.
 */
#define TU_WAIT_MS 30000

/* Build-tree and source-tree paths (meson sets the roots); static buffers
 * from a ring of eight, so a few can be used in one call. */
const char *tu_build_path(const char *rel);
const char *tu_source_path(const char *rel);
/* dir/name, malloc'd. */
char *tu_path(const char *dir, const char *name);

/* A fresh 0700 temp dir (short path under /tmp, so sockets fit sun_path). */
char *tu_tmpdir(void);
/* rm -rf of a dir under /tmp, symlinks not followed; frees the string. */
void tu_rmtree(char *dir);
/* Writes dir/name with text, making the folders in name ("a/b/c.js");
 * returns the malloc'd path. */
char *tu_write_file(const char *dir, const char *name, const char *text);
/* The whole file, malloc'd and NUL-terminated; NULL (errno set) when it
 * cannot be opened, e.g. it does not exist (yet). */
char *tu_read_file(const char *path);
/* As tu_read_file, but "" (malloc'd) when the file is missing. */
char *tu_read_text(const char *path);
/* Whether path exists (lstat: a dangling symlink or a dead socket counts). */
bool tu_exists(const char *path);
/* The file's size, 0 when it does not exist (yet). */
size_t tu_file_size(const char *path);
/* Whether the file exists and contains needle. */
bool tu_file_contains(const char *path, const char *needle);
/* The first number in a pid file, 0 when it is missing or holds none. */
pid_t tu_read_pid(const char *path);

/*
 * Spawns argv (argv[0] a path) with env additions (NULL-terminated "K=V"
 * list, a bare "K" unsets K; may be NULL); stdin is /dev/null, stdout and
 * stderr go to logpath when not NULL. Returns the pid.
 */
pid_t tu_spawn(char *const argv[], char *const envadd[], const char *logpath);
/* As tu_spawn, and give is the child's child_fd (as a manager hands a worker
 * its socket). */
pid_t tu_spawn_fd(char *const argv[], char *const envadd[], const char *logpath,
                  int give, int child_fd);
/* Waits up to timeout_ms (< 0: no limit) for our child pid; returns its wait
 * status, or -1 on timeout. */
int tu_wait(pid_t pid, int timeout_ms);
/* SIGTERM, up to 2 s, then SIGKILL; reaps it. */
void tu_kill(pid_t pid);
/* Whether pid is gone: no such process, or a zombie nobody reaps yet (a
 * daemon is not our child). */
bool tu_pid_gone(pid_t pid);
/*
 * Runs argv (env additions as tu_spawn) to its end: `input` (NULL: nothing)
 * is its stdin, then EOF; its stdout and stderr come back in *out and *err
 * (malloc'd, set even on timeout). Returns its exit status, 128 + the signal
 * that ended it, or -1 when it still ran after timeout_ms (< 0: no limit; it
 * is then SIGKILLed and reaped).
 */
int tu_run(char *const argv[], char *const envadd[], const char *input,
           char **out, char **err, int timeout_ms);

/* A Unix stream socket connected to path (close-on-exec), or -1 with errno
 * set (ENAMETOOLONG: the path does not fit sun_path). */
int tu_connect(const char *path);
/* Waits up to timeout_ms until connect(path) succeeds; true when it did. */
bool tu_wait_socket(const char *path, int timeout_ms);
/* Waits up to timeout_ms until fd is readable or its peer has hung up. */
bool tu_readable(int fd, int timeout_ms);
/* Reads n bytes from fd (a pipe from a child, say) unless EOF comes first;
 * fails the test when they take more than timeout_ms. Returns how many. */
size_t tu_read_full(int fd, void *buf, size_t n, int timeout_ms);

/* A monotonic clock in milliseconds. */
int64_t tu_now_ms(void);

/* A deadline for one wait; TU_UNTIL is the usual way to use it. */
struct tu_deadline {
    int64_t end_ms;
    int ms;
};

struct tu_deadline tu_deadline_start(int ms);
bool tu_deadline_passed(const struct tu_deadline *d);
/* Lets a moment pass before a condition is tested again; false (at once)
 * when the deadline has passed. */
bool tu_deadline_wait(const struct tu_deadline *d);
/* Fails the test: "file:line: waited N ms for: what". */
void tu_deadline_fail(const struct tu_deadline *d, const char *file, int line,
                      const char *what);

/*
 * Waits until cond holds, testing it again every few milliseconds; fails the
 * test after ms with "file:line: waited ms ms for: cond". cond may have side
 * effects (one step of a scenario) and is evaluated at least once.
 */
#define TU_UNTIL(cond, ms)                                                     \
    do {                                                                       \
        struct tu_deadline tu_until_ = tu_deadline_start(ms);                  \
        while (!(cond))                                                        \
            if (!tu_deadline_wait(&tu_until_))                                 \
                tu_deadline_fail(&tu_until_, __FILE__, __LINE__, #cond);       \
    } while (0)

#endif
