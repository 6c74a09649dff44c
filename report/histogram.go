// Package report turns recorded call durations into histograms, percentiles,
// terminal tables and a versioned JSON document.
package report

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/ulat-dev/ulat/buckets"
)

// Histogram records call durations in nanoseconds, in the buckets of
// package buckets (a Prometheus native histogram of schema 6, the layout of
// the in-kernel histograms too), so that percentiles are within 0.55% of
// the exact ones. Count, min, max, sum and the power-of-two buckets are
// kept exactly. The zero value and a nil *Histogram are valid empty
// histograms. A Histogram is not safe for concurrent use.
type Histogram struct {
	// data is allocated on the first Record: the slots are 17.9 KB, and
	// most functions matched by a glob are never called.
	data  *histData
	count uint64
	min   uint64
	max   uint64
	sumHi uint64 // the sum is 128-bit so that no realistic input can overflow the mean
	sumLo uint64
}

type histData struct {
	slots [buckets.Slots]uint64
	log2  [65]uint64 // index 0 holds value 0, index k holds [2^(k-1), 2^k)
}

// HistogramBytes is the memory a Histogram takes once it has a call.
const HistogramBytes = int(unsafe.Sizeof(histData{}))

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

func (h *Histogram) ensure() {
	if h.data == nil {
		h.data = &histData{}
	}
}

// Record adds one call of ns nanoseconds.
func (h *Histogram) Record(ns uint64) {
	h.ensure()
	h.data.slots[buckets.Of(ns)]++
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
	for i, c := range o.data.slots {
		h.data.slots[i] += c
	}
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
		*data = histData{}
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

// PercentileRank is the rank (1-based, in increasing order) of the call
// that is the p-th percentile of n calls: the nearest rank, ceil(p/100*n),
// within [1, n].
func PercentileRank(p float64, n uint64) uint64 {
	r := math.Ceil(p / 100 * float64(n))
	if !(r >= 1) {
		return 1
	}
	if r >= float64(n) {
		return n
	}
	return uint64(r)
}

// Percentile returns the p-th percentile (p in (0,100]) of the calls: the
// representative of the slot holding the call of rank PercentileRank,
// within 0.55% of that call's duration, clamped into the exact [Min, Max]
// (so the lowest and highest ranks are exact). Returns 0 when empty.
func (h *Histogram) Percentile(p float64) uint64 {
	if h.Count() == 0 {
		return 0
	}
	rank := PercentileRank(p, h.count)
	switch rank {
	case 1:
		return h.min
	case h.count:
		return h.max
	}
	var c uint64
	for s, n := range h.data.slots {
		if c += n; c >= rank {
			return min(max(buckets.Representative(s), h.min), h.max)
		}
	}
	return h.max
}

// zeroCount returns the number of calls of 0 ns: with the probes' cost
// subtracted, calls measured at or below that cost.
func (h *Histogram) zeroCount() uint64 {
	if h.Count() == 0 {
		return 0
	}
	return h.data.slots[0]
}

// log2Bucket is one power-of-two histogram bucket covering [LoNs, HiNs).
type log2Bucket struct{ LoNs, HiNs, Count uint64 }

// log2Buckets returns the power-of-two buckets from the first to the last
// non-empty one, with the empty ones between them. Their counts sum to Count.
// The bucket holding values from 2^63 up reports HiNs as math.MaxUint64.
// Returns nil when empty.
func (h *Histogram) log2Buckets() []log2Bucket {
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
	out := make([]log2Bucket, 0, last-first+1)
	for i := first; i <= last; i++ {
		lo, hi := bucketBounds(i)
		out = append(out, log2Bucket{LoNs: lo, HiNs: hi, Count: h.data.log2[i]})
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

// Slot is one non-empty slot of package buckets: Count calls in
// [LoNs, HiNs] (both inclusive), whose percentiles are reported as
// ValueNs (buckets.Representative).
type Slot struct {
	Slot                int
	LoNs, HiNs, ValueNs uint64
	Count               uint64
}

// Slots returns the non-empty slots in increasing order: with log2Buckets,
// Min, Max, Count and Sum they are everything needed to rebuild h exactly
// (histogramFromParts), so that histograms written to JSON can be merged
// and compared later, and exported as Prometheus native histograms.
// Percentile(p) is the ValueNs of the slot holding the call of rank
// PercentileRank(p, Count), clamped into [Min, Max], so a comparison can
// recompute percentiles of resampled slot counts exactly as Percentile
// would.
func (h *Histogram) Slots() []Slot {
	if h.Count() == 0 {
		return nil
	}
	var out []Slot
	for s, c := range h.data.slots {
		if c > 0 {
			lo, hi := buckets.Bounds(s)
			out = append(out, Slot{Slot: s, LoNs: lo, HiNs: hi, ValueNs: buckets.Representative(s), Count: c})
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

// ErrInconsistent is returned (wrapped) by JSONFunction.Histogram when the
// parts a report holds do not describe one histogram.
var ErrInconsistent = errors.New("inconsistent histogram")

// slotCount is how many calls a slot of package buckets holds.
type slotCount struct {
	Slot  int
	Count uint64
}

// histogramFromParts rebuilds a histogram from what Slots, log2Buckets,
// Min, Max and Sum returned, checking that the parts agree with count.
func histogramFromParts(count, minNs, maxNs, sumHi, sumLo uint64, log2 []log2Bucket, slots []slotCount) (*Histogram, error) {
	return fromParts(count, minNs, maxNs, sumHi, sumLo, log2, slots, true)
}

// fromParts is histogramFromParts; exact says the slots are exact, so the
// extremes must lie in the first and last.
func fromParts(count, minNs, maxNs, sumHi, sumLo uint64, log2 []log2Bucket, slots []slotCount, exact bool) (*Histogram, error) {
	h := NewHistogram()
	if count == 0 {
		if len(slots) != 0 || len(log2) != 0 {
			return nil, fmt.Errorf("count is 0 but there are buckets: %w", ErrInconsistent)
		}
		return h, nil
	}
	h.ensure()
	var nSlots, nBuckets uint64
	for _, s := range slots {
		if s.Slot < 0 || s.Slot >= buckets.Slots {
			return nil, fmt.Errorf("slot %d out of range: %w", s.Slot, ErrInconsistent)
		}
		h.data.slots[s.Slot] += s.Count
		nSlots += s.Count
	}
	for _, b := range log2 {
		i := bits.Len64(b.LoNs)
		if lo, hi := bucketBounds(i); lo != b.LoNs || hi != b.HiNs {
			return nil, fmt.Errorf("bucket [%d, %d) is not a power-of-two bucket: %w", b.LoNs, b.HiNs, ErrInconsistent)
		}
		h.data.log2[i] += b.Count
		nBuckets += b.Count
	}
	if nSlots != count || nBuckets != count {
		return nil, fmt.Errorf("count %d, but %d in histogram buckets and %d in power-of-two buckets: %w", count, nSlots, nBuckets, ErrInconsistent)
	}
	if minNs > maxNs {
		return nil, fmt.Errorf("min %d > max %d: %w", minNs, maxNs, ErrInconsistent)
	}
	if first, last := h.nonEmpty(); exact && (minNs < lowest(first) || maxNs > highest(last)) {
		return nil, fmt.Errorf("min %d or max %d outside the buckets' range: %w", minNs, maxNs, ErrInconsistent)
	}
	h.count, h.min, h.max, h.sumHi, h.sumLo = count, minNs, maxNs, sumHi, sumLo
	return h, nil
}

func (h *Histogram) nonEmpty() (first, last int) {
	first = -1
	for s, c := range h.data.slots {
		if c > 0 {
			if first < 0 {
				first = s
			}
			last = s
		}
	}
	return first, last
}

func lowest(s int) uint64  { lo, _ := buckets.Bounds(s); return lo }
func highest(s int) uint64 { _, hi := buckets.Bounds(s); return hi }

// HistogramFromSlots builds a histogram from an in-kernel histogram's slot
// counts (package buckets' layout) and the calls' exact min, max and sum.
// The power-of-two buckets count each slot's calls at its representative.
func HistogramFromSlots(slots []uint64, minNs, maxNs, sumHi, sumLo uint64) *Histogram {
	h := NewHistogram()
	for s, c := range slots {
		if c == 0 || s >= buckets.Slots {
			continue
		}
		h.ensure()
		h.data.slots[s] += c
		v := min(max(buckets.Representative(s), minNs), maxNs)
		h.data.log2[bits.Len64(v)] += c
		h.count += c
	}
	if h.count > 0 {
		h.min, h.max, h.sumHi, h.sumLo = minNs, maxNs, sumHi, sumLo
	}
	return h
}

// bin is calls known only by a value that stands for them and their count.
type bin struct{ ValueNs, Count uint64 }

// histogramFromBins builds a histogram from bins (the HDR bins of reports
// of schema 1, each named by its lowest value, 1% wide) and the calls'
// exact min, max and sum: each bin's calls go to the slot of its value, so
// its percentiles are within about 1.5% of the exact ones.
func histogramFromBins(count, minNs, maxNs, sumHi, sumLo uint64, log2 []log2Bucket, bins []bin) (*Histogram, error) {
	slots := make([]slotCount, len(bins))
	for i, b := range bins {
		slots[i] = slotCount{Slot: buckets.Of(b.ValueNs), Count: b.Count}
	}
	return fromParts(count, minNs, maxNs, sumHi, sumLo, log2, slots, false)
}
