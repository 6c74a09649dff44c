package agent

import (
	"math"

	"github.com/ulat-dev/ulat/buckets"
	"github.com/ulat-dev/ulat/report"
)

// nativeSchema is the schema of the native histograms /metrics serves and
// the scale of the exponential histograms pushed over OTLP: ulat's own
// slots (package buckets), so both are exact.
const nativeSchema = buckets.Schema

// overflowIndex is the native bucket the overflow slot's calls (over 1024
// s, beyond the layout) are put in: the first above 1024 s.
const overflowIndex = 64*10 + 1

// nativeBucket is how many calls a schema-6 bucket holds. Index is
// Prometheus's: bucket i holds the durations in (2^((i-1)/64), 2^(i/64)]
// seconds.
type nativeBucket struct {
	index int32
	count uint64
}

// nativeBuckets are a histogram's calls by schema-6 bucket, in increasing
// index order, and its calls of 0 ns, which belong to no bucket (the zero
// bucket's). This is the one conversion of ulat's slots to native buckets,
// which both exporters encode in their way.
func nativeBuckets(h *report.Histogram) (zero uint64, out []nativeBucket) {
	// Slots come in increasing order, and so do their indexes; the
	// overflow slot is last, and its index above all others.
	for _, s := range h.Slots() {
		if s.Slot == 0 {
			zero += s.Count
			continue
		}
		i, ok := buckets.Index(s.Slot)
		if !ok {
			i = overflowIndex
		}
		out = append(out, nativeBucket{i, s.Count})
	}
	return zero, out
}

// sumSeconds is a histogram's exact 128-bit sum of nanoseconds, in
// seconds.
func sumSeconds(h *report.Histogram) float64 {
	hi, lo := h.Sum()
	return (float64(hi)*math.Pow(2, 64) + float64(lo)) / 1e9
}
