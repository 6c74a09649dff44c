package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
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
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Small values are exact in the HDR histogram (or clamped to the exact max).
	want := &JSONReport{
		Schema:    1,
		ElapsedNs: 5_000_000_000,
		Functions: []JSONFunction{
			{
				Function: "main.work", Binary: "/abs/path/server",
				Count: 3, MinNs: 100, MeanNs: 200, P50Ns: 200, P90Ns: 300, P99Ns: 300, MaxNs: 300,
				Buckets: []JSONBucket{{64, 128, 1}, {128, 256, 1}, {256, 512, 1}},
			},
			{Function: "main.idle", Binary: "/abs/path/server", Buckets: []JSONBucket{}},
		},
		Lost:            JSONLost{DroppedEvents: 3, UnpairedExits: 1},
		Warnings:        []string{"main.inl: inlined into all callers, cannot be timed"},
		ProbeOverheadNs: map[string]uint64{},
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
	if !strings.HasPrefix(out, "{\n  \"schema\": 1,\n") || !strings.HasSuffix(out, "}\n") {
		t.Errorf("want 2-space indented object ending in newline, got:\n%s", out)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	hasKeys(t, "top level", doc, "schema", "elapsed_ns", "functions", "lost", "warnings")
	hasKeys(t, "lost", doc["lost"].(map[string]any), "dropped_events", "unpaired_exits")
	fns := doc["functions"].([]any)
	work := fns[0].(map[string]any)
	hasKeys(t, "function", work, "function", "binary", "count", "min_ns", "mean_ns",
		"p50_ns", "p90_ns", "p99_ns", "max_ns", "buckets")
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
