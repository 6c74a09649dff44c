package probes

// These mirror bpf/ulat.h; layout_test.go checks them against the compiled
// object's BTF so the two sides cannot drift apart silently.

const cookieGo = uint64(1) << 32 // ULAT_COOKIE_GO

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
	Tgid uint32
	Fn   uint32
	Ctx  uint64
	Pos  uint64
}
