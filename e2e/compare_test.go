package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulat-dev/ulat/compare"
	"github.com/ulat-dev/ulat/report"
)

// The compare and merge tests need no privileges: their inputs are JSON
// reports written here with the report package, as `ulat run` writes them.

// handlerDurations draws n durations like a request handler's: a lognormal
// body around median ns and 5% of calls about 20 times slower, scaled by
// slow.
func handlerDurations(rng *rand.Rand, n int, median, slow float64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		v := median * math.Exp(0.3*rng.NormFloat64())
		if rng.Float64() < 0.05 {
			v *= 20 * math.Exp(0.5*rng.NormFloat64())
		}
		out[i] = uint64(v * slow)
	}
	return out
}

type fnDurations struct {
	name string
	ns   []uint64
}

// writeJSONReport writes a report of one run of /build/app as `ulat run
// --format json` would, and returns its path.
func writeJSONReport(t *testing.T, dir, name string, fns ...fnDurations) string {
	t.Helper()
	r := &report.Report{OverheadCorrected: true, Facts: report.Facts{UlatVersion: "v0-test", Kernel: "6.1.0-test",
		Command: []string{"./app", "-n", "1000"}, Binaries: []report.Binary{{Path: "/build/app", BuildID: "0123456789abcdef"}}}}
	for _, f := range fns {
		h := report.NewHistogram()
		for _, v := range f.ns {
			h.Record(v)
		}
		r.Functions = append(r.Functions, report.FunctionStats{Function: f.name, Binary: "/build/app", Hist: h})
	}
	path := filepath.Join(dir, name)
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ulatOutput runs bin/ulat and returns its exit status, stdout and stderr.
func ulatOutput(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	c := exec.Command(ulatBin, args...)
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("run ulat %v: %v", args, err)
	}
	return 0, stdout.String(), stderr.String()
}

// compareFiles is a baseline, a current run of the same code and one where
// main.parse is 40% slower; main.idle is called too rarely to be judged.
type compareFiles struct {
	dir                     string
	base, base2, same, slow string
}

func newCompareFiles(t *testing.T) compareFiles {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	run := func(name string, slow float64) string {
		return writeJSONReport(t, dir, name,
			fnDurations{"main.parse", handlerDurations(rng, 20000, 50_000, slow)},
			fnDurations{"main.(*Server).handle", handlerDurations(rng, 5000, 400_000, 1)},
			fnDurations{"main.idle", handlerDurations(rng, 20, 1_000, 1)})
	}
	return compareFiles{dir: dir, base: run("base.json", 1), base2: run("base2.json", 1), same: run("same.json", 1), slow: run("slow.json", 1.4)}
}

func TestCompareVerdicts(t *testing.T) {
	f := newCompareFiles(t)

	code, stdout, stderr := ulatOutput(t, "compare", f.base, f.same)
	if code != 0 || stderr != "" {
		t.Errorf("same code: exit %d, stderr %q, want 0 and nothing", code, stderr)
	}
	for _, want := range []string{"| main.parse ", "| unchanged ", "not enough data: 20 calls in baseline, 20 calls in current, 100 needed", "\nverdict: unchanged (3 functions: 2 unchanged, 1 not enough data)\n",
		"baseline: 1 run (ulat v0-test, kernel 6.1.0-test)", "note: app: the same build on both sides (build ID 0123456789ab)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("same code: stdout does not say %q:\n%s", want, stdout)
		}
	}

	// 40% slower: exit 1, the report on stdout, nothing on stderr.
	code, stdout, stderr = ulatOutput(t, "compare", f.base, f.slow)
	if code != 1 || stderr != "" {
		t.Errorf("40%% slower: exit %d, stderr %q, want 1 and nothing", code, stderr)
	}
	if !strings.Contains(stdout, "| regressed: p50 +4") || !strings.Contains(stdout, "\nverdict: regressed (3 functions: 1 regressed, 1 unchanged, 1 not enough data)\n") {
		t.Errorf("40%% slower: stdout:\n%s", stdout)
	}

	// A looser per-function threshold lets it pass.
	code, stdout, _ = ulatOutput(t, "compare", "--threshold", "main.parse:p50=+60%", "--threshold", "main.parse:p99=+60%", f.base, f.slow)
	if code != 0 || !strings.Contains(stdout, "thresholds: p50 +10%, main.parse:p50 +60%, main.parse:p99 +60%;") {
		t.Errorf("main.parse allowed +60%%: exit %d\n%s", code, stdout)
	}

	// Several baseline files on one side of --, markdown to a file.
	out := filepath.Join(f.dir, "comment.md")
	code, stdout, stderr = ulatOutput(t, "compare", "--format", "markdown", "--output", out, f.base, f.base2, "--", f.slow)
	md, _ := os.ReadFile(out)
	if code != 1 || stdout != "" || stderr != "" || !strings.HasPrefix(string(md), "### ❌ ulat compare: 1 of 3 functions regressed\n") ||
		!strings.Contains(string(md), "Baseline: 2 runs merged (ulat v0-test, kernel 6.1.0-test); current: 1 run") {
		t.Errorf("markdown to a file: exit %d, stdout %q, stderr %q, file:\n%s", code, stdout, stderr, md)
	}

	// JSON for tools.
	code, stdout, _ = ulatOutput(t, "compare", "-f", "json", "--confidence", "0.95", "--min-count", "10", f.base, f.slow)
	var doc compare.JSONResult
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, stdout)
	}
	if code != 1 || doc.Schema != 1 || doc.Verdict != compare.Regressed || doc.Confidence != 0.95 || doc.MinCount != 10 ||
		doc.Summary[compare.Regressed] != 1 || doc.Functions[0].Function != "main.parse" || doc.Functions[0].Metrics[0].CILow == nil {
		t.Errorf("json: exit %d, %+v", code, doc)
	}
}

// ulat merge writes what compare merges: comparing the merged file gives
// the same result as giving compare both files.
func TestMergeMatchesCompare(t *testing.T) {
	f := newCompareFiles(t)
	merged := filepath.Join(f.dir, "merged.json")
	if code, stdout, stderr := ulatOutput(t, "merge", "-o", merged, f.base, f.base2); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("merge: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, both, _ := ulatOutput(t, "compare", "-f", "json", f.base, f.base2, "--", f.slow)
	_, viaMerge, _ := ulatOutput(t, "compare", "-f", "json", merged, f.slow)
	if both != viaMerge || both == "" {
		t.Errorf("compare of the merged file differs from compare of both files:\n%s\n%s", both, viaMerge)
	}

	data, err := os.ReadFile(merged)
	if err != nil {
		t.Fatal(err)
	}
	m, err := report.ReadJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Runs != 2 || len(m.Functions) != 3 || m.Functions[0].Count != 40000 || m.Kernel != "6.1.0-test" {
		t.Errorf("merged: runs %d, %d functions, main.parse count %d, kernel %q", m.Runs, len(m.Functions), m.Functions[0].Count, m.Kernel)
	}
	// To stdout by default, and a merge merges again.
	code, stdout, _ := ulatOutput(t, "merge", merged, f.same)
	if again, err := report.ReadJSON(strings.NewReader(stdout)); code != 0 || err != nil || again.Runs != 3 {
		t.Errorf("merge of a merge: exit %d, %v", code, err)
	}
}

// Bad input: exit status 2 and one line that names the problem and the file.
func TestCompareBadInput(t *testing.T) {
	f := newCompareFiles(t)
	dir := f.dir
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base, err := os.ReadFile(f.base)
	if err != nil {
		t.Fatal(err)
	}
	schema3 := write("schema3.json", strings.Replace(string(base), `"schema": 2`, `"schema": 3`, 1))
	text := write("notes.txt", "hello\n")
	empty := write("empty.json", "")
	other := writeJSONReport(t, dir, "other.json", fnDurations{"main.unrelated", []uint64{1000, 2000}})
	// Written by a ulat from before reports carried histograms.
	var doc map[string]any
	json.Unmarshal(base, &doc)
	for _, fn := range doc["functions"].([]any) {
		for _, k := range []string{"native_buckets", "zero_count", "overflow_count", "sum_ns"} {
			delete(fn.(map[string]any), k)
		}
	}
	old, _ := json.Marshal(doc)
	oldPath := write("old.json", string(old))
	inconsistent := write("inconsistent.json", strings.Replace(string(base), `"count": 20000`, `"count": 20001`, 1))
	raw := write("raw.json", strings.Replace(string(base), `"overhead_corrected": true`, `"overhead_corrected": false`, 1))
	missing := filepath.Join(dir, "missing.json")

	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"missing file", []string{"compare", missing, f.base}, "open " + missing + ": no such file or directory"},
		{"missing current", []string{"compare", f.base, missing}, "open " + missing + ": no such file or directory"},
		{"schema mismatch", []string{"compare", f.base, schema3}, schema3 + ": read report json: schema 3, want 1 or 2: unsupported report schema"},
		{"not JSON", []string{"compare", text, f.base}, text + ": not a ulat JSON report"},
		{"empty file", []string{"compare", f.base, empty}, empty + ": not a ulat JSON report"},
		{"directory", []string{"compare", dir, f.base}, dir + " is a directory, not a JSON report"},
		{"no common functions", []string{"compare", f.base, other}, "no function is in both reports (they pair by file name and function name): baseline has 3 functions, app:main.parse, app:main.(*Server).handle, app:main.idle, current 1 function, app:main.unrelated"},
		{"no histograms", []string{"compare", f.base, oldPath}, oldPath + ": main.parse: no histogram data (recorded by an older ulat; record it again)"},
		{"inconsistent", []string{"compare", inconsistent, f.base}, inconsistent + ": main.parse: count 20001, but 20000 in histogram buckets and 20000 in power-of-two buckets: inconsistent histogram"},
		{"raw and corrected", []string{"compare", f.base, raw}, "one side has the probes' own cost subtracted and the other not (the current was recorded raw)"},
		{"raw merged with corrected", []string{"compare", f.base, raw, "--", f.same}, f.base + " and " + raw + " cannot be merged"},
		{"bad threshold", []string{"compare", "--threshold", "p99=10", f.base, f.same}, `--threshold: threshold "p99=10": limit "10" must be a percentage, such as +10%`},
		{"bad metric", []string{"compare", "-t", "main.parse:p100=+5%", f.base, f.same}, `unknown metric "p100"`},
		{"bad format", []string{"compare", "-f", "xml", f.base, f.same}, `--format "xml": must be table, markdown or json`},
		{"bad confidence", []string{"compare", "--confidence", "99", f.base, f.same}, "--confidence 99: must be between 0 and 1"},
		{"bad min count", []string{"compare", "--min-count", "0", f.base, f.same}, "--min-count 0: must be at least 1"},
		{"one file", []string{"compare", f.base}, "compare needs two files, or files on each side of --, and got 1"},
		{"three files", []string{"compare", f.base, f.same, f.slow}, "compare needs two files, or files on each side of --, and got 3"},
		{"nothing after --", []string{"compare", f.base, "--"}, "compare needs at least one file on each side of --"},
		{"two --", []string{"compare", f.base, "--", f.same, "--", f.slow}, "compare takes one --"},
		{"flag after files", []string{"compare", f.base, f.same, "--format", "json"}, "flag --format must come before the files"},
		{"merge nothing", []string{"merge"}, "merge needs at least one FILE"},
		{"merge missing", []string{"merge", f.base, missing}, "open " + missing + ": no such file or directory"},
		{"merge schema", []string{"merge", schema3}, "schema 3, want 1 or 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{c.args[0], "--output", out}, c.args[1:]...)
			code, stdout, stderr := ulatOutput(t, args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.HasPrefix(stderr, "ulat: ") || !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q does not say %q", stderr, c.msg)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("--output was created despite the error")
			}
			noPanic(t, stderr)
		})
	}
}
