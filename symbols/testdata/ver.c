/* Two versions of one symbol: programs linked now call vfunc@@VER_2. */
int vfunc_old(int x) { return x + 1; }
int vfunc_new(int x) { return x * 3 + 2; }
__asm__(".symver vfunc_old, vfunc@VER_1");
__asm__(".symver vfunc_new, vfunc@@VER_2");
