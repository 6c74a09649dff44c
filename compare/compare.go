package compare

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ulat-dev/ulat/report"
)

// Defaults for the zero values of Options.
const (
	DefaultMinCount   = 100
	DefaultConfidence = 0.99
	defaultResamples  = 500
)

// Sentinel errors, wrapped with the details.
var (
	// ErrNoCommonFunctions: no function is in both reports, so there is
	// nothing to compare (usually the wrong files, or different --func).
	ErrNoCommonFunctions = errors.New("no function is in both reports")
	// ErrIncomparable: the reports measured differently (one with --raw).
	ErrIncomparable = errors.New("reports cannot be compared")
	// ErrOptions: an option is out of range.
	ErrOptions = errors.New("bad compare option")
)

// Options controls a comparison; the zero value uses the defaults.
type Options struct {
	// Thresholds judge the functions. Those without a Function apply to
	// every function; when there are none, defaultThresholds do. Those
	// with a Function override the global one for the same metric, or add
	// a metric, for the functions they name.
	Thresholds []Threshold
	// MinCount is the fewest calls on each side for a function to be
	// judged (DefaultMinCount when 0); below it the verdict is "not enough
	// data".
	MinCount uint64
	// Confidence of the intervals, in (0, 1) (DefaultConfidence when 0).
	Confidence float64
	// Resamples drawn for metrics whose bootstrap distribution has no
	// closed form, the mean (defaultResamples when 0).
	Resamples int
}

// Verdict is the outcome for a function, a metric or the whole comparison.
type Verdict string

const (
	Regressed      Verdict = "regressed"
	Improved       Verdict = "improved"
	Unchanged      Verdict = "unchanged"
	NotEnoughData  Verdict = "not enough data"
	OnlyInBaseline Verdict = "only in baseline"
	OnlyInCurrent  Verdict = "only in current"
)

// verdictOrder is the order functions are listed in: what needs attention
// first.
var verdictOrder = []Verdict{Regressed, Improved, Unchanged, NotEnoughData, OnlyInBaseline, OnlyInCurrent}

// Stats are one side's figures for a function, in nanoseconds.
type Stats struct {
	Count  uint64
	MeanNs uint64
	P50Ns  uint64
	P90Ns  uint64
	P99Ns  uint64
}

// Metric is one judged metric of a function.
type Metric struct {
	Metric    string // "p99", "mean", ...
	BaseNs    uint64
	CurrentNs uint64
	// Change is CurrentNs/BaseNs - 1; NaN when BaseNs is 0.
	Change float64
	// Low and High bound the Confidence interval of Change; NaN when the
	// metric was not judged (too few calls, or BaseNs is 0). The interval
	// holds the bootstrap's sampling error, where in its histogram bucket
	// each side's percentile lies, and UncertaintyNs on each side: it is
	// never narrower than the buckets' width.
	Low, High float64
	// UncertaintyNs is how far each side's durations, and so its metric,
	// may be off because the probes' cost taken out of them is known only
	// that well (see probeUncertainty); 0 when the reports are --raw or
	// carry no calibration.
	UncertaintyNs uint64
	// ResolutionLimited says that the bootstrap put every resampled
	// percentile of each side in one bucket: Low and High then come from
	// the buckets' width (and UncertaintyNs), not from sampling, and are
	// no confidence interval.
	ResolutionLimited bool
	Limit             float64
	Verdict           Verdict
}

// Function is one function's comparison.
type Function struct {
	Function string
	Binary   string // the baseline's path when in both
	Key      string // report.FunctionKey
	Verdict  Verdict
	// Reason says why, e.g. "p99 +35% (99% CI +28%..+41%, limit +20%)";
	// "" when there is nothing to add to the verdict.
	Reason string
	// Base and Current are nil when the function is absent on that side.
	Base, Current *Stats
	Metrics       []Metric
}

// Facts is what one side's reports say about how they were recorded.
type Facts struct {
	Runs              int
	UlatVersion       string // "" when the merged runs differ
	Kernel            string // "" when the merged runs differ
	Command           []string
	Binaries          []report.Binary
	Lost              report.Lost
	Elapsed           time.Duration
	OverheadCorrected bool
	Aggregation       string // "kernel", "user", or "" when unknown or mixed
}

// Result is a whole comparison.
type Result struct {
	Verdict   Verdict // Regressed when any function regressed
	Functions []Function
	Baseline  Facts
	Current   Facts
	// Thresholds in effect: the global ones, then the per-function ones.
	Thresholds []Threshold
	Confidence float64
	MinCount   uint64
	// Notes and Warnings are facts about the two sides that bear on how
	// far the verdict can be trusted (different kernels, the same binary,
	// dropped events, ...).
	Notes    []string
	Warnings []string
}

// count returns how many functions have verdict v.
func (r *Result) count(v Verdict) int {
	n := 0
	for _, f := range r.Functions {
		if f.Verdict == v {
			n++
		}
	}
	return n
}

// Compare judges cur against base, function by function (paired by
// report.FunctionKey).
func Compare(base, cur *report.Report, opts Options) (*Result, error) {
	if opts.MinCount == 0 {
		opts.MinCount = DefaultMinCount
	}
	if opts.Confidence == 0 {
		opts.Confidence = DefaultConfidence
	}
	if !(opts.Confidence > 0 && opts.Confidence < 1) {
		return nil, fmt.Errorf("confidence %v: must be between 0 and 1, such as 0.99: %w", opts.Confidence, ErrOptions)
	}
	if opts.Resamples == 0 {
		opts.Resamples = defaultResamples
	}
	if opts.Resamples < 100 {
		return nil, fmt.Errorf("resamples %d: must be at least 100: %w", opts.Resamples, ErrOptions)
	}
	if base.OverheadCorrected != cur.OverheadCorrected {
		which := "the current"
		if !base.OverheadCorrected {
			which = "the baseline"
		}
		return nil, fmt.Errorf("one side has the probes' own cost subtracted and the other not (%s was recorded raw); record both the same way: %w", which, ErrIncomparable)
	}
	for _, t := range opts.Thresholds {
		if m, err := parseMetric(t.Metric); err != nil || m != t.Metric || !(t.Limit >= 0 && t.Limit <= 1e4) {
			return nil, fmt.Errorf("threshold %+v: want a metric as ParseThreshold returns it and a limit >= 0: %w", t, ErrOptions)
		}
	}

	ts := newThresholdSet(opts.Thresholds)
	res := &Result{
		Baseline:   runOf(base),
		Current:    runOf(cur),
		Thresholds: append(append([]Threshold(nil), ts.global...), ts.perFunc...),
		Confidence: opts.Confidence,
		MinCount:   opts.MinCount,
	}

	curIndex := map[string]int{}
	for i, f := range cur.Functions {
		key := report.FunctionKey(f.Function, f.Binary)
		if _, dup := curIndex[key]; !dup {
			curIndex[key] = i
		}
	}
	type job struct {
		out        int // index in res.Functions
		b, c       *report.Histogram
		u          float64 // probe-cost uncertainty of each side, ns
		thresholds []Threshold
	}
	var jobs []job
	var dominated []string
	// Merged reports hold each key once; a hand-made one may not, and then
	// the first one counts.
	baseKeys := map[string]bool{}
	for i := range base.Functions {
		b := &base.Functions[i]
		key := report.FunctionKey(b.Function, b.Binary)
		if baseKeys[key] {
			continue
		}
		baseKeys[key] = true
		fn := Function{Function: b.Function, Binary: b.Binary, Key: key, Base: statsOf(b.Hist)}
		j, ok := curIndex[key]
		if !ok {
			fn.Verdict = OnlyInBaseline
			res.Functions = append(res.Functions, fn)
			continue
		}
		c := &cur.Functions[j]
		fn.Current = statsOf(c.Hist)
		if b.ProbeDominated(base.OverheadCorrected) || c.ProbeDominated(cur.OverheadCorrected) {
			dominated = append(dominated, b.Function)
		}
		u := probeUncertainty(b, c, base.OverheadCorrected)
		jobs = append(jobs, job{out: len(res.Functions), b: b.Hist, c: c.Hist, u: u, thresholds: ts.forFunction(b.Function, key)})
		res.Functions = append(res.Functions, fn)
	}
	for i := range cur.Functions {
		c := &cur.Functions[i]
		key := report.FunctionKey(c.Function, c.Binary)
		if !baseKeys[key] && curIndex[key] == i {
			res.Functions = append(res.Functions, Function{Function: c.Function, Binary: c.Binary, Key: key, Verdict: OnlyInCurrent, Current: statsOf(c.Hist)})
		}
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("%w (they pair by file name and function name): baseline has %s, current %s",
			ErrNoCommonFunctions, someKeys(base), someKeys(cur))
	}

	// Functions are independent: judge them on every CPU.
	var wg sync.WaitGroup
	next := make(chan job)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				judge(&res.Functions[j.out], j.b, j.c, j.u, j.thresholds, opts)
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()

	for i, used := range ts.used {
		if !used {
			res.Warnings = append(res.Warnings, fmt.Sprintf("threshold %s names no function in both reports", ts.perFunc[i]))
		}
	}
	var limited []string
	for _, f := range res.Functions {
		for _, m := range f.Metrics {
			if m.ResolutionLimited && math.Abs(m.Change) > m.Limit {
				limited = append(limited, f.Function+" "+m.Metric)
			}
		}
	}
	if len(limited) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("resolution-limited (every resample put each side's percentile in one %s-wide histogram bucket: the bounds are the buckets' width and the probes' cost uncertainty, not a %s confidence interval): %s",
			strconv.FormatFloat(100*(bucketGrowth-1), 'f', 2, 64)+"%", formatConfidence(opts.Confidence), someNames(limited)))
	}
	if len(dominated) > 0 {
		res.Notes = append(res.Notes, "probe-dominated (median within 2x of the probes' own cost, so changes may be the probes' jitter, not the code's): "+someNames(dominated))
	}
	rank := func(v Verdict) int { return slices.Index(verdictOrder, v) }
	sort.SliceStable(res.Functions, func(i, j int) bool { return rank(res.Functions[i].Verdict) < rank(res.Functions[j].Verdict) })
	switch {
	case res.count(Regressed) > 0:
		res.Verdict = Regressed
	case res.count(Improved) > 0:
		res.Verdict = Improved
	case res.count(Unchanged) > 0:
		res.Verdict = Unchanged
	default:
		res.Verdict = NotEnoughData
	}
	addNotes(res, base, cur)
	return res, nil
}

func statsOf(h *report.Histogram) *Stats {
	return &Stats{Count: h.Count(), MeanNs: h.Mean(), P50Ns: h.Percentile(50), P90Ns: h.Percentile(90), P99Ns: h.Percentile(99)}
}

func runOf(r *report.Report) Facts {
	return Facts{
		Runs: max(r.Facts.Runs, 1), UlatVersion: r.Facts.UlatVersion, Kernel: r.Facts.Kernel, Command: r.Facts.Command,
		Binaries: r.Facts.Binaries, Lost: r.Lost, Elapsed: r.Elapsed, OverheadCorrected: r.OverheadCorrected,
		Aggregation: r.Facts.Aggregation,
	}
}

// probeUncertainty is how far each side's corrected durations of a
// function may be off, in ns, because the probes' cost subtracted from
// them is known only so well: 0 when nothing was subtracted (--raw).
//
// Each report states its own uncertainty (report.FunctionStats.UncertaintyNs:
// the spread of its calibration's rounds, and of the nested probes' costs).
// Both sides measured the same kind of probes, on one host when the
// comparison means anything, so the larger of the two applies to both: a
// run whose rounds happened to agree knows the cost no better. And when the
// two runs' calibrations of the function's probes differ, by d, the cost
// is known no better than that between runs: had both been corrected
// consistently (by the same cost, anywhere between the two), each side's
// durations would move by up to d/2, so each side is uncertain by at least
// d/2. A rerun whose durations differ only because its calibration did is
// then never flagged: the widened interval covers the shift.
func probeUncertainty(b, c *report.FunctionStats, corrected bool) float64 {
	if !corrected {
		return 0
	}
	u := float64(max(b.UncertaintyNs, c.UncertaintyNs))
	if b.ProbeKind == c.ProbeKind && b.ProbeOverheadNs > 0 && c.ProbeOverheadNs > 0 {
		d := math.Abs(float64(b.ProbeOverheadNs) - float64(c.ProbeOverheadNs))
		u = max(u, d/2)
	}
	return u
}

// judge fills in f's metrics and verdict; u is each side's probe-cost
// uncertainty in ns (probeUncertainty).
func judge(f *Function, bh, ch *report.Histogram, u float64, thresholds []Threshold, opts Options) {
	enough := bh.Count() >= opts.MinCount && ch.Count() >= opts.MinCount
	var bs, cs sample
	if enough {
		bs, cs = newSample(bh), newSample(ch)
	}
	alpha := 1 - opts.Confidence
	var regressed, improved, noisy []string
	for _, t := range thresholds {
		m := Metric{Metric: t.Metric, Limit: t.Limit, Low: math.NaN(), High: math.NaN(), Verdict: Unchanged, UncertaintyNs: uint64(math.Round(u))}
		p, isPercentile := percentileOf(t.Metric)
		if isPercentile {
			m.BaseNs, m.CurrentNs = bh.Percentile(p), ch.Percentile(p)
		} else {
			m.BaseNs, m.CurrentNs = bh.Mean(), ch.Mean()
		}
		m.Change = math.NaN()
		if m.BaseNs > 0 {
			m.Change = float64(m.CurrentNs)/float64(m.BaseNs) - 1
		}
		switch {
		case !enough:
			m.Verdict = NotEnoughData
		case m.BaseNs == 0:
			// A zero baseline (durations below the probes' own cost,
			// corrected to 0) has no relative change.
			noisy = append(noisy, fmt.Sprintf("%s not judged: 0ns in the baseline", t.Metric))
		default:
			var bd, cd dist
			if isPercentile {
				_, bd = percentileDist(&bs, p)
				_, cd = percentileDist(&cs, p)
			} else {
				bd, cd = meanDists(&bs, &cs, opts.Resamples, seedOf(t.Metric, &bs, &cs))
			}
			iv := widenedInterval(bd, cd, u, alpha/2, 1-alpha/2)
			m.Low, m.High, m.ResolutionLimited = iv.low-1, iv.high-1, iv.resolutionLimited
			ci := m.intervalText(opts.Confidence)
			// The whole interval must lie beyond the limit: the change
			// is then larger than the limit whatever the sampling, the
			// buckets' width and the probes' cost hide.
			switch {
			case m.Change > t.Limit && m.Low > t.Limit:
				m.Verdict = Regressed
				regressed = append(regressed, fmt.Sprintf("%s %s (%s, limit %s)", t.Metric, formatChange(m.Change), ci, formatChange(t.Limit)))
			case m.Change < -t.Limit && m.High < -t.Limit:
				m.Verdict = Improved
				improved = append(improved, fmt.Sprintf("%s %s (%s, limit -%s)", t.Metric, formatChange(m.Change), ci, formatPercent(t.Limit)))
			case math.Abs(m.Change) > t.Limit:
				limit := formatChange(t.Limit)
				if m.Change < 0 {
					limit = "-" + formatPercent(t.Limit)
				}
				noisy = append(noisy, fmt.Sprintf("%s %s is within noise (%s, limit %s)", t.Metric, formatChange(m.Change), ci, limit))
			}
		}
		f.Metrics = append(f.Metrics, m)
	}
	switch {
	case !enough:
		f.Verdict = NotEnoughData
		var short []string
		if n := bh.Count(); n < opts.MinCount {
			short = append(short, fmt.Sprintf("%d calls in baseline", n))
		}
		if n := ch.Count(); n < opts.MinCount {
			short = append(short, fmt.Sprintf("%d calls in current", n))
		}
		f.Reason = fmt.Sprintf("%s, %d needed", strings.Join(short, ", "), opts.MinCount)
	case len(regressed) > 0:
		f.Verdict, f.Reason = Regressed, strings.Join(regressed, "; ")
	case len(improved) > 0:
		f.Verdict, f.Reason = Improved, strings.Join(improved, "; ")
	default:
		f.Verdict, f.Reason = Unchanged, strings.Join(noisy, "; ")
	}
}

// addNotes states what the two sides' recordings say about trusting the
// comparison.
func addNotes(res *Result, base, cur *report.Report) {
	b, c := res.Baseline, res.Current
	note := func(format string, a ...any) { res.Notes = append(res.Notes, fmt.Sprintf(format, a...)) }
	warn := func(format string, a ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(format, a...)) }

	for _, s := range []struct {
		name string
		run  Facts
	}{{"baseline", b}, {"current", c}} {
		if s.run.Lost.DroppedEvents > 0 {
			warn("%s: %d events dropped (ring buffer full): its counts are incomplete and its durations may be skewed; record it again with a larger ring buffer",
				s.name, s.run.Lost.DroppedEvents)
		}
		if s.run.Runs > 1 && s.run.Kernel == "" {
			note("%s: its %d runs were recorded on different kernels", s.name, s.run.Runs)
		}
	}
	if b.Kernel != "" && c.Kernel != "" && b.Kernel != c.Kernel {
		warn("kernels differ (baseline %s, current %s): probe costs and scheduling differ too, so durations may change without the code changing", b.Kernel, c.Kernel)
	}
	if b.Aggregation != "" && c.Aggregation != "" && b.Aggregation != c.Aggregation {
		warn("aggregation differs (baseline: %s, current: %s): both count in the same buckets and take the same probe costs out, so durations should agree, but record both sides the same way to rule it out",
			b.Aggregation, c.Aggregation)
	}
	if len(b.Command) > 0 && len(c.Command) > 0 && !slices.Equal(b.Command, c.Command) {
		note("commands differ (baseline %q, current %q)", strings.Join(b.Command, " "), strings.Join(c.Command, " "))
	}
	if b.UlatVersion != "" && c.UlatVersion != "" && b.UlatVersion != c.UlatVersion {
		note("ulat versions differ (baseline %s, current %s)", b.UlatVersion, c.UlatVersion)
	}

	// Build IDs by file name: the same ID on both sides is the same binary.
	ids := func(bins []report.Binary) map[string][]string {
		m := map[string][]string{}
		for _, x := range bins {
			name := filepath.Base(x.Path)
			if x.BuildID != "" && !slices.Contains(m[name], x.BuildID) {
				m[name] = append(m[name], x.BuildID)
			}
		}
		return m
	}
	bIDs, cIDs := ids(b.Binaries), ids(c.Binaries)
	names := make([]string, 0, len(bIDs))
	for name := range bIDs {
		if _, ok := cIDs[name]; ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		bi, ci := bIDs[name], cIDs[name]
		switch {
		case len(bi) > 1 || len(ci) > 1:
			note("%s: several builds merged (baseline %s, current %s)", name, shortIDs(bi), shortIDs(ci))
		case bi[0] == ci[0]:
			msg := fmt.Sprintf("%s: the same build on both sides (build ID %s): any difference comes from the machine or the input, not the code", name, shortID(bi[0]))
			if res.Verdict == Regressed {
				warn("%s", msg)
			} else {
				note("%s", msg)
			}
		default:
			note("%s: different builds (build ID %s, then %s)", name, shortID(bi[0]), shortID(ci[0]))
		}
	}

	// The probes' own cost is measured at every start and subtracted; when
	// it differs much, the hosts differ.
	overheads := func(r *report.Report) map[string]uint64 {
		m := map[string]uint64{}
		for _, f := range r.Functions {
			if f.ProbeOverheadNs != 0 {
				m[f.ProbeKind] = f.ProbeOverheadNs
			}
		}
		return m
	}
	bo, co := overheads(base), overheads(cur)
	var kinds []string
	for k := range bo {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		x, y := float64(bo[k]), float64(co[k])
		if y != 0 && math.Abs(y/x-1) > 0.25 {
			what := "subtracted from every duration"
			if !b.OverheadCorrected {
				what = "included in every duration"
			}
			note("the probes' own cost differs (%s: %s, then %s; %s): on one host that is the calibration's own scatter, between hosts or kernels a real difference",
				k, report.FormatDuration(bo[k]), report.FormatDuration(co[k]), what)
		}
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shortIDs(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = shortID(id)
	}
	return strings.Join(out, ", ")
}

// someNames lists the first ten names, and how many more there are.
func someNames(names []string) string {
	const shown = 10
	list := strings.Join(names[:min(len(names), shown)], ", ")
	if len(names) > shown {
		list += fmt.Sprintf(" and %d more", len(names)-shown)
	}
	return list
}

// someKeys names a report's first few functions, for an error message.
func someKeys(r *report.Report) string {
	const shown = 3
	var keys []string
	for i, f := range r.Functions {
		if i == shown {
			keys = append(keys, fmt.Sprintf("and %d more", len(r.Functions)-shown))
			break
		}
		keys = append(keys, report.FunctionKey(f.Function, f.Binary))
	}
	switch len(r.Functions) {
	case 0:
		return "no functions"
	case 1:
		return "1 function, " + keys[0]
	}
	return fmt.Sprintf("%d functions, %s", len(r.Functions), strings.Join(keys, ", "))
}
