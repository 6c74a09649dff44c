package report

import "time"

// FunctionStats is one traced function's result.
type FunctionStats struct {
	Function string // display name, e.g. "main.(*Server).handle"
	Binary   string // absolute path of the binary or library
	Hist     *Histogram
}

// Lost counts calls the report could not include, so that readers know how
// much of the truth it holds.
type Lost struct {
	DroppedEvents uint64 // ring buffer full: calls that completed but could not be reported
	UnpairedExits uint64 // exits with no recorded entry (e.g. the function was already running when tracing began)
}

func (l Lost) any() bool { return l.DroppedEvents != 0 || l.UnpairedExits != 0 }

// Report is everything one tracing session measured.
type Report struct {
	Functions []FunctionStats // in display order; functions with zero calls are kept and shown
	Lost      Lost
	Elapsed   time.Duration // wall time the report covers
	Warnings  []string      // e.g. "main.inl: inlined into all callers, cannot be timed"
}
