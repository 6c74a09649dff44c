/* Functions whose first instruction the kernel emulates under a uprobe
 * (push of a register, nop, relative jump) or single-steps (the others). */
__attribute__((naked, noinline)) void f_push(void) { __asm__("push %rbp\n pop %rbp\n ret"); }
__attribute__((naked, noinline)) void f_nop(void) { __asm__("nop\n ret"); }
__attribute__((naked, noinline)) void f_jmp(void) { __asm__("jmp 1f\n1: ret"); }
__attribute__((naked, noinline)) void f_lea(void) { __asm__("lea 0x1(%rdi),%rax\n ret"); }
__attribute__((naked, noinline)) void f_endbr(void) { __asm__("endbr64\n ret"); }
__attribute__((naked, noinline)) void f_pushmem(void) { __asm__("push (%rdi)\n pop %rax\n ret"); }
int main(void) { return 0; }
