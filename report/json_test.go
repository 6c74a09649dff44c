package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/buckets"
)

func sampleReport() *Report {
	work := NewHistogram()
	for _, v := range []uint64{100, 200, 300} {
		work.Record(v)
	}
	return &Report{
		Functions: []FunctionStats{
			{Function: "main.work", Binary: "/abs/path/server", Hist: work},
			{Function: "main.idle", Binary: "/abs/path/server", Hist: NewHistogram()},
		},
		Lost:     Lost{DroppedEvents: 3, UnpairedExits: 1},
		Elapsed:  5 * time.Second,
		Warnings: []string{"main.inl: inlined into all callers, cannot be timed"},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	three := 3
	r := sampleReport()
	r.Facts = Facts{UlatVersion: "v1.2.3", Kernel: "6.18.0", Command: []string{"./server", "-n", "3"}, ExitStatus: &three,
		Binaries: []Binary{{Path: "/abs/path/server", BuildID: "abcd"}}}
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// The median is its slot's representative; min and max are exact.
	idx := func(v uint64) int64 { i, _ := buckets.Index(buckets.Of(v)); return int64(i) }
	want := &JSONReport{
		Schema:    2,
		ElapsedNs: 5_000_000_000,
		Functions: []JSONFunction{
			{
				Function: "main.work", Binary: "/abs/path/server",
				Count: 3, MinNs: 100, MeanNs: 200, P50Ns: buckets.Representative(buckets.Of(200)), P90Ns: 300, P99Ns: 300, MaxNs: 300,
				Buckets:       []JSONBucket{{64, 128, 1}, {128, 256, 1}, {256, 512, 1}},
				SumNs:         big.NewInt(600),
				NativeBuckets: [][2]int64{{idx(100), 1}, {idx(200), 1}, {idx(300), 1}},
			},
			{Function: "main.idle", Binary: "/abs/path/server", Buckets: []JSONBucket{}, SumNs: big.NewInt(0), NativeBuckets: [][2]int64{}},
		},
		Lost:            JSONLost{DroppedEvents: 3, UnpairedExits: 1},
		Warnings:        []string{"main.inl: inlined into all callers, cannot be timed"},
		ProbeOverheadNs: map[string]uint64{},

		UlatVersion: "v1.2.3", Kernel: "6.18.0", Command: []string{"./server", "-n", "3"}, ExitStatus: &three,
		Binaries: []JSONBinary{{Path: "/abs/path/server", BuildID: "abcd"}},
		Runs:     1, BucketSchema: 6,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadJSON(WriteJSON(r)) =\n%+v\nwant\n%+v", got, want)
	}
}

func hasKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: missing key %q (have %v)", what, k, m)
		}
	}
}

func TestJSONFieldNames(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "{\n  \"schema\": 2,\n") || !strings.HasSuffix(out, "}\n") {
		t.Errorf("want 2-space indented object ending in newline, got:\n%s", out)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	hasKeys(t, "top level", doc, "schema", "elapsed_ns", "functions", "lost", "warnings",
		"ulat_version", "kernel", "binaries", "runs", "bucket_schema", "probe_overhead_ns")
	hasKeys(t, "lost", doc["lost"].(map[string]any), "dropped_events", "unpaired_exits")
	fns := doc["functions"].([]any)
	work := fns[0].(map[string]any)
	hasKeys(t, "function", work, "function", "binary", "count", "min_ns", "mean_ns",
		"p50_ns", "p90_ns", "p99_ns", "max_ns", "buckets", "sum_ns", "zero_count", "native_buckets", "overflow_count")
	hasKeys(t, "bucket", work["buckets"].([]any)[0].(map[string]any), "lo_ns", "hi_ns", "count")

	if b, ok := fns[1].(map[string]any)["buckets"].([]any); !ok || len(b) != 0 {
		t.Errorf("zero-call function buckets = %#v, want []", fns[1].(map[string]any)["buckets"])
	}
	if !strings.Contains(out, `"buckets": []`) {
		t.Errorf("zero-call function should have \"buckets\": [], got:\n%s", out)
	}
}

func TestJSONEmptyReport(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, &Report{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"functions": []`, `"warnings": []`, `"elapsed_ns": 0`} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("empty report lacks %s:\n%s", s, buf.String())
		}
	}
}

func TestJSONNoHTMLEscaping(t *testing.T) {
	r := &Report{Functions: []FunctionStats{{Function: "std::vector<int>::operator<", Hist: NewHistogram()}}}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"std::vector<int>::operator<"`) {
		t.Errorf("function name escaped:\n%s", buf.String())
	}
}

func TestReadJSONSchema(t *testing.T) {
	for _, in := range []string{`{"schema":2}`, `{}`, `{"schema":0,"functions":[]}`} {
		_, err := ReadJSON(strings.NewReader(in))
		if !errors.Is(err, ErrSchema) {
			t.Errorf("ReadJSON(%s) error = %v, want ErrSchema", in, err)
		}
	}
	_, err := ReadJSON(strings.NewReader(`not json`))
	if err == nil || errors.Is(err, ErrSchema) {
		t.Errorf("ReadJSON(garbage) error = %v, want a decode error", err)
	}
	// Later versions add fields within schema 1; readers must accept them.
	got, err := ReadJSON(strings.NewReader(`{"schema":1,"added_later":true,"functions":[{"function":"f","count":2,"extra":1}]}`))
	if err != nil {
		t.Fatalf("unknown fields rejected: %v", err)
	}
	if got.Schema != 1 || len(got.Functions) != 1 || got.Functions[0].Count != 2 {
		t.Errorf("ReadJSON = %+v", got)
	}
}

// A histogram written to JSON and read back is the same histogram: the
// same percentiles, buckets, mean, and merges.
func TestJSONHistogramRebuild(t *testing.T) {
	orig := NewHistogram()
	for i := uint64(1); i <= 20000; i++ {
		orig.Record(i*i%7919*1000 + i%13) // spread over several decades
	}
	orig.Record(3 << 40) // past 1024 s: the overflow slot
	doc := jsonOf(t, &Report{Functions: []FunctionStats{{Function: "f", Hist: orig}, {Function: "idle", Hist: NewHistogram()}}})
	got, err := doc.Functions[0].Histogram()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []float64{1, 10, 50, 90, 99, 99.9, 100} {
		if a, b := got.Percentile(p), orig.Percentile(p); a != b {
			t.Errorf("p%v = %d after the round trip, %d before", p, a, b)
		}
	}
	if got.Count() != orig.Count() || got.Mean() != orig.Mean() || got.Min() != orig.Min() || got.Max() != orig.Max() {
		t.Errorf("count/mean/min/max = %d/%d/%d/%d, want %d/%d/%d/%d", got.Count(), got.Mean(), got.Min(), got.Max(),
			orig.Count(), orig.Mean(), orig.Min(), orig.Max())
	}
	if !reflect.DeepEqual(got.log2Buckets(), orig.log2Buckets()) || !reflect.DeepEqual(got.Slots(), orig.Slots()) {
		t.Error("buckets or bins differ after the round trip")
	}
	// Merging rebuilt histograms equals merging the originals.
	twice := NewHistogram()
	twice.Merge(orig)
	twice.Merge(orig)
	rebuilt := NewHistogram()
	rebuilt.Merge(got)
	rebuilt.Merge(got)
	if !reflect.DeepEqual(twice.Slots(), rebuilt.Slots()) || twice.Mean() != rebuilt.Mean() || twice.Percentile(99) != rebuilt.Percentile(99) {
		t.Error("merge of rebuilt histograms differs from merge of the originals")
	}
	if idle, err := doc.Functions[1].Histogram(); err != nil || idle.Count() != 0 {
		t.Errorf("empty function: %v, %v", idle, err)
	}
}

func TestJSONHistogramErrors(t *testing.T) {
	ok := JSONFunction{Function: "f", Count: 2, MinNs: 100, MaxNs: 200, SumNs: big.NewInt(300),
		Buckets: []JSONBucket{{64, 128, 1}, {128, 256, 1}}, NativeBuckets: [][2]int64{{-1488, 1}, {-1424, 1}}}
	if _, err := ok.Histogram(); err != nil {
		t.Fatalf("consistent function rejected: %v", err)
	}
	old := ok
	old.SumNs, old.NativeBuckets = nil, nil
	if _, err := old.Histogram(); !errors.Is(err, ErrNoHistogram) {
		t.Errorf("function without native_buckets: error %v, want ErrNoHistogram", err)
	}
	// Schema 1's HDR bins are read into the slots of their values.
	schema1 := ok
	schema1.NativeBuckets, schema1.HDRBins = nil, [][2]uint64{{100, 1}, {200, 1}}
	if h, err := schema1.Histogram(); err != nil || h.Count() != 2 || h.Max() != 200 {
		t.Errorf("schema 1 function: %v, %v", h, err)
	}
	for name, mutate := range map[string]func(*JSONFunction){
		"slots short of count":   func(f *JSONFunction) { f.NativeBuckets = f.NativeBuckets[:1] },
		"buckets short of count": func(f *JSONFunction) { f.Buckets = f.Buckets[:1] },
		"bucket not power of 2":  func(f *JSONFunction) { f.Buckets = []JSONBucket{{60, 128, 1}, {128, 256, 1}} },
		"bucket out of range":    func(f *JSONFunction) { f.NativeBuckets = [][2]int64{{-1488, 1}, {641, 1}} },
		"empty bucket":           func(f *JSONFunction) { f.NativeBuckets = [][2]int64{{-1488, 1}, {-1900, 1}} },
		"max past the buckets":   func(f *JSONFunction) { f.MaxNs = 250 },
		"negative sum":           func(f *JSONFunction) { f.SumNs = big.NewInt(-1) },
		"min above max":          func(f *JSONFunction) { f.MinNs = 300 },
	} {
		f := ok
		mutate(&f)
		if _, err := f.Histogram(); !errors.Is(err, ErrInconsistent) {
			t.Errorf("%s: error %v, want ErrInconsistent", name, err)
		}
	}
}

// A call of 0 ns (the overhead correction can take a short one there) is a
// bin of its own and survives the round trip.
func TestJSONZeroDuration(t *testing.T) {
	h := NewHistogram()
	h.Record(0)
	h.Record(0)
	h.Record(500)
	doc := jsonOf(t, &Report{Functions: []FunctionStats{{Function: "tiny", Hist: h}}})
	got, err := doc.Functions[0].Histogram()
	if err != nil {
		t.Fatal(err)
	}
	if got.Count() != 3 || got.Min() != 0 || got.Percentile(50) != 0 || got.Max() != 500 {
		t.Errorf("count/min/p50/max = %d/%d/%d/%d, want 3/0/0/500", got.Count(), got.Min(), got.Percentile(50), got.Max())
	}
}

// The compact form is one line, and reads back as the indented one does.
func TestWriteCompactJSON(t *testing.T) {
	var indented, compact bytes.Buffer
	r := sampleReport()
	if err := WriteJSON(&indented, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteCompactJSON(&compact, r); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(compact.Bytes(), []byte("\n")); n != 1 || !bytes.HasSuffix(compact.Bytes(), []byte("\n")) {
		t.Errorf("compact JSON has %d newlines, want one at its end", n)
	}
	if compact.Len() >= indented.Len() {
		t.Errorf("compact JSON is %d bytes, the indented %d", compact.Len(), indented.Len())
	}
	a, err := ReadJSON(&indented)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadJSON(&compact)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("compact JSON reads back as\n%+v\nthe indented as\n%+v", b, a)
	}
}

// A document written from entries FunctionJSON made is WriteCompactJSON's,
// byte for byte: with no function, and with names JSON must escape or
// that hold the list's own key.
func TestWriteCompactJSONFrom(t *testing.T) {
	empty := sampleReport()
	empty.Functions = nil
	odd := sampleReport()
	odd.Functions[1].Function = `operator<"functions":[]`
	odd.Functions[0].ProbeOverheadNs, odd.Functions[0].ProbeKind = 40, "go-ret"
	odd.Functions[0].DidNotReturn = 2
	odd.OverheadCorrected = true
	odd.Warnings = append(odd.Warnings, `"functions":[]`)
	for name, r := range map[string]*Report{"sample": sampleReport(), "no functions": empty, "odd names": odd} {
		var want, got bytes.Buffer
		if err := WriteCompactJSON(&want, r); err != nil {
			t.Fatal(err)
		}
		err := WriteCompactJSONFrom(&got, r, func(w io.Writer, i int) error {
			b, err := FunctionJSON(r.Functions[i], r.OverheadCorrected)
			if err == nil {
				_, err = w.Write(b)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s:\n got %s\nwant %s", name, got.String(), want.String())
		}
	}
}
