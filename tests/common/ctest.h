/*
 * Helpers for common/'s unit tests: a private temp dir per scenario and file
 * slurping. Kept apart from tests/support so that common/ is testable on its
 * own (testutil needs proto/).
 */
#ifndef JSHOST_CTEST_H
#define JSHOST_CTEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh 0700 dir under /tmp (short, so socket paths fit sun_path). */
static inline char *
ct_tmpdir(void)
{
    char *d = strdup("/tmp/jct-XXXXXX");

    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static inline int
ct__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf, without following symlinks; frees dir. */
static inline void
ct_rmtree(char *dir)
{
    if (dir == NULL)
        return;
    /* A test may have left a dir unreadable to us in theory; make it ours. */
    chmod(dir, 0700);
    nftw(dir, ct__rm, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* dir/name in a malloc'd string. */
static inline char *
ct_path(const char *dir, const char *name)
{
    char *p;

    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

/* The whole file as a malloc'd NUL-terminated string, NULL if missing. */
static inline char *
ct_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n = 0, cap = 4096, got;

    if (f == NULL)
        return NULL;
    buf = malloc(cap);
    assert_non_null(buf);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

#endif
