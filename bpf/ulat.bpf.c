//go:build ignore

// (The build constraint keeps the go command from taking this file for cgo
// source; clang ignores it.)

// SPDX-License-Identifier: GPL-2.0
/* ulat: time user-space functions with uprobes.
 *
 * Entry probes store a timestamp keyed by (process, goroutine or thread,
 * frame position); exit probes (a uprobe on each RET for Go, a uretprobe
 * otherwise) find it, and stream the duration to user space through a ring
 * buffer. The function is identified by the probe's cookie, so one program
 * serves every probed function. Kernels without BPF cookies (before 5.15)
 * get the cookie from a tiny per-probe program that user space generates:
 * it stores the cookie in `cookie_slot` and tail-calls these programs
 * through `tail_progs`. */
#if defined(__TARGET_ARCH_x86)
#include "vmlinux.h"
#elif defined(__TARGET_ARCH_arm64)
#include "arm64.h"
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "ulat.h"

char LICENSE[] SEC("license") = "GPL";

/* Load-time configuration (set by user space before load). */
const volatile __u32 target_tgid = 0;		/* 0: every process */
/* Only processes in `followed`, which the fork tracepoint extends to their
 * children (ulat run --follow-forks). */
const volatile bool follow_forks = false;
/* Count completed calls in per-CPU histograms (`hists`) instead of
 * streaming each through the ring buffer. */
const volatile bool aggregate = false;
/* Sum, per thread or goroutine, the probe costs of traced calls (`nested`),
 * so that each call's duration can have those made inside it taken out:
 * false with --raw, which takes nothing out. */
const volatile bool count_nested = true;
/* false before Linux 5.15: read the cookie from `cookie_slot`. Being
 * read-only data, the verifier drops the branch not taken, so the
 * bpf_get_attach_cookie call in it does not stop older kernels loading. */
const volatile bool have_cookies = true;
/* Events carry the cgroup v2 id of the process, so that user space can
 * count calls per container (the agent). */
const volatile bool by_cgroup = false;
/* ulat_exec reports every exec in the system, stopping nothing: the
 * agent's discovery of new processes (no uprobe program is loaded then). */
const volatile bool exec_all = false;
const volatile __u64 wakeup_threshold = 1 << 19; /* bytes pending before we wake the reader */
/* The in-kernel histograms' bucket tables (ULAT_HIST_SLOTS), filled from
 * Go package buckets before load. */
const volatile __u16 hist_cells[ULAT_HIST_CELLS] = {};
const volatile __u64 hist_upper[ULAT_HIST_SLOTS] = {};
/* Never read: puts struct ulat_event into the object's BTF so that a Go test
 * can check its mirror of the layout. */
const volatile struct ulat_event ulat_event_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* 4 MiB: 130k events, ~1 s of the highest call rate uprobes allow here */
} events SEC(".maps");

/* Entry timestamps of calls in flight. LRU so that calls that never return
 * and are never replaced cannot fill the map for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct ulat_call_key);
	__type(value, struct ulat_call);
} starts SEC(".maps");

/* One histogram per function and CPU, indexed by function; sized to the
 * number of functions before load when aggregating. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ulat_hist);
} hists SEC(".maps");

/* What each kind of probe pair costs (ULAT_KINDS) on each CPU, set by user
 * space before it attaches and as its calibration goes on; zeros when
 * nothing is to be taken out. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ULAT_KINDS);
	__type(key, __u32);
	__type(value, struct ulat_cost);
} costs SEC(".maps");

/* The sum of the `nested` costs of the traced calls each thread or
 * goroutine has completed: a call's probe costs made inside it are the
 * difference between the sums at its exit and at its entry. LRU: threads
 * and goroutines that end leave their entry behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct ulat_ctx_key);
	__type(value, __u64);
} nested SEC(".maps");

/* The processes followed (follow_forks): the first, set by user space,
 * and those the fork tracepoint adds; the exit tracepoint removes each
 * when it ends, so the limit is on processes alive at once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} followed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ULAT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Set by user space (enum ulat_control). ULAT_CTL_STOPPING is set before
 * it detaches: probes go one at a time (on the perf-event path ~80 ms
 * each), and exits that lose their entry probe first are an artifact of
 * stopping, not calls that began before tracing did. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ULAT_CTL_MAX);
	__type(key, __u32);
	__type(value, __u32);
} control SEC(".maps");

/* Without BPF cookies: the cookie of the probe that fired, written by its
 * per-probe program just before it tail-calls ours. Uprobe programs run
 * with preemption disabled, so nothing else runs on this CPU in between. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cookie_slot SEC(".maps");

/* The programs the per-probe programs tail-call, at ULAT_TAIL_* indexes. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, ULAT_TAIL_MAX);
	__type(key, __u32);
	__type(value, __u32);
} tail_progs SEC(".maps");

static __always_inline __u64 probe_cookie(struct pt_regs *ctx)
{
	if (have_cookies)
		return bpf_get_attach_cookie(ctx);
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&cookie_slot, &zero);
	return c ? *c : 0;
}

static __always_inline __u32 control_value(__u32 idx)
{
	__u32 *v = bpf_map_lookup_elem(&control, &idx);
	return v ? *v : 0;
}

static __always_inline bool stopping(void)
{
	return control_value(ULAT_CTL_STOPPING);
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		(*v)++;
}

static __always_inline __u64 goroutine(struct pt_regs *ctx)
{
#if defined(__TARGET_ARCH_x86)
	return ctx->r14; /* ABIInternal keeps g in R14 */
#elif defined(__TARGET_ARCH_arm64)
	return ((struct user_pt_regs *)ctx)->regs[28]; /* and in X28 on arm64 */
#else
#error "unsupported architecture"
#endif
}

/* Where the call's frame is. At a Go function's entry probe (placed before
 * the frame is set up) and at its RET, SP is the same; the runtime may move
 * the whole stack in between, but the distance from the stack's top
 * (g.stack.hi, the second word of the g struct) stays. A native uretprobe
 * runs after the return address was popped. */
static __always_inline __u64 frame_pos(struct pt_regs *ctx, bool go, bool after_ret)
{
	__u64 sp = PT_REGS_SP(ctx);
	if (go) {
		__u64 hi = 0;
		if (bpf_probe_read_user(&hi, sizeof(hi), (void *)(goroutine(ctx) + 8)) == 0 && hi > sp)
			return hi - sp;
		return sp;
	}
#if defined(__TARGET_ARCH_x86)
	if (after_ret)
		sp -= 8;
#endif
	return sp;
}

/* Fills the call key; returns false when this process is filtered out. */
static __always_inline bool call_key(struct pt_regs *ctx, struct ulat_call_key *k, __u64 *pid_tgid, __u64 *cookie_out, bool after_ret)
{
	*pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = *pid_tgid >> 32;
	if (target_tgid && tgid != target_tgid)
		return false;
	if (follow_forks && !bpf_map_lookup_elem(&followed, &tgid))
		return false;
	__u64 cookie = probe_cookie(ctx);
	*cookie_out = cookie;
	bool go = cookie & ULAT_COOKIE_GO;
	k->tgid = tgid;
	k->level = 0;
	k->ctx = go ? goroutine(ctx) : (__u32)*pid_tgid;
	k->pos = frame_pos(ctx, go, after_ret);
	return true;
}

static __always_inline void submit(__u32 tgid, __u32 fn, __u32 tid, __u32 kind, __u64 start, __u64 duration, __u64 nested_ns, __u64 inner_ns)
{
	struct ulat_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(ULAT_CNT_DROPPED);
		return;
	}
	e->pid = tgid;
	e->tid = tid;
	e->fn = fn;
	e->kind = kind;
	e->start_ns = start;
	e->duration_ns = duration;
	e->nested_ns = nested_ns;
	e->inner_ns = inner_ns;
	e->cgroup = by_cgroup ? bpf_get_current_cgroup_id() : 0;
	/* No wakeup per event: the reader drains on a short timer, and is only
	 * woken early when the buffer fills past the threshold. */
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_threshold ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	/* BPF has no count-leading-zeros instruction. */
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

/* Bounds v in the register that indexes an array. A C bounds check is not
 * enough: clang tests one copy of the value and indexes with another, and
 * the 6.1 verifier loses the bound between them ("R0 unbounded memory
 * access"). */
#define BOUNDED(v, max) ({ __u64 __b = (v); asm volatile("if %0 <= %1 goto +1; %0 = %1" : "+r"(__b) : "i"(max)); __b; })

/* The slot of d (see ULAT_HIST_SLOTS): its cell's slot, or the next when d
 * is past that slot's upper bound. */
static __always_inline __u64 hist_slot(__u64 d)
{
	const __u64 n = 1 << ULAT_HIST_CELL_BITS;
	__u64 cell;

	if (d >> ULAT_HIST_MAX_EXP)
		return ULAT_HIST_SLOTS - 1;
	if (d < n) {
		cell = d;
	} else {
		__u32 e = log2_u64(d);
		cell = n + (e - ULAT_HIST_CELL_BITS) * n + ((d >> (e - ULAT_HIST_CELL_BITS)) & (n - 1));
	}
	__u64 s = BOUNDED(hist_cells[BOUNDED(cell, ULAT_HIST_CELLS - 1)], ULAT_HIST_SLOTS - 2);
	if (d > hist_upper[s])
		s++;
	return s;
}

/* Counts a completed call in its function's histogram on this CPU, with
 * `cost` (its own probes' and those of the traced calls made inside it)
 * taken out; a call measured at or below that cost counts as 0 ns. The
 * program can be preempted by another task's run of it on the same CPU,
 * so the counts are added atomically (uncontended: cheap); min and max
 * could in theory miss a value in that window. */
static __always_inline void record(__u32 fn, __u64 d, __u64 cost, __u64 nested_ns)
{
	struct ulat_hist *h = bpf_map_lookup_elem(&hists, &fn);
	if (!h)
		return;
	__u64 epoch = control_value(ULAT_CTL_EPOCH);
	d = d > cost ? d - cost : 0;
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum, d);
	__sync_fetch_and_add(&h->nested_sum, nested_ns);
	if (h->min_plus1 == 0 || d + 1 < h->min_plus1)
		h->min_plus1 = d + 1;
	if (d > h->max)
		h->max = d;
	if (h->epoch != epoch) {
		h->epoch = epoch;
		h->emin_plus1 = 0;
		h->emax = 0;
	}
	if (h->emin_plus1 == 0 || d + 1 < h->emin_plus1)
		h->emin_plus1 = d + 1;
	if (d > h->emax)
		h->emax = d;
	__sync_fetch_and_add(&h->slots[BOUNDED(hist_slot(d), ULAT_HIST_SLOTS - 1)], 1);
}

/* The `nested` sum of the context a call key names. */
static __always_inline __u64 *nested_sum(struct ulat_call_key *key)
{
	struct ulat_ctx_key c = {.tgid = key->tgid, .ctx = key->ctx};
	return bpf_map_lookup_elem(&nested, &c);
}

/* Adds a completed call's nested cost to its context's sum. */
static __always_inline void add_nested(struct ulat_call_key *key, __u64 *sum, __u64 cost)
{
	if (sum) {
		*sum += cost;
		return;
	}
	struct ulat_ctx_key c = {.tgid = key->tgid, .ctx = key->ctx};
	bpf_map_update_elem(&nested, &c, &cost, BPF_NOEXIST);
}

/* The return address of the call being entered (the entry probe sits
 * before the function has touched its stack or the link register). */
static __always_inline __u64 return_address(struct pt_regs *ctx)
{
#if defined(__TARGET_ARCH_x86)
	__u64 ret = 0;
	bpf_probe_read_user(&ret, sizeof(ret), (void *)PT_REGS_SP(ctx));
	return ret;
#elif defined(__TARGET_ARCH_arm64)
	return ((struct user_pt_regs *)ctx)->regs[30];
#endif
}

/* The calls of a frame that never returned: its frame was unwound by a
 * panic, Goexit or longjmp, and is being used by a new call. */
static __always_inline void unwound(struct ulat_call_key *key, struct ulat_call *first, __u32 tid)
{
	__u32 depth = first->depth;

	submit(key->tgid, first->fn, tid, ULAT_EV_NO_RETURN, first->start_ns, 0, 0, 0);
	for (__u32 i = 1; i <= ULAT_MAX_TAIL; i++) {
		if (i > depth)
			break;
		struct ulat_call_key k = *key;
		k.level = i;
		struct ulat_call *c = bpf_map_lookup_elem(&starts, &k);
		if (c) {
			submit(k.tgid, c->fn, tid, ULAT_EV_NO_RETURN, c->start_ns, 0, 0, 0);
			bpf_map_delete_elem(&starts, &k);
		}
	}
}

static __always_inline int on_entry(struct pt_regs *ctx)
{
	struct ulat_call_key key = {};
	__u64 pid_tgid, cookie;

	if (!call_key(ctx, &key, &pid_tgid, &cookie, false))
		return 0;
	count(ULAT_CNT_ENTRIES);
	bool go = cookie & ULAT_COOKIE_GO;
	/* Only native calls tell tail calls by their return address: not
	 * read for Go's, a user-memory read less on every entry. */
	struct ulat_call call = {
		.ret = go ? 0 : return_address(ctx),
		.fn = cookie & ULAT_COOKIE_FN_MASK,
	};

	struct ulat_call *first = bpf_map_lookup_elem(&starts, &key);
	if (first) {
		/* A native call entering a frame whose call has not returned,
		 * with another return address than that call's: a tail call
		 * (the address is the uretprobe trampoline the first call's
		 * return probe put there). The same address is a new call from
		 * the same call site: the first was unwound (longjmp). Go's
		 * tail calls (wrappers) cannot be told apart that way. */
		if (!go && call.ret != first->ret && first->depth < ULAT_MAX_TAIL) {
			first->depth++;
			struct ulat_call_key k = key;
			k.level = first->depth;
			if (count_nested) {
				__u64 *sum = nested_sum(&key);
				call.nested0 = sum ? *sum : 0;
			}
			call.start_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&starts, &k, &call, BPF_ANY);
			return 0;
		}
		unwound(&key, first, (__u32)pid_tgid);
	}

	if (count_nested) {
		__u64 *sum = nested_sum(&key);
		call.nested0 = sum ? *sum : 0;
	}
	/* Taken last so that the work above is not part of the duration. */
	call.start_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&starts, &key, &call, BPF_ANY);
	return 0;
}

SEC("uprobe.multi")
int ulat_entry(struct pt_regs *ctx)
{
	return on_entry(ctx);
}

/* Shared by the RET-instruction uprobe (Go) and the uretprobe (native code).
 * The kernel runs the return probes of a chain of tail calls one after the
 * other at the one `ret`, the last call first: each takes the top of its
 * frame's stack. */
static __always_inline int on_exit(struct pt_regs *ctx, bool after_ret)
{
	__u64 now = bpf_ktime_get_ns();
	struct ulat_call_key key = {};
	__u64 pid_tgid, cookie;

	if (!call_key(ctx, &key, &pid_tgid, &cookie, after_ret))
		return 0;
	__u32 fn = cookie & ULAT_COOKIE_FN_MASK;
	struct ulat_call *first = bpf_map_lookup_elem(&starts, &key);
	if (!first) {
		if (!stopping())
			count(ULAT_CNT_UNPAIRED);
		return 0;
	}
	struct ulat_call_key top = key;
	struct ulat_call *call = first;
	if (first->depth > 0) {
		top.level = first->depth;
		call = bpf_map_lookup_elem(&starts, &top);
	}
	if (!call || call->fn != fn) {
		if (!stopping())
			count(ULAT_CNT_UNPAIRED);
		return 0;
	}
	__u64 begin = call->start_ns, nested0 = call->nested0, inside = 0, inner = 0;
	if (top.level > 0)
		first->depth--;
	bpf_map_delete_elem(&starts, &top);
	if (count_nested) {
		__u32 kind = (cookie >> ULAT_COOKIE_KIND_SHIFT) & ULAT_COOKIE_KIND_MASK;
		struct ulat_cost *cost = bpf_map_lookup_elem(&costs, &kind);
		__u64 *sum = nested_sum(&key);
		/* A sum below the entry's: the LRU dropped the context's. */
		if (sum && *sum > nested0)
			inside = *sum - nested0;
		if (cost) {
			inner = cost->inner;
			add_nested(&key, sum, top.level > 0 ? cost->tail : cost->nested);
		}
	}
	if (aggregate)
		record(fn, now - begin, inner + inside, inside);
	else
		submit(key.tgid, fn, (__u32)pid_tgid, ULAT_EV_CALL, begin, now - begin, inside, inner);
	return 0;
}

SEC("uprobe.multi")
int ulat_exit(struct pt_regs *ctx)
{
	return on_exit(ctx, false);
}

SEC("uretprobe.multi")
int ulat_return(struct pt_regs *ctx)
{
	return on_exit(ctx, true);
}

/* Does nothing: attached for a moment to find which offsets of a batch the
 * kernel refuses to probe, since one refused instruction fails the whole
 * uprobe_multi link. */
SEC("uprobe.multi")
int ulat_check(struct pt_regs *ctx)
{
	return 0;
}

/* The same programs for kernels without uprobe_multi (before 6.6): attached
 * one perf-event link per probe, each with its cookie (kernel >= 5.15). */
SEC("uprobe")
int ulat_entry_pe(struct pt_regs *ctx)
{
	return on_entry(ctx);
}

SEC("uprobe")
int ulat_exit_pe(struct pt_regs *ctx)
{
	return on_exit(ctx, false);
}

SEC("uretprobe")
int ulat_return_pe(struct pt_regs *ctx)
{
	return on_exit(ctx, true);
}

/* Follows the children of followed processes: a new process (not a new
 * thread, which shares its parent's tgid) whose parent is followed. Loaded
 * only with follow_forks. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(ulat_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u8 one = 1;

	if (ptgid == ctgid || !bpf_map_lookup_elem(&followed, &ptgid))
		return 0;
	if (bpf_map_update_elem(&followed, &ctgid, &one, BPF_ANY))
		count(ULAT_CNT_UNFOLLOWED);
	return 0;
}

/* Unfollows a followed process when it ends, so that `followed` holds the
 * processes alive now (its limit is on those) and a pid the kernel hands
 * out again later is not taken for the process that had it. Loaded only
 * with follow_forks.
 *
 * The tracepoint fires for every thread that exits, and the process ends
 * with its last thread, which need not be the leader (pid == tgid): a
 * leader that calls pthread_exit leaves its threads running, still
 * traced, and still forking children the fork tracepoint must follow.
 * Each exiting thread has decremented signal->live before this tracepoint
 * (do_exit: group_dead = atomic_dec_and_test(&tsk->signal->live), then
 * the tracepoint, on every kernel from 5.10 to 6.18; recent ones also pass
 * group_dead as a second argument, which older ones lack), so live == 0
 * says the whole process is ending. Two threads exiting together may both
 * see 0 and both delete, which is harmless; the tgid cannot be handed out
 * again before the process is reaped, after this. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(ulat_process_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (p->signal->live.counter == 0)
		bpf_map_delete_elem(&followed, &tgid);
	return 0;
}

/* Stops a followed process that has just exec'd a program, before its first
 * instruction, and tells user space, which attaches the functions of that
 * program it was asked for and lets it go on (SIGCONT). Loaded only when
 * user space waits for programs to exec (ulat run --follow-forks with
 * patterns the command's own binary does not have), or, with exec_all, to
 * tell user space of every exec without stopping anything. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(ulat_exec, struct task_struct *p, int old_pid, void *bprm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (exec_all) {
		struct ulat_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			count(ULAT_CNT_DROPPED);
			return 0;
		}
		__builtin_memset(e, 0, sizeof(*e));
		e->pid = tgid;
		e->tid = (__u32)bpf_get_current_pid_tgid();
		e->kind = ULAT_EV_EXEC;
		e->start_ns = bpf_ktime_get_ns();
		e->cgroup = bpf_get_current_cgroup_id();
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
		return 0;
	}
	if (!bpf_map_lookup_elem(&followed, &tgid))
		return 0;
	/* Reserved first: a process stopped without telling user space would
	 * stay stopped. */
	struct ulat_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(ULAT_CNT_DROPPED);
		return 0;
	}
	e->pid = tgid;
	e->tid = (__u32)bpf_get_current_pid_tgid();
	e->fn = 0;
	e->kind = ULAT_EV_EXEC;
	e->start_ns = bpf_ktime_get_ns();
	e->duration_ns = 0;
	e->nested_ns = 0;
	e->inner_ns = 0;
	e->cgroup = 0;
	if (bpf_send_signal(19 /* SIGSTOP */)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}
