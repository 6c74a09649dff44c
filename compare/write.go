package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter/tw"

	"github.com/ulat-dev/ulat/report"
)

// formatChange renders a relative change as a signed percentage: "+35%",
// "-3.2%", "+5%", "0%" (one decimal below 10%), "n/a" for NaN.
func formatChange(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	s := formatPercent(math.Abs(x))
	switch {
	case s == "0%":
		return s
	case x < 0:
		return "-" + s
	}
	return "+" + s
}

func formatPercent(x float64) string {
	pct := x * 100
	if math.Abs(pct) >= 9.95 {
		return strconv.FormatFloat(pct, 'f', 0, 64) + "%"
	}
	s := strings.TrimSuffix(strconv.FormatFloat(pct, 'f', 1, 64), ".0")
	return s + "%"
}

// formatInterval renders "+28%..+41%", with a decimal more when the
// bounds would otherwise read the same ("-14.3%..-13.6%"; "+38.1%..+38.1%"
// when all of both sides' resampled percentiles fall in one bin each).
func formatInterval(lo, hi float64) string {
	l, h := formatChange(lo), formatChange(hi)
	if l == h && !math.IsNaN(lo) {
		l, h = strconv.FormatFloat(lo*100, 'f', 1, 64), strconv.FormatFloat(hi*100, 'f', 1, 64)
		if lo >= 0 {
			l = "+" + l
		}
		if hi >= 0 {
			h = "+" + h
		}
		return l + "%.." + h + "%"
	}
	return l + ".." + h
}

// intervalText renders m's interval as a reason shows it: "99% CI
// +28%..+41%", or "resolution-limited +9.1%..+11%" when every resample put
// each side's percentile in one bucket (a note under the table says what
// that means), followed by ", probe cost ±1.80µs included" when the
// probes' cost uncertainty widened it.
func (m *Metric) intervalText(confidence float64) string {
	s := formatConfidence(confidence) + " CI " + formatInterval(m.Low, m.High)
	if m.ResolutionLimited {
		s = "resolution-limited " + formatInterval(m.Low, m.High)
	}
	if m.UncertaintyNs > 0 {
		s += ", probe cost ±" + report.FormatDuration(m.UncertaintyNs) + " included"
	}
	return s
}

// formatConfidence renders 0.99 as "99%" and 0.995 as "99.5%".
func formatConfidence(c float64) string {
	return strconv.FormatFloat(c*100, 'f', -1, 64) + "%"
}

func (r *Result) usesMean() bool {
	for _, t := range r.Thresholds {
		if t.Metric == "mean" {
			return true
		}
	}
	return false
}

// pair renders "old → new (+x%)" for a duration, or a count without the
// change; a missing side is "-".
func pair(b, c *Stats, get func(*Stats) uint64, durations bool) string {
	str := func(s *Stats) string {
		if s == nil {
			return "-"
		}
		if durations {
			if s.Count == 0 {
				return "-"
			}
			return report.FormatDuration(get(s))
		}
		return strconv.FormatUint(get(s), 10)
	}
	out := str(b) + " → " + str(c)
	if durations && b != nil && c != nil && b.Count > 0 && c.Count > 0 && get(b) > 0 {
		out += " (" + formatChange(float64(get(c))/float64(get(b))-1) + ")"
	}
	return out
}

func getCount(s *Stats) uint64 { return s.Count }
func getMean(s *Stats) uint64  { return s.MeanNs }
func getP50(s *Stats) uint64   { return s.P50Ns }
func getP90(s *Stats) uint64   { return s.P90Ns }
func getP99(s *Stats) uint64   { return s.P99Ns }

func (f *Function) verdictText() string {
	if f.Reason == "" {
		return string(f.Verdict)
	}
	return string(f.Verdict) + ": " + f.Reason
}

// row is one function's cells, shared by the table and markdown.
func (r *Result) row(f *Function) []string {
	cells := []string{f.Function, pair(f.Base, f.Current, getCount, false)}
	if r.usesMean() {
		cells = append(cells, pair(f.Base, f.Current, getMean, true))
	}
	return append(cells,
		pair(f.Base, f.Current, getP50, true),
		pair(f.Base, f.Current, getP90, true),
		pair(f.Base, f.Current, getP99, true),
		f.verdictText())
}

func (r *Result) header() []string {
	h := []string{"FUNCTION", "COUNT"}
	if r.usesMean() {
		h = append(h, "MEAN")
	}
	return append(h, "P50", "P90", "P99", "VERDICT")
}

// summary is one line: the overall verdict and how many functions got each.
func (r *Result) summary() string {
	var parts []string
	for _, v := range verdictOrder {
		if n := r.count(v); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, v))
		}
	}
	noun := "functions"
	if len(r.Functions) == 1 {
		noun = "function"
	}
	return fmt.Sprintf("verdict: %s (%d %s: %s)", r.Verdict, len(r.Functions), noun, strings.Join(parts, ", "))
}

// method is how the verdict was reached, in one line.
func (r *Result) method() string {
	var ts []string
	for _, t := range r.Thresholds {
		s := t.Metric + " " + formatChange(t.Limit)
		if t.Function != "" {
			s = t.Function + ":" + s
		}
		ts = append(ts, s)
	}
	return fmt.Sprintf("thresholds: %s; a change counts when all of its %s bootstrap interval, widened by the buckets' width and the probes' cost uncertainty, lies beyond its threshold; functions with fewer than %d calls on a side are not judged",
		strings.Join(ts, ", "), formatConfidence(r.Confidence), r.MinCount)
}

func describeRun(name string, run Facts) string {
	runs := "1 run"
	if run.Runs != 1 {
		runs = fmt.Sprintf("%d runs merged", run.Runs)
	}
	var facts []string
	if run.UlatVersion != "" {
		facts = append(facts, "ulat "+run.UlatVersion)
	}
	if run.Kernel != "" {
		facts = append(facts, "kernel "+run.Kernel)
	}
	if len(facts) == 0 {
		return name + ": " + runs
	}
	return name + ": " + runs + " (" + strings.Join(facts, ", ") + ")"
}

// WriteTable writes r for a terminal: a table of every function, old →
// new, the verdict with its reason, then the summary, how the verdict was
// made, what was compared, and notes and warnings.
func WriteTable(w io.Writer, r *Result) error {
	var buf bytes.Buffer
	align := []tw.Align{tw.AlignLeft, tw.AlignRight}
	if r.usesMean() {
		align = append(align, tw.AlignRight)
	}
	align = append(align, tw.AlignRight, tw.AlignRight, tw.AlignRight, tw.AlignLeft)
	table := report.NewTable(&buf, align...)
	table.Header(toAny(r.header())...)
	for i := range r.Functions {
		if err := table.Append(r.row(&r.Functions[i])); err != nil {
			return fmt.Errorf("compare table: %w", err)
		}
	}
	if err := table.Render(); err != nil {
		return fmt.Errorf("compare table: %w", err)
	}
	fmt.Fprintln(&buf, r.summary())
	fmt.Fprintln(&buf, r.method())
	fmt.Fprintf(&buf, "%s; %s\n", describeRun("baseline", r.Baseline), describeRun("current", r.Current))
	for _, n := range r.Notes {
		fmt.Fprintf(&buf, "note: %s\n", n)
	}
	for _, n := range r.Warnings {
		fmt.Fprintf(&buf, "warning: %s\n", n)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// WriteMarkdown writes r as GitHub-flavoured markdown for a pull-request
// comment or a job summary: a headline verdict, a table of the functions
// that changed, the others folded away, then how the verdict was made and
// what was compared.
func WriteMarkdown(w io.Writer, r *Result) error {
	var buf bytes.Buffer
	n := len(r.Functions)
	fns := "functions"
	if n == 1 {
		fns = "function"
	}
	switch r.Verdict {
	case Regressed:
		fmt.Fprintf(&buf, "### ❌ ulat compare: %d of %d %s regressed\n\n", r.count(Regressed), n, fns)
	case Improved:
		fmt.Fprintf(&buf, "### ✅ ulat compare: no regression, %d of %d %s improved\n\n", r.count(Improved), n, fns)
	case Unchanged:
		fmt.Fprintf(&buf, "### ✅ ulat compare: no regression in %d %s\n\n", n, fns)
	default:
		fmt.Fprintf(&buf, "### ⚠️ ulat compare: not enough data to judge any of %d %s\n\n", n, fns)
	}
	if len(r.Warnings) > 0 {
		buf.WriteString("> [!WARNING]\n")
		for i, m := range r.Warnings {
			if i > 0 {
				buf.WriteString(">\n")
			}
			fmt.Fprintf(&buf, "> %s\n", mdText(m))
		}
		buf.WriteString("\n")
	}
	var changed, rest []*Function
	for i := range r.Functions {
		f := &r.Functions[i]
		if f.Verdict == Regressed || f.Verdict == Improved {
			changed = append(changed, f)
		} else {
			rest = append(rest, f)
		}
	}
	if len(changed) > 0 {
		r.markdownTable(&buf, changed)
		buf.WriteString("\n")
	}
	if len(rest) > 0 {
		var parts []string
		for _, v := range verdictOrder[2:] {
			if c := r.count(v); c > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", c, v))
			}
		}
		more := ""
		if len(changed) > 0 {
			more = " more"
		}
		noun := "functions"
		if len(rest) == 1 {
			noun = "function"
		}
		fmt.Fprintf(&buf, "<details><summary>%d%s %s: %s</summary>\n\n", len(rest), more, noun, strings.Join(parts, ", "))
		r.markdownTable(&buf, rest)
		buf.WriteString("\n</details>\n\n")
	}
	fmt.Fprintf(&buf, "%s.\n\n", mdText(capitalize(r.method())))
	fmt.Fprintf(&buf, "%s; %s.\n", mdText(capitalize(describeRun("baseline", r.Baseline))), mdText(describeRun("current", r.Current)))
	if len(r.Notes) > 0 {
		buf.WriteString("\n")
		for _, m := range r.Notes {
			fmt.Fprintf(&buf, "- %s\n", mdText(m))
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func (r *Result) markdownTable(buf *bytes.Buffer, fns []*Function) {
	h := r.header()
	for i, s := range h {
		h[i] = strings.ToLower(s)
		if _, ok := percentileOf(h[i]); !ok {
			h[i] = capitalize(h[i])
		}
	}
	h[1] = "Calls"
	buf.WriteString("| " + strings.Join(h, " | ") + " |\n|")
	for i := range h {
		switch {
		case i == 0 || i == len(h)-1:
			buf.WriteString(":--|")
		default:
			buf.WriteString("--:|")
		}
	}
	buf.WriteString("\n")
	for _, f := range fns {
		cells := r.row(f)
		cells[0] = mdCode(cells[0])
		for i := 1; i < len(cells); i++ {
			cells[i] = mdText(cells[i])
		}
		if f.Reason != "" {
			cells[len(cells)-1] = "**" + string(f.Verdict) + "**: " + mdText(f.Reason)
		} else {
			cells[len(cells)-1] = "**" + string(f.Verdict) + "**"
		}
		buf.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// mdText escapes what would break a table cell or start markup.
func mdText(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "\n", " ").Replace(s)
}

// mdCode puts a function name in a code span; inside one only '|' needs
// escaping in a table, and a name holding backticks gets a longer fence.
func mdCode(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// jsonSchemaVersion is the "schema" of the document WriteJSON writes.
// Fields may be added within a version; none are renamed or removed.
const jsonSchemaVersion = 1

// JSONResult is the document WriteJSON writes. Durations are nanoseconds;
// changes and limits are fractions (0.35 is +35%).
type JSONResult struct {
	Schema int `json:"schema"`
	// Verdict is "regressed" when any function regressed (ulat compare
	// exits 1), else "improved", "unchanged" or "not enough data".
	Verdict Verdict `json:"verdict"`
	// Summary counts the functions by verdict (absent verdicts are 0).
	Summary    map[Verdict]int `json:"summary"`
	Confidence float64         `json:"confidence"`
	MinCount   uint64          `json:"min_count"`
	// Thresholds in effect: those without "function" apply to all.
	Thresholds []JSONThreshold `json:"thresholds"`
	Baseline   JSONRun         `json:"baseline"`
	Current    JSONRun         `json:"current"`
	Notes      []string        `json:"notes"`
	Warnings   []string        `json:"warnings"`
	// Functions in the order of the table: regressed first.
	Functions []JSONFunction `json:"functions"`
}

// JSONThreshold is one threshold.
type JSONThreshold struct {
	Function string  `json:"function,omitempty"`
	Metric   string  `json:"metric"`
	Limit    float64 `json:"limit"`
}

// JSONRun is what one side's reports say about how they were recorded.
type JSONRun struct {
	Runs              int                 `json:"runs"`
	UlatVersion       string              `json:"ulat_version"` // "" when merged runs differ
	Kernel            string              `json:"kernel"`       // "" when merged runs differ
	Command           []string            `json:"command,omitempty"`
	Binaries          []report.JSONBinary `json:"binaries"`
	DroppedEvents     uint64              `json:"dropped_events"`
	UnpairedExits     uint64              `json:"unpaired_exits"`
	ElapsedNs         int64               `json:"elapsed_ns"`
	OverheadCorrected bool                `json:"overhead_corrected"`
}

// JSONFunction is one function's comparison; "baseline" or "current" is
// null when the function is only on the other side.
type JSONFunction struct {
	Function string       `json:"function"`
	Binary   string       `json:"binary"`
	Key      string       `json:"key"`
	Verdict  Verdict      `json:"verdict"`
	Reason   string       `json:"reason"`
	Baseline *JSONStats   `json:"baseline"`
	Current  *JSONStats   `json:"current"`
	Metrics  []JSONMetric `json:"metrics"`
}

// JSONStats are one side's figures for a function.
type JSONStats struct {
	Count  uint64 `json:"count"`
	MeanNs uint64 `json:"mean_ns"`
	P50Ns  uint64 `json:"p50_ns"`
	P90Ns  uint64 `json:"p90_ns"`
	P99Ns  uint64 `json:"p99_ns"`
}

// JSONMetric is one judged metric. "change" is null when the baseline is
// 0; "ci_low" and "ci_high" bound the change's interval at "confidence",
// null when not judged. The interval includes "probe_uncertainty_ns" on
// each side (how far durations may be off because the probes' cost taken
// out of them is known only so well) and the histogram buckets' width;
// "resolution_limited" says the bootstrap put each side's percentile in
// one bucket, so that the bounds come from the buckets' width, not from
// sampling. A metric regresses when its change and all of its interval are
// above the limit.
type JSONMetric struct {
	Metric             string   `json:"metric"`
	BaselineNs         uint64   `json:"baseline_ns"`
	CurrentNs          uint64   `json:"current_ns"`
	Change             *float64 `json:"change"`
	CILow              *float64 `json:"ci_low"`
	CIHigh             *float64 `json:"ci_high"`
	ProbeUncertaintyNs uint64   `json:"probe_uncertainty_ns"`
	ResolutionLimited  bool     `json:"resolution_limited"`
	Limit              float64  `json:"limit"`
	Verdict            Verdict  `json:"verdict"`
}

func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func jsonRun(run Facts) JSONRun {
	out := JSONRun{
		Runs: run.Runs, UlatVersion: run.UlatVersion, Kernel: run.Kernel, Command: run.Command,
		Binaries: []report.JSONBinary{}, DroppedEvents: run.Lost.DroppedEvents, UnpairedExits: run.Lost.UnpairedExits,
		ElapsedNs: int64(run.Elapsed), OverheadCorrected: run.OverheadCorrected,
	}
	for _, b := range run.Binaries {
		out.Binaries = append(out.Binaries, report.JSONBinary(b))
	}
	return out
}

// toJSON converts r to its document form.
func (r *Result) toJSON() *JSONResult {
	out := &JSONResult{
		Schema: jsonSchemaVersion, Verdict: r.Verdict, Summary: map[Verdict]int{},
		Confidence: r.Confidence, MinCount: r.MinCount, Thresholds: []JSONThreshold{},
		Baseline: jsonRun(r.Baseline), Current: jsonRun(r.Current),
		Notes: append([]string{}, r.Notes...), Warnings: append([]string{}, r.Warnings...),
		Functions: []JSONFunction{},
	}
	for _, v := range verdictOrder {
		out.Summary[v] = r.count(v)
	}
	for _, t := range r.Thresholds {
		out.Thresholds = append(out.Thresholds, JSONThreshold{Function: t.Function, Metric: t.Metric, Limit: t.Limit})
	}
	for _, f := range r.Functions {
		jf := JSONFunction{Function: f.Function, Binary: f.Binary, Key: f.Key, Verdict: f.Verdict, Reason: f.Reason, Metrics: []JSONMetric{}}
		if f.Base != nil {
			jf.Baseline = (*JSONStats)(f.Base)
		}
		if f.Current != nil {
			jf.Current = (*JSONStats)(f.Current)
		}
		for _, m := range f.Metrics {
			jf.Metrics = append(jf.Metrics, JSONMetric{
				Metric: m.Metric, BaselineNs: m.BaseNs, CurrentNs: m.CurrentNs,
				Change: finite(m.Change), CILow: finite(m.Low), CIHigh: finite(m.High),
				ProbeUncertaintyNs: m.UncertaintyNs, ResolutionLimited: m.ResolutionLimited,
				Limit: m.Limit, Verdict: m.Verdict,
			})
		}
		out.Functions = append(out.Functions, jf)
	}
	return out
}

// WriteJSON writes r as an indented JSONResult ending in a newline.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.toJSON()); err != nil {
		return fmt.Errorf("write compare json: %w", err)
	}
	return nil
}
