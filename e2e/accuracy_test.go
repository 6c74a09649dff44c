package e2e

import (
	"fmt"
	"math"
	"testing"
)

// With the probes' own cost subtracted, ulat's medians match what the
// functions measure of themselves from the inside: a 50 µs busy-wait within
// ±10% and a 2 ms sleep within ±3%, for C (uretprobe) and Go (RET probes).
func TestAccuracy(t *testing.T) {
	requireRoot(t)
	for _, lang := range []string{"c", "go"} {
		t.Run(lang, func(t *testing.T) {
			var bin, spin, sleep string
			if lang == "c" {
				bin = build(t, "accuracy", "gcc", "-O2", "-o", "$OUT", "testdata/accuracy/accuracy.c")
				spin, sleep = "spin50", "sleep2"
			} else {
				bin = build(t, "accuracy-go", "go", "build", "-o", "$OUT", "./testdata/accuracy/go")
				spin, sleep = "main.spin50", "main.sleep2"
			}
			const n = 300
			tr := startTrace(t, bin, spin, sleep)
			out := run(t, bin, itoa(n))
			r := tr.Stop()

			var total, spinTrue, sleepTrue int64
			if _, err := fmt.Sscanf(out, "total=%d spin50_p50=%d sleep2_p50=%d", &total, &spinTrue, &sleepTrue); err != nil || total != 2*n {
				t.Fatalf("target output %q: %v", out, err)
			}
			if !r.OverheadCorrected {
				t.Fatalf("report is not corrected for the probe overhead: %+v", r)
			}
			for _, c := range []struct {
				name      string
				truth     int64
				tolerance float64
			}{{spin, spinTrue, 0.10}, {sleep, sleepTrue, 0.03}} {
				f := wantCount(t, r, c.name, n)
				dev := math.Abs(float64(f.P50Ns)-float64(c.truth)) / float64(c.truth)
				t.Logf("%s: ulat p50 %dns, the function's own median %dns (%.2f%% off; probe overhead %dns, %s)",
					c.name, f.P50Ns, c.truth, 100*dev, f.ProbeOverheadNs, f.ProbeKind)
				if dev > c.tolerance {
					t.Errorf("%s: p50 %dns is %.1f%% from the function's own median %dns, want within %.0f%%",
						c.name, f.P50Ns, 100*dev, c.truth, 100*c.tolerance)
				}
				if f.ProbeOverheadNs == 0 || f.ProbeDominated {
					t.Errorf("%s: probe overhead %dns, probe-dominated %v", c.name, f.ProbeOverheadNs, f.ProbeDominated)
				}
			}
		})
	}
}
