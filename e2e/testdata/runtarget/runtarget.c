// For `ulat run`: startup() is the first thing main calls, exactly once;
// work() is called N times; the exit status is STATUS, or with "signal" the
// process ends by SIGUSR1. With "sleep", it sleeps until a signal ends it;
// with "nap", main sleeps 77 ms before it returns 0.
// Usage: runtarget N [STATUS|signal|sleep|nap]
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) int startup(int argc)
{
	__asm__ volatile("" ::: "memory");
	return argc;
}

__attribute__((noinline)) long work(long x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

int main(int argc, char **argv)
{
	startup(argc);
	int n = argc > 1 ? atoi(argv[1]) : 0;
	long t = 0;
	for (int i = 0; i < n; i++)
		t += work(i);
	printf("runtarget: %d calls, total %ld\n", n, t);
	fflush(stdout);
	if (argc > 2 && strcmp(argv[2], "signal") == 0)
		raise(SIGUSR1);
	if (argc > 2 && strcmp(argv[2], "nap") == 0) {
		usleep(77000);
		return 0;
	}
	if (argc > 2 && strcmp(argv[2], "sleep") == 0) {
		pause();
		return 0;
	}
	return argc > 2 ? atoi(argv[2]) : 0;
}
