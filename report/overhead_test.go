package report

import (
	"bytes"
	"strings"
	"testing"
)

// The probes' cost is stated per kind, and functions whose median is within
// 2x of it are flagged, in the table and in JSON.
func TestProbeOverhead(t *testing.T) {
	r := &Report{
		OverheadCorrected: true,
		Functions: []FunctionStats{
			{Function: "fast", Hist: histOf(1000, 1200, 1500), ProbeOverheadNs: 1650, ProbeKind: "uretprobe/emulated"},
			{Function: "slow", Hist: histOf(50000, 51000), ProbeOverheadNs: 1650, ProbeKind: "uretprobe/emulated"},
			{Function: "main.work", Hist: histOf(2e6), ProbeOverheadNs: 18000, ProbeKind: "ret/stepped"},
			{Function: "never", Hist: NewHistogram(), ProbeOverheadNs: 1650, ProbeKind: "uretprobe/emulated"},
		},
	}
	out := renderTable(t, r)
	for _, want := range []string{
		"probe overhead, measured on this host and subtracted from every duration (--raw keeps it): 1.65µs for 3 functions (uretprobe/emulated), 18.0µs for 1 function (ret/stepped)\n",
		"probe-dominated (median within 2x of the probes' own cost, shorter than they can resolve): fast\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	j, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !j.OverheadCorrected || j.ProbeOverheadNs["uretprobe/emulated"] != 1650 || j.ProbeOverheadNs["ret/stepped"] != 18000 {
		t.Errorf("JSON overheads: corrected %v, %v", j.OverheadCorrected, j.ProbeOverheadNs)
	}
	for i, want := range []bool{true, false, false, false} {
		if j.Functions[i].ProbeDominated != want || j.Functions[i].ProbeOverheadNs == 0 {
			t.Errorf("%s: probe_dominated %v (overhead %d), want %v", j.Functions[i].Function, j.Functions[i].ProbeDominated, j.Functions[i].ProbeOverheadNs, want)
		}
	}

	// Uncorrected durations still include the overhead: a 3µs raw median
	// is 1.35µs of the function's own.
	raw := FunctionStats{Function: "fast", Hist: histOf(3000), ProbeOverheadNs: 1650}
	if !raw.ProbeDominated(false) {
		t.Errorf("raw 3µs median with 1.65µs overhead is not flagged")
	}
	if (FunctionStats{Hist: histOf(3000)}).ProbeDominated(true) {
		t.Errorf("a function without a measured overhead is flagged")
	}
	r.OverheadCorrected = false
	if out := renderTable(t, r); !strings.Contains(out, "measured on this host and included in the durations:") {
		t.Errorf("raw report does not say the overhead is included:\n%s", out)
	}
}
