package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// SchemaVersion is the "schema" value WriteJSON emits and ReadJSON accepts.
// Fields may be added within a version; none are renamed or removed.
const SchemaVersion = 1

// ErrSchema is returned (wrapped) by ReadJSON for a document whose schema is
// missing or not SchemaVersion.
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

// JSON converts r to its JSON document form without serialising it, for
// callers (such as a comparison) that want the numbers WriteJSON would write.
func (r *Report) JSON() *JSONReport {
	// Empty slices, not nil, so that consumers see [] rather than null.
	out := &JSONReport{
		Schema:    SchemaVersion,
		ElapsedNs: int64(r.Elapsed),
		Functions: make([]JSONFunction, 0, len(r.Functions)),
		Lost:      JSONLost{DroppedEvents: r.Lost.DroppedEvents, UnpairedExits: r.Lost.UnpairedExits, InFlight: r.Lost.InFlight},
		Warnings:  append([]string{}, r.Warnings...),

		ProbeOverheadNs:   map[string]uint64{},
		OverheadCorrected: r.OverheadCorrected,
	}
	for _, f := range r.Functions {
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
			ProbeDominated:  f.ProbeDominated(r.OverheadCorrected),
		}
		if f.ProbeOverheadNs != 0 {
			out.ProbeOverheadNs[f.ProbeKind] = f.ProbeOverheadNs
		}
		out.Lost.DidNotReturn += f.DidNotReturn
		for _, b := range h.Buckets() {
			jf.Buckets = append(jf.Buckets, JSONBucket(b))
		}
		out.Functions = append(out.Functions, jf)
	}
	return out
}

// WriteJSON writes r as an indented JSON document ending in a newline.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Function names like "operator<" must stay readable, not \u003c.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.JSON()); err != nil {
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
	if *doc.Schema != SchemaVersion {
		return nil, fmt.Errorf("read report json: schema %d, want %d: %w", *doc.Schema, SchemaVersion, ErrSchema)
	}
	doc.JSONReport.Schema = *doc.Schema
	return &doc.JSONReport, nil
}
