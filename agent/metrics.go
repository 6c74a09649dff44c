package agent

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/ulat-dev/ulat/report"
)

// Classic buckets are powers of two of a second, from 2^-20 s (~0.95 µs)
// to 2^5 s (32 s): each is a boundary of the native schema-6 buckets, so
// their counts are exact sums of ulat's slots.
const (
	classicLowExp  = -20
	classicHighExp = 5
)

// classicUpperBounds are the classic buckets' bounds, in seconds.
var classicUpperBounds = func() (out [classicHighExp - classicLowExp + 1]float64) {
	for k := classicLowExp; k <= classicHighExp; k++ {
		out[k-classicLowExp] = math.Ldexp(1, k)
	}
	return out
}()

// histogramMetric is one function's histogram as a Prometheus histogram
// with both classic buckets (for text-format scrapers) and native ones of
// schema 6, which are ulat's slots themselves: exact, and downscaled by
// Prometheus to any lower schema exactly.
type histogramMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	h      *dto.Histogram
}

func (m histogramMetric) Desc() *prometheus.Desc { return m.desc }

func (m histogramMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Histogram = m.h
	return nil
}

// counterMetric is a counter with label pairs made already.
type counterMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
}

func (m counterMetric) Desc() *prometheus.Desc { return m.desc }

func (m counterMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Counter = &dto.Counter{Value: proto.Float64(m.value)}
	return nil
}

// dtoCache holds what Prometheus is served of each series: its label
// pairs, and its histogram while it has no new call. At rest, and for the
// many functions a glob matches that are rarely called, a scrape reuses
// them rather than building a thousand anew. Each scrape keeps only the
// series it served.
type dtoCache struct {
	mu     sync.Mutex
	byName map[seriesName]*servedSeries
}

// seriesName is what names a series: its target (and the target's static
// labels, which a reload may change), file, function and place.
type seriesName struct {
	target, static, binary, function string
	where                            where
}

// servedSeries is a series as Prometheus is served it.
type servedSeries struct {
	labels  []*dto.LabelPair // sorted by name; those with no value left out
	escaped string           // the labels as the text format writes them
	state   histState
	summary *summary
	// hist is the summary as Prometheus's histogram, made by the first
	// scrape that encodes it (protobuf: a text scrape writes the summary).
	histOnce sync.Once
	hist     *dto.Histogram
	// compressed is the histogram's lines in the text format, deflated
	// (0.3 KB, where the text is 4.2 KB) by a gzipped text scrape that
	// serves them again: the first compresses them with the rest of its
	// text, as most lines of a series that has calls between scrapes will
	// not be served again.
	textServed atomic.Bool
	compressed atomic.Pointer[deflated]
}

// histogram is the series' histogram as Prometheus's.
func (ss *servedSeries) histogram() *dto.Histogram {
	ss.histOnce.Do(func() { ss.hist = ss.summary.toDTO() })
	return ss.hist
}

// deflatesPerScrape bounds the series a scrape deflates on their own,
// each ~60 µs, several times the cost of compressing them with the rest:
// a thousand series that stopped changing at once would have made one
// scrape take 70 ms more.
const deflatesPerScrape = 128

// deflatedText is the series' histogram's lines in the text format,
// deflated, or nil where they were not served before, or are not
// deflated yet and budget is spent.
func (ss *servedSeries) deflatedText(budget *int) *deflated {
	if !ss.textServed.Swap(true) {
		return nil
	}
	if d := ss.compressed.Load(); d != nil {
		return d
	}
	if *budget <= 0 {
		return nil
	}
	*budget--
	d := deflate(ss.summary.appendText(nil, ss.escaped))
	ss.compressed.Store(&d) // two scrapes at once may both deflate them: the same
	return &d
}

// histState is what changes with every call of a series: counts only grow
// while its sessions run, and a session that ends or starts moves started
// or the totals, so the same state is the same histogram.
type histState struct {
	started             time.Time
	count, sumHi, sumLo uint64
	min, max            uint64
}

// served returns how each series is served, in order.
func (c *dtoCache) served(all []*series) []*servedSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*servedSeries, len(all))
	next := make(map[seriesName]*servedSeries, len(all))
	static := map[string]string{} // by target: its labels, once a scrape
	for i, se := range all {
		st, ok := static[se.target.Name]
		if !ok {
			var b strings.Builder
			for _, k := range sortedKeys(se.target.Labels) {
				b.WriteString(k)
				b.WriteByte(0)
				b.WriteString(se.target.Labels[k])
				b.WriteByte(0)
			}
			st = b.String()
			static[se.target.Name] = st
		}
		k := seriesName{se.target.Name, st, se.binary, se.function, se.where}
		hi, lo := se.hist.Sum()
		state := histState{se.started, se.hist.Count(), hi, lo, se.hist.Min(), se.hist.Max()}
		ss := c.byName[k]
		if ss == nil {
			ss = &servedSeries{labels: labelPairs(se.labels())}
			ss.escaped = escapedLabels(ss.labels)
		}
		if ss.summary == nil || ss.state != state {
			// A new one: scrapes may still be encoding the old.
			ss = &servedSeries{labels: ss.labels, escaped: ss.escaped, state: state, summary: summarize(se.hist)}
		}
		out[i], next[k] = ss, ss
	}
	c.byName = next
	return out
}

// labelPairs are the labels with a value, sorted by name: a label with
// none is the same as no label to Prometheus, and a line of every bucket
// of the text format would repeat it.
func labelPairs(names, values []string) []*dto.LabelPair {
	// One allocation for the pairs, one for their strings: a scrape that
	// meets a thousand series for the first time makes them all.
	pairs := make([]dto.LabelPair, len(names))
	strs := make([]string, 2*len(names))
	out := make([]*dto.LabelPair, 0, len(names))
	for i, n := range names {
		if values[i] != "" {
			strs[2*i], strs[2*i+1] = n, values[i]
			pairs[i].Name, pairs[i].Value = &strs[2*i], &strs[2*i+1]
			out = append(out, &pairs[i])
		}
	}
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// compareLabelValues orders metrics of a family as the registry's
// Gather does: by their labels' values, in the labels' order.
func compareLabelValues(x, y []*dto.LabelPair) int {
	if len(x) != len(y) {
		return cmp.Compare(len(x), len(y))
	}
	for i, lp := range x {
		if c := strings.Compare(lp.GetValue(), y[i].GetValue()); c != 0 {
			return c
		}
	}
	return 0
}

// summary is a series' histogram as it is served, in seconds: made once
// for each state of the series, it is what its text lines and its
// Prometheus histogram are made from, when a scrape asks for them. Scrapes
// only read it.
type summary struct {
	count, zero uint64
	sum         float64
	// classic are the classic buckets' cumulative counts: calls of 0 ns
	// are below every bound, and a native bucket is at or below 2^k s
	// when its index is at most k*64.
	classic [classicHighExp - classicLowExp + 1]uint64
	native  []nativeBucket
}

func summarize(h *report.Histogram) *summary {
	s := &summary{count: h.Count(), sum: sumSeconds(h)}
	s.zero, s.native = nativeBuckets(h)
	for i := range s.classic {
		s.classic[i] = s.zero
	}
	for _, b := range s.native {
		for k := classicLowExp; k <= classicHighExp; k++ {
			if b.index <= int32(k*(1<<nativeSchema)) {
				s.classic[k-classicLowExp] += b.count
			}
		}
	}
	return s
}

// toDTO is the summary as Prometheus's histogram, which points into it
// (the encoders only read it).
func (s *summary) toDTO() *dto.Histogram {
	out := &dto.Histogram{
		SampleCount:   &s.count,
		SampleSum:     &s.sum,
		Schema:        proto32(nativeSchema),
		ZeroThreshold: &nativeZeroThreshold,
		ZeroCount:     &s.zero,
	}
	// One allocation for the buckets; the bounds are shared by every
	// series.
	bs := make([]dto.Bucket, len(s.classic))
	out.Bucket = make([]*dto.Bucket, len(s.classic))
	for i := range s.classic {
		bs[i].CumulativeCount, bs[i].UpperBound = &s.classic[i], &classicUpperBounds[i]
		out.Bucket[i] = &bs[i]
	}
	out.PositiveSpan, out.PositiveDelta = spans(s.native)
	return out
}

// nativeZeroThreshold is every histogram's: calls of 0 ns only.
var nativeZeroThreshold = prometheus.DefNativeHistogramZeroThreshold

// appendText appends the summary's lines in the text format, labelled
// labels, as expfmt writes the histogram toDTO makes (a test holds it to
// that): its classic buckets, +Inf, sum and count.
func (s *summary) appendText(b []byte, labels string) []byte {
	for i, c := range s.classic {
		b = appendLine(b, durationName, "_bucket", labels, classicLe[i], float64(c))
	}
	b = appendLine(b, durationName, "_bucket", labels, "+Inf", float64(s.count))
	b = appendLine(b, durationName, "_sum", labels, "", s.sum)
	return appendLine(b, durationName, "_count", labels, "", float64(s.count))
}

// spans encodes native buckets, in increasing index order, as
// Prometheus's spans of consecutive indexes and count deltas.
func spans(native []nativeBucket) ([]*dto.BucketSpan, []int64) {
	if len(native) == 0 {
		return nil, nil
	}
	n := 0 // spans: a bucket not right after the one before starts one
	for i, b := range native {
		if i == 0 || b.index != native[i-1].index+1 {
			n++
		}
	}
	// The spans and their fields in one allocation each.
	all := make([]dto.BucketSpan, n)
	offsets, lengths := make([]int32, n), make([]uint32, n)
	out := make([]*dto.BucketSpan, 0, n)
	deltas := make([]int64, len(native))
	var (
		prev int64
		next int32 // the index after the last span's end
	)
	for i, b := range native {
		if i == 0 || b.index != next {
			k := len(out)
			offsets[k] = b.index
			if i > 0 {
				offsets[k] = b.index - next
			}
			all[k].Offset, all[k].Length = &offsets[k], &lengths[k]
			out = append(out, &all[k])
		}
		lengths[len(out)-1]++
		c := int64(b.count)
		deltas[i] = c - prev
		prev, next = c, b.index+1
	}
	return out, deltas
}

func proto32(v int32) *int32 { return &v }
