package compare

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ulat-dev/ulat/report"
)

// sample is one side of one function: its histogram in the form the
// statistics need.
type sample struct {
	bins     []report.Slot
	n        uint64
	min, max uint64
	mean     float64 // exact
}

func newSample(h *report.Histogram) sample {
	return sample{bins: h.Slots(), n: h.Count(), min: h.Min(), max: h.Max(), mean: float64(h.Mean())}
}

// percentileRank is the rank of the call whose slot is the p-th
// percentile, as report.Histogram.Percentile takes it.
func percentileRank(p float64, n uint64) uint64 { return report.PercentileRank(p, n) }

// binValue is what Percentile reports for a percentile falling in slot i:
// the slot's representative, clamped into the exact [min, max]. It is at
// least 1 so that ratios of durations are defined.
func (s *sample) binValue(i int) float64 {
	v := min(max(s.bins[i].ValueNs, s.min), s.max)
	return float64(max(v, 1))
}

// dist is a discrete distribution: P(X <= values[i]) = cdf[i], values
// increasing, cdf non-decreasing and ending at 1. For a percentile, lo[i]
// and hi[i] are the shortest and longest durations values[i] stands for
// (its slot's bounds, clamped into the exact [min, max]); nil otherwise.
type dist struct {
	values, cdf []float64
	lo, hi      []float64
}

// edge returns d with every value moved to the end of its slot (the
// longest duration when upper, else the shortest; the value itself when d
// has no slots), plus shift ns, and at least 1 ns so that ratios are
// defined: the most extreme durations each value may stand for when every
// duration of the side may be off by shift.
func (d dist) edge(upper bool, shift float64) dist {
	ends := d.values
	switch {
	case upper && d.hi != nil:
		ends = d.hi
	case !upper && d.lo != nil:
		ends = d.lo
	}
	out := dist{values: make([]float64, len(ends)), cdf: d.cdf}
	for i, v := range ends {
		out.values[i] = max(v+shift, 1)
	}
	return out
}

// bucketGrowth is how much longer a bucket's longest duration is than its
// shortest (2^(1/64), 1.09%): the histograms' resolution.
var bucketGrowth = math.Exp2(1.0 / 64)

// interval is the confidence interval of the ratio cur/base of a metric,
// and whether its sampling part is narrower than the histograms'
// resolution.
type interval struct {
	low, high float64 // ratios, not changes
	// resolutionLimited: the bootstrap's quantiles of the ratio lie within
	// half a bucket of each other (all of both sides' resampled
	// percentiles in one slot each), so the bounds come from the buckets'
	// width and the probe-cost uncertainty alone, not from sampling.
	resolutionLimited bool
}

// widenedInterval returns the levels (lower, upper) quantiles of cur/base,
// widened for what the bootstrap cannot see: where in its slot each
// percentile lies, and the probes' cost, known to within u ns on each side.
//
// Each side's true metric is its resampled value (the bootstrap's
// sampling error), moved within the slot that value stands for (the
// histogram's resolution: each duration is known only to lie in its
// 1.09%-wide bucket), plus a bias e, |e| <= u, the same for every call of
// that side: a duration corrected by a probe cost that is off by e is off
// by e, and so are its percentiles and mean (a constant shift moves them
// by exactly that). Neither the position in the slot nor e is random, so
// the interval must hold for their worst values. The ratio grows with cur
// and falls with base, so the smallest ratio any of them allows is (cur's
// slot low - u) / (base's slot high + u) and the largest (cur's slot high
// + u) / (base's slot low - u), for every resample. The lower bound is
// therefore the lower quantile of the ratios of the first kind, computed
// by ratioQuantiles over the distributions moved that way, and the upper
// bound the upper quantile of the second: P(true ratio < low) <= P(smallest
// ratio < low) = the lower level, whatever the unknowns are. For small
// widenings this is the sampling interval [lo, hi] scaled to [lo·(c-u)/c
// · b/(b+u), hi·(c+u)/c · b/(b-u)], c and b being the two sides' values.
// A base that may be 0 within u leaves the upper bound only as limited as
// the 1 ns floor makes it.
func widenedInterval(base, cur dist, u, lower, upper float64) interval {
	q := ratioQuantiles(base, cur, lower, upper)
	return interval{
		low:               ratioQuantiles(base.edge(true, u), cur.edge(false, -u), lower)[0],
		high:              ratioQuantiles(base.edge(false, -u), cur.edge(true, u), upper)[0],
		resolutionLimited: base.lo != nil && q[1]/q[0] < math.Sqrt(bucketGrowth),
	}
}

// tailEps is the probability below which a bin is left out of a percentile's
// bootstrap distribution: far smaller than any tail the interval cuts off.
const tailEps = 1e-12

// percentileDist returns the percentile p of s and its exact bootstrap
// distribution. In a resample of n calls drawn with replacement from s, the
// percentile lies at or below bin k exactly when at least rank of the
// resampled calls do, and how many do is Binomial(n, F_k), F_k being the
// fraction of calls in bins up to k. So P(p* <= value_k) = P(Binomial(n,
// F_k) >= rank): the distribution infinitely many resamples would give,
// computed without drawing any. Only bins around the observed percentile
// carry probability; the walk out from it stops where the rest is below
// tailEps.
func percentileDist(s *sample, p float64) (observed float64, d dist) {
	rank := percentileRank(p, s.n)
	cum := make([]uint64, len(s.bins))
	var c uint64
	obs := -1
	for i, b := range s.bins {
		c += b.Count
		cum[i] = c
		if obs < 0 && c >= rank {
			obs = i
		}
	}
	memo := make([]float64, len(s.bins))
	g := func(i int) float64 {
		if memo[i] == 0 {
			memo[i] = -1 // below tailEps, still computed once
			if cum[i] >= s.n {
				memo[i] = 1
			} else if v := binomialAtLeast(s.n, rank, float64(cum[i])/float64(s.n)); v > 0 {
				memo[i] = v
			}
		}
		return max(memo[i], 0)
	}
	lo := obs
	for lo > 0 && g(lo-1) >= tailEps {
		lo--
	}
	hi := obs
	for hi < len(s.bins)-1 && g(hi) <= 1-tailEps {
		hi++
	}
	for i := lo; i <= hi; i++ {
		d.values = append(d.values, s.binValue(i))
		d.cdf = append(d.cdf, g(i))
		d.lo = append(d.lo, float64(min(max(s.bins[i].LoNs, s.min), s.max)))
		d.hi = append(d.hi, float64(min(max(s.bins[i].HiNs, s.min), s.max)))
	}
	// The mass left out above is given to the last bin kept.
	d.cdf[len(d.cdf)-1] = 1
	// The lowest and highest ranks are the exact extremes, as Percentile
	// reports them.
	observed = s.binValue(obs)
	switch rank {
	case 1:
		observed = float64(max(s.min, 1))
	case s.n:
		observed = float64(max(s.max, 1))
	}
	return observed, d
}

// binomialAtLeast returns P(Binomial(n, q) >= r) for 1 <= r <= n, which is
// the regularized incomplete beta function I_q(r, n-r+1).
func binomialAtLeast(n, r uint64, q float64) float64 {
	if q >= 1 {
		return 1
	}
	return regIncBeta(float64(r), float64(n-r+1), q)
}

// regIncBeta is the regularized incomplete beta function I_x(a, b), by its
// continued fraction (DLMF 8.17.22, evaluated with the modified Lentz
// method as in Numerical Recipes' betacf), using the symmetry I_x(a, b) =
// 1 - I_{1-x}(b, a) where the fraction converges slowly. The number of
// terms grows as the square root of a and b, so large call counts cost
// more but stay exact.
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := lab - la - lb + a*math.Log(x) + b*math.Log1p(-x)
	if x < (a+1)/(a+b+2) {
		return math.Exp(front) * betaFraction(a, b, x) / a
	}
	return 1 - math.Exp(front)*betaFraction(b, a, 1-x)/b
}

func betaFraction(a, b, x float64) float64 {
	const (
		eps   = 1e-15
		tiny  = 1e-300
		terms = 1_000_000
	)
	guard := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return tiny
		}
		return v
	}
	c, d := 1.0, 1/guard(1-(a+b)*x/(a+1))
	h := d
	for m := 1.0; m <= terms; m++ {
		aa := m * (b - m) * x / ((a + 2*m - 1) * (a + 2*m))
		d = 1 / guard(1+aa*d)
		c = guard(1 + aa/c)
		h *= d * c
		aa = -(a + m) * (a + b + m) * x / ((a + 2*m) * (a + 2*m + 1))
		d = 1 / guard(1+aa*d)
		c = guard(1 + aa/c)
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// ratioQuantiles returns the quantiles at levels of cur/base, for
// independent cur and base. P(cur/base <= t) = sum over base values b of
// P(base = b) * P(cur <= t*b), which a merge of the two sorted supports
// evaluates; the quantile is found by bisection on log t, to a relative
// precision of 1e-9, far below anything printed.
func ratioQuantiles(base, cur dist, levels ...float64) []float64 {
	cdf := func(t float64) float64 {
		var sum, prev float64
		k := -1 // last cur value <= t*b
		for j, b := range base.values {
			for k+1 < len(cur.values) && cur.values[k+1] <= t*b {
				k++
			}
			if k >= 0 {
				sum += (base.cdf[j] - prev) * cur.cdf[k]
			}
			prev = base.cdf[j]
		}
		return sum
	}
	lo := math.Log(cur.values[0]/base.values[len(base.values)-1]) - 1e-9
	hi := math.Log(cur.values[len(cur.values)-1]/base.values[0]) + 1e-9
	out := make([]float64, len(levels))
	for i, level := range levels {
		l, h := lo, hi // cdf(exp(l)) < level <= cdf(exp(h))
		for h-l > 1e-9 {
			mid := (l + h) / 2
			if cdf(math.Exp(mid)) >= level {
				h = mid
			} else {
				l = mid
			}
		}
		out[i] = math.Exp(h)
	}
	return out
}

// meanResampler draws means of Poisson-bootstrap resamples of one side:
// each bin's count is redrawn as Poisson(count), independently, which for
// counts is what drawing calls with replacement is (Hanley and MacGibbon,
// 2006). Each bin stands for its midpoint. The bins that carry more than
// 2% of the variance, where the few slowest calls sit and where skew comes
// from, are drawn exactly; the sum over the other bins is a sum of many
// small independent terms, drawn from its normal limit (mean, variance and
// covariance of the count and the duration total are exact), which keeps a
// resample O(1) in the number of bins.
type meanResampler struct {
	exactValues, exactCounts []float64
	exactExp                 []float64 // exp(-count), for drawing small counts
	n, sum                   float64   // of the other bins
	l11, l21, l22            float64   // Cholesky factor of their (count, total) covariance
	binnedMean               float64
}

func newMeanResampler(s *sample) *meanResampler {
	r := &meanResampler{}
	var n, sum float64
	mids := make([]float64, len(s.bins))
	for i, b := range s.bins {
		mids[i] = float64(b.ValueNs)
		n += float64(b.Count)
		sum += float64(b.Count) * mids[i]
	}
	r.binnedMean = sum / n
	var total float64
	for i, b := range s.bins {
		dv := mids[i] - r.binnedMean
		total += float64(b.Count) * dv * dv
	}
	var bulk []int
	for i, b := range s.bins {
		dv := mids[i] - r.binnedMean
		if total > 0 && float64(b.Count)*dv*dv >= 0.02*total {
			r.exactValues = append(r.exactValues, mids[i])
			r.exactCounts = append(r.exactCounts, float64(b.Count))
			r.exactExp = append(r.exactExp, math.Exp(-float64(b.Count)))
			continue
		}
		bulk = append(bulk, i)
		r.n += float64(b.Count)
		r.sum += float64(b.Count) * mids[i]
	}
	if r.n > 0 {
		bm := r.sum / r.n
		var centred float64 // sum of count*(v-bulk mean)^2, without cancellation
		for _, i := range bulk {
			dv := mids[i] - bm
			centred += float64(s.bins[i].Count) * dv * dv
		}
		// Var(N) = n, Cov(S, N) = sum, Var(S) = sum of count*v^2.
		r.l11 = math.Sqrt(r.n)
		r.l21 = r.sum / r.l11
		r.l22 = math.Sqrt(centred)
	}
	return r
}

func (r *meanResampler) draw(rng *rand.Rand) float64 {
	n, sum := r.n, r.sum
	if r.n > 0 {
		z1, z2 := rng.NormFloat64(), rng.NormFloat64()
		n += r.l11 * z1
		sum += r.l21*z1 + r.l22*z2
	}
	for i, c := range r.exactCounts {
		k := poisson(rng, c, r.exactExp[i])
		n += k
		sum += k * r.exactValues[i]
	}
	if n <= 0 {
		return r.binnedMean
	}
	return sum / n
}

// meanDist returns the distribution of the means of draws Poisson-bootstrap
// resamples of s. The two sides are resampled independently, so the
// ratio's distribution is that of every pair of their means: 250,000 pairs
// from 500 draws a side, evaluated exactly by ratioQuantiles, smoother than
// 500 paired ratios for the same cost.
func meanDist(s *sample, draws int, rng *rand.Rand) (binnedMean float64, d dist) {
	r := newMeanResampler(s)
	d.values = make([]float64, draws)
	d.cdf = make([]float64, draws)
	for i := range d.values {
		d.values[i] = max(r.draw(rng), 1e-9)
		d.cdf[i] = float64(i+1) / float64(draws)
	}
	slices.Sort(d.values)
	return r.binnedMean, d
}

// meanDists returns the distributions of the means of draws resamples of
// each side, seeded by seed. Bins stand for their midpoints, which shifts
// a mean by a fraction of a percent; each side's resampled means are
// scaled by exact/binned so that they are around its exact mean, and the
// ratio's interval around the exact change.
func meanDists(base, cur *sample, draws int, seed uint64) (bd, cd dist) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	bm, bd := meanDist(base, draws, rng)
	cm, cd := meanDist(cur, draws, rng)
	rescale := func(d dist, binned, exact float64) {
		if binned > 0 && exact > 0 {
			for i := range d.values {
				d.values[i] *= exact / binned
			}
		}
	}
	rescale(bd, bm, base.mean)
	rescale(cd, cm, cur.mean)
	return bd, cd
}

// meanRatioQuantiles returns the quantiles at levels of the ratio of
// resampled means cur/base (meanDists).
func meanRatioQuantiles(base, cur *sample, draws int, seed uint64, levels ...float64) []float64 {
	bd, cd := meanDists(base, cur, draws, seed)
	return ratioQuantiles(bd, cd, levels...)
}

// poisson draws from Poisson(lambda): by inversion for small lambda, and
// by Hörmann's transformed rejection (PTRS, 1993; as numpy does) above.
// expNeg is exp(-lambda), which the caller computes once per lambda.
func poisson(rng *rand.Rand, lambda, expNeg float64) float64 {
	if lambda < 10 {
		p := expNeg
		u := rng.Float64()
		k, cum := 0.0, p
		for u > cum && k < 1000 {
			k++
			p *= lambda / k
			cum += p
		}
		return k
	}
	slam, loglam := math.Sqrt(lambda), math.Log(lambda)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invAlpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := rng.Float64() - 0.5
		v := rng.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lambda + 0.43)
		if us >= 0.07 && v <= vr {
			return k
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invAlpha)-math.Log(a/(us*us)+b) <= -lambda+k*loglam-lg {
			return k
		}
	}
}

// seedOf hashes both sides' bins and the metric, so that the same inputs
// always draw the same resamples and get the same verdict.
func seedOf(metric string, samples ...*sample) uint64 {
	h := fnv.New64a()
	h.Write([]byte(metric))
	var buf [16]byte
	for _, s := range samples {
		for _, b := range s.bins {
			binary.LittleEndian.PutUint64(buf[:8], b.LoNs)
			binary.LittleEndian.PutUint64(buf[8:], b.Count)
			h.Write(buf[:])
		}
		h.Write([]byte{0xff})
	}
	return h.Sum64()
}
