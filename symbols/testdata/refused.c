// Functions whose first instruction the kernel's x86 uprobes refuse, and
// one it accepts, for TestRefusedInstructions. Never run.
__attribute__((naked)) void locked(void) { __asm__("lock addl $0,(%rsp)\n\tret"); }
__attribute__((naked)) void cs_prefixed(void) { __asm__(".byte 0x2e\n\tmovl $1,%eax\n\tret"); }
__attribute__((naked)) void halts(void) { __asm__("hlt\n\tret"); }
__attribute__((naked)) void traps(void) { __asm__("int3\n\tret"); }
__attribute__((naked)) void rex_then_lock_free(void) { __asm__("movq %rdi,%rax\n\tret"); }
__attribute__((naked)) void fs_prefixed(void) { __asm__("movq %fs:0,%rax\n\tret"); }
int main(void) { return 0; }
