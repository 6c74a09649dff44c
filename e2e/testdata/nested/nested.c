// A caller and the twelve functions it calls, for the test that tracing
// callees does not change the caller's figures. Usage: nested N runs the
// caller N times and prints its exact median, timed from the inside:
//
//	caller count=N p50=NS
//
// Every part busy-waits on CLOCK_MONOTONIC for a fixed time, so the
// caller's duration without any probe is the same from run to run: the
// untraced run's median is the truth the traced runs are held to (a
// traced callee's probes really do run inside the caller, and its inside
// timing sees them). Built with frame pointers, the callees start with
// `push %rbp`, which uprobes emulate; `stepped` starts with a `lea`, which
// they single-step.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void spin(long ns)
{
	long end = now_ns() + ns;
	while (now_ns() < end)
		;
}

#define CALLEE(n) __attribute__((noinline)) void callee##n(void) { spin(2000); __asm__ volatile("" ::: "memory"); }
CALLEE(0) CALLEE(1) CALLEE(2) CALLEE(3) CALLEE(4) CALLEE(5)
CALLEE(6) CALLEE(7) CALLEE(8) CALLEE(9) CALLEE(10)

__attribute__((naked, noinline)) void stepped(void)
{
	__asm__("lea 0x0(%rsp),%rax\n\t"
		"push %rbp\n\tmov %rsp,%rbp\n\t"
		"mov $2000,%edi\n\tcall spin2\n\t"
		"pop %rbp\n\tret");
}

__attribute__((noinline, used)) void spin2(long ns) { spin(ns); }

static long inner[100000];

__attribute__((noinline)) void caller(long i)
{
	long start = now_ns();
	spin(100000);
	callee0(); callee1(); callee2(); callee3(); callee4(); callee5();
	callee6(); callee7(); callee8(); callee9(); callee10(); stepped();
	inner[i] = now_ns() - start;
}

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long n = argc == 2 ? atol(argv[1]) : 0;
	if (n < 1 || n > 100000) {
		fprintf(stderr, "usage: nested N (1..100000)\n");
		return 2;
	}
	for (long i = 0; i < n; i++)
		caller(i);
	qsort(inner, n, sizeof(long), cmp);
	printf("caller count=%ld p50=%ld\n", n, inner[(n + 1) / 2 - 1]);
	return 0;
}
