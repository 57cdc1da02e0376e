/* rundir: where the runtime dir is, how it is created, and which ones are
 * refused (docs/protocol.md, "Transport and security"). */
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
#include <sys/types.h>

#include "jshost_defs.h"
#include "rundir.h"

struct fx {
    char *tmp;
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);

    fx->tmp = tu_tmpdir();
    unsetenv("JSHOST_RUNTIME_DIR");
    unsetenv("XDG_RUNTIME_DIR");
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    tu_rmtree(fx->tmp);
    free(fx);
    unsetenv("JSHOST_RUNTIME_DIR");
    unsetenv("XDG_RUNTIME_DIR");
    return 0;
}

static void
assert_mode_0700_dir(const char *path)
{
    struct stat sb;

    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0700);
    assert_int_equal(sb.st_uid, getuid());
}

/* A cause names the path and says why. */
static void
assert_cause(char *cause, const char *path, const char *why)
{
    assert_non_null(cause);
    if (strstr(cause, path) == NULL || strstr(cause, why) == NULL)
        fail_msg("cause \"%s\" should name %s and say \"%s\"", cause, path,
                 why);
    free(cause);
}

static void
test_env_wins_over_xdg(void **state)
{
    struct fx *fx = *state;
    char *want = tu_path(fx->tmp, "env"), *xdg = tu_path(fx->tmp, "xdg");
    char buf[256], *cause = NULL, *hosts;

    assert_int_equal(mkdir(xdg, 0700), 0);
    setenv("JSHOST_RUNTIME_DIR", want, 1);
    setenv("XDG_RUNTIME_DIR", xdg, 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), 0);
    assert_null(cause);
    assert_string_equal(buf, want);
    assert_mode_0700_dir(want);
    hosts = tu_path(want, JSHOST_HOSTS_DIR);
    assert_mode_0700_dir(hosts);
    free(hosts);

    /* Resolving again finds the same, already made dir. */
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), 0);
    assert_string_equal(buf, want);
    free(want);
    free(xdg);
}

static void
test_xdg_then_tmp(void **state)
{
    struct fx *fx = *state;
    char buf[256], want[256], *cause = NULL;
    int r;

    /* An empty JSHOST_RUNTIME_DIR counts as unset. */
    setenv("JSHOST_RUNTIME_DIR", "", 1);
    setenv("XDG_RUNTIME_DIR", fx->tmp, 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), 0);
    snprintf(want, sizeof want, "%s/jshost", fx->tmp);
    assert_string_equal(buf, want);
    assert_mode_0700_dir(want);

    /* Neither: /tmp/jshost-<uid>. That dir is shared with whatever else runs
     * on this machine as us, so only the choice is asserted; if it exists in
     * a bad state, the refusal must name it. */
    unsetenv("XDG_RUNTIME_DIR");
    snprintf(want, sizeof want, "/tmp/jshost-%lu", (unsigned long)getuid());
    r = rundir_resolve(buf, sizeof buf, &cause);
    assert_string_equal(buf, want);
    if (r != 0)
        assert_cause(cause, want, "runtime dir");
}

static void
test_relative_env_made_absolute(void **state)
{
    struct fx *fx = *state;
    char buf[256], want[256], cwd[256], *cause = NULL;

    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx->tmp), 0);
    setenv("JSHOST_RUNTIME_DIR", "rel//", 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), 0);
    assert_int_equal(chdir(cwd), 0);
    snprintf(want, sizeof want, "%s/rel", fx->tmp);
    assert_string_equal(buf, want);
    assert_mode_0700_dir(want);
}

/* Resolving `name` (prepared by the caller) must fail with err and why. */
static void
expect_refused(struct fx *fx, const char *name, int err, const char *why)
{
    char *path = tu_path(fx->tmp, name), buf[256], *cause = NULL;

    setenv("JSHOST_RUNTIME_DIR", path, 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), err);
    assert_cause(cause, path, why);
    assert_int_equal(rundir_check(path, &cause), err);
    assert_cause(cause, path, why);
    free(path);
}

static void
test_group_writable_refused(void **state)
{
    struct fx *fx = *state;
    char *p = tu_path(fx->tmp, "g");

    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, 0770), 0);
    expect_refused(fx, "g", -EACCES, "open to group or others (mode 0770");
    /* Even read-only for the group is too open. */
    assert_int_equal(chmod(p, 0740), 0);
    expect_refused(fx, "g", -EACCES, "mode 0740");
    free(p);
}

static void
test_other_writable_refused(void **state)
{
    struct fx *fx = *state;
    char *p = tu_path(fx->tmp, "o");

    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, 0703), 0);
    expect_refused(fx, "o", -EACCES, "open to group or others (mode 0703");
    free(p);
}

static void
test_other_owner_refused(void **state)
{
    struct fx *fx = *state;
    char *p = tu_path(fx->tmp, "u");

    if (getuid() != 0) {
        /* Only root can give a dir away; say so rather than pass quietly. */
        print_message("SKIP other-owner case: needs root to chown a dir\n");
        skip();
    }
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chown(p, 65534, 65534), 0);
    expect_refused(fx, "u", -EACCES, "owned by uid 65534, not by us");
    free(p);
}

static void
test_symlink_refused(void **state)
{
    struct fx *fx = *state;
    char *good = tu_path(fx->tmp, "good"), *link = tu_path(fx->tmp, "link");

    /* A perfectly good dir behind a symlink is still refused: the link could
     * be re-pointed at any time. */
    assert_int_equal(mkdir(good, 0700), 0);
    assert_int_equal(symlink(good, link), 0);
    expect_refused(fx, "link", -ENOTDIR, "symbolic link");
    free(good);
    free(link);
}

static void
test_file_refused(void **state)
{
    struct fx *fx = *state;
    char *p = tu_path(fx->tmp, "file");
    FILE *f = fopen(p, "w");

    assert_non_null(f);
    fclose(f);
    chmod(p, 0600);
    expect_refused(fx, "file", -ENOTDIR, "not a directory");
    free(p);
}

static void
test_bad_hosts_subdir_refused(void **state)
{
    struct fx *fx = *state;
    char *p = tu_path(fx->tmp, "h"), *hosts = tu_path(p, "hosts");
    char buf[256], *cause = NULL;

    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(mkdir(hosts, 0700), 0);
    assert_int_equal(chmod(hosts, 0777), 0);
    setenv("JSHOST_RUNTIME_DIR", p, 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), -EACCES);
    assert_cause(cause, hosts, "open to group or others");
    free(p);
    free(hosts);
}

static void
test_missing_parent(void **state)
{
    struct fx *fx = *state;
    char *p = tu_path(fx->tmp, "no/such"), buf[256], *cause = NULL;

    setenv("JSHOST_RUNTIME_DIR", p, 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), -ENOENT);
    assert_cause(cause, p, "cannot create it");
    free(p);
}

static void
test_created_with_0700_despite_umask(void **state)
{
    struct fx *fx = *state;
    char *p = tu_path(fx->tmp, "m"), buf[256], *cause = NULL;
    mode_t old = umask(0);

    setenv("JSHOST_RUNTIME_DIR", p, 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), 0);
    umask(old);
    assert_mode_0700_dir(p);
    free(p);
}

static void
test_sockpath_length(void **state)
{
    char path[200], *cause = NULL;

    (void)state;
    assert_int_equal(RUNDIR_SUN_PATH_MAX, 108);
    memset(path, 'a', sizeof path);
    path[0] = '/';
    path[107] = '\0'; /* 107 bytes + NUL = 108: fits */
    assert_int_equal(rundir_check_sockpath(path, &cause), 0);
    assert_null(cause);
    assert_int_equal(rundir_check_sockpath(path, NULL), 0);

    path[107] = 'a';
    path[108] = '\0'; /* 108 bytes: the NUL no longer fits */
    assert_int_equal(rundir_check_sockpath(path, &cause), -ENAMETOOLONG);
    assert_cause(cause, path, "longer than a Unix socket address holds");
    assert_int_equal(rundir_check_sockpath(path, NULL), -ENAMETOOLONG);
}

static void
test_join(void **state)
{
    char buf[16];

    (void)state;
    assert_int_equal(rundir_join(buf, sizeof buf, "/run", "x.sock"), 0);
    assert_string_equal(buf, "/run/x.sock");
    assert_int_equal(
        rundir_join(buf, sizeof buf, "/run/jshost", "manager.sock"),
        -ENAMETOOLONG);
    /* Exactly filling the buffer with its NUL is fine. */
    assert_int_equal(rundir_join(buf, sizeof buf, "/abcdefghi", "jklm"), 0);
    assert_int_equal(rundir_join(buf, sizeof buf, "/abcdefghi", "jklmn"),
                     -ENAMETOOLONG);
}

static void
test_env_too_long(void **state)
{
    char big[300], buf[64], *cause = NULL;

    (void)state;
    memset(big, 'x', sizeof big);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    setenv("JSHOST_RUNTIME_DIR", big, 1);
    assert_int_equal(rundir_resolve(buf, sizeof buf, &cause), -ENAMETOOLONG);
    assert_cause(cause, "JSHOST_RUNTIME_DIR", "too long");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_env_wins_over_xdg, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_xdg_then_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_env_made_absolute, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_writable_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_writable_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_owner_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_hosts_subdir_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_with_0700_despite_umask,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sockpath_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_too_long, setup, teardown),
    };

    return cmocka_run_group_tests_name("common/rundir", tests, NULL, NULL);
}
