package agent

import (
	"math"
	"testing"

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
	m := toDTO(h)
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
