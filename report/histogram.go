// Package report turns recorded call durations into histograms, percentiles,
// terminal tables and a versioned JSON document.
package report

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

const (
	hdrLowest  = 1
	hdrHighest = 3_600_000_000_000 // one hour in ns
	hdrSigFigs = 2
)

// Histogram records call durations in nanoseconds. Percentiles come from an
// HDR histogram; count, min, max, sum and the power-of-two buckets are kept
// exactly. The zero value and a nil *Histogram are valid empty histograms.
// A Histogram is not safe for concurrent use.
type Histogram struct {
	// data is allocated on the first Record: an HDR histogram of this range is
	// tens of KiB, and most functions matched by a glob are never called.
	data  *histData
	count uint64
	min   uint64
	max   uint64
	sumHi uint64 // the sum is 128-bit so that no realistic input can overflow the mean
	sumLo uint64
}

type histData struct {
	hdr  *hdrhistogram.Histogram
	log2 [65]uint64 // index 0 holds value 0, index k holds [2^(k-1), 2^k)
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

func (h *Histogram) ensure() {
	if h.data == nil {
		h.data = &histData{hdr: hdrhistogram.New(hdrLowest, hdrHighest, hdrSigFigs)}
	}
}

// Record adds one call of ns nanoseconds. Values beyond the HDR range (one
// hour) are clamped for percentile purposes only; min, max, mean and buckets
// still see the real value.
func (h *Histogram) Record(ns uint64) {
	h.ensure()
	// RecordValue cannot fail: the value is clamped into the configured range.
	_ = h.data.hdr.RecordValue(int64(min(ns, hdrHighest)))
	h.data.log2[bits.Len64(ns)]++
	if h.count == 0 || ns < h.min {
		h.min = ns
	}
	h.max = max(h.max, ns)
	h.count++
	h.addSum(0, ns)
}

func (h *Histogram) addSum(hi, lo uint64) {
	var carry uint64
	h.sumLo, carry = bits.Add64(h.sumLo, lo, 0)
	h.sumHi, _ = bits.Add64(h.sumHi, hi, carry)
}

// Merge adds all of o's calls to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.Count() == 0 {
		return
	}
	h.ensure()
	h.data.hdr.Merge(o.data.hdr)
	for i, c := range o.data.log2 {
		h.data.log2[i] += c
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.count += o.count
	h.addSum(o.sumHi, o.sumLo)
}

// Reset empties h but keeps its storage, so that per-interval reporting does
// not reallocate.
func (h *Histogram) Reset() {
	data := h.data
	*h = Histogram{data: data}
	if data != nil {
		data.hdr.Reset()
		data.log2 = [65]uint64{}
	}
}

// Count returns the number of recorded calls.
func (h *Histogram) Count() uint64 {
	if h == nil {
		return 0
	}
	return h.count
}

// Min returns the exact smallest value, 0 when empty.
func (h *Histogram) Min() uint64 {
	if h == nil {
		return 0
	}
	return h.min
}

// Max returns the exact largest value, 0 when empty.
func (h *Histogram) Max() uint64 {
	if h == nil {
		return 0
	}
	return h.max
}

// Mean returns the exact mean (truncated), 0 when empty.
func (h *Histogram) Mean() uint64 {
	if h.Count() == 0 {
		return 0
	}
	// sum < count*2^64 always holds, so the quotient fits and Div64 cannot panic.
	q, _ := bits.Div64(h.sumHi, h.sumLo, h.count)
	return q
}

// Percentile returns the value below or at which p percent of calls fall,
// p in (0,100]. HDR's answer is the upper edge of its bin, which can lie past
// the real extremes, so it is clamped into [Min, Max]. Returns 0 when empty.
func (h *Histogram) Percentile(p float64) uint64 {
	if h.Count() == 0 {
		return 0
	}
	if math.IsNaN(p) || p <= 0 {
		return h.min
	}
	v := uint64(h.data.hdr.ValueAtQuantile(min(p, 100)))
	return min(max(v, h.min), h.max)
}

// Bucket is one power-of-two histogram bucket covering [LoNs, HiNs).
type Bucket struct{ LoNs, HiNs, Count uint64 }

// Buckets returns the power-of-two buckets from the first to the last
// non-empty one, with the empty ones between them. Their counts sum to Count.
// The bucket holding values from 2^63 up reports HiNs as math.MaxUint64.
// Returns nil when empty.
func (h *Histogram) Buckets() []Bucket {
	if h.Count() == 0 {
		return nil
	}
	first, last := -1, 0
	for i, c := range h.data.log2 {
		if c != 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	out := make([]Bucket, 0, last-first+1)
	for i := first; i <= last; i++ {
		lo, hi := bucketBounds(i)
		out = append(out, Bucket{LoNs: lo, HiNs: hi, Count: h.data.log2[i]})
	}
	return out
}

func bucketBounds(i int) (lo, hi uint64) {
	switch {
	case i == 0:
		return 0, 1
	case i == 64:
		return 1 << 63, math.MaxUint64
	default:
		return 1 << (i - 1), 1 << i
	}
}

// Bin is one non-empty bin of the HDR histogram: Count calls whose
// durations are equivalent to ValueNs at the histogram's precision.
type Bin struct{ ValueNs, Count uint64 }

// Bins returns the non-empty HDR bins in increasing order, each named by its
// lowest equivalent value: with Buckets, Min, Max, Count and Sum they are
// everything needed to rebuild h exactly (HistogramFromParts), so that
// histograms written to JSON can be merged and compared later.
func (h *Histogram) Bins() []Bin {
	ranges := h.BinRanges()
	if ranges == nil {
		return nil
	}
	out := make([]Bin, len(ranges))
	for i, r := range ranges {
		out[i] = Bin{ValueNs: r.LoNs, Count: r.Count}
	}
	return out
}

// BinRange is one non-empty HDR bin with its whole range of equivalent
// values, [LoNs, HiNs] (both inclusive).
type BinRange struct{ LoNs, HiNs, Count uint64 }

// BinRanges returns the non-empty HDR bins in increasing order with both
// edges. Percentile(p) is the HiNs of the bin that holds the call of rank
// p/100*Count (rounded to nearest, at least 1), clamped into [Min, Max]; so
// a comparison can recompute percentiles of resampled bin counts exactly as
// Percentile would.
func (h *Histogram) BinRanges() []BinRange {
	if h.Count() == 0 {
		return nil
	}
	var out []BinRange
	for _, b := range h.data.hdr.Distribution() {
		if b.Count > 0 {
			out = append(out, BinRange{LoNs: uint64(b.From), HiNs: uint64(b.To), Count: uint64(b.Count)})
		}
	}
	return out
}

// Sum returns the exact sum of all recorded values as a 128-bit number.
func (h *Histogram) Sum() (hi, lo uint64) {
	if h == nil {
		return 0, 0
	}
	return h.sumHi, h.sumLo
}

// ErrInconsistent is returned (wrapped) by HistogramFromParts when the parts
// do not describe one histogram.
var ErrInconsistent = errors.New("inconsistent histogram")

// HistogramFromParts rebuilds a histogram from what Bins, Buckets, Min, Max
// and Sum returned, checking that the parts agree with count.
func HistogramFromParts(count, minNs, maxNs, sumHi, sumLo uint64, buckets []Bucket, bins []Bin) (*Histogram, error) {
	h := NewHistogram()
	if count == 0 {
		if len(bins) != 0 || len(buckets) != 0 {
			return nil, fmt.Errorf("count is 0 but there are bins: %w", ErrInconsistent)
		}
		return h, nil
	}
	h.ensure()
	var nBins, nBuckets uint64
	for _, b := range bins {
		// 0 is a bin (a call the overhead correction took to 0 ns).
		if b.ValueNs > hdrHighest {
			return nil, fmt.Errorf("bin value %d ns out of range: %w", b.ValueNs, ErrInconsistent)
		}
		if err := h.data.hdr.RecordValues(int64(b.ValueNs), int64(b.Count)); err != nil {
			return nil, fmt.Errorf("bin value %d ns: %w", b.ValueNs, ErrInconsistent)
		}
		nBins += b.Count
	}
	for _, b := range buckets {
		i := bits.Len64(b.LoNs)
		if lo, hi := bucketBounds(i); lo != b.LoNs || hi != b.HiNs {
			return nil, fmt.Errorf("bucket [%d, %d) is not a power-of-two bucket: %w", b.LoNs, b.HiNs, ErrInconsistent)
		}
		h.data.log2[i] += b.Count
		nBuckets += b.Count
	}
	if nBins != count || nBuckets != count {
		return nil, fmt.Errorf("count %d, but %d in bins and %d in buckets: %w", count, nBins, nBuckets, ErrInconsistent)
	}
	if minNs > maxNs {
		return nil, fmt.Errorf("min %d > max %d: %w", minNs, maxNs, ErrInconsistent)
	}
	h.count, h.min, h.max, h.sumHi, h.sumLo = count, minNs, maxNs, sumHi, sumLo
	return h, nil
}

// HistogramFromCounts builds a histogram from counts of calls in ranges,
// such as an in-kernel histogram's buckets, and the calls' exact min, max
// and sum. Each range's calls are recorded at its midpoint (clamped to
// [minNs, maxNs]), so percentiles are within half a range's width.
func HistogramFromCounts(ranges []Bucket, minNs, maxNs, sumHi, sumLo uint64) *Histogram {
	h := NewHistogram()
	for _, r := range ranges {
		if r.Count == 0 {
			continue
		}
		h.ensure()
		v := min(max(r.LoNs+(r.HiNs-r.LoNs)/2, minNs), maxNs)
		_ = h.data.hdr.RecordValues(int64(min(v, hdrHighest)), int64(r.Count))
		h.data.log2[bits.Len64(v)] += r.Count
		h.count += r.Count
	}
	if h.count > 0 {
		h.min, h.max, h.sumHi, h.sumLo = minNs, maxNs, sumHi, sumLo
	}
	return h
}
