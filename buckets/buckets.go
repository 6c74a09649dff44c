// Package buckets is the one histogram layout of ulat, shared by the
// in-kernel histograms, the user-space ones and the JSON reports: the
// buckets of a Prometheus native histogram (an OpenTelemetry exponential
// histogram) of schema 6 over durations in seconds.
//
// At schema s, bucket i holds the durations v with 2^((i-1)/2^s) < v <=
// 2^(i/2^s) seconds. Each schema-6 bucket is 1.09% wide, so a bucket's
// geometric midpoint is within 0.55% of every duration in it: percentiles
// read from these buckets are within 0.55% of the exact ones. Any lower
// schema's buckets are unions of whole schema-6 buckets (bucket i at
// schema s-1 holds buckets 2i-1 and 2i at schema s), so an exporter can
// downscale them exactly.
//
// Durations are whole nanoseconds, so a bucket is the integers in
// (floor(upper(i-1)), floor(upper(i))]; below ~92 ns many buckets hold no
// integer and get no slot. The slots are:
//
//	0            the zero bucket: a duration of 0 (after the probe-cost
//	             correction: a call measured below the probes' own cost)
//	1 .. Slots-2 the non-empty schema-6 buckets, from the one holding 1 ns
//	             to the one ending at 2^10 s (17 min)
//	Slots-1      everything longer
package buckets

import (
	"math"
	"math/big"
	"math/bits"
)

// Schema is the Prometheus native histogram schema of the buckets.
const Schema = 6

// Slots is the number of slots. bpf/ulat.h's ULAT_HIST_SLOTS must equal it
// (a test checks).
const Slots = 2229

// lastIndex is the schema-6 index of the last bucket before the overflow
// slot: 2^(lastIndex/64) s = 1024 s.
const lastIndex = 640

// cellBits and Cells describe the table that finds a slot in a few
// instructions (the BPF program uses it; see Of): a duration's power of two
// is split into 2^cellBits equal cells, each narrower than a bucket, so
// that a cell holds at most one bucket boundary. Durations below
// 2^cellBits ns have a cell each.
const (
	cellBits = 7
	maxExp   = 40 // durations from 2^maxExp ns go to the overflow slot directly
	Cells    = 1<<cellBits + (maxExp-cellBits)<<cellBits
)

var (
	upper    [Slots]uint64 // inclusive upper bound of each slot, in ns
	index    [Slots]int32  // schema-6 bucket index of each slot (not for 0 and Slots-1)
	cellSlot [Cells]uint16 // the slot of each cell's first duration
)

func init() {
	n := 1
	var prev uint64
	for i := firstIndex(); i <= lastIndex; i++ {
		u := floorUpper(i)
		if u == prev {
			continue // holds no whole number of ns
		}
		if n >= Slots-1 {
			panic("buckets: Slots is too small")
		}
		upper[n], index[n] = u, int32(i)
		prev = u
		n++
	}
	if n != Slots-1 {
		panic("buckets: Slots is too large")
	}
	upper[Slots-1] = math.MaxUint64
	s := 0
	for c := 0; c < Cells; c++ {
		lo, _ := cellBounds(c)
		for upper[s] < lo {
			s++
		}
		cellSlot[c] = uint16(s)
	}
}

// firstIndex is the schema-6 index of the bucket holding 1 ns.
func firstIndex() int {
	i := int(math.Floor(64*math.Log2(1e-9))) - 2
	for floorUpper(i) < 1 {
		i++
	}
	return i
}

// floorUpper returns floor(1e9 * 2^(i/64)): the largest whole number of ns
// in bucket i. The float64 estimate is checked with integers where it is
// close to a whole number, so that the boundaries are exact on every
// machine (compilers may fuse float operations differently).
func floorUpper(i int) uint64 {
	x := 1e9 * math.Exp2(float64(i)/64)
	u := uint64(math.Floor(x))
	if f := x - math.Floor(x); f < 1e-3 || f > 1-1e-3 {
		for u > 0 && !atMost(u, i) {
			u--
		}
		for atMost(u+1, i) {
			u++
		}
	}
	return u
}

// atMost tells whether u <= 1e9 * 2^(i/64), exactly: u^64 <= 1e9^64 * 2^i.
func atMost(u uint64, i int) bool {
	l := new(big.Int).Exp(new(big.Int).SetUint64(u), big.NewInt(64), nil)
	r := new(big.Int).Exp(big.NewInt(1e9), big.NewInt(64), nil)
	if i >= 0 {
		r.Lsh(r, uint(i))
	} else {
		l.Lsh(l, uint(-i))
	}
	return l.Cmp(r) <= 0
}

// cellBounds returns the durations [lo, hi) of cell c.
func cellBounds(c int) (lo, hi uint64) {
	const n = 1 << cellBits
	if c < n {
		return uint64(c), uint64(c) + 1
	}
	e := (c-n)/n + cellBits
	m := uint64((c - n) % n)
	shift := e - cellBits
	return (n + m) << shift, (n + m + 1) << shift
}

// cellOf is the cell of d < 2^maxExp.
func cellOf(d uint64) int {
	const n = 1 << cellBits
	if d < n {
		return int(d)
	}
	e := 63 - bits.LeadingZeros64(d)
	return n + (e-cellBits)*n + int((d>>(e-cellBits))&(n-1))
}

// Of returns the slot of a duration of d ns. It is the BPF program's
// hist_slot: the cell's slot, or the next one when d is past that slot's
// upper bound (a cell holds at most one boundary).
func Of(d uint64) int {
	if d >= 1<<maxExp {
		return Slots - 1
	}
	s := int(cellSlot[cellOf(d)])
	if d > upper[s] {
		s++
	}
	return s
}

// Bounds returns the durations in slot s: [lo, hi], both inclusive. The
// overflow slot's hi is the largest uint64.
func Bounds(s int) (lo, hi uint64) {
	if s <= 0 {
		return 0, 0
	}
	return upper[s-1] + 1, upper[s]
}

// Representative is the duration that stands for slot s's calls when only
// their count is known: the geometric midpoint of its bounds, rounded to a
// whole ns, within 0.55% (plus that rounding) of each of them (the overflow
// slot: its lower bound).
func Representative(s int) uint64 {
	lo, hi := Bounds(s)
	if s >= Slots-1 {
		return lo
	}
	return uint64(math.Round(math.Sqrt(float64(lo) * float64(hi))))
}

// Index returns slot s's bucket index at Schema, and false for the zero and
// the overflow slots, which have none.
func Index(s int) (int32, bool) {
	if s <= 0 || s >= Slots-1 {
		return 0, false
	}
	return index[s], true
}

// SlotOfIndex returns the slot of the schema-6 bucket index i, and false
// when that bucket holds no whole number of ns or is out of range.
func SlotOfIndex(i int32) (int, bool) {
	if i < index[1] || i > lastIndex {
		return 0, false
	}
	// Buckets below ~92 ns are sparse; above, slots follow indexes one to one.
	lo, hi := 1, Slots-2
	for lo < hi {
		m := (lo + hi) / 2
		if index[m] < i {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, index[lo] == i
}

// Upper returns every slot's inclusive upper bound, for the BPF program's
// table (the overflow slot's is the largest uint64).
func Upper() [Slots]uint64 { return upper }

// CellSlots returns the slot of every cell's first duration, for the BPF
// program's table.
func CellSlots() [Cells]uint16 { return cellSlot }
