/*
 * Allocators that never return NULL, for the daemons: a manager or worker that
 * cannot allocate a few bytes cannot do anything sensible but log and exit
 * (the manager then sees the worker go and answers HostCrashed). Never used in
 * clients/, where the caller's process must survive (STYLE rule 3).
 */
#include "xmalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void *
xmalloc(size_t size)
{
    void *p;

    /* malloc(0) may return NULL legitimately; ask for one byte instead. */
    p = malloc(size == 0 ? 1 : size);
    if (p == NULL)
        fatalx("xmalloc: out of memory allocating %zu bytes", size);
    return p;
}

void *
xcalloc(size_t n, size_t size)
{
    void *p;

    if (n == 0 || size == 0)
        n = size = 1;
    if (SIZE_MAX / n < size)
        fatalx("xcalloc: %zu * %zu bytes overflows", n, size);
    p = calloc(n, size);
    if (p == NULL)
        fatalx("xcalloc: out of memory allocating %zu * %zu bytes", n, size);
    return p;
}

void *
xrealloc(void *p, size_t size)
{
    void *q;

    q = realloc(p, size == 0 ? 1 : size);
    if (q == NULL)
        fatalx("xrealloc: out of memory allocating %zu bytes", size);
    return q;
}

char *
xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
    char *p;

    n = strnlen(s, n);
    p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n == -1)
        fatalx("xasprintf: out of memory");
    return s;
}
