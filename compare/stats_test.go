package compare

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ulat-dev/ulat/report"
)

// binomialAtLeastBySum sums the binomial pmf directly (in logs).
func binomialAtLeastBySum(n, r uint64, q float64) float64 {
	ln, _ := math.Lgamma(float64(n) + 1)
	var sum float64
	for k := r; k <= n; k++ {
		lk, _ := math.Lgamma(float64(k) + 1)
		lnk, _ := math.Lgamma(float64(n-k) + 1)
		sum += math.Exp(ln - lk - lnk + float64(k)*math.Log(q) + float64(n-k)*math.Log1p(-q))
	}
	return sum
}

func TestBinomialAtLeast(t *testing.T) {
	for _, c := range []struct {
		n, r uint64
		q    float64
	}{
		{1, 1, 0.5}, {10, 1, 0.01}, {10, 10, 0.99}, {100, 50, 0.5}, {100, 99, 0.97}, {100, 99, 0.999},
		{150, 149, 0.98}, {1000, 990, 0.985}, {1000, 500, 0.47}, {5000, 4950, 0.992}, {20000, 10000, 0.505},
		{20000, 19800, 0.988}, {200, 2, 0.001},
	} {
		got := binomialAtLeast(c.n, c.r, c.q)
		want := binomialAtLeastBySum(c.n, c.r, c.q)
		if math.Abs(got-want) > 1e-10*math.Max(1, want) && math.Abs(got-want) > 1e-13 {
			t.Errorf("P(Bin(%d, %g) >= %d) = %.15g, want %.15g", c.n, c.q, c.r, got, want)
		}
	}
	// Ten million calls: the normal limit is exact to well within 1e-3.
	n, q := uint64(10_000_000), 0.5
	r := uint64(5_001_000)
	z := (float64(r) - 0.5 - float64(n)*q) / math.Sqrt(float64(n)*q*(1-q))
	want := 0.5 * math.Erfc(z/math.Sqrt2)
	if got := binomialAtLeast(n, r, q); math.Abs(got-want) > 1e-3 {
		t.Errorf("P(Bin(1e7, 0.5) >= %d) = %g, want about %g", r, got, want)
	}
}

func histFrom(vals []uint64) *report.Histogram {
	h := report.NewHistogram()
	for _, v := range vals {
		h.Record(v)
	}
	return h
}

// realistic draws n durations like a handler's: a lognormal body around
// median ns, and 5% of calls about 20 times slower.
func realistic(rng *rand.Rand, n int, median float64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		v := median * math.Exp(0.3*rng.NormFloat64())
		if rng.Float64() < 0.05 {
			v *= 20 * math.Exp(0.5*rng.NormFloat64())
		}
		out[i] = uint64(v)
	}
	return out
}

// The percentile computed from the bins is Histogram.Percentile, exactly.
func TestPercentileMatchesHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 7, 100, 101, 999, 5000} {
		s := newSample(histFrom(realistic(rng, n, 200_000)))
		for _, p := range []float64{0.1, 1, 10, 50, 90, 99, 99.9, 99.99} {
			_, d := percentileDist(&s, p)
			if d.cdf[len(d.cdf)-1] != 1 || !slices.IsSorted(d.values) || !slices.IsSorted(d.cdf) {
				t.Errorf("n=%d p%g: not a distribution: %+v", n, p, d)
			}
		}
	}
	// Against the histogram itself.
	for _, n := range []int{1, 5, 100, 1234, 20000} {
		h := histFrom(realistic(rng, n, 50_000))
		s := newSample(h)
		for _, p := range []float64{0.1, 1, 25, 50, 90, 99, 99.9} {
			if obs, _ := percentileDist(&s, p); obs != float64(max(h.Percentile(p), 1)) {
				t.Errorf("n=%d p%g: %g from bins, Percentile says %d", n, p, obs, h.Percentile(p))
			}
		}
	}
}

// The exact bootstrap distribution of a percentile agrees with drawing
// resamples.
func TestPercentileDistMatchesResampling(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vals := realistic(rng, 300, 100_000)
	h := histFrom(vals)
	s := newSample(h)
	for _, p := range []float64{50, 90, 99} {
		_, d := percentileDist(&s, p)
		// Draw resamples of the calls, as bin indices, and find each
		// resample's percentile the way Percentile does.
		var calls []int
		for i, b := range s.bins {
			for range b.Count {
				calls = append(calls, i)
			}
		}
		const draws = 20000
		counts := map[float64]int{}
		inBin := make([]uint64, len(s.bins))
		for range draws {
			clear(inBin)
			for range calls {
				inBin[calls[rng.IntN(len(calls))]]++
			}
			rank := percentileRank(p, s.n)
			var cum uint64
			for i, c := range inBin {
				if cum += c; cum >= rank {
					counts[s.binValue(i)]++
					break
				}
			}
		}
		// Compare CDFs at each support value.
		var cum float64
		keys := make([]float64, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			cum += float64(counts[k]) / draws
			i, found := slices.BinarySearch(d.values, k)
			if !found {
				if float64(counts[k])/draws > 0.002 {
					t.Errorf("p%g: resamples give %g (%d times), outside the distribution", p, k, counts[k])
				}
				continue
			}
			if math.Abs(d.cdf[i]-cum) > 0.015 {
				t.Errorf("p%g: P(<= %g) = %.4f exactly, %.4f by resampling", p, k, d.cdf[i], cum)
			}
		}
	}
}

func TestPoisson(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, lambda := range []float64{0.2, 1, 4.5, 9.99, 10, 37, 1000, 1e6} {
		const n = 200_000
		var sum, sum2 float64
		for range n {
			k := poisson(rng, lambda, math.Exp(-lambda))
			if k < 0 || k != math.Floor(k) {
				t.Fatalf("poisson(%g) drew %g", lambda, k)
			}
			sum += k
			sum2 += k * k
		}
		mean := sum / n
		variance := sum2/n - mean*mean
		se := math.Sqrt(lambda / n)
		if math.Abs(mean-lambda) > 5*se {
			t.Errorf("poisson(%g): mean %g", lambda, mean)
		}
		if math.Abs(variance/lambda-1) > 0.03 {
			t.Errorf("poisson(%g): variance %g", lambda, variance)
		}
	}
}

func TestRatioQuantiles(t *testing.T) {
	point := dist{values: []float64{100}, cdf: []float64{1}}
	if q := ratioQuantiles(point, point, 0.005, 0.995); math.Abs(q[0]-1) > 1e-8 || math.Abs(q[1]-1) > 1e-8 {
		t.Errorf("ratio of equal points: %v", q)
	}
	// base 100 or 200 (1/2 each), cur 300: ratios 3 and 1.5.
	base := dist{values: []float64{100, 200}, cdf: []float64{0.5, 1}}
	cur := dist{values: []float64{300}, cdf: []float64{1}}
	q := ratioQuantiles(base, cur, 0.25, 0.75)
	if math.Abs(q[0]-1.5) > 1e-8 || math.Abs(q[1]-3) > 1e-8 {
		t.Errorf("quantiles 0.25, 0.75 = %v, want 1.5, 3", q)
	}
}
