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
/* The function's kind of probe pair (its index in `costs`). */
#define ULAT_COOKIE_KIND_SHIFT 33
#define ULAT_COOKIE_KIND_MASK 3ULL
#define ULAT_KINDS 4

/* What a kind of probe pair costs, in ns (measured by user space): `inner`
 * is the part of its work between a call's two timestamps, subtracted from
 * the call's duration; `nested` is all of its work, subtracted from the
 * duration of the traced call it was made in; `tail`, the same for a tail
 * call. */
struct ulat_cost {
	__u64 inner;
	__u64 nested;
	__u64 tail; /* `nested` for a tail call, which returns through its caller's trap */
};

/* The thread (native code) or goroutine (Go) whose traced calls' probe
 * costs are summed in `nested`. */
struct ulat_ctx_key {
	__u32 tgid;
	__u32 pad;
	__u64 ctx;
};

/* Indexes of the programs in `tail_progs` (kernels without cookies). */
enum ulat_tail {
	ULAT_TAIL_ENTRY = 0,
	ULAT_TAIL_EXIT = 1,   /* a uprobe on a RET instruction */
	ULAT_TAIL_RETURN = 2, /* a uretprobe */
	ULAT_TAIL_MAX = 3,
};

/* Indexes into the per-CPU `counters` array. */
enum ulat_counter {
	ULAT_CNT_DROPPED = 0,  /* ring buffer full: an event was not reported */
	ULAT_CNT_UNPAIRED = 1, /* an exit whose entry was not recorded */
	ULAT_CNT_ENTRIES = 2,  /* entries seen (for cross-checks) */
	ULAT_CNT_UNFOLLOWED = 3, /* a child of a followed process that could not be followed (map full) */
	ULAT_CNT_MAX = 4,
};

/* Where calls are in flight. A call is identified by where its frame is:
 * the stack position at entry equals the one at its exit, so recursion,
 * goroutines that move between threads, and calls that never return cannot
 * mix pairs up. A native function's tail call (a jmp to a function, itself
 * included) enters at the same frame position before the call it replaced
 * returned: both return at the same `ret`. So a frame holds a stack of
 * calls: level 0 is the first, and levels 1..depth (in level 0's value) the
 * tail calls it made. */
struct ulat_call_key {
	__u32 tgid;
	__u32 level; /* 0 for the call the frame's caller made; tail calls above */
	__u64 ctx; /* g pointer for Go, thread id for native code */
	__u64 pos; /* Go: distance of SP from the goroutine stack's top, which
		    * survives the runtime moving the stack; native: SP */
};

/* Tail calls a frame holds at most: the kernel's own limit of pending
 * uretprobes per thread (MAX_URETPROBE_DEPTH). */
#define ULAT_MAX_TAIL 64

struct ulat_call {
	__u64 start_ns;
	__u64 nested0; /* the context's `nested` sum at entry */
	__u64 ret; /* native, level 0: the return address at entry; a tail call's is the uretprobe trampoline (Go: 0) */
	__u32 fn;
	__u32 depth; /* level 0: how many tail calls are stacked above it */
};

enum ulat_event_kind {
	ULAT_EV_CALL = 0,      /* a completed call */
	ULAT_EV_NO_RETURN = 1, /* a call whose frame was reused before it returned */
	ULAT_EV_EXEC = 2,      /* a followed process exec'd a program and is stopped (SIGSTOP);
				* with exec_all, any process exec'd a program (not stopped) */
};

/* In-kernel histograms: the buckets of Go package buckets, whose comment
 * says it all: a Prometheus native histogram of schema 6 over durations in
 * seconds, so that percentiles are within 0.55% and exporters downscale
 * exactly. Slot 0 holds 0 ns, the last slot everything past 1024 s. A slot
 * is found through a table of cells: each power of two of ns is split into
 * 2^ULAT_HIST_CELL_BITS cells, each narrower than a bucket, holding the slot
 * of its first duration; one comparison with that slot's upper bound
 * finishes. 2229 slots: 17.9 KB a function and CPU (a per-CPU map value may
 * have 32 KB). */
#define ULAT_HIST_SLOTS 2229
#define ULAT_HIST_CELL_BITS 7
#define ULAT_HIST_MAX_EXP 40
#define ULAT_HIST_CELLS ((1 << ULAT_HIST_CELL_BITS) + (ULAT_HIST_MAX_EXP - ULAT_HIST_CELL_BITS) * (1 << ULAT_HIST_CELL_BITS))

/* Indexes into the `control` array, written by user space. */
enum ulat_control {
	ULAT_CTL_STOPPING = 0, /* detaching: exits without entries are not counted */
	ULAT_CTL_EPOCH = 1,    /* the interval the extremes (emin, emax) are kept for */
	ULAT_CTL_MAX = 2,
};

/* One function's histogram on one CPU. */
struct ulat_hist {
	__u64 count;
	__u64 sum;
	__u64 min_plus1; /* 0: no call yet */
	__u64 max;
	/* The extremes of the calls of interval `epoch` (ulat_control): user
	 * space moves to the next interval and reads these of the last. */
	__u64 epoch;
	__u64 emin_plus1;
	__u64 emax;
	__u64 nested_sum; /* the traced calls' probe costs taken out of the durations */
	__u64 slots[ULAT_HIST_SLOTS];
};

/* Streamed through the ring buffer. */
struct ulat_event {
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 fn;
	__u32 kind; /* enum ulat_event_kind */
	__u64 start_ns;
	__u64 duration_ns; /* from entry to exit, nothing taken out */
	__u64 nested_ns;   /* the probe costs of traced calls made inside it */
	__u64 inner_ns;    /* its own probes' inner cost, on this CPU */
	__u64 cgroup;      /* the cgroup v2 id of the process (by_cgroup; else 0) */
};

#endif
