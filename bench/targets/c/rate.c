/* Benchmark target for `make bench` (highest sustainable call rate): one
 * thread per online CPU calls hit() as fast as it can for a fixed time, and
 * the target prints how many calls it made in all, counted by each thread
 * itself.
 *
 *   crate MILLISECONDS
 *
 * prints "calls N", "seconds S", "calls_per_s R" and "threads T". Built by
 * bench with gcc -O2 -pthread. hit() is written in assembly so that it
 * starts with `push %rbp`, whatever the compiler's defaults: the kernel
 * emulates that instruction under a uprobe instead of single-stepping it,
 * so this is the cheapest kind of probed function and the highest rate
 * uprobes allow (x86-64 only, like the bench). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void hit(void);
asm(".text\n"
    ".globl hit\n"
    ".type hit, @function\n"
    "hit:\n"
    "\tpush %rbp\n"
    "\tmov %rsp, %rbp\n"
    "\tpop %rbp\n"
    "\tret\n"
    ".size hit, .-hit\n");

static volatile int stop;

struct worker {
	pthread_t th;
	long calls;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	long n = 0;
	while (!stop) {
		hit();
		n++;
	}
	w->calls = n;
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 2 || atol(argv[1]) <= 0) {
		fprintf(stderr, "usage: crate MILLISECONDS\n");
		return 2;
	}
	long ms = atol(argv[1]);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	struct worker *ws = calloc(ncpu, sizeof(*ws));
	if (!ws)
		return 1;
	double t0 = now_s();
	for (long i = 0; i < ncpu; i++) {
		if (pthread_create(&ws[i].th, NULL, work, &ws[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&d, NULL);
	stop = 1;
	long total = 0;
	for (long i = 0; i < ncpu; i++) {
		pthread_join(ws[i].th, NULL);
		total += ws[i].calls;
	}
	double t = now_s() - t0;
	printf("calls %ld\nseconds %.6f\ncalls_per_s %.0f\nthreads %ld\n", total, t, total / t, ncpu);
	return 0;
}
