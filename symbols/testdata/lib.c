/* Shared-library target: exported functions must be found through .dynsym
 * even when the library is stripped. */
__attribute__((noinline)) int lib_add(int a, int b) { return a + b * 7; }

__attribute__((noinline)) long lib_mul(long a, long b) { return a * b + 1; }

__attribute__((noinline)) static int lib_hidden(int x) { return x * 2 + 1; }

int lib_call(int x) { return lib_hidden(x) + lib_add(x, 1); }
