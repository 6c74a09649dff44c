/* Layouts shared by the BPF program (ulat.bpf.c) and the Go side
 * (probes/layout.go mirrors them; a test checks them against the object's
 * BTF). Keep both in step. */
#ifndef ULAT_H
#define ULAT_H

/* The uprobe cookie carries the function id in its low 32 bits and flags above. */
#define ULAT_COOKIE_FN_MASK 0xffffffffULL
/* Pair calls by goroutine (the g pointer register) instead of by thread:
 * goroutines move between threads while a call is in flight. */
#define ULAT_COOKIE_GO (1ULL << 32)

/* Indexes into the per-CPU `counters` array. */
enum ulat_counter {
	ULAT_CNT_DROPPED = 0,  /* ring buffer full: an event was not reported */
	ULAT_CNT_UNPAIRED = 1, /* an exit whose entry was not recorded */
	ULAT_CNT_ENTRIES = 2,  /* entries seen (for cross-checks) */
	ULAT_CNT_UNFOLLOWED = 3, /* a child of a followed process that could not be followed (map full) */
	ULAT_CNT_MAX = 4,
};

/* One call in flight. A call is identified by where its frame is: the
 * stack position at entry equals the one at its exit, so recursion,
 * goroutines that move between threads, and calls that never return cannot
 * mix pairs up. */
struct ulat_call_key {
	__u32 tgid;
	__u32 fn;
	__u64 ctx; /* g pointer for Go, thread id for native code */
	__u64 pos; /* Go: distance of SP from the goroutine stack's top, which
		    * survives the runtime moving the stack; native: SP */
};

enum ulat_event_kind {
	ULAT_EV_CALL = 0,      /* a completed call */
	ULAT_EV_NO_RETURN = 1, /* a call whose frame was reused before it returned */
};

/* Streamed through the ring buffer. */
struct ulat_event {
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 fn;
	__u32 kind; /* enum ulat_event_kind */
	__u64 start_ns;
	__u64 duration_ns;
};

#endif
