/* Target for the symbols tests: a few out-of-line C functions. */
#include <stdio.h>

__attribute__((noinline)) int add3(int a, int b) { return a + b * 3; }

__attribute__((noinline)) long choose(long a, long b)
{
	if (a > 100)
		return a * b;
	return a - b;
}

__attribute__((noinline)) void greet(const char *s) { puts(s); }

int main(int argc, char **argv)
{
	greet(argv[0]);
	return add3(argc, 2) + (int)choose(argc, 5);
}
