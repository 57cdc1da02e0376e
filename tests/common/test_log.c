/* log and xmalloc: the daemons' line format, levels, fatal(). */
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
#include <regex.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "log.h"
#include "xmalloc.h"

static void
assert_matches(const char *text, const char *re)
{
    regex_t rx;

    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NEWLINE), 0);
    if (regexec(&rx, text, 0, NULL, 0) != 0)
        fail_msg("\"%s\" does not match /%s/", text, re);
    regfree(&rx);
}

#define TS "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

static void
test_timestamp(void **state)
{
    char buf[32];

    (void)state;
    log_timestamp(buf, sizeof buf);
    assert_int_equal(strlen(buf), 24);
    assert_matches(buf, "^" TS "$");
}

static void
test_lines(void **state)
{
    char *tmp = tu_tmpdir(), *path = tu_path(tmp, "x.log"), *text, re[512];
    struct stat sb;
    long pid = (long)getpid();

    (void)state;
    assert_int_equal(log_open(path, "test_log"), 0);
    assert_true(log_fd() > 2);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    log_info("hello %d", 42);
    log_debug("not at the default level");
    log_warn("careful\n"); /* a trailing newline is not doubled */
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("now %s", "shown");
    log_error("Error: boom\n    at f (a.js:1:2)\n    at g (a.js:3:4)");
    log_set_level(LOG_LEVEL_ERROR);
    log_info("filtered");
    log_set_level(LOG_LEVEL_INFO);
    log_close();
    assert_int_equal(log_fd(), 2);

    text = tu_read_file(path);
    assert_non_null(text);
    snprintf(re, sizeof re,
             "^" TS " \\[%ld\\] INFO hello 42\n" TS
             " \\[%ld\\] WARN careful\n" TS " \\[%ld\\] DEBUG now shown\n" TS
             " \\[%ld\\] ERROR Error: boom\n"
             "      at f \\(a.js:1:2\\)\n"
             "      at g \\(a.js:3:4\\)\n$",
             pid, pid, pid, pid);
    assert_matches(text, re);
    assert_null(strstr(text, "filtered"));
    assert_null(strstr(text, "default level"));
    free(text);

    /* Appends, never truncates. */
    assert_int_equal(log_open(path, NULL), 0);
    log_info("second open");
    log_close();
    text = tu_read_file(path);
    assert_non_null(strstr(text, "hello 42"));
    assert_non_null(strstr(text, "INFO second open\n"));
    free(text);

    assert_int_equal(log_open("/nonexistent-dir/x.log", "t"), -ENOENT);
    free(path);
    tu_rmtree(tmp);
}

static void
test_long_line(void **state)
{
    char *tmp = tu_tmpdir(), *path = tu_path(tmp, "x.log"), *text, *big;

    (void)state;
    big = malloc(10001);
    memset(big, 'z', 10000);
    big[10000] = '\0';
    assert_int_equal(log_open(path, "t"), 0);
    log_info("%s!", big);
    log_close();
    text = tu_read_file(path);
    assert_non_null(strstr(text, big));
    assert_non_null(strstr(text, "z!\n"));
    free(text);
    free(big);
    free(path);
    tu_rmtree(tmp);
}

static void
test_fatal(void **state)
{
    char *tmp = tu_tmpdir(), *path = tu_path(tmp, "x.log"), *text;
    int status;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (log_open(path, "t") != 0)
            _exit(9);
        errno = ENOENT;
        fatal("cannot open %s", "the thing");
    }
    status = tu_wait(pid, TU_WAIT_MS);
    assert_int_not_equal(status, -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    text = tu_read_file(path);
    assert_matches(text, "^" TS " \\[[0-9]+\\] ERROR fatal: cannot open the "
                         "thing: No such file or directory\n$");
    free(text);
    free(path);
    tu_rmtree(tmp);
}

static void
test_xmalloc(void **state)
{
    char *s;
    int *v;

    (void)state;
    s = xstrdup("abc");
    assert_string_equal(s, "abc");
    free(s);
    s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = xstrndup("ab", 10);
    assert_string_equal(s, "ab");
    free(s);
    s = xasprintf("%d-%s", 7, "x");
    assert_string_equal(s, "7-x");
    free(s);
    v = xcalloc(4, sizeof *v);
    assert_int_equal(v[3], 0);
    v = xrealloc(v, 100 * sizeof *v);
    free(v);
    free(xmalloc(0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamp), cmocka_unit_test(test_lines),
        cmocka_unit_test(test_long_line), cmocka_unit_test(test_fatal),
        cmocka_unit_test(test_xmalloc),
    };

    return cmocka_run_group_tests_name("common/log", tests, NULL, NULL);
}
