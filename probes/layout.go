package probes

import "math/bits"

// These mirror bpf/ulat.h; layout_test.go checks them against the compiled
// object's BTF so the two sides cannot drift apart silently.

const cookieGo = uint64(1) << 32 // ULAT_COOKIE_GO

// cookieFnMask keeps the function index of a cookie (ULAT_COOKIE_FN_MASK).
const cookieFnMask = uint64(0xffffffff)

const (
	counterDropped    = 0 // ULAT_CNT_DROPPED
	counterUnpaired   = 1 // ULAT_CNT_UNPAIRED
	counterEntries    = 2 // ULAT_CNT_ENTRIES
	counterUnfollowed = 3 // ULAT_CNT_UNFOLLOWED
)

// EventKind tells a completed call from one that never returned.
type EventKind uint32

const (
	// EventCall is a completed call (ULAT_EV_CALL).
	EventCall EventKind = 0
	// EventNoReturn is a call whose frame was reused by a later call
	// before it returned: a panic, Goexit or longjmp unwound it
	// (ULAT_EV_NO_RETURN). Its DurationNs is 0.
	EventNoReturn EventKind = 1
	// EventExec is a followed process that has exec'd a program and is
	// stopped before its first instruction, with Options.StopOnExec
	// (ULAT_EV_EXEC): whoever reads it must let it go on (Continue).
	EventExec EventKind = 2
)

// Event is struct ulat_event.
type Event struct {
	Pid        uint32 // process (tgid)
	Tid        uint32 // thread the call returned on
	Fn         uint32 // index into the functions given to Attach
	Kind       EventKind
	StartNs    uint64 // CLOCK_MONOTONIC at entry
	DurationNs uint64
}

const eventSize = 32

// callKey is struct ulat_call_key.
type callKey struct {
	Tgid  uint32
	Level uint32
	Ctx   uint64
	Pos   uint64
}

// call is struct ulat_call.
type call struct {
	StartNs uint64
	Ret     uint64
	Fn      uint32
	Depth   uint32
}

// Mirrors of the in-kernel histogram layout (ULAT_HIST_* and struct
// ulat_hist).
const (
	cookieBiasShift = 40 // ULAT_COOKIE_BIAS_SHIFT
	maxCookieBias   = 1<<(64-cookieBiasShift) - 1
	histSubBits     = 6  // ULAT_HIST_SUB_BITS
	histMaxExp      = 40 // ULAT_HIST_MAX_EXP
	// HistSlots is the number of buckets of an in-kernel histogram.
	HistSlots = 1<<histSubBits + (histMaxExp-histSubBits)<<histSubBits + 1
)

// kernelHist is struct ulat_hist.
type kernelHist struct {
	Count    uint64
	Sum      uint64
	MinPlus1 uint64
	Max      uint64
	Slots    [HistSlots]uint64
}

// SlotBounds returns the range [lo, hi) of durations in ns that bucket i of
// an in-kernel histogram counts; the last bucket's hi is the largest uint64.
func SlotBounds(i int) (lo, hi uint64) {
	const sub = 1 << histSubBits
	switch {
	case i < sub:
		return uint64(i), uint64(i) + 1
	case i >= HistSlots-1:
		return 1 << histMaxExp, ^uint64(0)
	}
	e := (i-sub)/sub + histSubBits
	s := uint64((i - sub) % sub)
	shift := e - histSubBits
	return (sub + s) << shift, (sub + s + 1) << shift
}

// slotOf is hist_slot in the BPF program, for tests.
func slotOf(d uint64) int {
	const sub = 1 << histSubBits
	if d < sub {
		return int(d)
	}
	e := 63 - bits.LeadingZeros64(d)
	if e >= histMaxExp {
		return HistSlots - 1
	}
	return sub + (e-histSubBits)*sub + int((d>>(e-histSubBits))&(sub-1))
}
