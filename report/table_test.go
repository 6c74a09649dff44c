package report

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func histOf(vals ...uint64) *Histogram {
	h := NewHistogram()
	for _, v := range vals {
		h.Record(v)
	}
	return h
}

func repeat(v uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func renderTable(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestTableHistograms(t *testing.T) {
	work := histOf(append(repeat(1_500_000, 12), repeat(3_000_000, 96)...)...)
	small := histOf(0, 1, 1, 1, 1, 3, 5, 5)
	out := renderTable(t, &Report{Functions: []FunctionStats{
		{Function: "main.work", Hist: work},
		{Function: "main.idle", Hist: NewHistogram()},
		{Function: "main.small", Hist: small},
		{Function: "main.nilhist"},
	}})
	want := `main.work  (ns)
[1M, 2M)              12 |@@@@@                                   |
[2M, 4M)              96 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

main.idle: no calls

main.small  (ns)
[0]                    1 |@@@@@@@@@@                              |
[1]                    4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[2, 4)                 1 |@@@@@@@@@@                              |
[4, 8)                 2 |@@@@@@@@@@@@@@@@@@@@                    |

main.nilhist: no calls

`
	if !strings.HasPrefix(out, want) {
		t.Errorf("histogram section:\n%s\nwant prefix:\n%s", out, want)
	}
}

// A glob over many functions of which few are called: past three, the
// functions without calls share one line after the histograms, while the
// summary table and the JSON report still list every one.
func TestTableManyWithoutCalls(t *testing.T) {
	idle := func(n int) []FunctionStats {
		var fns []FunctionStats
		for i := 0; i < n; i++ {
			fns = append(fns, FunctionStats{Function: fmt.Sprintf("main.idle%03d", i), Hist: NewHistogram()})
		}
		return fns
	}
	work := FunctionStats{Function: "main.work", Hist: histOf(1_500_000, 3_000_000)}

	r := &Report{Functions: append(idle(2), append([]FunctionStats{work}, idle(148)[2:]...)...)}
	out := renderTable(t, r)
	want := `main.work  (ns)
[1M, 2M)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[2M, 4M)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

148 functions had no calls: main.idle000, main.idle001, main.idle002 and 145 more

+`
	if !strings.HasPrefix(out, want) {
		t.Errorf("histogram section:\n%s\nwant prefix:\n%s", out, want)
	}
	if n := strings.Count(out, "no calls"); n != 1 {
		t.Errorf("%d lines say \"no calls\", want 1:\n%s", n, out)
	}
	for _, f := range r.Functions {
		if f.Function == "main.work" {
			continue
		}
		if got := strings.Join(summaryRow(t, out, f.Function), ","); got != f.Function+",0,-,-,-,-,-,-" {
			t.Errorf("%s row = %s", f.Function, got)
		}
	}
	if got := len(r.toJSON().Functions); got != len(r.Functions) {
		t.Errorf("JSON lists %d functions, want all %d", got, len(r.Functions))
	}

	// Up to three, each has its line, where it was.
	out = renderTable(t, &Report{Functions: append(idle(3), work)})
	if !strings.HasPrefix(out, "main.idle000: no calls\n\nmain.idle001: no calls\n\nmain.idle002: no calls\n\nmain.work  (ns)\n") {
		t.Errorf("three functions without calls:\n%s", out)
	}
	out = renderTable(t, &Report{Functions: idle(4)})
	if !strings.HasPrefix(out, "4 functions had no calls: main.idle000, main.idle001, main.idle002 and 1 more\n\n+") {
		t.Errorf("four functions, none called:\n%s", out)
	}
}

func TestTableLargeLabels(t *testing.T) {
	out := renderTable(t, &Report{Functions: []FunctionStats{{Function: "f", Hist: histOf(1<<30, 1<<40)}}})
	for _, line := range []string{
		"[1G, 2G)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
		"[512G, 1T)             0 |                                        |",
		"[1T, 2T)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing line %q in:\n%s", line, out)
		}
	}
}

func TestBucketLabel(t *testing.T) {
	for _, tc := range []struct {
		lo   uint64
		want string
	}{
		{0, "[0]"}, {1, "[1]"}, {2, "[2, 4)"}, {512, "[512, 1K)"}, {1024, "[1K, 2K)"},
		{2 << 20, "[2M, 4M)"}, {1 << 30, "[1G, 2G)"}, {1 << 63, "[8E, 16E)"},
	} {
		if got := bucketLabel(log2Bucket{LoNs: tc.lo}); got != tc.want {
			t.Errorf("bucketLabel(%d) = %q, want %q", tc.lo, got, tc.want)
		}
	}
}

// summaryRow returns the cells of the summary table row for fn.
func summaryRow(t *testing.T, out, fn string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) >= 8 && strings.TrimSpace(cells[0]) == fn {
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			return cells
		}
	}
	t.Fatalf("no summary row for %s in:\n%s", fn, out)
	return nil
}

func TestTableSummary(t *testing.T) {
	out := renderTable(t, &Report{Functions: []FunctionStats{
		{Function: "main.work", Hist: histOf(100, 250, 300)},
		{Function: "main.idle", Hist: NewHistogram()},
	}})
	header := summaryRow(t, out, "FUNCTION")
	if got := strings.Join(header, ","); got != "FUNCTION,COUNT,MEAN,MIN,P50,P90,P99,MAX" {
		t.Errorf("header = %s", got)
	}
	if got := strings.Join(summaryRow(t, out, "main.work"), ","); got != "main.work,3,216ns,100ns,250ns,300ns,300ns,300ns" {
		t.Errorf("main.work row = %s", got)
	}
	if got := strings.Join(summaryRow(t, out, "main.idle"), ","); got != "main.idle,0,-,-,-,-,-,-" {
		t.Errorf("main.idle row = %s", got)
	}
}

func TestTableLostAndWarnings(t *testing.T) {
	r := &Report{Functions: []FunctionStats{{Function: "main.work", Hist: histOf(10)}}}
	if out := renderTable(t, r); strings.Contains(out, "lost:") || strings.Contains(out, "warning:") {
		t.Errorf("nothing lost and no warnings, yet:\n%s", out)
	}

	r.Lost = Lost{DroppedEvents: 3, UnpairedExits: 1}
	r.Warnings = []string{"main.inl: inlined into all callers, cannot be timed", "second"}
	out := renderTable(t, r)
	want := "lost: 3 events dropped (ring buffer full), 1 exits without entry\n" +
		"warning: main.inl: inlined into all callers, cannot be timed\n" +
		"warning: second\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("output should end with\n%s\ngot:\n%s", want, out)
	}

	r.Lost = Lost{UnpairedExits: 2}
	if out := renderTable(t, r); !strings.Contains(out, "lost: 0 events dropped (ring buffer full), 2 exits without entry\n") {
		t.Errorf("unpaired exits alone must be reported:\n%s", out)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestTableWriteError(t *testing.T) {
	err := WriteTable(failWriter{}, &Report{Functions: []FunctionStats{{Function: "f", Hist: histOf(1)}}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteTable error = %v, want the writer's error", err)
	}
}

// Corrected figures say how uncertain they are: a ± column, "~" on the
// figures of a function whose uncertainty is over a tenth of its median,
// a bound ("≤") where calls were measured below the probe cost, and a line
// naming the functions whose traced callees' probes were taken out.
func TestTableUncertainty(t *testing.T) {
	below := histOf(0, 0, 0, 900)
	out := renderTable(t, &Report{OverheadCorrected: true, Functions: []FunctionStats{
		{Function: "slow", Hist: histOf(100_000, 200_000, 300_000), ProbeOverheadNs: 1800, ProbeKind: "uretprobe/emulated", UncertaintyNs: 200, NestedOverheadNs: 7000},
		{Function: "tiny", Hist: below, ProbeOverheadNs: 1800, ProbeKind: "uretprobe/emulated", UncertaintyNs: 200},
	}})
	if got := strings.Join(summaryRow(t, out, "FUNCTION"), ","); got != "FUNCTION,COUNT,MEAN,MIN,P50,P90,P99,MAX,±" {
		t.Errorf("header = %s", got)
	}
	if got := strings.Join(summaryRow(t, out, "slow"), ","); got != "slow,3,200µs,100µs,200µs,300µs,300µs,300µs,200ns" {
		t.Errorf("slow row = %s", got)
	}
	if got := strings.Join(summaryRow(t, out, "tiny"), ","); got != "tiny,4,~225ns,≤200ns,≤200ns,~900ns,~900ns,~900ns,200ns" {
		t.Errorf("tiny row = %s", got)
	}
	for _, want := range []string{
		"~: rough figures: the probe costs taken out are known to ± (the spread of their calibration), over a tenth of the median: tiny\n",
		"≤: calls measured at or below the probe costs taken out, each at most ± long: tiny (3 of 4 calls)\n",
		"probes of the traced calls made inside these were taken out of them too: slow (7.00µs a call)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
