package report

import (
	"bytes"
	"errors"
	"testing"
)

func jsonOf(t *testing.T, r *Report) *JSONReport {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	doc, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestMerge(t *testing.T) {
	a, b, both := NewHistogram(), NewHistogram(), NewHistogram()
	for i := uint64(1); i <= 1000; i++ {
		a.Record(i * 1000)
		b.Record(i * 3000)
		both.Record(i * 1000)
		both.Record(i * 3000)
	}
	ra := &Report{Functions: []FunctionStats{{Function: "main.f", Binary: "/ci/1/app", Hist: a, DidNotReturn: 1, ProbeOverheadNs: 100}},
		Lost: Lost{DroppedEvents: 2}, Facts: Facts{Kernel: "6.18", UlatVersion: "v1", Binaries: []Binary{{"/ci/1/app", "aa"}}}}
	rb := &Report{Functions: []FunctionStats{
		{Function: "main.g", Binary: "/ci/2/app", Hist: NewHistogram()},
		{Function: "main.f", Binary: "/ci/2/app", Hist: b, DidNotReturn: 2, ProbeOverheadNs: 300},
	}, Lost: Lost{DroppedEvents: 3}, Facts: Facts{Kernel: "6.19", UlatVersion: "v1", Binaries: []Binary{{"/ci/2/app", "bb"}}}}
	m, err := Merge([]*JSONReport{jsonOf(t, ra), jsonOf(t, rb)})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Functions) != 2 || m.Functions[0].Function != "main.f" || m.Functions[1].Function != "main.g" {
		t.Fatalf("functions = %+v, want main.f (both runs, by base name) then main.g", m.Functions)
	}
	f := m.Functions[0]
	if f.Hist.Count() != 2000 || f.Hist.Mean() != both.Mean() || f.Hist.Percentile(90) != both.Percentile(90) {
		t.Errorf("merged count/mean/p90 = %d/%d/%d, want %d/%d/%d", f.Hist.Count(), f.Hist.Mean(), f.Hist.Percentile(90),
			both.Count(), both.Mean(), both.Percentile(90))
	}
	if f.DidNotReturn != 3 || f.ProbeOverheadNs != 200 || m.Lost.DroppedEvents != 5 {
		t.Errorf("did_not_return %d, overhead %d, dropped %d; want 3, 200 (mean), 5", f.DidNotReturn, f.ProbeOverheadNs, m.Lost.DroppedEvents)
	}
	if f.UncertaintyNs != 0 {
		t.Errorf("uncertainty %d, want 0: not overhead-corrected", f.UncertaintyNs)
	}
	if m.Facts.Runs != 2 || m.Facts.Kernel != "" || m.Facts.UlatVersion != "v1" || len(m.Facts.Binaries) != 2 {
		t.Errorf("run = %+v: want 2 runs, no kernel (they differ), ulat v1, both binaries", m.Facts)
	}
	// A merged report merges again, counting its runs.
	m2, err := Merge([]*JSONReport{m.toJSON(), jsonOf(t, ra)})
	if err != nil || m2.Facts.Runs != 3 || m2.Functions[0].Hist.Count() != 3000 {
		t.Errorf("merge of a merge: %v, runs %d", err, m2.Facts.Runs)
	}

	raw := jsonOf(t, rb)
	raw.OverheadCorrected = true
	if _, err := Merge([]*JSONReport{jsonOf(t, ra), raw}); !errors.Is(err, ErrMerge) {
		t.Errorf("corrected with raw: error %v, want ErrMerge", err)
	}
	if _, err := Merge(nil); !errors.Is(err, ErrMerge) {
		t.Errorf("no reports: error %v, want ErrMerge", err)
	}
}

// Merged runs corrected by different calibrations are as uncertain as half
// their range, or as their most uncertain run when that is more.
func TestMergeUncertainty(t *testing.T) {
	run := func(overhead, uncertainty uint64) *JSONReport {
		h := NewHistogram()
		h.Record(50_000)
		return jsonOf(t, &Report{OverheadCorrected: true, Functions: []FunctionStats{{Function: "main.f", Binary: "/app", Hist: h,
			ProbeOverheadNs: overhead, ProbeKind: "ret/stepped", UncertaintyNs: uncertainty}}})
	}
	for _, c := range []struct {
		runs []*JSONReport
		want uint64
	}{
		{[]*JSONReport{run(15_000, 40)}, 40},
		{[]*JSONReport{run(15_000, 40), run(18_601, 90), run(16_000, 20)}, 1801},
		{[]*JSONReport{run(15_000, 40), run(15_100, 90)}, 90},
	} {
		m, err := Merge(c.runs)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Functions[0].UncertaintyNs; got != c.want {
			t.Errorf("%d runs: uncertainty %d, want %d", len(c.runs), got, c.want)
		}
	}
}
