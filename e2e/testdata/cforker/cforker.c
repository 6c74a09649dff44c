// Forks and execs, calling work() a known number of times in each process.
// Usage: cforker            (parent: 5 calls, then forks)
// The child makes 7 calls and execs "cforker exec", which makes 11.
// With TARGET_WAIT set the parent first waits for a line on stdin.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) long work(long x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

static long calls(int n)
{
	long t = 0;
	for (int i = 0; i < n; i++)
		t += work(i);
	return t;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "exec") == 0) {
		printf("exec %ld\n", calls(11));
		return 0;
	}
	if (getenv("TARGET_WAIT")) {
		/* Lets a test attach to this pid before any traced call. */
		char line[16];
		if (!fgets(line, sizeof line, stdin))
			return 3;
	}
	long t = calls(5);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		calls(7);
		execl("/proc/self/exe", argv[0], "exec", (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("parent %ld child status %d\n", t, WEXITSTATUS(status));
	return 0;
}
