package report

import (
	"bytes"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

const barWidth = 40

// WriteTable writes r for a terminal: a bpftrace-style histogram per function,
// a summary table with percentiles, then anything lost and any warnings.
func WriteTable(w io.Writer, r *Report) error {
	// Render into memory so that w sees one write and one possible error.
	var buf bytes.Buffer
	// A glob can match hundreds of functions of which few are called: a
	// "no calls" line for each buried the histograms. Past a few, they
	// get one line at the end; the summary table still lists every one.
	var idle []string
	for _, f := range r.Functions {
		if !hasCalls(f) {
			idle = append(idle, f.Function)
		}
	}
	summariseIdle := len(idle) > idleNamed
	blocks := 0
	for _, f := range r.Functions {
		if summariseIdle && !hasCalls(f) {
			continue
		}
		if blocks > 0 {
			buf.WriteByte('\n')
		}
		writeHist(&buf, f)
		blocks++
	}
	if summariseIdle {
		if blocks > 0 {
			buf.WriteByte('\n')
		}
		fmt.Fprintf(&buf, "%d functions had no calls: %s and %d more\n",
			len(idle), strings.Join(idle[:idleNamed], ", "), len(idle)-idleNamed)
		blocks++
	}
	if blocks > 0 {
		buf.WriteByte('\n')
	}
	if err := writeSummary(&buf, r.Functions, r.OverheadCorrected); err != nil {
		return err
	}
	if r.Elapsed > 0 {
		fmt.Fprintf(&buf, "elapsed: %s\n", FormatDuration(uint64(r.Elapsed)))
	}
	if r.Lost.any() {
		fmt.Fprintf(&buf, "lost: %d events dropped (ring buffer full), %d exits without entry\n",
			r.Lost.DroppedEvents, r.Lost.UnpairedExits)
	}
	for _, f := range r.Functions {
		if f.DidNotReturn > 0 {
			fmt.Fprintf(&buf, "did not return: %s: %d calls (unwound by a panic, Goexit or longjmp, or the process ended)\n",
				f.Function, f.DidNotReturn)
		}
	}
	writeOverhead(&buf, r)
	if r.Lost.InFlight > 0 {
		fmt.Fprintf(&buf, "in flight: %d calls had not returned when tracing ended\n", r.Lost.InFlight)
	}
	for _, msg := range r.Warnings {
		fmt.Fprintf(&buf, "warning: %s\n", msg)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// idleNamed is how many functions without calls WriteTable names on a
// line each; more are summarised in one line that names this many.
const idleNamed = 3

// hasCalls reports whether f has a histogram to draw: a call that
// returned. Calls that never returned are reported on their own line.
func hasCalls(f FunctionStats) bool { return f.Hist.Count() > 0 }

func writeHist(buf *bytes.Buffer, f FunctionStats) {
	buckets := f.Hist.log2Buckets()
	if len(buckets) == 0 {
		fmt.Fprintf(buf, "%s: no calls\n", f.Function)
		return
	}
	fmt.Fprintf(buf, "%s  (ns)\n", f.Function)
	// bpftrace pads labels to 16 and counts to 8; widen only when a value
	// would not fit, so columns stay aligned.
	labelW, countW := 16, 8
	var peak uint64
	for _, b := range buckets {
		labelW = max(labelW, len(bucketLabel(b)))
		countW = max(countW, len(strconv.FormatUint(b.Count, 10)))
		peak = max(peak, b.Count)
	}
	for _, b := range buckets {
		// count*40/peak in 128 bits: exact, and the bar of the peak is always full.
		hi, lo := bits.Mul64(b.Count, barWidth)
		n, _ := bits.Div64(hi, lo, peak)
		fmt.Fprintf(buf, "%-*s%*d |%-*s|\n", labelW, bucketLabel(b), countW, b.Count,
			barWidth, strings.Repeat("@", int(n)))
	}
}

// NewTable returns a table in ulat's style (plain ASCII borders, headers
// as given), with one alignment per column.
func NewTable(w io.Writer, align ...tw.Align) *tablewriter.Table {
	return tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})),
		// Auto-format would turn "P50" into "P 50"; the headers are already upper case.
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}),
	)
}

// writeSummary writes the table of figures. Corrected for the probes'
// costs, a "±" column says how far each function's figures may be off
// because of that; figures of functions where that is over a tenth of the
// median are marked "~" (rough), and a percentile of calls measured below
// their probes' cost shows the bound on them ("≤0.4µs").
func writeSummary(buf *bytes.Buffer, fns []FunctionStats, corrected bool) error {
	uncertainty := false
	for _, f := range fns {
		uncertainty = uncertainty || (corrected && f.UncertaintyNs > 0)
	}
	right := tw.AlignRight
	header := []any{"FUNCTION", "COUNT", "MEAN", "MIN", "P50", "P90", "P99", "MAX"}
	align := []tw.Align{tw.AlignLeft, right, right, right, right, right, right, right}
	if uncertainty {
		header, align = append(header, "±"), append(align, right)
	}
	table := NewTable(buf, align...)
	table.Header(header...)
	for _, f := range fns {
		h := f.Hist
		row := []string{f.Function, "0", "-", "-", "-", "-", "-", "-"}
		if h.Count() > 0 {
			rough, below := f.uncertain(corrected), f.belowProbeCost(corrected) > 0
			cell := func(v uint64) string {
				switch {
				case below && v == 0:
					return "≤" + FormatDuration(f.UncertaintyNs)
				case rough:
					return "~" + FormatDuration(v)
				}
				return FormatDuration(v)
			}
			row = []string{
				f.Function,
				strconv.FormatUint(h.Count(), 10),
				cell(h.Mean()),
				cell(h.Min()),
				cell(h.Percentile(50)),
				cell(h.Percentile(90)),
				cell(h.Percentile(99)),
				cell(h.Max()),
			}
		}
		if uncertainty {
			u := "-"
			if corrected && f.UncertaintyNs > 0 {
				u = FormatDuration(f.UncertaintyNs)
			}
			row = append(row, u)
		}
		if err := table.Append(row); err != nil {
			return fmt.Errorf("summary table: %w", err)
		}
	}
	if err := table.Render(); err != nil {
		return fmt.Errorf("summary table: %w", err)
	}
	return nil
}

// writeOverhead says what the probes cost, per kind of probe, and which
// functions are too short to be measured against that.
func writeOverhead(buf *bytes.Buffer, r *Report) {
	type kind struct {
		name string
		ns   uint64
		n    int
	}
	var kinds []*kind
	byName := map[string]*kind{}
	var dominated []string
	for _, f := range r.Functions {
		if f.ProbeOverheadNs == 0 {
			continue
		}
		k := byName[f.ProbeKind]
		if k == nil {
			k = &kind{name: f.ProbeKind, ns: f.ProbeOverheadNs}
			byName[f.ProbeKind] = k
			kinds = append(kinds, k)
		}
		k.n++
		if f.ProbeDominated(r.OverheadCorrected) {
			dominated = append(dominated, f.Function)
		}
	}
	if len(kinds) == 0 {
		return
	}
	var parts []string
	for _, k := range kinds {
		noun := "functions"
		if k.n == 1 {
			noun = "function"
		}
		parts = append(parts, fmt.Sprintf("%s for %d %s (%s)", FormatDuration(k.ns), k.n, noun, k.name))
	}
	verb := "subtracted from every duration (--raw keeps it)"
	if !r.OverheadCorrected {
		verb = "included in the durations"
	}
	fmt.Fprintf(buf, "probe overhead, measured on this host and %s: %s\n", verb, strings.Join(parts, ", "))
	var rough, below, nested []string
	for _, f := range r.Functions {
		if f.NestedOverheadNs > 0 {
			nested = append(nested, fmt.Sprintf("%s (%s a call)", f.Function, FormatDuration(f.NestedOverheadNs)))
		}
		if f.uncertain(r.OverheadCorrected) {
			rough = append(rough, f.Function)
		}
		if n := f.belowProbeCost(r.OverheadCorrected); n > 0 {
			below = append(below, fmt.Sprintf("%s (%d of %d calls)", f.Function, n, f.Hist.Count()))
		}
	}
	if len(nested) > 0 {
		fmt.Fprintf(buf, "probes of the traced calls made inside these were taken out of them too: %s\n", shortList(nested))
	}
	if len(rough) > 0 {
		fmt.Fprintf(buf, "~: rough figures: the probe costs taken out are known to ± (the spread of their calibration), over a tenth of the median: %s\n", shortList(rough))
	}
	if len(below) > 0 {
		fmt.Fprintf(buf, "≤: calls measured at or below the probe costs taken out, each at most ± long: %s\n", shortList(below))
	}
	if len(dominated) > 0 {
		fmt.Fprintf(buf, "probe-dominated (median within 2x of the probes' own cost, shorter than they can resolve): %s\n", shortList(dominated))
	}
}

// shortList joins names, up to ten of them.
func shortList(names []string) string {
	const shown = 10
	list := strings.Join(names[:min(len(names), shown)], ", ")
	if len(names) > shown {
		list += fmt.Sprintf(" and %d more", len(names)-shown)
	}
	return list
}
