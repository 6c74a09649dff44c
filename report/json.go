package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/ulat-dev/ulat/buckets"
)

// schemaVersion is the "schema" value WriteJSON emits. ReadJSON also
// accepts schema 1, whose histograms were HDR bins (hdr_bins) instead of
// native_buckets. Fields may be added within a version; none are renamed
// or removed.
const schemaVersion = 2

// ErrSchema is returned (wrapped) by ReadJSON for a document whose schema is
// missing or not schemaVersion.
var ErrSchema = errors.New("unsupported report schema")

// JSONReport is the JSON document WriteJSON writes.
type JSONReport struct {
	Schema    int            `json:"schema"`
	ElapsedNs int64          `json:"elapsed_ns"`
	Functions []JSONFunction `json:"functions"`
	Lost      JSONLost       `json:"lost"`
	Warnings  []string       `json:"warnings"`
	// ProbeOverheadNs is the measured cost of each kind of probe pair in
	// the report ("uretprobe/emulated": 1650, ...).
	ProbeOverheadNs   map[string]uint64 `json:"probe_overhead_ns"`
	OverheadCorrected bool              `json:"overhead_corrected"`

	// What was measured where (see Run).
	UlatVersion string       `json:"ulat_version"`
	Kernel      string       `json:"kernel"`
	Command     []string     `json:"command,omitempty"`
	ExitStatus  *int         `json:"exit_status,omitempty"`
	Binaries    []JSONBinary `json:"binaries"`
	Runs        int          `json:"runs"`
	Aggregation string       `json:"aggregation,omitempty"`
	// BucketSchema is the Prometheus native histogram schema of every
	// function's native_buckets (6: each bucket is 1.09% wide).
	BucketSchema int `json:"bucket_schema"`
	// HDRSignificantFigures was the precision of schema 1's hdr_bins.
	HDRSignificantFigures int `json:"hdr_significant_figures,omitempty"`
}

// JSONBinary is a traced file and its build ID.
type JSONBinary struct {
	Path    string `json:"path"`
	BuildID string `json:"build_id"`
}

// JSONFunction is one function's statistics; all durations are nanoseconds.
type JSONFunction struct {
	Function string       `json:"function"`
	Binary   string       `json:"binary"`
	Count    uint64       `json:"count"`
	MinNs    uint64       `json:"min_ns"`
	MeanNs   uint64       `json:"mean_ns"`
	P50Ns    uint64       `json:"p50_ns"`
	P90Ns    uint64       `json:"p90_ns"`
	P99Ns    uint64       `json:"p99_ns"`
	MaxNs    uint64       `json:"max_ns"`
	Buckets  []JSONBucket `json:"buckets"`
	// Calls entered but never returned (panic, Goexit, longjmp, exit).
	DidNotReturn uint64 `json:"did_not_return"`
	// What the probes add to each call (subtracted when the report's
	// overhead_corrected is true), and whether the median is within 2x
	// of it.
	ProbeOverheadNs uint64 `json:"probe_overhead_ns"`
	ProbeKind       string `json:"probe_kind,omitempty"`
	ProbeDominated  bool   `json:"probe_dominated"`
	// What the probes of traced calls made inside its calls added to
	// them on average (taken out when overhead_corrected); how far each
	// corrected duration may be off because those costs are known only
	// that well; how many calls were measured at or below the costs taken
	// out (counted as 0 ns: each took at most probe_uncertainty_ns); and
	// whether that uncertainty is over a tenth of the median, which makes
	// the figures rough.
	NestedProbeOverheadNs uint64 `json:"nested_probe_overhead_ns"`
	ProbeUncertaintyNs    uint64 `json:"probe_uncertainty_ns"`
	BelowProbeCost        uint64 `json:"below_probe_cost"`
	Uncertain             bool   `json:"uncertain"`
	// The exact sum of all durations (for merging means), and the
	// histogram as a Prometheus native histogram of the report's
	// bucket_schema over durations in seconds: calls of 0 ns (zero_count),
	// every non-empty bucket as [index, count] (bucket i holds durations in
	// (2^((i-1)/64), 2^(i/64)] s), and calls past 1024 s
	// (overflow_count). With count, min and max, the whole histogram, so
	// that reports can be merged, compared and exported without loss.
	SumNs         *big.Int   `json:"sum_ns"`
	ZeroCount     uint64     `json:"zero_count"`
	NativeBuckets [][2]int64 `json:"native_buckets"`
	OverflowCount uint64     `json:"overflow_count"`
	// HDRBins was schema 1's histogram: [lowest equivalent value in ns, count].
	HDRBins [][2]uint64 `json:"hdr_bins,omitempty"`
}

// JSONBucket is one power-of-two bucket, [LoNs, HiNs).
type JSONBucket struct {
	LoNs  uint64 `json:"lo_ns"`
	HiNs  uint64 `json:"hi_ns"`
	Count uint64 `json:"count"`
}

// JSONLost mirrors Lost, plus the total of the functions' did_not_return.
type JSONLost struct {
	DroppedEvents uint64 `json:"dropped_events"`
	UnpairedExits uint64 `json:"unpaired_exits"`
	DidNotReturn  uint64 `json:"did_not_return"`
	InFlight      uint64 `json:"in_flight"`
}

// toJSON converts r to its JSON document form without serialising it, for
// callers (such as a comparison) that want the numbers WriteJSON would write.
func (r *Report) toJSON() *JSONReport {
	out := r.jsonHead()
	for _, f := range r.Functions {
		out.Functions = append(out.Functions, functionJSON(f, r.OverheadCorrected))
	}
	return out
}

// jsonHead is r's JSON document but its functions' entries: what it says
// of them all (probe costs, calls that did not return) included.
func (r *Report) jsonHead() *JSONReport {
	// Empty slices, not nil, so that consumers see [] rather than null.
	out := &JSONReport{
		Schema:    schemaVersion,
		ElapsedNs: int64(r.Elapsed),
		Functions: make([]JSONFunction, 0, len(r.Functions)),
		Lost:      JSONLost{DroppedEvents: r.Lost.DroppedEvents, UnpairedExits: r.Lost.UnpairedExits, InFlight: r.Lost.InFlight},
		Warnings:  append([]string{}, r.Warnings...),

		ProbeOverheadNs:   map[string]uint64{},
		OverheadCorrected: r.OverheadCorrected,

		UlatVersion:  r.Facts.UlatVersion,
		Kernel:       r.Facts.Kernel,
		Command:      r.Facts.Command,
		ExitStatus:   r.Facts.ExitStatus,
		Binaries:     []JSONBinary{},
		Runs:         max(r.Facts.Runs, 1),
		Aggregation:  r.Facts.Aggregation,
		BucketSchema: buckets.Schema,
	}
	for _, b := range r.Facts.Binaries {
		out.Binaries = append(out.Binaries, JSONBinary(b))
	}
	for _, f := range r.Functions {
		if f.ProbeOverheadNs != 0 {
			out.ProbeOverheadNs[f.ProbeKind] = f.ProbeOverheadNs
		}
		out.Lost.DidNotReturn += f.DidNotReturn
	}
	return out
}

// functionJSON is f's entry in a report whose durations are corrected
// or not.
func functionJSON(f FunctionStats, corrected bool) JSONFunction {
	h := f.Hist
	jf := JSONFunction{
		Function: f.Function,
		Binary:   f.Binary,
		Count:    h.Count(),
		MinNs:    h.Min(),
		MeanNs:   h.Mean(),
		P50Ns:    h.Percentile(50),
		P90Ns:    h.Percentile(90),
		P99Ns:    h.Percentile(99),
		MaxNs:    h.Max(),
		Buckets:  []JSONBucket{},

		DidNotReturn: f.DidNotReturn,

		ProbeOverheadNs: f.ProbeOverheadNs,
		ProbeKind:       f.ProbeKind,
		ProbeDominated:  f.ProbeDominated(corrected),

		NestedProbeOverheadNs: f.NestedOverheadNs,
		ProbeUncertaintyNs:    f.UncertaintyNs,
		BelowProbeCost:        f.belowProbeCost(corrected),
		Uncertain:             f.uncertain(corrected),

		NativeBuckets: [][2]int64{},
	}
	hi, lo := h.Sum()
	jf.SumNs = new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
	jf.SumNs.Or(jf.SumNs, new(big.Int).SetUint64(lo))
	for _, sl := range h.Slots() {
		if i, ok := buckets.Index(sl.Slot); ok {
			jf.NativeBuckets = append(jf.NativeBuckets, [2]int64{int64(i), int64(sl.Count)})
		} else if sl.Slot == 0 {
			jf.ZeroCount = sl.Count
		} else {
			jf.OverflowCount = sl.Count
		}
	}
	for _, b := range h.log2Buckets() {
		jf.Buckets = append(jf.Buckets, JSONBucket(b))
	}
	return jf
}

// WriteJSON writes r as an indented JSON document ending in a newline.
func WriteJSON(w io.Writer, r *Report) error { return writeJSON(w, r, true) }

// WriteCompactJSON writes r as WriteJSON does, on one line: for programs
// that fetch reports often (the agent's /report.json), where indenting
// megabytes took a third of the time.
func WriteCompactJSON(w io.Writer, r *Report) error { return writeJSON(w, r, false) }

func writeJSON(w io.Writer, r *Report, indent bool) error { return encodeJSON(w, r.toJSON(), indent) }

func encodeJSON(w io.Writer, doc *JSONReport, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	// Function names like "operator<" must stay readable, not \u003c.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

// FunctionJSON is f's entry in the compact JSON document of a report
// whose durations are corrected (OverheadCorrected) or not: what
// WriteCompactJSONFrom takes, for a caller that keeps the entries of
// functions with no new call.
func FunctionJSON(f FunctionStats, corrected bool) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(functionJSON(f, corrected)); err != nil {
		return nil, fmt.Errorf("function %s: json: %w", f.Function, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// WriteCompactJSONFrom writes r as WriteCompactJSON does, the entry of
// its i-th function written by entry (FunctionJSON's).
func WriteCompactJSONFrom(w io.Writer, r *Report, entry func(w io.Writer, i int) error) error {
	var head bytes.Buffer
	if err := encodeJSON(&head, r.jsonHead(), false); err != nil {
		return err
	}
	// The entries go between the brackets of the empty list, which are
	// found by its key: a string's quotes are escaped, so no string in
	// the document holds the key with its quotes.
	const list = `"functions":[`
	at := bytes.Index(head.Bytes(), []byte(list+"]"))
	if at < 0 {
		return errors.New("write report json: no functions list")
	}
	at += len(list)
	if _, err := w.Write(head.Bytes()[:at]); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	for i := range r.Functions {
		if i > 0 {
			if _, err := io.WriteString(w, ","); err != nil {
				return fmt.Errorf("write report json: %w", err)
			}
		}
		if err := entry(w, i); err != nil {
			return fmt.Errorf("write report json: %w", err)
		}
	}
	if _, err := w.Write(head.Bytes()[at:]); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

// ReadJSON parses a document written by WriteJSON. Unknown fields are
// ignored so that older readers accept documents from newer writers of the
// same schema.
func ReadJSON(rd io.Reader) (*JSONReport, error) {
	var doc struct {
		Schema *int `json:"schema"`
		JSONReport
	}
	if err := json.NewDecoder(rd).Decode(&doc); err != nil {
		return nil, fmt.Errorf("read report json: %w", err)
	}
	if doc.Schema == nil {
		return nil, fmt.Errorf("read report json: no schema field: %w", ErrSchema)
	}
	if *doc.Schema != schemaVersion && *doc.Schema != 1 {
		return nil, fmt.Errorf("read report json: schema %d, want 1 or %d: %w", *doc.Schema, schemaVersion, ErrSchema)
	}
	if *doc.Schema == schemaVersion && doc.BucketSchema != buckets.Schema {
		return nil, fmt.Errorf("read report json: bucket_schema %d, want %d: %w", doc.BucketSchema, buckets.Schema, ErrSchema)
	}
	doc.JSONReport.Schema = *doc.Schema
	return &doc.JSONReport, nil
}

// ErrNoHistogram is returned (wrapped) by JSONFunction.Histogram for a
// function written without a histogram and sum_ns (by ulat before they
// were added): its percentiles can be shown but not merged or compared.
var ErrNoHistogram = errors.New("no histogram data (recorded by an older ulat; record it again)")

// Histogram rebuilds the function's histogram from its JSON form, of
// either schema.
func (f *JSONFunction) Histogram() (*Histogram, error) {
	hasSlots := len(f.NativeBuckets) > 0 || f.ZeroCount > 0 || f.OverflowCount > 0
	if f.Count > 0 && (f.SumNs == nil || (!hasSlots && len(f.HDRBins) == 0)) {
		return nil, fmt.Errorf("%s: %w", f.Function, ErrNoHistogram)
	}
	var hi, lo uint64
	if f.SumNs != nil {
		if f.SumNs.Sign() < 0 || f.SumNs.BitLen() > 128 {
			return nil, fmt.Errorf("%s: sum_ns %s out of range: %w", f.Function, f.SumNs, ErrInconsistent)
		}
		lo = new(big.Int).And(f.SumNs, new(big.Int).SetUint64(^uint64(0))).Uint64()
		hi = new(big.Int).Rsh(f.SumNs, 64).Uint64()
	}
	log2 := make([]log2Bucket, len(f.Buckets))
	for i, b := range f.Buckets {
		log2[i] = log2Bucket(b)
	}
	var h *Histogram
	var err error
	if len(f.HDRBins) > 0 && !hasSlots {
		bins := make([]bin, len(f.HDRBins))
		for i, b := range f.HDRBins {
			bins[i] = bin{ValueNs: b[0], Count: b[1]}
		}
		h, err = histogramFromBins(f.Count, f.MinNs, f.MaxNs, hi, lo, log2, bins)
	} else {
		var slots []slotCount
		if f.ZeroCount > 0 {
			slots = append(slots, slotCount{Slot: 0, Count: f.ZeroCount})
		}
		for _, b := range f.NativeBuckets {
			s, ok := buckets.SlotOfIndex(int32(b[0]))
			if !ok || b[0] != int64(int32(b[0])) || b[1] < 0 {
				return nil, fmt.Errorf("%s: bucket %d (count %d) is not one of schema %d's non-empty buckets up to 1024 s: %w", f.Function, b[0], b[1], buckets.Schema, ErrInconsistent)
			}
			slots = append(slots, slotCount{Slot: s, Count: uint64(b[1])})
		}
		if f.OverflowCount > 0 {
			slots = append(slots, slotCount{Slot: buckets.Slots - 1, Count: f.OverflowCount})
		}
		h, err = histogramFromParts(f.Count, f.MinNs, f.MaxNs, hi, lo, log2, slots)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Function, err)
	}
	return h, nil
}
