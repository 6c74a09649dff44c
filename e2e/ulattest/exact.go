package ulattest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ulat-dev/ulat/report"
)

// The exact targets (e2e/testdata/exact, in C and Go) time every call of
// a function per distribution from the inside and print the exact
// percentiles of what they measured: the truth for accuracy checks that
// cannot pass by luck.

// ExactDists are the exact targets' distributions, in the order they
// print them.
var ExactDists = []string{"narrow", "bimodal", "loguniform", "short"}

// Exact is what an exact target measured of one function's calls, in ns.
type Exact struct {
	Count, P50, P90, P99, Min, Max int64
	// Sorted is every call's inner duration, ascending.
	Sorted []int64
}

// RunExact runs an exact target (`exact N [SCALE]`) to completion and
// returns what it measured of each distribution.
func RunExact(t *testing.T, bin string, args ...string) map[string]Exact {
	t.Helper()
	dump := filepath.Join(t.TempDir(), "inner")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EXACT_DUMP="+dump)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	m := map[string]Exact{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var name string
		var e Exact
		if _, err := fmt.Sscanf(line, "%s count=%d p50=%d p90=%d p99=%d min=%d max=%d",
			&name, &e.Count, &e.P50, &e.P90, &e.P99, &e.Min, &e.Max); err != nil {
			t.Fatalf("%s: output line %q: %v", bin, line, err)
		}
		m[name] = e
	}
	data, err := os.ReadFile(dump)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		e, ok := m[f[0]]
		if !ok {
			t.Fatalf("%s: EXACT_DUMP has %q, which the output has no line for", bin, f[0])
		}
		for _, s := range f[1:] {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("%s: EXACT_DUMP: %v", bin, err)
			}
			e.Sorted = append(e.Sorted, v)
		}
		m[f[0]] = e
	}
	for _, d := range ExactDists {
		e, ok := m[d]
		if !ok {
			t.Fatalf("%s: no %s line in its output:\n%s", bin, d, out)
		}
		if int64(len(e.Sorted)) != e.Count || !sort.SliceIsSorted(e.Sorted, func(i, j int) bool { return e.Sorted[i] < e.Sorted[j] }) {
			t.Fatalf("%s: %s: %d sorted durations dumped, count=%d", bin, d, len(e.Sorted), e.Count)
		}
	}
	return m
}

// rank is how many of the sorted durations are at most v: the nearest
// rank among the function's own durations of a value ulat reports.
func (e Exact) rank(v uint64) int {
	return sort.Search(len(e.Sorted), func(i int) bool { return e.Sorted[i] > int64(v) })
}

// rankSlack is how many calls either side of a percentile's rank ulat's
// value may stand for: 0.5% of the calls (at least one). The probes' own
// path is now and then delayed by the machine (5–400 µs, seen on ~1% of
// calls with bpftrace too, more beside other work), which moves that call up the ranking ulat
// sees but not the one the target sees; where a percentile falls in a
// sparse tail (narrow's p99), a couple of such calls move it by more than
// 1%. The band keeps the check about the histogram, not the machine.
func rankSlack(calls int64) int64 { return max(1, calls/200) }

// Band returns the exact durations rankSlack calls below and above the
// p-th percentile's rank.
func (e Exact) Band(p, calls int64) (lo, hi int64) {
	r := (p*calls + 99) / 100 // nearest rank, 1-based
	k := rankSlack(calls)
	i, j := max(1, r-k), min(int64(len(e.Sorted)), r+k)
	return e.Sorted[i-1], e.Sorted[j-1]
}

// ExactCheck says how to compare a report with an exact target's figures.
type ExactCheck struct {
	Calls int64                    // calls of each function
	Sym   func(dist string) string // the traced function of a distribution
	// Tolerance is how far each percentile of dist may be from the exact
	// one, as a fraction of it; f is ulat's row.
	Tolerance func(dist string, f report.JSONFunction) float64
	// Unchecked, if set, names percentiles shown but not checked.
	Unchecked func(dist string, pct int) bool
}

// CheckExact checks r's call counts exactly and its p50, p90 and p99
// against the exact ones within c.Tolerance (of the exact durations
// rankSlack calls either side of each), and returns a table of
// them (with min and max, which are shown, not checked) for the log.
// The rank column places ulat's value among the function's own
// durations: "990" for p99 of 1000 calls is the exact call, "993" a value
// three calls further up.
func CheckExact(t *testing.T, r *report.JSONReport, c ExactCheck, exact map[string]Exact) string {
	t.Helper()
	var tab strings.Builder
	fmt.Fprintf(&tab, "%-10s %-4s %12s %12s %9s %12s %s\n", "dist", "", "exact ns", "ulat ns", "dev", "tolerance", "rank (want)")
	for _, d := range ExactDists {
		f := WantCount(t, r, c.Sym(d), uint64(c.Calls))
		e := exact[d]
		if e.Count != c.Calls {
			t.Errorf("%s: the target made %d calls, want %d", d, e.Count, c.Calls)
		}
		if f.DidNotReturn != 0 {
			t.Errorf("%s: %d calls did not return", f.Function, f.DidNotReturn)
		}
		tol := c.Tolerance(d, f)
		for _, p := range []struct {
			name string
			pct  int64 // 0: min or max, shown, not checked
			got  uint64
			want int64
		}{
			{"min", 0, f.MinNs, e.Min},
			{"p50", 50, f.P50Ns, e.P50},
			{"p90", 90, f.P90Ns, e.P90},
			{"p99", 99, f.P99Ns, e.P99},
			{"max", 0, f.MaxNs, e.Max},
		} {
			dev := (float64(p.got) - float64(p.want)) / float64(p.want)
			tolS, rankS := "-", ""
			if p.pct > 0 && c.Unchecked != nil && c.Unchecked(d, int(p.pct)) {
				tolS = "not checked"
			} else if p.pct > 0 {
				tolS = fmt.Sprintf("%.2f%%", 100*tol)
				lo, hi := e.Band(p.pct, c.Calls)
				if float64(p.got) < float64(lo)*(1-tol) || float64(p.got) > float64(hi)*(1+tol) {
					tolS += " FAIL"
					t.Errorf("%s: %s %dns, the target's exact %s %dns (%d..%d ns %d calls either side): %+.2f%%, want within %.2f%% of those",
						f.Function, p.name, p.got, p.name, p.want, lo, hi, rankSlack(c.Calls), 100*dev, 100*tol)
				}
			}
			if p.pct > 0 {
				rankS = fmt.Sprintf("%d (%d)", e.rank(p.got), (p.pct*c.Calls+99)/100)
			}
			fmt.Fprintf(&tab, "%-10s %-4s %12d %12d %+8.2f%% %12s %s\n", d, p.name, p.want, p.got, 100*dev, tolS, rankS)
		}
	}
	return tab.String()
}
