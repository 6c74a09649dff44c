// Functions of known duration for the accuracy tests. Usage: accuracy N
// spin50 busy-waits 50 µs (on CLOCK_MONOTONIC) and sleep2 sleeps 2 ms, N
// times each. Each call also times itself from the inside, between where
// the probes fire, and the medians of those are printed: the truth ulat's
// corrected figures are checked against.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static long inner[2][100000];

__attribute__((noinline)) long spin50(long i)
{
	long start = now_ns(), end = start + 50000, n = 0, t;
	while ((t = now_ns()) < end)
		n++;
	inner[0][i] = t - start;
	return n;
}

__attribute__((noinline)) long sleep2(long i)
{
	long start = now_ns();
	struct timespec ts = {0, 2000000};
	while (nanosleep(&ts, &ts) != 0)
		;
	inner[1][i] = now_ns() - start;
	return 1;
}

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: accuracy N\n");
		return 2;
	}
	long n = atol(argv[1]), total = 0;
	if (n < 1 || n > 100000)
		return 2;
	for (long i = 0; i < n; i++)
		total += spin50(i) > 0;
	for (long i = 0; i < n; i++)
		total += sleep2(i);
	qsort(inner[0], n, sizeof(long), cmp);
	qsort(inner[1], n, sizeof(long), cmp);
	printf("total=%ld spin50_p50=%ld sleep2_p50=%ld\n", total, inner[0][n / 2], inner[1][n / 2]);
	return 0;
}
