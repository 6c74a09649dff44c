// Package report turns recorded call durations into histograms, percentiles,
// terminal tables and a versioned JSON document.
package report

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/ulat-dev/ulat/buckets"
)

// Histogram records call durations in nanoseconds, in the buckets of
// package buckets (a Prometheus native histogram of schema 6, the layout of
// the in-kernel histograms too), so that percentiles are within 0.55% of
// the exact ones. Count, min, max, sum and the power-of-two buckets are
// kept exactly. The zero value and a nil *Histogram are valid empty
// histograms. A Histogram is not safe for concurrent use.
//
// A histogram is sparse while its calls fill at most SparseCells cells
// (cell: below), and dense past that: the agent keeps one per function and
// container, most with calls of a few distinct durations, and every scrape
// copies, merges and walks each of them; the 18 KB of slots each had
// apiece were a fifth of a scrape's CPU and most of its allocations.
type Histogram struct {
	// cells are the calls counted per pair of a slot of package buckets
	// and a power-of-two bucket, in increasing order of key, while data
	// is nil. A slot and a power-of-two bucket are counted together so
	// that Record looks up one sorted key, not two. Nothing is allocated
	// before the first call: most functions matched by a glob are never
	// called.
	cells []cell
	// data is the dense form, once the calls fill more than SparseCells
	// cells; Reset keeps it.
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

// cell is the calls of one slot of package buckets that lie in one
// power-of-two bucket: a slot straddling a power of two has two. Only the
// sums of cells per slot and per power-of-two bucket are ever read, so
// histograms rebuilt from those sums (fromParts) may pair them
// differently than the calls did.
type cell struct {
	key   uint32 // slot<<log2Bits | power-of-two bucket
	count uint64
}

const log2Bits = 7 // the power-of-two buckets' 65 indexes

func cellKey(slot, log2 int) uint32 { return uint32(slot)<<log2Bits | uint32(log2) }
func (c cell) slot() int            { return int(c.key >> log2Bits) }
func (c cell) log2() int            { return int(c.key & (1<<log2Bits - 1)) }

// SparseCells is how many cells a histogram holds before it turns dense.
// A sparse Record is a binary search of the cells, so it slows as they
// grow, while a dense one is an increment: measured (BenchmarkRecordCells,
// BenchmarkMergeCells), a sparse Record took 6.3 ns at 5 slots, 6.7 at 16,
// 9.5 at 128, 10.4 at 256 and 13 at 512, against 3.3-8 ns dense; a
// sparse Merge was 4x cheaper than a dense one at 128 cells (306 against
// 1,236 ns) and as dear at 512. At 128 a sparse Record stays within 2x of
// a dense one, and the cells take 2 KB against the dense 18 KB.
const SparseCells = 128

// HistogramDenseBytes is the memory of a dense histogram's counts (the
// most a Histogram takes, past SparseCells cells); Bytes is what one takes.
const HistogramDenseBytes = int(unsafe.Sizeof(histData{}))

// Bytes returns the memory h takes: its own and its counts'.
func (h *Histogram) Bytes() int {
	if h == nil {
		return 0
	}
	n := int(unsafe.Sizeof(*h)) + cap(h.cells)*int(unsafe.Sizeof(cell{}))
	if h.data != nil {
		n += HistogramDenseBytes
	}
	return n
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// Clone returns a copy of h that recording into h does not change, taking
// only the memory h uses.
func (h *Histogram) Clone() *Histogram {
	if h == nil {
		return NewHistogram()
	}
	c := *h
	if h.data != nil {
		d := *h.data
		c.data = &d
	} else if len(h.cells) > 0 {
		c.cells = slices.Clone(h.cells)
	} else {
		c.cells = nil
	}
	return &c
}

// Record adds one call of ns nanoseconds.
func (h *Histogram) Record(ns uint64) {
	s, l := buckets.Of(ns), bits.Len64(ns)
	if h.data != nil {
		h.data.slots[s]++
		h.data.log2[l]++
	} else if i, found := h.find(cellKey(s, l)); found {
		h.cells[i].count++
	} else {
		h.insertCell(i, cell{cellKey(s, l), 1})
	}
	if h.count == 0 || ns < h.min {
		h.min = ns
	}
	h.max = max(h.max, ns)
	h.count++
	h.addSum(0, ns)
}

// insertCell puts c at i in a sparse h's cells, turning h dense if that
// would be one cell too many.
func (h *Histogram) insertCell(i int, c cell) {
	if len(h.cells) == SparseCells {
		h.densify()
		h.data.add(c)
		return
	}
	if h.cells == nil {
		h.cells = make([]cell, 0, 4) // most functions fill a few
	}
	h.cells = slices.Insert(h.cells, i, c)
}

// find returns where key is or would be in h.cells.
func (h *Histogram) find(key uint32) (int, bool) {
	lo, hi := 0, len(h.cells)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h.cells[m].key < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(h.cells) && h.cells[lo].key == key
}

// densify moves a sparse h's cells into dense storage.
func (h *Histogram) densify() {
	h.data = &histData{}
	for _, c := range h.cells {
		h.data.add(c)
	}
	h.cells = nil
}

func (d *histData) add(c cell) {
	d.slots[c.slot()] += c.count
	d.log2[c.log2()] += c.count
}

func (h *Histogram) addSum(hi, lo uint64) {
	var carry uint64
	h.sumLo, carry = bits.Add64(h.sumLo, lo, 0)
	h.sumHi, _ = bits.Add64(h.sumHi, hi, carry)
}

// Merge adds all of o's calls to h. h stays sparse while the union of
// both's cells fits in SparseCells.
func (h *Histogram) Merge(o *Histogram) {
	if o.Count() == 0 {
		return
	}
	switch {
	case h.data != nil && o.data != nil:
		for i, c := range o.data.slots {
			h.data.slots[i] += c
		}
		for i, c := range o.data.log2 {
			h.data.log2[i] += c
		}
	case h.data != nil:
		for _, c := range o.cells {
			h.data.add(c)
		}
	case o.data != nil:
		d := *o.data
		for _, c := range h.cells {
			d.add(c)
		}
		h.data, h.cells = &d, nil
	default:
		h.mergeCells(o.cells)
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.count += o.count
	h.addSum(o.sumHi, o.sumLo)
}

// mergeCells adds cells (sorted, as h.cells are) to a sparse h, in place
// while h has the room, turning h dense if their union has more than
// SparseCells cells.
func (h *Histogram) mergeCells(cells []cell) {
	n := len(h.cells) + len(cells)
	for i, j := 0, 0; i < len(h.cells) && j < len(cells); {
		switch a, b := h.cells[i].key, cells[j].key; {
		case a < b:
			i++
		case a > b:
			j++
		default:
			n--
			i++
			j++
		}
	}
	if n > SparseCells {
		h.densify()
		for _, c := range cells {
			h.data.add(c)
		}
		return
	}
	// From the end, so that no cell of h is overwritten before it is read
	// (even when cells are h's own).
	i, j := len(h.cells)-1, len(cells)-1
	if n > cap(h.cells) {
		grown := make([]cell, n)
		copy(grown, h.cells)
		h.cells = grown
	}
	h.cells = h.cells[:n]
	for k := n - 1; j >= 0; k-- {
		switch {
		case i >= 0 && h.cells[i].key > cells[j].key:
			h.cells[k] = h.cells[i]
			i--
		case i >= 0 && h.cells[i].key == cells[j].key:
			h.cells[k] = cell{cells[j].key, h.cells[i].count + cells[j].count}
			i--
			j--
		default:
			h.cells[k] = cells[j]
			j--
		}
	}
}

// Reset empties h but keeps its storage, so that per-interval reporting does
// not reallocate.
func (h *Histogram) Reset() {
	cells, data := h.cells[:0], h.data
	*h = Histogram{cells: cells, data: data}
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
	if h.data == nil {
		for _, cl := range h.cells {
			if c += cl.count; c >= rank {
				return min(max(buckets.Representative(cl.slot()), h.min), h.max)
			}
		}
		return h.max
	}
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
	if h.data != nil {
		return h.data.slots[0]
	}
	var n uint64
	for _, c := range h.cells {
		if c.slot() != 0 {
			break
		}
		n += c.count
	}
	return n
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
	var log2 [65]uint64
	if h.data != nil {
		log2 = h.data.log2
	} else {
		for _, c := range h.cells {
			log2[c.log2()] += c.count
		}
	}
	first, last := -1, 0
	for i, c := range log2 {
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
		out = append(out, log2Bucket{LoNs: lo, HiNs: hi, Count: log2[i]})
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
	slot := func(s int, c uint64) Slot {
		lo, hi := buckets.Bounds(s)
		return Slot{Slot: s, LoNs: lo, HiNs: hi, ValueNs: buckets.Representative(s), Count: c}
	}
	if h.data == nil {
		out := make([]Slot, 0, len(h.cells))
		for _, c := range h.cells {
			if n := len(out); n > 0 && out[n-1].Slot == c.slot() {
				out[n-1].Count += c.count // the slot straddles a power of two
				continue
			}
			out = append(out, slot(c.slot(), c.count))
		}
		return out
	}
	var out []Slot
	for s, c := range h.data.slots {
		if c > 0 {
			out = append(out, slot(s, c))
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
	var nSlots, nBuckets uint64
	for _, s := range slots {
		if s.Slot < 0 || s.Slot >= buckets.Slots {
			return nil, fmt.Errorf("slot %d out of range: %w", s.Slot, ErrInconsistent)
		}
		nSlots += s.Count
	}
	var log2Counts [65]uint64
	for _, b := range log2 {
		i := bits.Len64(b.LoNs)
		if lo, hi := bucketBounds(i); lo != b.LoNs || hi != b.HiNs {
			return nil, fmt.Errorf("bucket [%d, %d) is not a power-of-two bucket: %w", b.LoNs, b.HiNs, ErrInconsistent)
		}
		log2Counts[i] += b.Count
		nBuckets += b.Count
	}
	if nSlots != count || nBuckets != count {
		return nil, fmt.Errorf("count %d, but %d in histogram buckets and %d in power-of-two buckets: %w", count, nSlots, nBuckets, ErrInconsistent)
	}
	if minNs > maxNs {
		return nil, fmt.Errorf("min %d > max %d: %w", minNs, maxNs, ErrInconsistent)
	}
	h.setCounts(slots, &log2Counts)
	if first, last := h.nonEmpty(); exact && (minNs < lowest(first) || maxNs > highest(last)) {
		return nil, fmt.Errorf("min %d or max %d outside the buckets' range: %w", minNs, maxNs, ErrInconsistent)
	}
	h.count, h.min, h.max, h.sumHi, h.sumLo = count, minNs, maxNs, sumHi, sumLo
	return h, nil
}

// setCounts gives an empty h the counts of slots (in any order, a slot
// perhaps more than once) and of the power-of-two buckets, which sum to
// the same: sparse when their cells fit, dense otherwise.
func (h *Histogram) setCounts(slots []slotCount, log2 *[65]uint64) {
	if cells, ok := pairCells(slots, *log2); ok {
		h.cells = cells
		return
	}
	h.data = &histData{log2: *log2}
	for _, s := range slots {
		h.data.slots[s.Slot] += s.Count
	}
}

// pairCells pairs the calls of slots with those of the power-of-two
// buckets, both in increasing order, into at most SparseCells cells: any
// pairing has the same sums per slot and per power-of-two bucket, which
// are all that is read. false: more cells than that, or sums that differ
// (overflowed).
func pairCells(slots []slotCount, log2 [65]uint64) ([]cell, bool) {
	sorted := slices.Clone(slots)
	slices.SortFunc(sorted, func(a, b slotCount) int { return cmp.Compare(a.Slot, b.Slot) })
	distinct := sorted[:0]
	for _, s := range sorted {
		switch n := len(distinct); {
		case s.Count == 0:
		case n > 0 && distinct[n-1].Slot == s.Slot:
			distinct[n-1].Count += s.Count
		default:
			distinct = append(distinct, s)
		}
	}
	next := func(j int) int {
		for j < len(log2) && log2[j] == 0 {
			j++
		}
		return j
	}
	// Each cell uses up a slot or a power-of-two bucket or both.
	most := len(distinct) - 1
	for _, c := range log2 {
		if c > 0 {
			most++
		}
	}
	cells := make([]cell, 0, max(0, min(most, SparseCells)))
	j := next(0)
	for _, s := range distinct {
		for rem := s.Count; rem > 0; {
			if j == len(log2) || len(cells) == SparseCells {
				return nil, false
			}
			take := min(rem, log2[j])
			cells = append(cells, cell{cellKey(s.Slot, j), take})
			rem, log2[j] = rem-take, log2[j]-take
			j = next(j)
		}
	}
	return cells, j == len(log2)
}

func (h *Histogram) nonEmpty() (first, last int) {
	if h.data == nil {
		if len(h.cells) == 0 {
			return -1, 0
		}
		return h.cells[0].slot(), h.cells[len(h.cells)-1].slot()
	}
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
	slots = slots[:min(len(slots), buckets.Slots)]
	n := 0
	for _, c := range slots {
		if c != 0 {
			n++
		}
	}
	if n > SparseCells {
		h.data = &histData{}
	} else if n > 0 {
		h.cells = make([]cell, 0, n)
	}
	for s, c := range slots {
		if c == 0 {
			continue
		}
		l := bits.Len64(min(max(buckets.Representative(s), minNs), maxNs))
		if h.data != nil {
			h.data.slots[s] += c
			h.data.log2[l] += c
		} else {
			h.cells = append(h.cells, cell{cellKey(s, l), c})
		}
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
