package report

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/buckets"
)

func within(t *testing.T, name string, got, want uint64, frac float64) {
	t.Helper()
	if d := math.Abs(float64(got) - float64(want)); d > frac*float64(want) {
		t.Errorf("%s = %d, want %d ±%.1f%%", name, got, want, frac*100)
	}
}

func TestUniformPercentiles(t *testing.T) {
	h := NewHistogram()
	for v := uint64(1); v <= 10000; v++ {
		h.Record(v)
	}
	if h.Count() != 10000 || h.Min() != 1 || h.Max() != 10000 {
		t.Fatalf("count/min/max = %d/%d/%d, want 10000/1/10000", h.Count(), h.Min(), h.Max())
	}
	if h.Mean() != 5000 { // 50005000/10000 truncated
		t.Errorf("mean = %d, want 5000", h.Mean())
	}
	within(t, "p50", h.Percentile(50), 5000, 0.01)
	within(t, "p90", h.Percentile(90), 9000, 0.01)
	within(t, "p99", h.Percentile(99), 9900, 0.01)
	if got := h.Percentile(100); got != 10000 {
		t.Errorf("p100 = %d, want exactly max 10000", got)
	}
}

func TestBimodalPercentiles(t *testing.T) {
	h := NewHistogram()
	for range 900 {
		h.Record(1000)
	}
	for range 100 {
		h.Record(1_000_000)
	}
	within(t, "p50", h.Percentile(50), 1000, 0.01)
	within(t, "p90", h.Percentile(90), 1000, 0.01)
	within(t, "p99", h.Percentile(99), 1_000_000, 0.01)
	if h.Mean() != (900*1000+100*1_000_000)/1000 {
		t.Errorf("mean = %d, want %d", h.Mean(), (900*1000+100*1_000_000)/1000)
	}
}

func TestPercentileClampedToMinMax(t *testing.T) {
	// A slot's representative is not the value itself; with one value
	// every percentile must still be that exact value.
	h := NewHistogram()
	h.Record(123_457)
	for _, p := range []float64{0.1, 50, 99.9, 100, 150, 0, -1, math.NaN()} {
		if got := h.Percentile(p); got != 123_457 {
			t.Errorf("Percentile(%v) = %d, want 123457", p, got)
		}
	}
}

func TestEmpty(t *testing.T) {
	for name, h := range map[string]*Histogram{"new": NewHistogram(), "zero": {}, "nil": nil} {
		if h.Count() != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Percentile(50) != 0 {
			t.Errorf("%s: non-zero statistics for empty histogram", name)
		}
		if b := h.log2Buckets(); b != nil {
			t.Errorf("%s: Buckets() = %v, want nil", name, b)
		}
	}
	if NewHistogram().data != nil {
		t.Error("NewHistogram allocated slots before the first Record")
	}
}

func TestBuckets(t *testing.T) {
	h := NewHistogram()
	for _, v := range []uint64{0, 1, 2, 3, 4, 1023, 1024} {
		h.Record(v)
	}
	want := []log2Bucket{
		{0, 1, 1}, {1, 2, 1}, {2, 4, 2}, {4, 8, 1},
		{8, 16, 0}, {16, 32, 0}, {32, 64, 0}, {64, 128, 0}, {128, 256, 0}, {256, 512, 0},
		{512, 1024, 1}, {1024, 2048, 1},
	}
	got := h.log2Buckets()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Buckets() =\n%v\nwant\n%v", got, want)
	}
	var sum uint64
	for _, b := range got {
		sum += b.Count
	}
	if sum != h.Count() {
		t.Errorf("bucket counts sum to %d, want %d", sum, h.Count())
	}
}

func TestBucketsStartAtFirstNonEmpty(t *testing.T) {
	h := NewHistogram()
	h.Record(100)
	h.Record(5)
	want := []log2Bucket{{4, 8, 1}, {8, 16, 0}, {16, 32, 0}, {32, 64, 0}, {64, 128, 1}}
	if got := h.log2Buckets(); !reflect.DeepEqual(got, want) {
		t.Errorf("Buckets() = %v, want %v", got, want)
	}
}

func TestRecordZero(t *testing.T) {
	h := NewHistogram()
	h.Record(0)
	if h.Count() != 1 || h.Min() != 0 || h.Max() != 0 || h.Percentile(99) != 0 {
		t.Errorf("count/min/max/p99 = %d/%d/%d/%d, want 1/0/0/0", h.Count(), h.Min(), h.Max(), h.Percentile(99))
	}
	if got, want := h.log2Buckets(), []log2Bucket{{0, 1, 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Buckets() = %v, want %v", got, want)
	}
}

func TestRecordHuge(t *testing.T) {
	h := NewHistogram()
	h.Record(math.MaxUint64)
	h.Record(math.MaxUint64)
	if h.Count() != 2 || h.Max() != math.MaxUint64 || h.Min() != math.MaxUint64 {
		t.Errorf("count/min/max = %d/%d/%d", h.Count(), h.Min(), h.Max())
	}
	if h.Mean() != math.MaxUint64 {
		t.Errorf("mean = %d, want MaxUint64 (the sum must not overflow)", h.Mean())
	}
	if got := h.Percentile(50); got != math.MaxUint64 {
		t.Errorf("p50 = %d, want MaxUint64", got)
	}
	if got, want := h.log2Buckets(), []log2Bucket{{1 << 63, math.MaxUint64, 2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Buckets() = %v, want %v", got, want)
	}

	// Past the last bucket (1024 s) calls share the overflow slot; the
	// highest rank is still the exact max.
	twoHours := uint64(2 * time.Hour)
	h = NewHistogram()
	h.Record(1000)
	h.Record(twoHours)
	h.Record(twoHours + 1)
	if h.Count() != 3 || h.Max() != twoHours+1 {
		t.Errorf("count/max = %d/%d, want 3/%d", h.Count(), h.Max(), twoHours+1)
	}
	if got := h.Percentile(100); got != twoHours+1 {
		t.Errorf("p100 = %d, want the max %d", got, twoHours+1)
	}
	if got := h.Percentile(50); got != 1024e9+1 {
		t.Errorf("p50 = %d, want the overflow slot's lower bound %d", got, uint64(1024e9+1))
	}
}

// Percentiles are within 0.55% (and the half ns a slot's representative is
// rounded by) of the exact nearest-rank percentiles of the recorded values,
// for every percentile of several distributions.
func TestPercentilesWithinHalfABucket(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dists := map[string]func() uint64{
		"loguniform 1us-10s": func() uint64 { return uint64(math.Exp(math.Log(1e3) + r.Float64()*math.Log(1e7))) },
		"narrow 2ms":         func() uint64 { return 2_000_000 + uint64(r.IntN(4000)) },
		"bimodal":            func() uint64 { return []uint64{200_000, 3_000_000}[r.IntN(2)] + uint64(r.IntN(1000)) },
		"short":              func() uint64 { return 4000 + uint64(r.IntN(5000)) },
	}
	for name, draw := range dists {
		h := NewHistogram()
		vals := make([]uint64, 20001)
		for i := range vals {
			vals[i] = draw()
			h.Record(vals[i])
		}
		slices.Sort(vals)
		for p := 0.5; p <= 100; p += 0.5 {
			exact := vals[PercentileRank(p, uint64(len(vals)))-1]
			got := h.Percentile(p)
			if d := (math.Abs(float64(got)-float64(exact)) - 0.5) / float64(exact); d > 0.0055 {
				t.Errorf("%s: p%v = %d, exact %d (%.2f%% off)", name, p, got, exact, 100*d)
			}
		}
	}
}

func randomValues(r *rand.Rand, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		// Log-uniform up to ~1s, so that many buckets and HDR ranges are used.
		out[i] = uint64(math.Exp(r.Float64() * math.Log(1e9)))
	}
	return out
}

func sameHist(t *testing.T, got, want *Histogram) {
	t.Helper()
	if got.Count() != want.Count() || got.Min() != want.Min() || got.Max() != want.Max() || got.Mean() != want.Mean() {
		t.Errorf("count/min/max/mean = %d/%d/%d/%d, want %d/%d/%d/%d",
			got.Count(), got.Min(), got.Max(), got.Mean(), want.Count(), want.Min(), want.Max(), want.Mean())
	}
	for _, p := range []float64{1, 25, 50, 90, 99, 99.9, 100} {
		if g, w := got.Percentile(p), want.Percentile(p); g != w {
			t.Errorf("p%v = %d, want %d", p, g, w)
		}
	}
	if g, w := got.log2Buckets(), want.log2Buckets(); !reflect.DeepEqual(g, w) {
		t.Errorf("Buckets() = %v, want %v", g, w)
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	va, vb := randomValues(r, 5000), randomValues(r, 3000)
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for _, v := range va {
		a.Record(v)
		all.Record(v)
	}
	for _, v := range vb {
		b.Record(v)
		all.Record(v)
	}
	a.Merge(b)
	sameHist(t, a, all)

	empty := NewHistogram()
	empty.Merge(all)
	sameHist(t, empty, all)

	before := all.Count()
	all.Merge(NewHistogram())
	all.Merge(nil)
	if all.Count() != before {
		t.Errorf("merging empty histograms changed count from %d to %d", before, all.Count())
	}
}

func TestMergeKeepsSmallerMin(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	a.Record(500)
	b.Record(7)
	b.Record(9000)
	a.Merge(b)
	if a.Min() != 7 || a.Max() != 9000 || a.Count() != 3 || a.Mean() != (500+7+9000)/3 {
		t.Errorf("count/min/max/mean = %d/%d/%d/%d", a.Count(), a.Min(), a.Max(), a.Mean())
	}
}

func TestReset(t *testing.T) {
	h := NewHistogram()
	for _, v := range []uint64{1, 50, 1 << 30} {
		h.Record(v)
	}
	h.Reset()
	if h.Count() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Percentile(50) != 0 || h.log2Buckets() != nil {
		t.Fatalf("after Reset: count %d max %d mean %d p50 %d buckets %v",
			h.Count(), h.Max(), h.Mean(), h.Percentile(50), h.log2Buckets())
	}
	// Nothing from before the reset may leak into later statistics.
	h.Record(700)
	fresh := NewHistogram()
	fresh.Record(700)
	sameHist(t, h, fresh)
}

func TestHistogramFromSlots(t *testing.T) {
	var slots [buckets.Slots]uint64
	a, b := buckets.Of(100), buckets.Of(1010)
	slots[a], slots[b] = 3, 1
	h := HistogramFromSlots(slots[:], 97, 1010, 0, 97+100+101+1010)
	if h.Count() != 4 || h.Min() != 97 || h.Max() != 1010 || h.Mean() != (97+100+101+1010)/4 {
		t.Errorf("count/min/max/mean = %d/%d/%d/%d", h.Count(), h.Min(), h.Max(), h.Mean())
	}
	if p, want := h.Percentile(50), buckets.Representative(a); p != want {
		t.Errorf("p50 = %d, want the slot's representative %d", p, want)
	}
	if p := h.Percentile(100); p != 1010 {
		t.Errorf("p100 = %d, want the max 1010", p)
	}
	if b := h.log2Buckets(); len(b) != 4 || b[0].Count != 3 || b[3].Count != 1 {
		t.Errorf("buckets %+v: want 3 in [64,128) and 1 in [512,1024)", b)
	}
	if HistogramFromSlots(nil, 0, 0, 0, 0).Count() != 0 {
		t.Error("no slots: not empty")
	}
}

// benchValues are calls of a function whose durations fall in n slots, in
// random order: for n = 5 the agent's typical function (~40 calls in ~5
// slots a scrape), for n in the thousands a function spread over most of
// the buckets.
func benchValues(n int) []uint64 {
	r := rand.New(rand.NewPCG(5, 6))
	out := make([]uint64, 4096)
	for i := range out {
		lo, _ := buckets.Bounds(100 + r.IntN(n)) // slot 100 is ~100 ns
		out[i] = lo
	}
	return out
}

// benchHist is a histogram of max(n, 40) calls in n slots.
func benchHist(n int) *Histogram {
	h := NewHistogram()
	for s := 100; s < 100+n; s++ {
		lo, _ := buckets.Bounds(s)
		h.Record(lo)
	}
	for _, v := range benchValues(n)[:max(0, 40-n)] {
		h.Record(v)
	}
	return h
}

func BenchmarkRecord(b *testing.B) {
	for _, slots := range []int{5, 2000} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			vals := benchValues(slots)
			h := benchHist(slots)
			b.ResetTimer()
			for i := range b.N {
				h.Record(vals[i%len(vals)])
			}
		})
	}
}

func BenchmarkMerge(b *testing.B) {
	for _, slots := range []int{5, 2000} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			src, dst := benchHist(slots), benchHist(slots)
			b.ReportAllocs()
			for range b.N {
				dst.Merge(src)
			}
		})
	}
}

// sink keeps benchmarks' histograms on the heap, as real ones are.
var sink *Histogram

// BenchmarkClone copies a histogram with Clone, as session's tally.clone
// and the agent's series do.
func BenchmarkClone(b *testing.B) {
	for _, slots := range []int{5, 2000} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			src := benchHist(slots)
			b.ReportAllocs()
			for range b.N {
				sink = src.Clone()
			}
		})
	}
}

// BenchmarkFromKernel builds a histogram from an in-kernel one's slots, as
// every scrape does for every function with --aggregate kernel.
func BenchmarkFromKernel(b *testing.B) {
	for _, slots := range []int{5, 2000} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			var kernel [buckets.Slots]uint64
			for _, sl := range benchHist(slots).Slots() {
				kernel[sl.Slot] = sl.Count
			}
			b.ReportAllocs()
			for range b.N {
				sink = HistogramFromSlots(kernel[:], 100, 1e9, 0, 1e9)
			}
		})
	}
}

// BenchmarkScrape is what a scrape does with 1,000 functions of ~40 calls
// in 5 slots: copy each histogram, merge it into its series, and read its
// slots and a percentile.
func BenchmarkScrape(b *testing.B) {
	hs := make([]*Histogram, 1000)
	for i := range hs {
		hs[i] = benchHist(5)
	}
	b.ReportAllocs()
	for range b.N {
		for _, h := range hs {
			c := NewHistogram()
			c.Merge(h)
			s := NewHistogram()
			s.Merge(c)
			s.Merge(h)
			_ = s.Slots()
			_ = s.Percentile(99)
		}
	}
}

// BenchmarkRecordCells measures Record in sparse and dense histograms of n
// slots, which is what SparseCells was chosen from (with it raised, to
// measure sparse histograms past it).
func BenchmarkRecordCells(b *testing.B) {
	for _, n := range []int{5, 16, 32, 64, 128, 256, 512, 1024} {
		for _, dense := range []bool{false, true} {
			h := benchHist(n)
			if dense {
				h.densify()
			} else if h.data != nil {
				continue
			}
			b.Run(fmt.Sprintf("slots=%d/dense=%v", n, dense), func(b *testing.B) {
				vals := benchValues(n)
				for i := range b.N {
					h.Record(vals[i%len(vals)])
				}
			})
		}
	}
}

// BenchmarkMergeCells measures Merge of sparse and dense histograms of n
// slots, as BenchmarkRecordCells does Record.
func BenchmarkMergeCells(b *testing.B) {
	for _, n := range []int{5, 16, 32, 64, 128, 256, 512, 1024} {
		for _, dense := range []bool{false, true} {
			src, dst := benchHist(n), benchHist(n)
			if dense {
				src.densify()
				dst.densify()
			} else if src.data != nil {
				continue
			}
			b.Run(fmt.Sprintf("slots=%d/dense=%v", n, dense), func(b *testing.B) {
				for range b.N {
					dst.Merge(src)
				}
			})
		}
	}
}
