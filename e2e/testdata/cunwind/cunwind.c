// A C target whose traced functions do not always return normally.
// Usage: cunwind N
//
// jumper is called N times; every odd call leaves by longjmp, so N/2 calls
// return and N/2 do not. outer is called N times and raises SIGUSR1 each
// time, whose handler calls inner: both return N times, inner nested in
// outer on the same thread, on the signal frame. tailer, called N times,
// leaves through a tail call to leaf2.
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static jmp_buf env;
static volatile long total;

__attribute__((noinline)) long jumper(long i)
{
	if (i % 2 == 1)
		longjmp(env, 1);
	__asm__ volatile("" ::: "memory");
	return i;
}

__attribute__((noinline)) long inner(long x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

static void handler(int sig)
{
	total += inner(sig);
}

__attribute__((noinline)) long outer(long i)
{
	raise(SIGUSR1);
	__asm__ volatile("" ::: "memory");
	return i;
}

__attribute__((noinline)) long leaf2(long x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3;
}

/* Ends in a tail call (a jump to leaf2), so it has no RET of its own: the
 * uretprobe still sees it return. */
__attribute__((noinline)) long tailer(long x)
{
	return leaf2(x + 1);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s N\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]);
	signal(SIGUSR1, handler);
	for (volatile long i = 0; i < n; i++) {
		if (setjmp(env) == 0)
			total += jumper(i);
		else
			total -= 1;
	}
	for (long i = 0; i < n; i++)
		total += outer(i);
	for (long i = 0; i < n; i++)
		total += tailer(i);
	printf("total=%ld\n", total);
	return 0;
}
