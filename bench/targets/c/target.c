/* Benchmark target for `make bench` (C side): calls a function of known cost
 * N times in a tight loop and prints the average time per call, timed by the
 * target itself around the loop: wall time (ns_per_call) and the thread's
 * CPU time (cpu_ns_per_call, CLOCK_THREAD_CPUTIME_ID), which the kernel's
 * uprobe handling is charged to and which time spent waiting for a CPU on
 * a busy machine is not.
 *
 *   ctarget calibrate        print how many spin() iterations take ~1 µs
 *   ctarget empty N          call empty() N times
 *   ctarget spin N ITERS     call spin(ITERS) N times
 *   ctarget spintwin N ITERS call spin(ITERS) and its untraced twin
 *                            spin_twin(ITERS) in turn, N times each, and
 *                            print the twin's median wall time a call
 *                            (twin_p50_ns): what spin took in that run,
 *                            had it not been traced
 *
 * After the loop it also prints the CPUs the loop started and ended on
 * (cpu_start, cpu_end). With CTARGET_CPU=N in the environment it first
 * binds itself to CPU N: on a VM whose virtual CPUs share physical ones
 * unevenly, the same loop runs at different speeds on different CPUs.
 *
 * Built by bench/main.go with gcc -O2. noipa keeps gcc from proving the
 * functions pure and dropping or cloning the calls; the empty asm keeps the
 * loop in spin() from being folded into a formula. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__attribute__((noinline, noipa)) int empty(int x)
{
	asm volatile("");
	return x + 1;
}

__attribute__((noinline, noipa)) long spin(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++) {
		s += i;
		asm volatile("" : "+r"(s));
	}
	return s;
}

/* spin's twin: the same loop under another name, which a trace of spin
 * does not touch. noipa also keeps gcc from folding the two into one. */
__attribute__((noinline, noipa)) long spin_twin(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++) {
		s += i;
		asm volatile("" : "+r"(s));
	}
	return s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static double cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static int usage(void)
{
	fprintf(stderr, "usage: ctarget calibrate | empty N | spin N ITERS | spintwin N ITERS\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "calibrate")) {
		/* Best of several rounds of 2000 calls of 1000 iterations: calls
		 * of about the size measured, call overhead included. */
		const long calls = 2000, iters = 1000;
		double best = 0;
		long sink = 0;
		for (int r = 0; r < 9; r++) {
			double t0 = now_ns();
			for (long c = 0; c < calls; c++)
				sink += spin(iters);
			double t = (now_ns() - t0) / calls;
			if (best == 0 || t < best)
				best = t;
		}
		printf("iters_per_us %ld\n", (long)(1000.0 * iters / best + 0.5));
		return sink == 42; /* keeps sink alive */
	}
	if (argc < 3)
		return usage();
	const char *pin = getenv("CTARGET_CPU");
	if (pin && *pin) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(atoi(pin), &set);
		if (sched_setaffinity(0, sizeof set, &set)) {
			perror("ctarget: sched_setaffinity");
			return 1;
		}
	}
	long n = atol(argv[2]);
	long acc = 0;
	double t0, c0, twin_p50 = -1;
	int cpu_start = sched_getcpu();
	if (!strcmp(argv[1], "empty")) {
		c0 = cpu_ns();
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			acc += empty((int)i);
	} else if (!strcmp(argv[1], "spin") && argc >= 4) {
		long iters = atol(argv[3]);
		c0 = cpu_ns();
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			acc += spin(iters);
	} else if (!strcmp(argv[1], "spintwin") && argc >= 4 && n > 0) {
		long iters = atol(argv[3]);
		double *twin = malloc(n * sizeof *twin);
		if (!twin)
			return 1;
		c0 = cpu_ns();
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			acc += spin(iters);
			double s = now_ns();
			acc += spin_twin(iters);
			twin[i] = now_ns() - s;
		}
		qsort(twin, n, sizeof *twin, cmp_double);
		twin_p50 = twin[(n - 1) / 2];
		free(twin);
	} else {
		return usage();
	}
	double t = now_ns() - t0, c = cpu_ns() - c0;
	int cpu_end = sched_getcpu();
	printf("ns_per_call %.3f\ncpu_ns_per_call %.3f\ncalls %ld\nchecksum %ld\n", t / n, c / n, n, acc);
	printf("cpu_start %d\ncpu_end %d\n", cpu_start, cpu_end);
	if (twin_p50 >= 0)
		printf("twin_p50_ns %.0f\n", twin_p50);
	return 0;
}
