/* Layouts shared by the BPF program (ulat.bpf.c) and the Go side
 * (probes/layout.go mirrors them; a test checks the sizes). Keep both in step. */
#ifndef ULAT_H
#define ULAT_H

/* The uprobe cookie carries the function id in its low 32 bits and flags above. */
#define ULAT_COOKIE_FN_MASK 0xffffffffULL
/* Pair calls by goroutine (the g pointer register) instead of by thread:
 * goroutines move between threads while a call is in flight. */
#define ULAT_COOKIE_GO (1ULL << 32)

/* Indexes into the per-CPU `counters` array. */
enum ulat_counter {
	ULAT_CNT_DROPPED = 0,   /* ring buffer full: a completed call was not reported */
	ULAT_CNT_UNPAIRED = 1,  /* an exit whose entry was not recorded */
	ULAT_CNT_ENTRIES = 2,   /* entries seen (for cross-checks) */
	ULAT_CNT_MAX = 4,
};

/* Identifies one execution context of one function: process, goroutine or
 * thread, and the function. */
struct ulat_ctx_key {
	__u32 tgid;
	__u32 fn;
	__u64 ctx; /* g pointer for Go, thread id for native code */
};

/* One in-flight call: the context plus the recursion depth of the call. */
struct ulat_call_key {
	struct ulat_ctx_key ck;
	__u32 depth;
	__u32 _pad;
};

/* One completed call, streamed through the ring buffer. */
struct ulat_event {
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 fn;
	__u32 depth;
	__u64 start_ns;
	__u64 duration_ns;
};

#endif
