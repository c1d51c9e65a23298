/*
 * bench.h - what the `make bench` microbenchmarks share: a monotonic clock,
 * a fatal-error exit, a median, and the JSON they print.
 *
 * Each microbenchmark prints ONE JSON object on stdout:
 *   { "test": { "unit": "...", "samples": [one value per repetition], ...params }, ... }
 * bench/bench.py computes medians and minima from the samples. Every
 * repetition is preceded by one warm-up run that is not reported: on this
 * Firecracker guest the first touch of memory the host has not backed yet
 * costs ~10x the steady state (shared/reference/uffd-limits.md).
 */
#ifndef LZ_BENCH_H
#define LZ_BENCH_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_SIZE_4K 4096UL

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* One line on stderr naming what failed and why, then exit 1. */
__attribute__((format(printf, 2, 3), noreturn)) static inline void
bench_die(const char *prog, const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(1);
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v in place; returns the element at fraction q (0.5: the median). */
static inline uint64_t quantile_u64(uint64_t *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Prints `"name": {"unit": "u", "samples": [..]` and leaves the object open
 * for parameters; close it with json_test_end(). `first` is the caller's
 * flag for the comma between tests. */
static inline void json_test_begin(int *first, const char *name, const char *unit,
				   const double *samples, int n)
{
	printf("%s\n  \"%s\": {\"unit\": \"%s\", \"samples\": [", *first ? "{" : ",", name, unit);
	for (int i = 0; i < n; i++)
		printf("%s%.6g", i ? ", " : "", samples[i]);
	printf("]");
	*first = 0;
}

static inline void json_test_end(void)
{
	printf("}");
}

static inline void json_end(int first)
{
	printf("%s\n}\n", first ? "{" : "");
	fflush(stdout);
}

/* "--name N" style option value, or bench_die. */
static inline long parse_long(const char *prog, const char *opt, const char *s, long min,
			      long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || *end || end == s || v < min || v > max) {
		errno = 0;
		bench_die(prog, "%s %s: want a number from %ld to %ld", opt, s, min, max);
	}
	return v;
}

#endif /* LZ_BENCH_H */
