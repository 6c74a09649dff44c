// Code as distributions' compilers emit it, which tracers get wrong.
// Built with gcc -O2. Usage: cdistro N DEPTH, or cdistro exec PROGRAM ARGS...
// (runs PROGRAM in a child process and waits: a launcher, like go test).
//   - ping and pong call each other in tail position: -O2 turns each call
//     into a jmp, so a chain of DEPTH+1 calls returns with one ret.
//   - countdown tail-calls itself through a pointer (a jmp to its own
//     entry), DEPTH+1 calls a chain.
//   - locked starts with a lock-prefixed instruction, which the kernel's
//     uprobes refuse; plain is an ordinary function.
// Each is run N times; the program counts every entry itself and prints the
// counts, the independent counter the tests check ulat against.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

volatile long sink;
long ping_calls, pong_calls, countdown_calls, locked_calls, plain_calls;

__attribute__((noinline)) long ping(long n);
__attribute__((noinline)) long pong(long n)
{
	pong_calls++;
	sink = n;
	if (n <= 0)
		return 0;
	return ping(n - 1);
}

__attribute__((noinline)) long ping(long n)
{
	ping_calls++;
	sink = n;
	if (n <= 0)
		return 1;
	return pong(n - 1);
}

__attribute__((noinline)) long countdown(long n);
static long (*volatile again)(long) = countdown;
__attribute__((noinline)) long countdown(long n)
{
	countdown_calls++;
	if (n <= 0)
		return 0;
	return again(n - 1);
}

// A full barrier, as hand-written atomics start: the lock prefix on the
// first instruction is what matters.
__attribute__((naked, noinline)) void locked(void)
{
	__asm__("lock addl $0,(%rsp)\n\tret");
}

__attribute__((noinline)) long plain(long n)
{
	plain_calls++;
	sink = n;
	return n + 1;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "exec") == 0) {
		pid_t pid = fork();
		if (pid == 0) {
			execv(argv[2], argv + 2);
			perror(argv[2]);
			_exit(127);
		}
		int status;
		if (pid < 0 || waitpid(pid, &status, 0) < 0)
			return 126;
		return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	if (argc < 3) {
		fprintf(stderr, "usage: cdistro N DEPTH\n");
		return 2;
	}
	long n = atol(argv[1]), depth = atol(argv[2]), s = 0;
	for (long i = 0; i < n; i++) {
		s += ping(depth) + countdown(depth) + plain(i);
		locked();
		locked_calls++;
	}
	printf("ping %ld pong %ld countdown %ld locked %ld plain %ld sum %ld\n",
	       ping_calls, pong_calls, countdown_calls, locked_calls, plain_calls, s);
	return 0;
}
