package agent

import (
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ulat-dev/ulat/buckets"
	"github.com/ulat-dev/ulat/report"
)

// Classic buckets are powers of two of a second, from 2^-20 s (~0.95 µs)
// to 2^5 s (32 s): each is a boundary of the native schema-6 buckets, so
// their counts are exact sums of ulat's slots.
const (
	classicLowExp  = -20
	classicHighExp = 5
)

// nativeSchema is the native histograms' schema: ulat's own slots.
const nativeSchema = 6

// overflowIndex is the native bucket the overflow slot's calls (over 1024
// s, beyond the layout) are put in: the first above 1024 s.
const overflowIndex = 64*10 + 1

// histogramMetric is one function's histogram as a Prometheus histogram
// with both classic buckets (for text-format scrapers) and native ones of
// schema 6, which are ulat's slots themselves: exact, and downscaled by
// Prometheus to any lower schema exactly.
type histogramMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	h      *dto.Histogram
}

func (m histogramMetric) Desc() *prometheus.Desc { return m.desc }

func (m histogramMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Histogram = m.h
	return nil
}

// toDTO turns a histogram into Prometheus's, in seconds.
func toDTO(h *report.Histogram) *dto.Histogram {
	count := h.Count()
	hi, lo := h.Sum()
	sum := (float64(hi)*math.Pow(2, 64) + float64(lo)) / 1e9
	zeroThreshold := prometheus.DefNativeHistogramZeroThreshold
	out := &dto.Histogram{
		SampleCount:   &count,
		SampleSum:     &sum,
		Schema:        proto32(nativeSchema),
		ZeroThreshold: &zeroThreshold,
		ZeroCount:     proto64(0),
	}
	// Native buckets, by index, and the classic cumulative counts.
	native := map[int32]uint64{}
	classic := make([]uint64, classicHighExp-classicLowExp+1)
	for _, s := range h.Slots() {
		if s.Slot == 0 {
			*out.ZeroCount += s.Count
			for i := range classic {
				classic[i] += s.Count
			}
			continue
		}
		i, ok := buckets.Index(s.Slot)
		if !ok {
			native[overflowIndex] += s.Count
			continue
		}
		native[i] += s.Count
		for k := classicLowExp; k <= classicHighExp; k++ {
			if i <= int32(k*(1<<nativeSchema)) {
				classic[k-classicLowExp] += s.Count
			}
		}
	}
	for k := classicLowExp; k <= classicHighExp; k++ {
		c, le := classic[k-classicLowExp], math.Ldexp(1, k)
		out.Bucket = append(out.Bucket, &dto.Bucket{CumulativeCount: &c, UpperBound: &le})
	}
	out.PositiveSpan, out.PositiveDelta = spans(native)
	return out
}

// spans encodes native bucket counts as Prometheus's spans of consecutive
// indexes and count deltas.
func spans(counts map[int32]uint64) ([]*dto.BucketSpan, []int64) {
	idx := make([]int32, 0, len(counts))
	for i := range counts {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var (
		out    []*dto.BucketSpan
		deltas []int64
		prev   int64
		next   int32 // the index after the last span's end
	)
	for n, i := range idx {
		if n == 0 || i != next {
			offset := i
			if n > 0 {
				offset = i - next
			}
			out = append(out, &dto.BucketSpan{Offset: proto32(offset), Length: proto32u(0)})
		}
		*out[len(out)-1].Length++
		c := int64(counts[i])
		deltas = append(deltas, c-prev)
		prev, next = c, i+1
	}
	return out, deltas
}

func proto32(v int32) *int32    { return &v }
func proto32u(v uint32) *uint32 { return &v }
func proto64(v uint64) *uint64  { return &v }
