package report

import "time"

// FunctionStats is one traced function's result.
type FunctionStats struct {
	Function string // display name, e.g. "main.(*Server).handle"
	Binary   string // absolute path of the binary or library
	Hist     *Histogram
	// DidNotReturn counts calls that were entered but never returned: a
	// panic, runtime.Goexit or longjmp unwound them, or the process ended.
	DidNotReturn uint64
}

// Lost counts calls the report could not include, so that readers know how
// much of the truth it holds.
type Lost struct {
	DroppedEvents uint64 // ring buffer full: calls that completed but could not be reported
	UnpairedExits uint64 // exits with no recorded entry (e.g. the function was already running when tracing began)
	InFlight      uint64 // calls still running in live processes when tracing ended
}

func (l Lost) any() bool { return l.DroppedEvents != 0 || l.UnpairedExits != 0 }

// Report is everything one tracing session measured.
type Report struct {
	Functions []FunctionStats // in display order; functions with zero calls are kept and shown
	Lost      Lost
	Elapsed   time.Duration // wall time the report covers
	Warnings  []string      // e.g. "main.inl: inlined into all callers, cannot be timed"
}
