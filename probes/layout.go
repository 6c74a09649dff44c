package probes

// These mirror bpf/ulat.h; layout_test.go checks them against the compiled
// object's BTF so the two sides cannot drift apart silently.

const cookieGo = uint64(1) << 32 // ULAT_COOKIE_GO

const (
	counterDropped  = 0 // ULAT_CNT_DROPPED
	counterUnpaired = 1 // ULAT_CNT_UNPAIRED
	counterEntries  = 2 // ULAT_CNT_ENTRIES
)

// Event is one completed call (struct ulat_event).
type Event struct {
	Pid        uint32 // process (tgid)
	Tid        uint32 // thread the call returned on
	Fn         uint32 // index into the functions given to Attach
	Depth      uint32 // recursion depth, 0 for the outermost call
	StartNs    uint64 // CLOCK_MONOTONIC at entry
	DurationNs uint64
}

const eventSize = 32
