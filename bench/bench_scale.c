/* JSHOST_BENCH_SCALE for the C and C++ benches (bench_scale.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_scale.h"

static double
bench_scale(void)
{
    const char *env = getenv("JSHOST_BENCH_SCALE");
    char *end;
    double s;

    if (env == NULL || *env == '\0')
        return 1;
    errno = 0;
    s = strtod(env, &end);
    if (errno != 0 || *end != '\0' || !isfinite(s) || s <= 0) {
        fprintf(stderr, "JSHOST_BENCH_SCALE=%s: not a positive number\n", env);
        exit(2);
    }
    return s;
}

long
bench_scaled(long n, long least)
{
    double v = (double)n * bench_scale();

    return v < (double)least ? least : (long)v;
}

double
bench_scaled_seconds(double seconds, double least)
{
    double v = seconds * bench_scale();

    return v < least ? least : v;
}
