package report

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/ulat-dev/ulat/buckets"
)

// The tests below check that sparse histograms say exactly what dense
// ones (the form every histogram had before, kept as the reference) say
// about the same calls, on either side of SparseCells.

// denseOf records vals in a histogram that is dense from the start.
func denseOf(vals []uint64) *Histogram {
	h := &Histogram{data: &histData{}}
	for _, v := range vals {
		h.Record(v)
	}
	return h
}

func sparseOf(vals []uint64) *Histogram {
	h := NewHistogram()
	for _, v := range vals {
		h.Record(v)
	}
	return h
}

// cellsOf is how many cells vals fill.
func cellsOf(vals ...[]uint64) int {
	seen := map[uint32]bool{}
	for _, vs := range vals {
		for _, v := range vs {
			seen[cellKey(buckets.Of(v), bits.Len64(v))] = true
		}
	}
	return len(seen)
}

// drawValues returns n calls of about distinct durations: zeros, ones past
// 2^63 ns, ones beside powers of two (whose slots straddle them) and
// log-uniform ones up to 100 s. Those beside a few powers of two are often
// in one slot on both sides of one: in two cells.
func drawValues(r *rand.Rand, distinct, n int) []uint64 {
	durations := make([]uint64, distinct)
	for i := range durations {
		switch r.IntN(10) {
		case 0:
			durations[i] = 0
		case 1:
			durations[i] = math.MaxUint64 - r.Uint64N(1<<40)
		case 2, 3:
			durations[i] = 1<<(10+r.IntN(6)) + r.Uint64N(3) - 1
		default:
			durations[i] = uint64(math.Exp(r.Float64() * math.Log(1e11)))
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = durations[r.IntN(distinct)]
	}
	return out
}

// checkCells checks a sparse histogram's cells: increasing keys, none
// empty, at most SparseCells, summing to Count.
func checkCells(t *testing.T, name string, h *Histogram) {
	t.Helper()
	if h.data != nil {
		return
	}
	var n uint64
	for i, c := range h.cells {
		if c.count == 0 || (i > 0 && h.cells[i-1].key >= c.key) {
			t.Fatalf("%s: cells %v: not increasing, or empty", name, h.cells)
		}
		n += c.count
	}
	if len(h.cells) > SparseCells || n != h.count {
		t.Fatalf("%s: %d cells holding %d calls, want at most %d holding %d", name, len(h.cells), n, SparseCells, h.count)
	}
}

// sameCounts fails unless got and want say the same about their calls,
// through everything they tell.
func sameCounts(t *testing.T, name string, got, want *Histogram) {
	t.Helper()
	checkCells(t, name, got)
	gh, gl := got.Sum()
	wh, wl := want.Sum()
	if got.Count() != want.Count() || got.Min() != want.Min() || got.Max() != want.Max() || gh != wh || gl != wl || got.Mean() != want.Mean() {
		t.Fatalf("%s: count/min/max/sum = %d/%d/%d/%d:%d, want %d/%d/%d/%d:%d", name,
			got.Count(), got.Min(), got.Max(), gh, gl, want.Count(), want.Min(), want.Max(), wh, wl)
	}
	if g, w := got.Slots(), want.Slots(); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: Slots() = %v, want %v", name, g, w)
	}
	if g, w := got.log2Buckets(), want.log2Buckets(); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: log2Buckets() = %v, want %v", name, g, w)
	}
	if g, w := got.zeroCount(), want.zeroCount(); g != w {
		t.Fatalf("%s: zeroCount() = %d, want %d", name, g, w)
	}
	if got.Count() > 0 {
		gf, gl := got.nonEmpty()
		wf, wl := want.nonEmpty()
		if gf != wf || gl != wl {
			t.Fatalf("%s: nonEmpty() = %d, %d, want %d, %d", name, gf, gl, wf, wl)
		}
	}
	for p := 0.1; p <= 100; p += 0.1 {
		if g, w := got.Percentile(p), want.Percentile(p); g != w {
			t.Fatalf("%s: p%v = %d, want %d", name, p, g, w)
		}
	}
}

// sizes are how many distinct durations the tests' calls have: on both
// sides of SparseCells.
var sizes = []int{1, 2, 5, 20, 100, SparseCells - 1, SparseCells, SparseCells + 1, 200, 1000}

func TestSparseRecordMatchesDense(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	straddled := 0
	for round := range 100 {
		vals := drawValues(r, sizes[round%len(sizes)], 1+r.IntN(3000))
		h := sparseOf(vals)
		sameCounts(t, "record", h, denseOf(vals))
		if sparse := cellsOf(vals) <= SparseCells; (h.data == nil) != sparse {
			t.Fatalf("%d cells: sparse %v, want %v", cellsOf(vals), h.data == nil, sparse)
		}
		if h.data == nil && len(h.Slots()) < len(h.cells) {
			straddled++
		}
	}
	if straddled == 0 {
		t.Error("no sparse histogram had a slot in two cells: the test does not test that")
	}
}

func TestSparseMergeMatchesDense(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for round := range 100 {
		va := drawValues(r, sizes[round%len(sizes)], 1+r.IntN(2000))
		vb := drawValues(r, sizes[r.IntN(len(sizes))], 1+r.IntN(2000))
		want := denseOf(slices.Concat(va, vb))
		sparseA, sparseB := sparseOf(va), sparseOf(vb)
		for _, c := range []struct {
			name string
			a, b *Histogram
		}{
			{"sparse+sparse", sparseA, sparseB},
			{"sparse+dense", sparseA, denseOf(vb)},
			{"dense+sparse", denseOf(va), sparseB},
			{"dense+dense", denseOf(va), denseOf(vb)},
		} {
			got := c.a.Clone()
			got.Merge(c.b)
			sameCounts(t, c.name, got, want)
			sparse := c.a.data == nil && c.b.data == nil && cellsOf(va, vb) <= SparseCells
			if (got.data == nil) != sparse {
				t.Fatalf("%s of %d cells: sparse %v, want %v", c.name, cellsOf(va, vb), got.data == nil, sparse)
			}
			// Merge leaves its argument alone, and a copy leaves the original.
			sameCounts(t, c.name+": merged", c.b, denseOf(vb))
			sameCounts(t, c.name+": copied", c.a, denseOf(va))
		}
		// The way session and agent copy a histogram.
		for _, from := range []*Histogram{sparseA, denseOf(va)} {
			c := NewHistogram()
			c.Merge(from)
			sameCounts(t, "copy by merge", c, denseOf(va))
		}
		self := sparseOf(va)
		self.Merge(self)
		sameCounts(t, "merged with itself", self, denseOf(slices.Concat(va, va)))
	}
}

func TestSparseResetAndReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for round := range 60 {
		h := sparseOf(drawValues(r, sizes[round%len(sizes)], 1+r.IntN(2000)))
		wasDense, cells := h.data != nil, cap(h.cells)
		h.Reset()
		sameCounts(t, "reset", h, NewHistogram())
		if (h.data != nil) != wasDense || cap(h.cells) != cells {
			t.Fatalf("Reset changed the storage: dense %v, %d cells' room; was %v, %d", h.data != nil, cap(h.cells), wasDense, cells)
		}
		vals := drawValues(r, sizes[r.IntN(len(sizes))], 1+r.IntN(2000))
		for _, v := range vals {
			h.Record(v)
		}
		sameCounts(t, "reused", h, denseOf(vals))
	}
}

// denseFromSlots is HistogramFromSlots as it was, all dense.
func denseFromSlots(slots []uint64, minNs, maxNs, sumHi, sumLo uint64) *Histogram {
	h := &Histogram{data: &histData{}}
	for s, c := range slots {
		if c == 0 || s >= buckets.Slots {
			continue
		}
		h.data.slots[s] += c
		h.data.log2[bits.Len64(min(max(buckets.Representative(s), minNs), maxNs))] += c
		h.count += c
	}
	if h.count > 0 {
		h.min, h.max, h.sumHi, h.sumLo = minNs, maxNs, sumHi, sumLo
	}
	return h
}

func TestSparseFromSlotsMatchesDense(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for round := range 60 {
		vals := drawValues(r, sizes[round%len(sizes)], 1+r.IntN(3000))
		rec := sparseOf(vals)
		var kernel [buckets.Slots + 3]uint64 // past Slots: ignored
		for _, s := range rec.Slots() {
			kernel[s.Slot] = s.Count
		}
		kernel[buckets.Slots+1] = 5
		hi, lo := rec.Sum()
		got := HistogramFromSlots(kernel[:], rec.Min(), rec.Max(), hi, lo)
		sameCounts(t, "from slots", got, denseFromSlots(kernel[:], rec.Min(), rec.Max(), hi, lo))
		if sparse := len(rec.Slots()) <= SparseCells; (got.data == nil) != sparse {
			t.Fatalf("from %d slots: sparse %v, want %v", len(rec.Slots()), got.data == nil, sparse)
		}
	}
	sameCounts(t, "no calls", HistogramFromSlots(make([]uint64, buckets.Slots), 0, 0, 0, 0), NewHistogram())
}

// partsOf is what a JSON report keeps of h.
func partsOf(h *Histogram) ([]log2Bucket, []slotCount) {
	var slots []slotCount
	for _, s := range h.Slots() {
		slots = append(slots, slotCount{s.Slot, s.Count})
	}
	return h.log2Buckets(), slots
}

func TestSparseFromPartsMatchesDense(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for round := range 60 {
		vals := drawValues(r, sizes[round%len(sizes)], 1+r.IntN(3000))
		recorded := sparseOf(vals)
		// Calls pair slots with power-of-two buckets in increasing order of
		// both, as fromParts does: it gives back the very cells recorded.
		sameCells := func(name string, got *Histogram) {
			t.Helper()
			if got.data == nil && !slices.Equal(got.cells, recorded.cells) || (got.data == nil) != (recorded.data == nil) {
				t.Fatalf("%s: cells %v (dense %v), recorded %v (dense %v)", name, got.cells, got.data != nil, recorded.cells, recorded.data != nil)
			}
		}
		for _, h := range []*Histogram{recorded, denseOf(vals)} {
			log2, slots := partsOf(h)
			hi, lo := h.Sum()
			got, err := histogramFromParts(h.Count(), h.Min(), h.Max(), hi, lo, log2, slots)
			if err != nil {
				t.Fatal(err)
			}
			sameCounts(t, "from parts", got, h)
			sameCells("from parts", got)
			// A slot in pieces and out of order, as old reports' bins give it.
			var pieces []slotCount
			for _, s := range slots {
				if s.Count > 1 {
					k := 1 + r.Uint64N(s.Count-1)
					pieces = append(pieces, slotCount{s.Slot, k}, slotCount{s.Slot, 0}, slotCount{s.Slot, s.Count - k})
				} else {
					pieces = append(pieces, s)
				}
			}
			r.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
			got, err = fromParts(h.Count(), h.Min(), h.Max(), hi, lo, log2, pieces, false)
			if err != nil {
				t.Fatal(err)
			}
			sameCounts(t, "from pieces", got, h)
			sameCells("from pieces", got)
			// Rebuilt histograms merge and record like any other.
			more := drawValues(r, 3, 50)
			got.Merge(sparseOf(more))
			sameCounts(t, "rebuilt, merged", got, denseOf(slices.Concat(vals, more)))
		}
	}
}

func TestClone(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, n := range []int{5, 1000} {
		vals := drawValues(r, n, 3000)
		h := sparseOf(vals)
		c := h.Clone()
		sameCounts(t, "clone", c, h)
		h.Record(12345)
		h.Merge(sparseOf(drawValues(r, n, 100)))
		sameCounts(t, "clone after recording into the original", c, denseOf(vals))
		if c.Bytes() > h.Bytes() {
			t.Errorf("clone takes %d bytes, the original %d", c.Bytes(), h.Bytes())
		}
	}
	sameCounts(t, "clone of nil", (*Histogram)(nil).Clone(), NewHistogram())
	h := NewHistogram()
	h.Record(1)
	h.Reset()
	if c := h.Clone(); c.cells != nil || c.Bytes() != NewHistogram().Bytes() {
		t.Errorf("clone of an emptied histogram keeps %d cells' room", cap(c.cells))
	}
}

func TestBytes(t *testing.T) {
	empty := NewHistogram().Bytes()
	h := NewHistogram()
	for _, v := range []uint64{1000, 2000, 5000, 10000, 50000} {
		h.Record(v)
		h.Record(v)
	}
	if b := h.Bytes(); b <= empty || b > empty+8*16 {
		t.Errorf("5 slots take %d bytes, want more than the empty %d and at most 8 cells more", b, empty)
	}
	if b := benchHist(2000).Bytes(); b != empty+HistogramDenseBytes {
		t.Errorf("2000 slots take %d bytes, want %d", b, empty+HistogramDenseBytes)
	}
	if (*Histogram)(nil).Bytes() != 0 {
		t.Error("a nil histogram takes bytes")
	}
}

// TestSparseAtTheThreshold: a histogram turns dense exactly when it would
// hold more than SparseCells cells, whichever way it gets them.
func TestSparseAtTheThreshold(t *testing.T) {
	// oneEach is a call in each of n slots: n cells.
	oneEach := func(first, n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i], _ = buckets.Bounds(first + i)
		}
		return out
	}
	for _, n := range []int{SparseCells - 1, SparseCells, SparseCells + 1} {
		want := n <= SparseCells
		vals := oneEach(100, n)
		if h := sparseOf(vals); (h.data == nil) != want {
			t.Errorf("recorded %d cells: sparse %v", n, h.data == nil)
		}
		h := sparseOf(vals[:n-1])
		h.Merge(sparseOf(vals[n-1:]))
		if (h.data == nil) != want {
			t.Errorf("merged into %d cells: sparse %v", n, h.data == nil)
		}
		sameCounts(t, "merged", h, denseOf(vals))
		h = sparseOf(vals)
		h.Merge(sparseOf(vals[:1]))
		if (h.data == nil) != want {
			t.Errorf("%d cells merged with one of them: sparse %v", n, h.data == nil)
		}
		var kernel [buckets.Slots]uint64
		for _, v := range vals {
			kernel[buckets.Of(v)] = 2
		}
		if h := HistogramFromSlots(kernel[:], vals[0], vals[n-1], 0, 1); (h.data == nil) != want {
			t.Errorf("from %d slots: sparse %v", n, h.data == nil)
		}
		rec := sparseOf(vals)
		log2, slots := partsOf(rec)
		hi, lo := rec.Sum()
		h, err := histogramFromParts(rec.Count(), rec.Min(), rec.Max(), hi, lo, log2, slots)
		if err != nil {
			t.Fatal(err)
		}
		if (h.data == nil) != want {
			t.Errorf("from the parts of %d cells: sparse %v", n, h.data == nil)
		}
		sameCounts(t, "from parts", h, rec)
	}
}
