package compare

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// sampleResult: one function regressed, one improved, one unchanged, one
// with too few calls, one on each side only.
func sampleResult(t *testing.T) *Result {
	t.Helper()
	rng := rand.New(rand.NewPCG(40, 41))
	a, b, c := realistic(rng, 20000, 100_000), realistic(rng, 20000, 100_000), realistic(rng, 20000, 100_000)
	base := reportOf(fn{"main.parse", a}, fn{"main.(*Server).handle", b}, fn{"main.third", c}, fn{"main.gone", c}, fn{"main.rare", a[:50]})
	cur := reportOf(fn{"main.parse", scaled(a, 1.4)}, fn{"main.(*Server).handle", scaled(b, 0.7)}, fn{"main.third", scaled(c, 1.02)},
		fn{"main.rare", a[:60]}, fn{"operator|", a})
	cur.Facts.Kernel = "6.18.0"
	// Two metrics, to show how several are written.
	return mustCompare(t, base, cur, Options{Thresholds: []Threshold{{Metric: "p50", Limit: 0.10}, {Metric: "p99", Limit: 0.20}}})
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleResult(t)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[1], "FUNCTION") || !strings.Contains(lines[1], "COUNT") || !strings.Contains(lines[1], "VERDICT") {
		t.Errorf("header %q", lines[1])
	}
	// Rows in verdict order, each with old → new and the change.
	for i, want := range []string{
		"| main.parse            | 20000 → 20000 |",
		"| main.(*Server).handle | 20000 → 20000 |",
		"| main.third            | 20000 → 20000 |",
		"| main.rare             |       50 → 60 |",
		"| main.gone             |     20000 → - |",
		"| operator|             |     - → 20000 |",
	} {
		if !strings.HasPrefix(lines[3+i], want) {
			t.Errorf("row %d: %q, want prefix %q", i, lines[3+i], want)
		}
	}
	for _, want := range []string{
		"(+40%) |", "regressed: p50 +40% (99% CI +", "limit +10%); p99 +",
		"improved: p50 -30% (99% CI -", "| unchanged ", "not enough data: 50 calls in baseline, 60 calls in current, 100 needed",
		"| only in baseline ", "| only in current ",
		"\nverdict: regressed (6 functions: 1 regressed, 1 improved, 1 unchanged, 1 not enough data, 1 only in baseline, 1 only in current)\n",
		"\nthresholds: p50 +10%, p99 +20%; a change counts when all of its 99% bootstrap interval, widened by the buckets' width and the probes' cost uncertainty, lies beyond its threshold; functions with fewer than 100 calls on a side are not judged\n",
		"\nbaseline: 1 run (ulat v1, kernel 6.1.0); current: 1 run (ulat v1, kernel 6.18.0)\n",
		"\nwarning: kernels differ (baseline 6.1.0, current 6.18.0)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table does not contain %q:\n%s", want, out)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, sampleResult(t)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"### ❌ ulat compare: 1 of 6 functions regressed\n\n> [!WARNING]\n> kernels differ",
		"\n| Function | Calls | p50 | p90 | p99 | Verdict |\n|:--|--:|--:|--:|--:|:--|\n| `main.parse` | 20000 → 20000 | ",
		"| **regressed**: p50 +40% (99% CI +",
		"\n| `main.(*Server).handle` | 20000 → 20000 | ",
		"\n<details><summary>4 more functions: 1 unchanged, 1 not enough data, 1 only in baseline, 1 only in current</summary>\n\n| Function |",
		"\n| `operator\\|` | - → 20000 | ",
		"\n</details>\n\nThresholds: p50 +10%, p99 +20%; ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown does not contain %q:\n%s", want, out)
		}
	}
	// Every table row has as many cells as the header: no stray '|'.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| ") {
			if n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); n != 7 {
				t.Errorf("row with %d separators: %s", n, line)
			}
		}
	}

	// Nothing regressed: a green headline, everything folded.
	rng := rand.New(rand.NewPCG(42, 43))
	a := realistic(rng, 1000, 100_000)
	res := mustCompare(t, reportOf(fn{"f", a}), reportOf(fn{"f", a}), Options{})
	buf.Reset()
	WriteMarkdown(&buf, res)
	if !strings.HasPrefix(buf.String(), "### ✅ ulat compare: no regression in 1 function\n\n<details><summary>1 function: 1 unchanged</summary>") {
		t.Errorf("unchanged markdown:\n%s", buf.String())
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleResult(t)); err != nil {
		t.Fatal(err)
	}
	var doc JSONResult
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != 1 || doc.Verdict != Regressed || doc.Summary[Regressed] != 1 || doc.Summary[OnlyInCurrent] != 1 ||
		doc.Confidence != 0.99 || doc.MinCount != 100 || len(doc.Thresholds) != 2 || doc.Thresholds[1] != (JSONThreshold{Metric: "p99", Limit: 0.2}) {
		t.Errorf("document: %+v", doc)
	}
	if doc.Baseline.Kernel != "6.1.0" || doc.Current.Kernel != "6.18.0" || doc.Baseline.Binaries[0].BuildID != "aaaa" || len(doc.Warnings) == 0 {
		t.Errorf("runs: %+v / %+v, warnings %q", doc.Baseline, doc.Current, doc.Warnings)
	}
	f := doc.Functions[0]
	if f.Function != "main.parse" || f.Key != "app:main.parse" || f.Verdict != Regressed || f.Baseline.Count != 20000 || len(f.Metrics) != 2 {
		t.Fatalf("first function: %+v", f)
	}
	m := f.Metrics[0]
	if m.Metric != "p50" || m.Change == nil || *m.Change < 0.35 || m.CILow == nil || *m.CILow <= 0 || *m.CIHigh < *m.Change || m.Verdict != Regressed || m.BaselineNs != f.Baseline.P50Ns {
		t.Errorf("p50 metric: %+v", m)
	}
	for _, f := range doc.Functions {
		switch f.Verdict {
		case NotEnoughData:
			if f.Metrics[0].CILow != nil || f.Metrics[0].Change == nil {
				t.Errorf("not judged, yet an interval: %+v", f.Metrics[0])
			}
		case OnlyInBaseline:
			if f.Current != nil || f.Baseline == nil {
				t.Errorf("only in baseline: %+v", f)
			}
		}
	}
	for _, want := range []string{`"probe_uncertainty_ns": 0,`, `"resolution_limited": false,`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("no %s in:\n%s", want, buf.String())
		}
	}
	// Null, not absent, for a missing side.
	if !strings.Contains(buf.String(), `"current": null`) {
		t.Errorf("no null side in:\n%s", buf.String())
	}
}

func TestFormatChange(t *testing.T) {
	for x, want := range map[float64]string{0.35: "+35%", -0.032: "-3.2%", 0.05: "+5%", 0: "0%", 0.0004: "0%", -0.0004: "0%", 0.0996: "+10%", 1.5: "+150%", -0.5: "-50%"} {
		if got := formatChange(x); got != want {
			t.Errorf("formatChange(%v) = %q, want %q", x, got, want)
		}
	}
}

func TestFormatInterval(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{{0.28, 0.41, "+28%..+41%"}, {-0.143, -0.136, "-14.3%..-13.6%"}, {0.3401, 0.3402, "+34.0%..+34.0%"}, {-0.05, 0.02, "-5%..+2%"}} {
		if got := formatInterval(c.lo, c.hi); got != c.want {
			t.Errorf("formatInterval(%v, %v) = %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
}
