/* Small helpers shared by the client tests: temp dirs, helper processes. */
#ifndef JSHOST_TEST_CLIENT_HELPERS_H
#define JSHOST_TEST_CLIENT_HELPERS_H

#include <sys/types.h>

/* A fresh 0700 dir under /tmp (short: sockets must fit sun_path). */
char *th_tmpdir(void);
/* rm -rf dir, then free it. */
void th_rmtree(char *dir);
/* Writes text to dir/name; returns the malloc'd path. */
char *th_write(const char *dir, const char *name, const char *text);
/* Starts argv[0] with argv; stdout/stderr to logpath when not NULL. */
pid_t th_spawn(char *const argv[], const char *logpath);
/* Waits until connect(path) works, up to ms. 1 when it did. */
int th_wait_socket(const char *path, int ms);
/* SIGTERM, then SIGKILL after 2 s; reaps. */
void th_kill(pid_t pid);
/* Wait status of pid within ms, or -1. */
int th_wait(pid_t pid, int ms);
/* Runs argv with stdin text (may be NULL) and captures stdout and stderr
 * (malloc'd). Returns the exit status (128+sig when killed), -1 on failure. */
int th_run(char *const argv[], const char *input, char **out, char **err,
           int timeout_ms);
/* The malloc'd contents of a file, NULL when missing. */
char *th_read_file(const char *path);
/* Lines in a file (0 when missing). */
int th_count_lines(const char *path);

#endif
