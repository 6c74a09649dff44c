// Package compare judges a current report against a baseline, function by
// function, and writes the verdict as a table, markdown or JSON.
//
// A metric (a percentile such as p99, or the mean) regresses when both
// hold:
//
//   - its observed change exceeds the threshold (p50 +10% by default; tail
//     percentiles only when asked for), and
//   - so does all of the change's interval: its bootstrap confidence
//     interval (99% by default), widened by what the bootstrap cannot see,
//     lies entirely above the threshold.
//
// It improves symmetrically: a change below -threshold whose whole interval
// is below -threshold. Everything else is unchanged. A function regresses
// when any of its metrics does, and the comparison when any function does.
//
// The interval guards against judging a few calls: with 150 calls a p99
// rests on two of them, and a +40% change can be pure chance, which the
// interval shows by reaching below the threshold. It is widened by two
// things that are not chance, for their worst values:
//
//   - the histograms' resolution: a percentile is known only to lie in its
//     1.09%-wide bucket, so the interval is never narrower than the
//     buckets. When every resample puts each side's percentile in one
//     bucket the bootstrap says nothing more; the metric is then marked
//     resolution-limited and its bounds are not called a confidence
//     interval.
//   - the probes' cost: durations have it subtracted, and it is known only
//     so well (each report's probe_uncertainty_ns; half the difference
//     between the two runs' calibrations of the function's probes when
//     larger, since a consistent correction could move each side that
//     far). Each side's metric may be off by that much, which single-
//     stepped probes of 10-15 µs make several percent of a short function.
//
// The interval cannot see run-to-run noise: calls are not independent
// draws, and a whole run is slower when the machine is busy or the CPU
// clocks down, so with millions of calls the interval is narrow around a
// change that is real for that run and meaningless for the code. The
// threshold guards against that; it is the smallest change worth failing a
// build for on the machine at hand, and merging several baseline runs
// (report.Merge) makes the baseline steadier.
//
// Functions with fewer than MinCount calls (100 by default) on either side
// are reported as "not enough data", never judged; functions on one side
// only are reported as such.
//
// The intervals come from the histograms alone: every report carries each
// function's full histogram (package buckets: 1.09%-wide buckets), so no
// call has to be kept. For percentiles the bootstrap distribution is computed exactly,
// without resampling: in a resample of n calls the p-th percentile is at or
// below a bin exactly when at least its rank of the resampled calls are,
// and that number is Binomial(n, F), F being the fraction of calls up to
// the bin; the percentile is computed as report.Histogram.Percentile
// computes it. The distribution of the ratio current/baseline of the two
// independent percentiles is then evaluated exactly too, and its
// (1-confidence)/2 and (1+confidence)/2 quantiles bound the change. The
// mean has no such closed form; it uses the Poisson bootstrap (each bin's
// count redrawn as Poisson(count), the way to resample data held as counts)
// with Resamples draws, seeded from the data so that the same inputs always
// give the same verdict. Either way a function costs little (1000
// functions compare in well under a second) and the verdict is
// deterministic.
package compare
