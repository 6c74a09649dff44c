package e2e

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// Tracing a function's callees does not change its figures: each call has
// the probe costs of the traced calls made inside it taken out, counted as
// they happen. The caller of testdata/nested busy-waits for fixed times, so
// its median without any probe (the untraced run's own, timed from the
// inside) is the truth; traced alone, with 1, with 10 and with all 11 of
// its callees whose entry uprobes emulate, in both aggregation modes,
// ulat's median of it must stay within 1% of that plus the uncertainty
// ulat states for the correction, plus a fifth of the nested probe costs
// it took out (~1.5 µs a traced callee here, scaling with the machine):
// what a probe costs moves with the speed the VM's vCPU runs at, which
// changed by 1.2–1.7 times within seconds here (for every instruction,
// seen with an untraced twin), faster than a calibration can follow.
// Their probes cost the caller ~7 µs each, so without the correction its
// median would move by up to 60%; that the costs taken out are exactly
// those of the traced calls made inside each call, counted as they
// happen, probes.TestNestedCostsCountedExactly checks with made-up costs.
//
// The twelfth callee's entry is single-stepped: its probes' cost swings
// with the host's load by more than a calibration can follow, which the
// docs/limits.md names as a limit; with it traced too, the calls are counted and
// the caller's figures are logged, not held to a tolerance.
func TestNestedProbeCostsTakenOut(t *testing.T) {
	requireRoot(t)
	bin := build(t, "nested", "gcc", "-O2", "-fno-omit-frame-pointer", "-o", "$OUT", "testdata/nested/nested.c")
	const n = 400
	var count, truth int64
	out := run(t, bin, itoa(n))
	if _, err := fmt.Sscanf(out, "caller count=%d p50=%d", &count, &truth); err != nil || count != n {
		t.Fatalf("target output %q: %v", out, err)
	}
	callees := func(k int) []string {
		var fs []string
		for i := range k {
			fs = append(fs, "--func", fmt.Sprintf("callee%d", i))
		}
		return fs
	}
	var table strings.Builder
	fmt.Fprintf(&table, "untraced caller p50 (inside): %d ns\n%-6s %-8s %12s %10s %12s %12s %8s\n", truth, "mode", "callees", "caller p50", "off", "± stated", "taken out", "inside")
	for _, mode := range []string{"kernel", "user"} {
		for _, k := range []int{0, 1, 10, 11, 12} {
			args := append([]string{"--aggregate", mode, "--func", "caller"}, callees(min(k, 11))...)
			if k == 12 {
				args = append(args, "--func", "stepped")
			}
			r, code, stdout := ulatRun(t, append(args, "--", bin, itoa(n))...)
			if code != 0 {
				t.Fatalf("%s, %d callees: exit status %d", mode, k, code)
			}
			var inside int64
			fmt.Sscanf(stdout, "caller count=%d p50=%d", &count, &inside)
			c := wantCount(t, r, "caller", n)
			for i := range min(k, 11) {
				wantCount(t, r, fmt.Sprintf("callee%d", i), n)
			}
			if k == 12 {
				wantCount(t, r, "stepped", n)
			}
			off := float64(c.P50Ns) - float64(truth)
			allowed := 0.01*float64(truth) + float64(c.ProbeUncertaintyNs) + 0.2*float64(c.NestedProbeOverheadNs)
			fmt.Fprintf(&table, "%-6s %-8d %12d %+9.2f%% %12d %12d %8d\n", mode, k, c.P50Ns, 100*off/float64(truth), c.ProbeUncertaintyNs, c.NestedProbeOverheadNs, inside)
			if math.Abs(off) > allowed && k < 12 {
				t.Errorf("%s, %d callees traced: caller p50 %d ns, untraced truth %d ns: %+.0f ns off, more than 1%% plus the stated ±%d ns plus a fifth of the %d ns taken out",
					mode, k, c.P50Ns, truth, off, c.ProbeUncertaintyNs, c.NestedProbeOverheadNs)
			}
			if k > 0 && c.NestedProbeOverheadNs == 0 {
				t.Errorf("%s, %d callees traced: no nested probe cost taken out", mode, k)
			}
		}
	}
	t.Logf("\n%s", table.String())
}
