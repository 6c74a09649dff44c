package agent

import (
	"bytes"
	"math"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/buckets"
	"github.com/ulat-dev/ulat/report"
)

// The classic buckets count exactly the calls at or below their bound, and
// the native ones decode back to each call's schema-6 bucket.
func TestToDTOIsExact(t *testing.T) {
	values := []uint64{0, 0, 1, 7, 92, 953, 954, 999_999, 1_000_000, 1_000_001, 1_000_000_000, 1_000_000_001, 3_000_000_000, 2_000_000_000_000}
	h := report.NewHistogram()
	for _, v := range values {
		h.Record(v)
	}
	m := summarize(h).toDTO()
	if m.GetSampleCount() != uint64(len(values)) {
		t.Errorf("count %d, want %d", m.GetSampleCount(), len(values))
	}
	var sum float64
	for _, v := range values {
		sum += float64(v) / 1e9
	}
	if math.Abs(m.GetSampleSum()-sum) > 1e-9*sum {
		t.Errorf("sum %v s, want %v", m.GetSampleSum(), sum)
	}
	for _, b := range m.GetBucket() {
		var want uint64
		for _, v := range values {
			if float64(v) <= b.GetUpperBound()*1e9 {
				want++
			}
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("le %g s: %d calls, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if m.GetSchema() != 6 || m.GetZeroCount() != 2 {
		t.Errorf("schema %d, zero count %d; want 6 and 2", m.GetSchema(), m.GetZeroCount())
	}
	got := nativeOf(m)
	want := map[int32]uint64{}
	for _, v := range values {
		if v == 0 {
			continue
		}
		i, ok := buckets.Index(buckets.Of(v))
		if !ok {
			i = overflowIndex
		}
		// The bucket's bounds in seconds hold the value.
		if lo, hi := math.Exp2(float64(i-1)/64), math.Exp2(float64(i)/64); ok && !(float64(v)/1e9 > lo*(1-1e-12) && float64(v)/1e9 <= hi*(1+1e-12)) {
			t.Errorf("%d ns in native bucket %d, (%g, %g] s", v, i, lo, hi)
		}
		want[i]++
	}
	for i, c := range want {
		if got[i] != c {
			t.Errorf("native bucket %d: %d calls, want %d", i, got[i], c)
		}
	}
	if len(got) != len(want) {
		t.Errorf("native buckets %v, want %v", got, want)
	}
}

// A series' histogram is built once while it has no new call, anew after
// one, and let go once the series is no longer served; its labels leave
// out those with no value.
func TestDTOCache(t *testing.T) {
	var c dtoCache
	h := report.NewHistogram()
	h.Record(1500)
	se := &series{target: Target{Name: "t", Labels: map[string]string{"team": "a"}}, binary: "/bin/x", function: "f", where: where{container: "c1"}, hist: h, started: time.Unix(1, 0)}
	other := &series{target: Target{Name: "t"}, binary: "/bin/x", function: "g", hist: report.NewHistogram(), started: time.Unix(1, 0)}

	first := c.served([]*series{se, other})
	var labels []string
	for _, l := range first[0].labels {
		labels = append(labels, l.GetName()+"="+l.GetValue())
	}
	if want := []string{"binary=/bin/x", "container=c1", "function=f", "target=t", "team=a"}; !slices.Equal(labels, want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
	again := c.served([]*series{se, other})
	if first[0] != again[0] || first[1] != again[1] {
		t.Errorf("a series without calls since was built anew")
	}
	h.Record(1500) // same bucket, same min and max: only count and sum tell
	after := c.served([]*series{se})
	if after[0] == first[0] || after[0].histogram().GetSampleCount() != 2 || first[0].histogram().GetSampleCount() != 1 {
		t.Errorf("after a call: count %d (the one served before: %d), want a new histogram of count 2", after[0].histogram().GetSampleCount(), first[0].histogram().GetSampleCount())
	}
	if len(c.byName) != 1 {
		t.Errorf("%d series kept, want the 1 served last", len(c.byName))
	}
	restarted := *se
	restarted.started = time.Unix(2, 0)
	if r := c.served([]*series{&restarted}); r[0].histogram() == after[0].histogram() {
		t.Errorf("a series whose sessions changed got the old histogram")
	}
	relabelled := *se
	relabelled.target.Labels = map[string]string{"team": "b"}
	if r := c.served([]*series{&relabelled}); r[0].labels[4].GetValue() != "b" {
		t.Errorf("after a reload that changed a static label: %v", r[0].labels)
	}
}

// /report.json is what ulat trace writes of the agent's report, byte for
// byte, from its entry cache too; a function's entry is made anew after a
// call and after one of its sessions is replaced, and an entry not served
// is let go.
func TestReportEntries(t *testing.T) {
	a, snaps := benchAgent(nil)
	snaps = snaps[:2]
	// One function in both files' snapshots: its entry merges the two.
	snaps[1].r.Functions[0].Binary = snaps[0].exe
	snaps[1].r.Functions[0].Function = snaps[0].r.Functions[0].Function
	check := func(what string) {
		t.Helper()
		var got, want bytes.Buffer
		if err := a.writeReport(&got, snaps); err != nil {
			t.Fatal(err)
		}
		r, _ := a.report(snaps)
		r.Elapsed = 0
		if err := report.WriteCompactJSON(&want, r); err != nil {
			t.Fatal(err)
		}
		// Elapsed is the agent's, a moment apart in the two.
		elapsed := regexp.MustCompile(`"elapsed_ns":\d+`)
		if g := elapsed.ReplaceAllString(got.String(), `"elapsed_ns":0`); g != want.String() {
			t.Errorf("%s: /report.json is not WriteCompactJSON's:\n got %.300s\nwant %.300s", what, g, want.String())
		}
	}
	check("first")
	first := a.entries.byKey
	if len(first) != 399 {
		t.Fatalf("%d entries kept, want 399 (400 functions, one in both files)", len(first))
	}
	check("from the cache")
	merged := snaps[0].r.Functions[0]
	entry := func() []byte {
		r, spans := a.report(snaps)
		entries, err := a.entries.of(r, spans)
		if err != nil {
			t.Fatal(err)
		}
		if r.Functions[0].Function != merged.Function {
			t.Fatalf("first function %s, want %s", r.Functions[0].Function, merged.Function)
		}
		return entries[0]
	}
	before := entry()
	if again := entry(); &again[0] != &before[0] {
		t.Errorf("an entry without calls since was made anew")
	}
	snaps[1].r.Functions[0].Hist.Record(2_000_000)
	afterCall := entry()
	if bytes.Equal(afterCall, before) {
		t.Errorf("after a call, the entry is the same: %s", afterCall)
	}
	check("after a call")
	snaps[1].started = snaps[1].started.Add(time.Hour) // a session replaced: the same counts, from another
	if replaced := entry(); &replaced[0] == &afterCall[0] {
		t.Errorf("a function whose session was replaced kept its entry")
	}
	snaps = snaps[:1]
	entry()
	if len(a.entries.byKey) != 200 {
		t.Errorf("%d entries kept, want the 200 served last", len(a.entries.byKey))
	}
}
