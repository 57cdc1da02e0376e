/*
 * The benches' one size: JSHOST_BENCH_SCALE (scripts/bench's SCALE, default
 * 1) multiplies every count and duration a bench runs, so that the test
 * suite can run every bench in moments (tests: the bench suite). At 1 each
 * bench runs what make bench measures. The Python benches read the same
 * variable through bench_scale.py.
 */
#ifndef JSHOST_BENCH_SCALE_H
#define JSHOST_BENCH_SCALE_H

#ifdef __cplusplus
extern "C" {
#endif

/* n times the scale, never below least. Exits when JSHOST_BENCH_SCALE is
 * not a positive number: a bench cannot run at a size nobody meant. */
long bench_scaled(long n, long least);

/* The same for a duration in seconds. */
double bench_scaled_seconds(double seconds, double least);

#ifdef __cplusplus
}
#endif

#endif
