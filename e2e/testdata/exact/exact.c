// Functions whose every call times itself, for the exact-percentile tests.
// Usage: exact N [SCALE]
//
// Each dist_* function busy-waits on CLOCK_MONOTONIC for a duration drawn
// beforehand from a fixed-seed PRNG (so the draws cost nothing inside the
// calls and every run draws the same durations; see stratified for how),
// and measures itself from
// the inside: the start time is its first act and the end time its last (the
// loop's final clock read; only a store and the return follow it), so the
// inner time is as close as a program can get to the entry→return interval
// ulat's probes see. The distributions:
//
//	narrow      1 ms ± 0.2% (uniform)
//	bimodal     70%: 200 µs ± 5%, 30%: 3 ms ± 5% (uniform within each mode)
//	loguniform  log-uniform between 100 µs and 5 ms
//	short       log-uniform between 4 µs and 9 µs
//
// SCALE (default 1) multiplies every duration: slower machines, such as
// emulated guests, want longer calls.
//
// The calls are interleaved (narrow, bimodal, loguniform, short, narrow, ...)
// rather than run in sequence: whatever disturbs the machine while the
// target runs (another process, a timer, ulat's own reader) then falls on
// every distribution alike instead of on one of them, and each interval of
// `ulat trace --interval` holds calls of all four.
//
// After the calls, one line per function:
//
//	name count=N p50=… p90=… p99=… min=… max=…
//
// with nearest-rank percentiles of the inner durations in ns: rank =
// ceil(p/100*N), value = sorted[rank-1]. With EXACT_DUMP=FILE in the
// environment, it also writes every inner duration to FILE, sorted, a line
// per function: `name d1 d2 ... dN`.
//
// Build with gcc -O2 -fno-omit-frame-pointer, so that every function starts
// with `push %rbp`, an instruction x86 uprobes emulate instead of
// single-stepping (cheaper, and steadier to subtract).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

// The busy-wait every function does; inlined, so that the clock reads are
// the function's first and last acts.
static inline __attribute__((always_inline)) void spin(long d, long *inner)
{
	long start = now_ns(), t;
	while ((t = now_ns()) - start < d)
		;
	*inner = t - start;
}

// One function per distribution, so that ulat times them apart.
__attribute__((noinline)) void dist_narrow(long d, long *inner) { spin(d, inner); }
__attribute__((noinline)) void dist_bimodal(long d, long *inner) { spin(d, inner); }
__attribute__((noinline)) void dist_loguniform(long d, long *inner) { spin(d, inner); }
__attribute__((noinline)) void dist_short(long d, long *inner) { spin(d, inner); }

// splitmix64, seeded with a constant: the same durations on every run.
static uint64_t rng = 0x5eed0f0e7ac7ULL;

static double uniform(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0; // [0, 1)
}

// stratified draws n quantiles, one in each of n equal slices of [0, 1), in
// random order; each distribution maps them through its inverse CDF. Its
// sorted durations are then spread evenly (neighbours at most two slices
// apart), so that no checked percentile sits in a wide gap, where one call
// displaced past its neighbour moves the percentile by the whole gap:
// independent draws leave gaps of several times the mean (with 1000 calls
// over log-uniform 10 µs..10 ms, one of 1.7% at the median).
static void stratified(double *q, long n)
{
	for (long i = 0; i < n; i++)
		q[i] = (i + uniform()) / n;
	for (long i = n - 1; i > 0; i--) {
		long j = (long)(uniform() * (i + 1));
		double t = q[i];
		q[i] = q[j];
		q[j] = t;
	}
}

// The inverse CDFs, in ns, of u in [0, 1).
static double narrow_ns(double u) { return 998e3 + 4e3 * u; }
static double bimodal_ns(double u) { return u < 0.7 ? 190e3 + 20e3 * (u / 0.7) : 2850e3 + 300e3 * ((u - 0.7) / 0.3); }
static double loguniform_ns(double u) { return 100e3 * exp(log(50) * u); }
static double short_ns(double u) { return 4e3 * exp(log(2.25) * u); }

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

// Nearest rank of percentile p (an integer) among n: ceil(p*n/100).
static long at(const long *sorted, long n, long p) { return sorted[(p * n + 99) / 100 - 1]; }

enum { NARROW, BIMODAL, LOGUNIFORM, SHORT, NDIST };
static const char *names[NDIST] = {"narrow", "bimodal", "loguniform", "short"};

int main(int argc, char **argv)
{
	long n = argc >= 2 ? atol(argv[1]) : 0, scale = argc == 3 ? atol(argv[2]) : 1;
	if (argc > 3 || n < 1 || n > 1000000 || scale < 1 || scale > 1000) {
		fprintf(stderr, "usage: exact N (1..1000000) [SCALE (1..1000)]\n");
		return 2;
	}
	double (*const ns[NDIST])(double) = {narrow_ns, bimodal_ns, loguniform_ns, short_ns};
	long *want[NDIST], *inner[NDIST];
	double *q = calloc(n, sizeof(double));
	if (!q)
		return 1;
	for (int k = 0; k < NDIST; k++) {
		want[k] = calloc(n, sizeof(long));
		inner[k] = calloc(n, sizeof(long));
		if (!want[k] || !inner[k])
			return 1;
		stratified(q, n);
		for (long i = 0; i < n; i++)
			want[k][i] = (long)(scale * ns[k](q[i]));
	}
	// Every page the calls write to is touched before the first call (a page
	// fault on the store after the last clock read would be counted by ulat
	// and not by the function), and clock_gettime is called once, so that
	// its lazy binding is not resolved inside the first call.
	for (int k = 0; k < NDIST; k++)
		memset(inner[k], 0xff, n * sizeof(long));
	now_ns();
	for (long i = 0; i < n; i++) {
		dist_narrow(want[NARROW][i], &inner[NARROW][i]);
		dist_bimodal(want[BIMODAL][i], &inner[BIMODAL][i]);
		dist_loguniform(want[LOGUNIFORM][i], &inner[LOGUNIFORM][i]);
		dist_short(want[SHORT][i], &inner[SHORT][i]);
	}
	const char *path = getenv("EXACT_DUMP");
	FILE *dump = path ? fopen(path, "w") : NULL;
	if (path && !dump) {
		perror(path);
		return 1;
	}
	for (int k = 0; k < NDIST; k++) {
		long *s = inner[k];
		qsort(s, n, sizeof(long), cmp);
		printf("%s count=%ld p50=%ld p90=%ld p99=%ld min=%ld max=%ld\n", names[k], n,
		       at(s, n, 50), at(s, n, 90), at(s, n, 99), s[0], s[n - 1]);
		if (dump) {
			fprintf(dump, "%s", names[k]);
			for (long i = 0; i < n; i++)
				fprintf(dump, " %ld", s[i]);
			fprintf(dump, "\n");
		}
	}
	if (dump && fclose(dump) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}
