package probes

import (
	"unsafe"

	"github.com/ulat-dev/ulat/buckets"
)

// These mirror bpf/ulat.h; layout_test.go checks them against the compiled
// object's BTF so the two sides cannot drift apart silently.

const cookieGo = uint64(1) << 32 // ULAT_COOKIE_GO

// cookieKindShift places the function's kind of probe pair, its index in
// the costs map (ULAT_COOKIE_KIND_SHIFT).
const cookieKindShift = 33

// kinds is how many kinds of probe pairs there are (ULAT_KINDS).
const kinds = 4

// kindIndex is a kind of probe pair's index in the costs map.
func kindIndex(o Overhead) int {
	i := 0
	if o.Exit == ExitUretprobe {
		i += 2
	}
	if o.Entry == EntryStepped {
		i++
	}
	return i
}

// cost is struct ulat_cost.
type cost struct {
	Inner  uint64
	Nested uint64
	Tail   uint64
}

// ctxKey is struct ulat_ctx_key.
type ctxKey struct {
	Tgid uint32
	Pad  uint32
	Ctx  uint64
}

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
	DurationNs uint64 // from entry to exit, nothing taken out
	NestedNs   uint64 // the probe costs (Options.Costs) of traced calls made inside it
	InnerNs    uint64 // its own probes' inner cost, on the CPU they ran on
	Cgroup     uint64 // the process's cgroup v2 id (Options.ByCgroup, and every EventExec of an ExecWatcher)
}

const eventSize = 56

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
	Nested0 uint64
	Ret     uint64
	Fn      uint32
	Depth   uint32
}

// Mirrors of the in-kernel histogram layout (struct ulat_hist, whose
// buckets are package buckets').
const (
	// HistSlots is the number of buckets of an in-kernel histogram.
	HistSlots = buckets.Slots
)

// Indexes into the control map (enum ulat_control).
const (
	controlStopping = 0 // ULAT_CTL_STOPPING
	controlEpoch    = 1 // ULAT_CTL_EPOCH
)

// KernelHistogramBytes is one function's in-kernel histogram on one CPU.
const KernelHistogramBytes = int(unsafe.Sizeof(kernelHist{}))

// kernelHist is struct ulat_hist.
type kernelHist struct {
	Count     uint64
	Sum       uint64
	MinPlus1  uint64
	Max       uint64
	Epoch     uint64
	EMinPlus1 uint64
	EMax      uint64
	NestedSum uint64
	Slots     [HistSlots]uint64
}
