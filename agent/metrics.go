package agent

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ulat-dev/ulat/report"
)

// Classic buckets are powers of two of a second, from 2^-20 s (~0.95 µs)
// to 2^5 s (32 s): each is a boundary of the native schema-6 buckets, so
// their counts are exact sums of ulat's slots.
const (
	classicLowExp  = -20
	classicHighExp = 5
)

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

// dtoCache holds the Prometheus histogram of each series served, keyed
// by what changes with every call: at rest, and for the many functions a
// glob matches that are rarely called, a scrape reuses them rather than
// building a thousand histograms anew. Each scrape keeps only the series
// it served.
type dtoCache struct {
	mu    sync.Mutex
	byKey map[dtoKey]*dto.Histogram
}

// dtoKey is a series and its histogram's state: counts only grow while
// its sessions run, and a session that ends or starts moves started or
// the totals, so the same key is the same histogram.
type dtoKey struct {
	target, binary, function string
	where                    where
	started                  time.Time
	count, sumHi, sumLo      uint64
	min, max                 uint64
}

// histograms returns the Prometheus histogram of each series, in order.
func (c *dtoCache) histograms(served []*series) []*dto.Histogram {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*dto.Histogram, len(served))
	next := make(map[dtoKey]*dto.Histogram, len(served))
	for i, se := range served {
		hi, lo := se.hist.Sum()
		k := dtoKey{se.target.Name, se.binary, se.function, se.where, se.started, se.hist.Count(), hi, lo, se.hist.Min(), se.hist.Max()}
		h := c.byKey[k]
		if h == nil {
			h = toDTO(se.hist)
		}
		out[i], next[k] = h, h
	}
	c.byKey = next
	return out
}

// toDTO turns a histogram into Prometheus's, in seconds. The encoders
// only read it, so one can be served by many scrapes.
func toDTO(h *report.Histogram) *dto.Histogram {
	count := h.Count()
	sum := sumSeconds(h)
	zeroThreshold := prometheus.DefNativeHistogramZeroThreshold
	zero, native := nativeBuckets(h)
	out := &dto.Histogram{
		SampleCount:   &count,
		SampleSum:     &sum,
		Schema:        proto32(nativeSchema),
		ZeroThreshold: &zeroThreshold,
		ZeroCount:     &zero,
	}
	// The classic cumulative counts: calls of 0 ns are below every bound,
	// and a native bucket is at or below 2^k s when its index is at most
	// k*64.
	classic := make([]uint64, classicHighExp-classicLowExp+1)
	for i := range classic {
		classic[i] = zero
	}
	for _, b := range native {
		for k := classicLowExp; k <= classicHighExp; k++ {
			if b.index <= int32(k*(1<<nativeSchema)) {
				classic[k-classicLowExp] += b.count
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

// spans encodes native buckets, in increasing index order, as
// Prometheus's spans of consecutive indexes and count deltas.
func spans(native []nativeBucket) ([]*dto.BucketSpan, []int64) {
	var (
		out    []*dto.BucketSpan
		deltas []int64
		prev   int64
		next   int32 // the index after the last span's end
	)
	for n, b := range native {
		if n == 0 || b.index != next {
			offset := b.index
			if n > 0 {
				offset = b.index - next
			}
			out = append(out, &dto.BucketSpan{Offset: proto32(offset), Length: proto32u(0)})
		}
		*out[len(out)-1].Length++
		c := int64(b.count)
		deltas = append(deltas, c-prev)
		prev, next = c, b.index+1
	}
	return out, deltas
}

func proto32(v int32) *int32    { return &v }
func proto32u(v uint32) *uint32 { return &v }
