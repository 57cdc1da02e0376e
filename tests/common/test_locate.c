/* locate: the one way to find the daemons. The override and its refusals,
 * then each layout relative to the calling binary: a copy of this test
 * binary is put where an installed or packaged program would be, and asked
 * (`--locate manager|worker`) what it finds from there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "locate.h"

struct fx {
    char *tmp;
    char cwd[PATH_MAX];
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);

    fx->tmp = tu_tmpdir();
    assert_non_null(getcwd(fx->cwd, sizeof fx->cwd));
    unsetenv("JSHOST_MANAGER");
    unsetenv("JSHOST_WORKER");
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(chdir(fx->cwd), 0);
    tu_rmtree(fx->tmp);
    free(fx);
    unsetenv("JSHOST_MANAGER");
    unsetenv("JSHOST_WORKER");
    return 0;
}

/* mkdir -p of the folders above path. */
static void
make_parents(const char *path)
{
    char buf[PATH_MAX], *s;

    snprintf(buf, sizeof buf, "%s", path);
    for (s = strchr(buf + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(buf, 0700) != 0)
            assert_int_equal(errno, EEXIST);
        *s = '/';
    }
}

/* Writes a file of `mode` at dir/rel (folders made); returns its path. */
static char *
make_file(const char *dir, const char *rel, const char *text, mode_t mode)
{
    char *path = tu_path(dir, rel);
    FILE *f;

    make_parents(path);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static char *
make_exe(const char *dir, const char *rel)
{
    return make_file(dir, rel, "#!/bin/sh\nexit 0\n", 0755);
}

/* The real path of dir/rel, in a static buffer. */
static const char *
real(const char *dir, const char *rel)
{
    static char out[PATH_MAX];
    char *p = tu_path(dir, rel);

    if (realpath(p, out) == NULL)
        fail_msg("realpath %s: %s", p, strerror(errno));
    free(p);
    return out;
}

static void
assert_found(enum locate_daemon which, const char *want)
{
    char out[PATH_MAX];
    int r = locate_daemon(which, NULL, out, sizeof out);

    if (r != 0)
        fail_msg("locate_daemon: %s (%s)", strerror(-r), out);
    assert_string_equal(out, want);
}

static void
assert_refused(enum locate_daemon which, int want_err, const char *want_out)
{
    char out[PATH_MAX] = "";

    assert_int_equal(locate_daemon(which, NULL, out, sizeof out), want_err);
    assert_string_equal(out, want_out);
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(locate_name(LOCATE_MANAGER), "jshost-manager");
    assert_string_equal(locate_name(LOCATE_WORKER), "jshost-worker");
    assert_string_equal(locate_env(LOCATE_MANAGER), "JSHOST_MANAGER");
    assert_string_equal(locate_env(LOCATE_WORKER), "JSHOST_WORKER");
}

/* The override wins, made absolute now; a bare name is looked up on PATH. */
static void
test_override(void **state)
{
    struct fx *fx = *state;
    char *mgr = make_exe(fx->tmp, "bin/my-manager");
    char *wrk = make_exe(fx->tmp, "w/my-worker");
    char want[PATH_MAX], *path = getenv("PATH"), *saved;

    saved = strdup(path != NULL ? path : "/usr/bin:/bin");
    snprintf(want, sizeof want, "%s", real(fx->tmp, "bin/my-manager"));
    setenv("JSHOST_MANAGER", mgr, 1);
    assert_found(LOCATE_MANAGER, want);
    /* each daemon has its own variable */
    setenv("JSHOST_WORKER", wrk, 1);
    assert_found(LOCATE_WORKER, real(fx->tmp, "w/my-worker"));
    /* relative to the working directory of the moment */
    assert_int_equal(chdir(fx->tmp), 0);
    setenv("JSHOST_MANAGER", "bin/my-manager", 1);
    assert_found(LOCATE_MANAGER, want);
    setenv("JSHOST_MANAGER", "./bin/../bin/my-manager", 1);
    assert_found(LOCATE_MANAGER, want);
    /* a bare name: PATH, as a shell would */
    setenv("JSHOST_MANAGER", "my-manager", 1);
    setenv("PATH", real(fx->tmp, "bin"), 1);
    assert_found(LOCATE_MANAGER, want);
    setenv("PATH", "/nonexistent:", 1);
    assert_refused(LOCATE_MANAGER, -ENOENT, "my-manager");
    setenv("PATH", saved, 1);
    free(saved);
    /* an empty override is no override */
    setenv("JSHOST_MANAGER", "", 1);
    assert_int_equal(chdir(fx->cwd), 0);
    {
        char out[PATH_MAX];
        int r = locate_daemon(LOCATE_MANAGER, NULL, out, sizeof out);
        assert_true(r == 0 || r == -ENOENT);
        assert_string_not_equal(out, "");
    }
    free(mgr);
    free(wrk);
}

/* An override that names nothing usable is refused, naming it: never a
 * silent fall back to another binary. */
static void
test_override_refused(void **state)
{
    struct fx *fx = *state;
    char *plain = make_file(fx->tmp, "plain", "not a program", 0644);
    char *missing = tu_path(fx->tmp, "missing/jshost-manager");

    setenv("JSHOST_MANAGER", missing, 1);
    assert_refused(LOCATE_MANAGER, -ENOENT, missing);
    setenv("JSHOST_MANAGER", plain, 1);
    assert_refused(LOCATE_MANAGER, -EACCES, real(fx->tmp, "plain"));
    setenv("JSHOST_WORKER", fx->tmp, 1);
    assert_refused(LOCATE_WORKER, -EISDIR, real(fx->tmp, "."));
    free(plain);
    free(missing);
}

/* This very binary lies in a build tree (BUILD/tests/common): from there the
 * build's own daemons are found. */
static void
test_build_tree(void **state)
{
    char self[PATH_MAX], want[PATH_MAX + 64], *slash;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

    (void)state;
    assert_true(n > 0);
    self[n] = '\0';
    for (int up = 0; up < 3; up++) {
        slash = strrchr(self, '/');
        assert_non_null(slash);
        *slash = '\0';
    }
    snprintf(want, sizeof want, "%s/manager/jshost-manager", self);
    assert_found(LOCATE_MANAGER, want);
    snprintf(want, sizeof want, "%s/worker/jshost-worker", self);
    assert_found(LOCATE_WORKER, want);
}

/* Runs a copy of this binary put at dir/rel with `--locate which`; returns
 * what it printed ("0 PATH" or "-ERRNO WHAT"), malloc'd. */
static char *
locate_from(const char *dir, const char *rel, const char *which)
{
    char self[PATH_MAX], buf[8192], *copy = tu_path(dir, rel), *out;
    int in, to, pfd[2], st;
    ssize_t n, got = 0;
    pid_t pid;

    n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    make_parents(copy);
    in = open(self, O_RDONLY | O_CLOEXEC);
    to = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(in >= 0 && to >= 0);
    while ((n = read(in, buf, sizeof buf)) > 0)
        assert_int_equal(write(to, buf, (size_t)n), n);
    close(in);
    close(to);
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        unsetenv("JSHOST_MANAGER");
        unsetenv("JSHOST_WORKER");
        setenv("PATH", "/nonexistent", 1);
        execl(copy, copy, "--locate", which, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    while ((n = read(pfd[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
        got += n;
    buf[got] = '\0';
    close(pfd[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    out = strdup(buf);
    free(copy);
    return out;
}

static void
assert_from(const char *dir, const char *rel, const char *which,
            const char *want_rel)
{
    char want[PATH_MAX + 8], *got = locate_from(dir, rel, which);

    snprintf(want, sizeof want, "0 %s\n", real(dir, want_rel));
    assert_string_equal(got, want);
    free(got);
}

/* An installed prefix: bin/, lib/, lib/<multiarch>/ and a Python package in
 * lib/python3.X/site-packages all find PREFIX/libexec/jshost/. */
static void
test_installed_prefix(void **state)
{
    struct fx *fx = *state;
    char prefix[PATH_MAX];

    snprintf(prefix, sizeof prefix, "%s/usr", fx->tmp);
    free(make_exe(prefix, "libexec/jshost/jshost-manager"));
    free(make_exe(prefix, "libexec/jshost/jshost-worker"));
    assert_from(prefix, "bin/prog", "manager", "libexec/jshost/jshost-manager");
    assert_from(prefix, "lib/prog", "worker", "libexec/jshost/jshost-worker");
    assert_from(prefix, "lib/x86_64-linux-gnu/prog", "manager",
                "libexec/jshost/jshost-manager");
    assert_from(prefix, "lib/python3.11/site-packages/jshost/prog", "worker",
                "libexec/jshost/jshost-worker");
    /* the manager itself, in libexec/jshost, finds its worker beside it */
    assert_from(prefix, "libexec/jshost/prog", "worker",
                "libexec/jshost/jshost-worker");
}

/* A package that carries its daemons (pip install) finds them beside itself
 * before any prefix; a build tree's layout is found from deeper folders. */
static void
test_package_and_build_layouts(void **state)
{
    struct fx *fx = *state;
    char pkg[PATH_MAX], *got;

    snprintf(pkg, sizeof pkg, "%s/venv/lib/python3.11/site-packages/jshost",
             fx->tmp);
    free(make_exe(fx->tmp, "venv/libexec/jshost/jshost-manager"));
    free(make_exe(pkg, "jshost-manager"));
    assert_from(pkg, "_prog", "manager", "jshost-manager");

    free(make_exe(fx->tmp, "b/manager/jshost-manager"));
    free(make_exe(fx->tmp, "b/worker/jshost-worker"));
    assert_from(fx->tmp, "b/clients/python/jshost/_prog", "manager",
                "b/manager/jshost-manager");
    assert_from(fx->tmp, "b/clients/cli/prog", "worker",
                "b/worker/jshost-worker");
    assert_from(fx->tmp, "b/manager/prog", "worker", "b/worker/jshost-worker");

    /* five folders up is past the search: nothing there is taken */
    got = locate_from(fx->tmp, "b/1/2/3/4/5/prog", "worker");
    assert_null(strstr(got, "/b/worker/"));
    free(got);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_installed_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_package_and_build_layouts, setup,
                                        teardown),
    };

    if (argc == 3 && strcmp(argv[1], "--locate") == 0) {
        char out[PATH_MAX];
        int r = locate_daemon(strcmp(argv[2], "worker") == 0 ? LOCATE_WORKER
                                                             : LOCATE_MANAGER,
                              NULL, out, sizeof out);
        printf("%d %s\n", r, out);
        return 0;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
