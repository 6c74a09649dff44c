package report

import "time"

// FunctionStats is one traced function's result.
type FunctionStats struct {
	Function string // display name, e.g. "main.(*Server).handle"
	Binary   string // absolute path of the binary or library
	Hist     *Histogram
	// Cgroup is the cgroup v2 id of the processes whose calls these are,
	// when counted per cgroup (session.Options.ByCgroup); else 0. Not in
	// JSON reports, which have one entry per function.
	Cgroup uint64
	// DidNotReturn counts calls that were entered but never returned: a
	// panic, runtime.Goexit or longjmp unwound them, or the process ended.
	DidNotReturn uint64
	// ProbeOverheadNs is what the function's probes add to each call, as
	// measured on this host for its kind of probes (ProbeKind); 0 when not
	// measured.
	ProbeOverheadNs uint64
	ProbeKind       string
	// NestedOverheadNs is what the probes of traced calls made inside
	// its calls added to them, on average (taken out when corrected).
	NestedOverheadNs uint64
	// UncertaintyNs is how far each corrected duration may be off
	// because the probes' costs taken out are known only that well (the
	// spread of their calibration); 0 when not measured.
	UncertaintyNs uint64
}

// belowProbeCost counts the calls measured at or below the probe costs
// taken out of them, which count as 0 ns: their true duration is at most
// UncertaintyNs.
func (f FunctionStats) belowProbeCost(corrected bool) uint64 {
	if !corrected || f.ProbeOverheadNs == 0 {
		return 0
	}
	return f.Hist.zeroCount()
}

// uncertain reports that the correction's uncertainty is over a tenth of
// the function's corrected median, so that its figures are rough: the
// report says so rather than print precise-looking numbers.
func (f FunctionStats) uncertain(corrected bool) bool {
	if !corrected || f.UncertaintyNs == 0 || f.Hist.Count() == 0 {
		return false
	}
	return f.UncertaintyNs*10 > f.Hist.Percentile(50)
}

// ProbeDominated reports that the function's median is within a few
// multiples of its probes' own cost: shorter than the probes can resolve.
// corrected says whether the overhead was already subtracted.
func (f FunctionStats) ProbeDominated(corrected bool) bool {
	if f.ProbeOverheadNs == 0 || f.Hist.Count() == 0 {
		return false
	}
	p50 := f.Hist.Percentile(50)
	if !corrected {
		p50 -= min(p50, f.ProbeOverheadNs)
	}
	return p50 < 2*f.ProbeOverheadNs
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
	// OverheadCorrected says the functions' ProbeOverheadNs was subtracted
	// from every duration.
	OverheadCorrected bool
	Facts             Facts
}

// Facts says what was measured where, so that a later comparison can tell
// like from unlike.
type Facts struct {
	UlatVersion string
	Kernel      string   // uname -r
	Command     []string // the command `ulat run` started; nil for `ulat trace`
	ExitStatus  *int     // the command's exit status (128+N for signal N); nil for `ulat trace`
	Binaries    []Binary // the traced files
	Runs        int      // how many runs were merged into this report (0 means 1)
	// Aggregation is where calls were counted: "kernel" (in-kernel
	// histograms) or "user" (every call streamed), both in package
	// buckets' layout; "" when unknown or when merged runs differ.
	Aggregation string
}

// Binary is a traced file and its build ID ("" when it has none).
type Binary struct {
	Path    string
	BuildID string
}
