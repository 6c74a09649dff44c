package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/e2e/ulattest"
	"github.com/ulat-dev/ulat/report"
)

// Accuracy tests that cannot pass by luck (issue #13, item 5). The targets
// (testdata/exact) time every call from the inside, from their first act to
// their last, with durations drawn from four distributions, and print the
// exact nearest-rank percentiles of what they measured. ulat's percentiles
// of the same calls must match them within 1% each: a fixed point of
// reference, such as a median near a nominal sleep, could be met by a
// histogram that is wrong elsewhere; every percentile of a spread-out
// distribution cannot.
//
// The tolerances are relative to the target's own inner measurement, never
// to wall-clock expectations: a busy machine slows a call down for ulat and
// for the target alike.

var exactDists = ulattest.ExactDists

// exactCalls is how many calls of each function a run makes: ~3.5 s for
// the four distributions. (ulat's percentiles are nearest-rank,
// ceil(p/100*N), as the target's.)
const exactCalls = 1000

// exactTolerance is 1% of the exact value, in both aggregation modes: the
// buckets (Prometheus schema 6) put a percentile within 0.55% of the call
// of its rank, which leaves the rest for the probes' own jitter.
const exactTolerance = 0.01

// inContextNs is what a call's probes may cost beyond the calibrated cost
// taken out, on top of the 1%, as a multiple of that cost so that it
// scales with the machine: 2.8 times for uretprobes (~5 µs here), 2.3
// times for Go's RET-instruction exit probes (~12 µs here). Calls that run
// for hundreds of µs find the probes' path colder than the calibration's
// calls do, and more so beside other work: measured here with --raw and
// the target's own timing, +2–3 µs on bimodal's 200 µs calls and narrow's
// 1 ms ones in C (probes walking 32 MiB between calls cost 2.8 times their
// hot cost), +7–12 µs on 10–40% of narrow's calls in Go, while another
// test suite ran. At 1 ms that is 0.5% (C) and 1.2% (Go) more; at 10 ms,
// a tenth of that. docs/limits.md names the limit.
func inContextNs(f report.JSONFunction) float64 {
	if strings.HasPrefix(f.Function, "main.") {
		return 2.3 * float64(f.ProbeOverheadNs)
	}
	return 2.8 * float64(f.ProbeOverheadNs)
}

// short (4–9 µs calls) is shown, not checked. Its figures are mostly the
// probe-cost correction's: a probe pair costs 1.8–2.4 µs here, and on
// calls made amid other work (as these are: between milliseconds of the
// other distributions' calls, beside whatever else the machine runs) up to
// 2.8 times its cost in a tight loop, which the stated uncertainty covers
// on a quiet machine and not on a busy one (measured: within ±4% then,
// 9–19% off beside other test suites). docs/limits.md names the limit; the
// correction itself is held to its uncertainty by TestNestedProbeCostsTakenOut,
// where the calls run in a steadier cache state. Its p99 is set by the
// calls whose probe path the machine delayed (5–400 µs), 6% to 450% high.

// exactTarget builds the C or Go target and returns it with its function
// for each distribution.
func exactTarget(t *testing.T, lang string) (bin string, sym func(dist string) string) {
	if lang == "c" {
		// -fno-ipa-icf: the four functions have the same body, and gcc -O2
		// would otherwise be free to fold them into one.
		bin = build(t, "exact", "gcc", "-O2", "-fno-omit-frame-pointer", "-fno-ipa-icf", "-o", "$OUT",
			"testdata/exact/exact.c", "-lm")
		return bin, func(d string) string { return "dist_" + d }
	}
	bin = build(t, "exact-go", "go", "build", "-o", "$OUT", "./testdata/exact/go")
	return bin, func(d string) string { return "main." + d }
}

// TestExactPercentiles traces the four functions of the C and Go targets,
// with in-kernel histograms and with every call streamed, and checks ulat's
// p50, p90 and p99 against the target's exact ones, and its call counts
// exactly. Then the same with --interval: every interval's min and max must
// be values ulat observed, not histogram bucket edges.
func TestExactPercentiles(t *testing.T) {
	requireRoot(t)
	for _, lang := range []string{"c", "go"} {
		for _, mode := range []string{"kernel", "user"} {
			t.Run(lang+"/"+mode, func(t *testing.T) {
				bin, sym := exactTarget(t, lang)
				args := []string{"--aggregate", mode, bin}
				for _, d := range exactDists {
					args = append(args, sym(d))
				}
				tr := startTrace(t, args...)
				exact := ulattest.RunExact(t, bin, itoa(exactCalls))
				r := tr.Stop()
				checkExact(t, r, mode, sym, exact)
			})
			t.Run(lang+"/"+mode+"/interval", func(t *testing.T) {
				bin, sym := exactTarget(t, lang)
				args := []string{"--aggregate", mode, "--interval", exactInterval, bin}
				for _, d := range exactDists {
					args = append(args, sym(d))
				}
				tr := startTrace(t, args...)
				exact := ulattest.RunExact(t, bin, itoa(exactIntervalCalls))
				// The calls after the last interval's end are only in the
				// total: wait for the interval that holds the last call.
				// (The limit only turns a hang into a failure.)
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
					if intervalCalls(tr.Reports(), sym(exactDists[len(exactDists)-1])) >= exactIntervalCalls {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				checkIntervals(t, tr.StopAll(), mode, sym, exact)
			})
		}
	}
}

// checkExact compares a report with the target's exact figures and logs
// the table docs/accuracy.md quotes.
func checkExact(t *testing.T, r *reportJSON, mode string, sym func(string) string, exact map[string]ulattest.Exact) {
	t.Helper()
	if r.Aggregation != mode {
		t.Errorf("aggregation %q, want %q", r.Aggregation, mode)
	}
	if !r.OverheadCorrected {
		t.Errorf("report is not corrected for the probe overhead")
	}
	wantNoLoss(t, r)
	tab := ulattest.CheckExact(t, r, ulattest.ExactCheck{
		Calls: exactCalls,
		Sym:   sym,
		Tolerance: func(d string, f report.JSONFunction) float64 {
			if d != "short" && f.ProbeDominated {
				t.Errorf("%s: probe-dominated (probe overhead %dns)", f.Function, f.ProbeOverheadNs)
			}
			return exactTolerance + inContextNs(f)/float64(exact[d].P50)
		},
		Unchecked: func(d string, _ int) bool { return d == "short" },
	}, exact)
	var kinds []string
	for k, ns := range r.ProbeOverheadNs {
		kinds = append(kinds, fmt.Sprintf("%s %dns", k, ns))
	}
	t.Logf("%d calls each, --aggregate %s, probe overhead subtracted: %s\n%s",
		exactCalls, mode, strings.Join(kinds, ", "), tab)
}

// The --interval variant: a few hundred calls, several intervals.
const (
	exactIntervalCalls = 300 // ~1 s
	exactInterval      = "200ms"
)

// intervalCalls is how many calls of name the reports rs hold: while ulat
// runs, every report it has written is an interval's (the total comes when
// it ends).
func intervalCalls(rs []*reportJSON, name string) uint64 {
	var n uint64
	for _, r := range rs {
		for _, f := range r.Functions {
			if f.Function == name {
				n += f.Count
			}
		}
	}
	return n
}

// checkIntervals checks the per-interval reports and the total. Each call
// is in exactly one interval, so the counts add up to the total, and the
// lowest of the intervals' minimums is the total's minimum exactly (the
// highest maximum the total's maximum) when they are observed durations;
// an interval's minimum taken from a histogram bucket's lower edge can lie
// below every call, its maximum from an upper edge above every call.
// Counting in the kernel, a call that ends between the reading of an
// interval's histograms and the start of the next is in neither's
// extremes (docs/limits.md): one of a run's extremes may be missed so,
// not more (that would be a fault, not the race of a few microseconds in
// 200 ms intervals).
// The total's minimum is compared with the target's within the probe
// overhead: the correction is the median cost of a probe pair, which the
// cost on one call can differ from.
func checkIntervals(t *testing.T, rs []*reportJSON, mode string, sym func(string) string, exact map[string]ulattest.Exact) {
	t.Helper()
	if len(rs) < 2 {
		t.Fatalf("%d reports, want intervals and a total", len(rs))
	}
	total, intervals := rs[len(rs)-1], rs[:len(rs)-1]
	wantNoLoss(t, total)
	var tab strings.Builder
	missed := 0 // extremes of the total in no interval's
	for _, d := range exactDists {
		name := sym(d)
		all := wantCount(t, total, name, exactIntervalCalls)
		e := exact[d]
		var sum uint64
		var lo, hi uint64
		used := 0
		for i, r := range intervals {
			var f *report.JSONFunction
			for j := range r.Functions {
				if r.Functions[j].Function == name {
					f = &r.Functions[j]
				}
			}
			if f == nil || f.Count == 0 {
				continue
			}
			if used == 0 || f.MinNs < lo {
				lo = f.MinNs
			}
			hi = max(hi, f.MaxNs)
			used++
			sum += f.Count
			if !(f.MinNs <= f.P50Ns && f.P50Ns <= f.P90Ns && f.P90Ns <= f.P99Ns && f.P99Ns <= f.MaxNs) {
				t.Errorf("%s, interval %d: out of order: min %d p50 %d p90 %d p99 %d max %d",
					name, i+1, f.MinNs, f.P50Ns, f.P90Ns, f.P99Ns, f.MaxNs)
			}
			if f.MinNs < all.MinNs || f.MaxNs > all.MaxNs {
				t.Errorf("%s, interval %d: [min %d, max %d] is not within the total's [%d, %d]: not observed durations",
					name, i+1, f.MinNs, f.MaxNs, all.MinNs, all.MaxNs)
			}
			fmt.Fprintf(&tab, "%-10s interval %2d: count %4d  min %10d  max %10d\n", d, i+1, f.Count, f.MinNs, f.MaxNs)
		}
		if sum != exactIntervalCalls {
			t.Errorf("%s: the intervals' counts sum to %d, want exactly %d", name, sum, exactIntervalCalls)
		}
		if used < 2 {
			t.Errorf("%s: calls in %d intervals, want several", name, used)
		}
		for _, x := range []struct {
			what          string
			interval, all uint64
		}{{"min", lo, all.MinNs}, {"max", hi, all.MaxNs}} {
			if x.interval == x.all {
				continue
			}
			missed++
			if mode == "kernel" && missed <= 1 {
				t.Logf("%s: the intervals' lowest min %d and highest max %d, the total's %d and %d: the total's %s was in no interval's extremes (the documented race)",
					name, lo, hi, all.MinNs, all.MaxNs, x.what)
				continue
			}
			t.Errorf("%s: the intervals' lowest min %d and highest max %d, the total's %d and %d: want them equal",
				name, lo, hi, all.MinNs, all.MaxNs)
		}
		slack := int64(all.ProbeOverheadNs)
		if dev := int64(all.MinNs) - e.Min; dev < -slack || dev > slack {
			t.Errorf("%s: min %dns, the target's exact min %dns: %+dns, want within the probe overhead (%dns)",
				name, all.MinNs, e.Min, dev, slack)
		}
		if int64(all.MaxNs) < e.Max-slack {
			t.Errorf("%s: max %dns is below the target's exact max %dns by more than the probe overhead (%dns)",
				name, all.MaxNs, e.Max, slack)
		}
		fmt.Fprintf(&tab, "%-10s total:       count %4d  min %10d  max %10d  (target: min %d (%+d), max %d (%+d))\n",
			d, all.Count, all.MinNs, all.MaxNs, e.Min, int64(all.MinNs)-e.Min, e.Max, int64(all.MaxNs)-e.Max)
	}
	t.Logf("%d calls each, --interval %s, %d intervals:\n%s", exactIntervalCalls, exactInterval, len(intervals), tab.String())
}
