//go:build ignore

// (The build constraint keeps the go command from taking this file for cgo
// source; clang ignores it.)

// SPDX-License-Identifier: GPL-2.0
/* ulat: time user-space functions with uprobes.
 *
 * Entry probes store a timestamp keyed by (process, goroutine or thread,
 * function, depth); exit probes (a uprobe on each RET for Go, a uretprobe
 * otherwise) find it, and stream the duration to user space through a ring
 * buffer. The function is identified by the probe's cookie, so one program
 * serves every probed function. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "ulat.h"

char LICENSE[] SEC("license") = "GPL";

/* Load-time configuration (set by user space before load). */
const volatile __u32 target_tgid = 0;		/* 0: every process */
const volatile __u64 wakeup_threshold = 1 << 20; /* bytes pending before we wake the reader */
/* Never read: puts struct ulat_event into the object's BTF so that a Go test
 * can check its mirror of the layout. */
const volatile struct ulat_event ulat_event_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

/* Entry timestamps of calls in flight. LRU so that calls that never return
 * (panic, longjmp, exit) cannot fill the map for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct ulat_call_key);
	__type(value, __u64);
} starts SEC(".maps");

/* Current call depth per context, so that recursive calls pair each exit
 * with its own entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct ulat_ctx_key);
	__type(value, __u32);
} depths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ULAT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

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
	return ctx->regs[28]; /* and in X28 on arm64 */
#else
#error "unsupported architecture"
#endif
}

/* Fills the context key; returns false when this process is filtered out. */
static __always_inline bool context_key(struct pt_regs *ctx, struct ulat_ctx_key *k, __u64 *pid_tgid)
{
	*pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = *pid_tgid >> 32;
	if (target_tgid && tgid != target_tgid)
		return false;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	k->tgid = tgid;
	k->fn = cookie & ULAT_COOKIE_FN_MASK;
	k->ctx = (cookie & ULAT_COOKIE_GO) ? goroutine(ctx) : (__u32)*pid_tgid;
	return true;
}

SEC("uprobe.multi")
int ulat_entry(struct pt_regs *ctx)
{
	struct ulat_call_key key = {};
	__u64 pid_tgid;

	if (!context_key(ctx, &key.ck, &pid_tgid))
		return 0;
	count(ULAT_CNT_ENTRIES);

	__u32 *d = bpf_map_lookup_elem(&depths, &key.ck);
	if (d) {
		key.depth = *d;
		(*d)++;
	} else {
		__u32 one = 1;
		bpf_map_update_elem(&depths, &key.ck, &one, BPF_ANY);
	}
	/* Taken last so that the map work above is not part of the duration. */
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&starts, &key, &now, BPF_ANY);
	return 0;
}

/* Shared by the RET-instruction uprobe (Go) and the uretprobe (native code). */
static __always_inline int on_exit(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	struct ulat_call_key key = {};
	__u64 pid_tgid;

	if (!context_key(ctx, &key.ck, &pid_tgid))
		return 0;

	__u32 *d = bpf_map_lookup_elem(&depths, &key.ck);
	if (!d || *d == 0) {
		count(ULAT_CNT_UNPAIRED);
		return 0;
	}
	key.depth = --(*d);
	if (key.depth == 0)
		bpf_map_delete_elem(&depths, &key.ck);

	__u64 *start = bpf_map_lookup_elem(&starts, &key);
	if (!start) {
		count(ULAT_CNT_UNPAIRED);
		return 0;
	}
	__u64 begin = *start;
	bpf_map_delete_elem(&starts, &key);

	struct ulat_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(ULAT_CNT_DROPPED);
		return 0;
	}
	e->pid = key.ck.tgid;
	e->tid = (__u32)pid_tgid;
	e->fn = key.ck.fn;
	e->depth = key.depth;
	e->start_ns = begin;
	e->duration_ns = now - begin;
	/* No wakeup per event: the reader drains on a short timer, and is only
	 * woken early when the buffer fills past the threshold. */
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_threshold ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	return 0;
}

SEC("uprobe.multi")
int ulat_exit(struct pt_regs *ctx)
{
	return on_exit(ctx);
}

SEC("uretprobe.multi")
int ulat_return(struct pt_regs *ctx)
{
	return on_exit(ctx);
}
