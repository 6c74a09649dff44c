package compare

import (
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ulat-dev/ulat/buckets"
	"github.com/ulat-dev/ulat/report"
)

// side is one run of a function whose durations had the probes' cost,
// as that run calibrated it, subtracted.
type side struct {
	vals          []uint64 // corrected durations
	overheadNs    uint64   // the calibrated cost subtracted
	uncertaintyNs uint64   // the run's own stated uncertainty
}

func reportWith(s side) *report.Report {
	r := reportOf(fn{"main.step", s.vals})
	f := &r.Functions[0]
	f.ProbeOverheadNs, f.ProbeKind, f.UncertaintyNs = s.overheadNs, "uretprobe/stepped", s.uncertaintyNs
	return r
}

// corrected subtracts cost from each raw duration, as ulat run does
// (durations below it count as 0).
func corrected(raw []uint64, cost uint64) []uint64 {
	out := make([]uint64, len(raw))
	for i, v := range raw {
		out[i] = v - min(v, cost)
	}
	return out
}

// stepped draws raw durations of a function of body ns behind probes
// costing probe ns, as a rerun of the same build measures them: the body
// varies call to call, the probes' cost hardly.
func stepped(rng *rand.Rand, n int, body, probe float64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(body*math.Exp(0.2*rng.NormFloat64()) + probe)
	}
	return out
}

// The failure: the same build run twice, its single-stepped
// probes calibrated at 15.0 µs in one run and 11.4 µs in the other, so
// the second's corrected durations are 3.6 µs longer (+14% at a 25 µs
// median), every call of them, with an interval around it far narrower
// than the shift. The two calibrations disagree by 3.6 µs, so each side
// is uncertain by 1.8 µs, which the interval carries: not flagged.
// Without the disagreement the same durations are a regression.
func TestCalibrationShiftNotFlagged(t *testing.T) {
	rng := rand.New(rand.NewPCG(50, 51))
	raw := stepped(rng, 20000, 25_000, 15_000)
	rerun := stepped(rng, 20000, 25_000, 15_000)
	base := side{vals: corrected(raw, 15_000), overheadNs: 15_000, uncertaintyNs: 40}
	cur := side{vals: corrected(rerun, 11_400), overheadNs: 11_400, uncertaintyNs: 25}

	res := mustCompare(t, reportWith(base), reportWith(cur), Options{})
	f := find(t, res, "main.step")
	m := f.Metrics[0]
	t.Logf("%s: %s", f.Verdict, f.Reason)
	if f.Verdict != Unchanged || res.Verdict != Unchanged {
		t.Fatalf("calibration shift flagged: %s: %s", f.Verdict, f.Reason)
	}
	if m.UncertaintyNs != 1800 {
		t.Errorf("uncertainty %d ns, want 1800 (half the calibrations' difference)", m.UncertaintyNs)
	}
	if !(m.Change > 0.13 && m.Change < 0.16) || !(m.Low < 0 && m.High > m.Change) || m.ResolutionLimited {
		t.Errorf("p50 %+v: want about +14%%, an interval reaching below 0, not resolution-limited", m)
	}
	if !regexp.MustCompile(`^p50 \+1[45]% is within noise \(99% CI -\d(\.\d)?%\.\.\+\d+%, probe cost ±1\.80µs included, limit \+10%\)$`).MatchString(f.Reason) {
		t.Errorf("reason %q", f.Reason)
	}

	// The same durations, both calibrated alike: the shift is real.
	cur.overheadNs = 15_000
	res = mustCompare(t, reportWith(base), reportWith(cur), Options{})
	if f := find(t, res, "main.step"); f.Verdict != Regressed || f.Metrics[0].UncertaintyNs != 40 {
		t.Errorf("same calibration: %s (%s), uncertainty %d; want regressed, 40 ns (the larger stated)", f.Verdict, f.Reason, f.Metrics[0].UncertaintyNs)
	}
	// Recorded --raw, nothing was subtracted: no uncertainty.
	b, c := reportWith(base), reportWith(cur)
	b.OverheadCorrected, c.OverheadCorrected = false, false
	if m := find(t, mustCompare(t, b, c, Options{}), "main.step").Metrics[0]; m.UncertaintyNs != 0 {
		t.Errorf("--raw: uncertainty %d ns, want 0", m.UncertaintyNs)
	}
	// Different kinds of probes (the build changed the entry): their
	// costs differ for real, and the stated uncertainties apply alone.
	c = reportWith(side{vals: cur.vals, overheadNs: 900, uncertaintyNs: 25})
	c.Functions[0].ProbeKind = "uretprobe/emulated"
	if m := find(t, mustCompare(t, reportWith(base), c, Options{}), "main.step").Metrics[0]; m.UncertaintyNs != 40 {
		t.Errorf("different probe kinds: uncertainty %d ns, want 40", m.UncertaintyNs)
	}
}

// A true +30% change of the function's body is flagged even though the
// calibrations differ (by 3.6 µs, ±1.8 µs a side) and the current run's
// correction is the one that is off.
func TestTrueChangeFlaggedDespiteCalibration(t *testing.T) {
	rng := rand.New(rand.NewPCG(52, 53))
	base := side{vals: corrected(stepped(rng, 5000, 100_000, 15_000), 15_000), overheadNs: 15_000, uncertaintyNs: 40}
	cur := side{vals: corrected(stepped(rng, 5000, 130_000, 15_000), 11_400), overheadNs: 11_400, uncertaintyNs: 25}
	opts := Options{Thresholds: []Threshold{{Metric: "p50", Limit: 0.10}, {Metric: "mean", Limit: 0.10}}}
	res := mustCompare(t, reportWith(base), reportWith(cur), opts)
	f := find(t, res, "main.step")
	t.Logf("%s: %s", f.Verdict, f.Reason)
	if f.Verdict != Regressed || res.Verdict != Regressed {
		t.Fatalf("+30%%: %s: %s", f.Verdict, f.Reason)
	}
	for _, m := range f.Metrics {
		if m.Verdict != Regressed || m.UncertaintyNs != 1800 || !(m.Change > 0.31 && m.Change < 0.35) || !(m.Low > 0.10 && m.Low < m.Change && m.High > m.Change) {
			t.Errorf("%s: %+v, want regressed about +33%% (+30%% and the 3.6 µs), its interval above +10%%", m.Metric, m)
		}
	}
	if !regexp.MustCompile(`^p50 \+3[2-4]% \(99% CI \+\d+%\.\.\+\d+%, probe cost ±1\.80µs included, limit \+10%\); mean \+3[2-4]% \(99% CI \+\d+%\.\.\+\d+%, probe cost ±1\.80µs included, limit \+10%\)$`).MatchString(f.Reason) {
		t.Errorf("reason %q", f.Reason)
	}
}

// slotOf returns the bounds of the bucket holding ns, and n durations
// spread evenly over them.
func slotOf(ns uint64, n int) (lo, hi uint64, vals []uint64) {
	lo, hi = buckets.Bounds(buckets.Of(ns))
	for i := range n {
		vals = append(vals, lo+(hi-lo)*uint64(i)/uint64(n-1))
	}
	return lo, hi, vals
}

// Every call of each side in one bucket, the current's 9 buckets above
// the baseline's (+10.3%, the "+11% (99% CI +11.2%..+11.2%)"):
// every resample's p50 is in the same bucket, so the bootstrap gives a
// zero-width interval. The interval is the buckets' width instead, exactly
// (current's shortest / baseline's longest .. current's longest /
// baseline's shortest), is marked resolution-limited and said not to be a
// confidence interval, and its lower bound is below the +10% limit: not a
// regression. Before, it was one.
func TestSingleBucketIntervalIsResolution(t *testing.T) {
	bLo, bHi, bv := slotOf(30_000, 2000)
	next := bHi
	for range 9 {
		_, next = buckets.Bounds(buckets.Of(next + 1))
	}
	cLo, cHi, cv := slotOf(next, 2000)
	res := mustCompare(t, reportOf(fn{"f", bv}), reportOf(fn{"f", cv}), Options{})
	f := find(t, res, "f")
	m := f.Metrics[0]
	if !m.ResolutionLimited || m.UncertaintyNs != 0 {
		t.Fatalf("%+v: want resolution-limited, no probe-cost uncertainty", m)
	}
	wantLow, wantHigh := float64(cLo)/float64(bHi)-1, float64(cHi)/float64(bLo)-1
	if math.Abs(m.Low-wantLow) > 1e-8 || math.Abs(m.High-wantHigh) > 1e-8 {
		t.Errorf("interval %.6f..%.6f, want the buckets' %.6f..%.6f", m.Low, m.High, wantLow, wantHigh)
	}
	if !(m.Change > 0.10 && m.Low < 0.10) || f.Verdict != Unchanged {
		t.Errorf("%s %q: want unchanged, a change over +10%% whose bucket-bound interval reaches below it", f.Verdict, f.Reason)
	}
	want := "p50 +10% is within noise (resolution-limited +9.1%..+11%, limit +10%)"
	if f.Reason != want {
		t.Errorf("reason\n%q, want\n%q", f.Reason, want)
	}
	note := "resolution-limited (every resample put each side's percentile in one 1.09%-wide histogram bucket: the bounds are the buckets' width and the probes' cost uncertainty, not a 99% confidence interval): f p50"
	if !slices.Contains(res.Notes, note) {
		t.Errorf("notes %q, want %q", res.Notes, note)
	}
	// A larger change clears the limit even at the buckets' worst ends.
	_, _, far := slotOf(uint64(float64(bHi)*1.2), 2000)
	if f := find(t, mustCompare(t, reportOf(fn{"f", bv}), reportOf(fn{"f", far}), Options{}), "f"); f.Verdict != Regressed || !strings.HasPrefix(f.Reason, "p50 +20% (resolution-limited +") {
		t.Errorf("+20%% in one bucket: %s %q", f.Verdict, f.Reason)
	}
}
