/* Kernel types the BPF program needs when built for arm64, in place of
 * vmlinux.h (which is generated from an x86-64 kernel's BTF and so has the
 * x86-64 struct pt_regs). The program only reads registers, and arm64's
 * register layout is user ABI (struct user_pt_regs, the start of the
 * kernel's struct pt_regs); everything else comes from the UAPI headers. */
#ifndef ULAT_ARM64_H
#define ULAT_ARM64_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <stdbool.h>

struct pt_regs;

struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};

/* For the fork and exit tracepoints; CO-RE relocates the fields to the
 * running kernel's layout. */
typedef struct {
	int counter;
} atomic_t;

struct signal_struct {
	atomic_t live;
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
	struct signal_struct *signal;
} __attribute__((preserve_access_index));

#endif
