// A C target whose call counts and durations are known by construction.
// Usage: ctarget THREADS CALLS SLEEP_US
// Each of THREADS threads calls work() CALLS times (each sleeps SLEEP_US
// microseconds) and fast() 10*CALLS times; the main thread then calls
// fib(10) once, which makes 177 calls of fib in all (recursion).
// With TARGET_WAIT set in the environment it first waits for a line on stdin.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long sleep_us;
static long calls;

__attribute__((noinline)) long work(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0)
		;
	return us;
}

__attribute__((noinline)) long fast(long x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

__attribute__((noinline)) long fib(long n)
{
	if (n < 2)
		return n;
	long a = fib(n - 1);
	long b = fib(n - 2);
	/* Keeps both calls real calls: no tail call, no recursion-to-loop. */
	__asm__ volatile("" : "+r"(a), "+r"(b));
	return a + b;
}

static void *worker(void *arg)
{
	long sum = 0;
	for (long i = 0; i < calls; i++) {
		sum += work(sleep_us);
		for (int j = 0; j < 10; j++)
			sum += fast(j);
	}
	return (void *)sum;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s THREADS CALLS SLEEP_US\n", argv[0]);
		return 2;
	}
	int threads = atoi(argv[1]);
	calls = atol(argv[2]);
	sleep_us = atol(argv[3]);
	if (getenv("TARGET_WAIT")) {
		/* Lets a test attach to this pid before any traced call. */
		char line[16];
		if (!fgets(line, sizeof line, stdin))
			return 3;
	}
	pthread_t tids[64];
	long total = 0;
	for (int i = 0; i < threads && i < 64; i++)
		pthread_create(&tids[i], NULL, worker, NULL);
	for (int i = 0; i < threads && i < 64; i++) {
		void *r;
		pthread_join(tids[i], &r);
		total += (long)r;
	}
	printf("total=%ld fib=%ld\n", total, fib(10));
	return 0;
}
