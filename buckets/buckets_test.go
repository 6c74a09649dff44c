package buckets

import (
	"math"
	"testing"
)

// Every boundary is exact: a slot's upper bound u is the largest whole
// number of ns at or below 1e9 * 2^(i/64), checked with integers; and Of
// puts u, u+1 and the slot's first value where they belong.
func TestEveryBoundary(t *testing.T) {
	if Of(0) != 0 {
		t.Fatalf("Of(0) = %d, want the zero slot", Of(0))
	}
	for s := 1; s < Slots-1; s++ {
		lo, hi := Bounds(s)
		i, ok := Index(s)
		if !ok {
			t.Fatalf("slot %d has no index", s)
		}
		if !atMost(hi, int(i)) || atMost(hi+1, int(i)) {
			t.Fatalf("slot %d (index %d): upper bound %d is not floor(1e9*2^(%d/64))", s, i, hi, i)
		}
		if lo > 1 && atMost(lo-1, int(i)-1) == false {
			t.Fatalf("slot %d (index %d): %d ns, just below it, is above bucket %d's upper bound", s, i, lo-1, i-1)
		}
		if lo > hi {
			t.Fatalf("slot %d is empty: [%d, %d]", s, lo, hi)
		}
		for _, c := range []struct {
			d    uint64
			want int
		}{{lo, s}, {hi, s}, {hi + 1, s + 1}, {lo + (hi-lo)/2, s}} {
			if got := Of(c.d); got != c.want {
				t.Fatalf("Of(%d) = %d, want %d (slot %d is [%d, %d])", c.d, got, c.want, s, lo, hi)
			}
		}
		if back, ok := SlotOfIndex(i); !ok || back != s {
			t.Fatalf("SlotOfIndex(%d) = %d, %v; want %d", i, back, ok, s)
		}
	}
	last, _ := Bounds(Slots - 2)
	_, lastHi := Bounds(Slots - 2)
	if want := uint64(1024e9); lastHi != want {
		t.Fatalf("last bucket ends at %d ns (from %d), want %d (2^10 s)", lastHi, last, want)
	}
	for _, d := range []uint64{lastHi + 1, 1<<maxExp - 1, 1 << maxExp, math.MaxUint64} {
		if Of(d) != Slots-1 {
			t.Fatalf("Of(%d) = %d, want the overflow slot %d", d, Of(d), Slots-1)
		}
	}
	if _, ok := Index(0); ok {
		t.Fatal("the zero slot has an index")
	}
	if _, ok := Index(Slots - 1); ok {
		t.Fatal("the overflow slot has an index")
	}
}

// A cell never holds more than one boundary, which is what lets Of (and the
// BPF program) take one step from the cell's slot; checked at every cell's
// both ends, against a search of the bounds.
func TestCellsHoldOneBoundaryAtMost(t *testing.T) {
	search := func(d uint64) int {
		lo, hi := 0, Slots-1
		for lo < hi {
			m := (lo + hi) / 2
			if upper[m] < d {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo
	}
	for c := 0; c < Cells; c++ {
		lo, hi := cellBounds(c)
		if cellOf(lo) != c || cellOf(hi-1) != c {
			t.Fatalf("cell %d: [%d, %d) maps to cells %d and %d", c, lo, hi, cellOf(lo), cellOf(hi-1))
		}
		first, last := search(lo), search(hi-1)
		if last-first > 1 {
			t.Fatalf("cell %d [%d, %d) spans slots %d..%d", c, lo, hi, first, last)
		}
		for _, d := range []uint64{lo, hi - 1, lo + (hi-lo)/2} {
			if Of(d) != search(d) {
				t.Fatalf("Of(%d) = %d, want %d", d, Of(d), search(d))
			}
		}
	}
}

// The representative of a slot is within 0.55% of every duration in it (and
// half a ns, which matters below a few hundred ns): the bound on a
// percentile's error.
func TestRepresentativeWithinHalfABucket(t *testing.T) {
	worst := 0.0
	for s := 1; s < Slots-1; s++ {
		lo, hi := Bounds(s)
		r := float64(Representative(s))
		for _, v := range []uint64{lo, hi} {
			err := math.Abs(r - float64(v))
			if err > 0.5 {
				worst = max(worst, (err-0.5)/float64(v))
			}
		}
	}
	if worst > 0.0055 {
		t.Fatalf("a representative is %.3f%% from a value of its slot; want at most 0.55%%", 100*worst)
	}
	t.Logf("largest error of a representative: %.3f%%", 100*worst)
}

// Every lower schema's bucket is a union of whole slots: a duration's
// bucket at schema s (computed exactly from its definition) is its slot's
// index divided by 2^(6-s), rounded up, for every schema a Prometheus
// native histogram allows, at both ends of every slot.
func TestDownscalesExactly(t *testing.T) {
	for schema := -4; schema < Schema; schema++ {
		k := 1 << (Schema - schema)
		for s := 1; s < Slots-1; s += 1 + s/64 {
			i, _ := Index(s)
			j := int(math.Ceil(float64(i) / float64(k)))
			lo, hi := Bounds(s)
			for _, v := range []uint64{lo, hi} {
				// v is in bucket j at this schema: above its lower and at most its upper bound.
				if !atMost(v, j*k) || atMost(v, (j-1)*k) {
					t.Fatalf("schema %d: %d ns (slot %d, index %d) is not in bucket %d", schema, v, s, i, j)
				}
			}
		}
	}
}
