// Exits as soon as a probe is installed in it: it watches the first byte
// of each of its 100 functions f0..f99 until one changes (a uprobe writes a
// breakpoint there), so that a test can make the process exit while ulat is
// still attaching to it, whatever the machine's speed.
// Usage: attachwatch     (prints "ready" once it watches)
#include <stdio.h>

#define F(n) __attribute__((noinline)) int f##n(int x) { __asm__ volatile("" ::: "memory"); return x + n; }
#define F10(n) F(n##0) F(n##1) F(n##2) F(n##3) F(n##4) F(n##5) F(n##6) F(n##7) F(n##8) F(n##9)
F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9)
F10(1) F10(2) F10(3) F10(4) F10(5) F10(6) F10(7) F10(8) F10(9)

#define P(n) (void *)f##n,
#define P10(n) P(n##0) P(n##1) P(n##2) P(n##3) P(n##4) P(n##5) P(n##6) P(n##7) P(n##8) P(n##9)
static void *fns[] = {P(0) P(1) P(2) P(3) P(4) P(5) P(6) P(7) P(8) P(9)
	P10(1) P10(2) P10(3) P10(4) P10(5) P10(6) P10(7) P10(8) P10(9)};

#define N (sizeof fns / sizeof fns[0])

int main(void)
{
	static unsigned char orig[N];
	for (unsigned i = 0; i < N; i++)
		orig[i] = *(const volatile unsigned char *)fns[i];
	printf("ready\n");
	fflush(stdout);
	for (;;)
		for (unsigned i = 0; i < N; i++)
			if (*(const volatile unsigned char *)fns[i] != orig[i]) {
				printf("probed f%u\n", i);
				return 0;
			}
}
