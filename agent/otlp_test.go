package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/pdata/pmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ulat-dev/ulat/internal/otlptest"
	"github.com/ulat-dev/ulat/report"
)

// exactValues are durations in ns at the edges of ulat's layout: 0 (the
// zero bucket), 1 ns (the first slot), sparse slots below ~92 ns, bucket
// boundaries (1 s is 2^0), and past 1024 s (the overflow slot).
var exactValues = []uint64{0, 0, 1, 7, 92, 953, 954, 999_999, 1_000_000, 1_000_001, 1_000_000_000, 1_000_000_000, 1_000_000_001, 3_000_000_000, 2_000_000_000_000}

// nativeOf decodes a Prometheus native histogram's spans and deltas, as
// Prometheus does, into counts by bucket index.
func nativeOf(m *dto.Histogram) map[int32]uint64 {
	got := map[int32]uint64{}
	var idx int32
	var count int64
	deltas := m.GetPositiveDelta()
	for n, s := range m.GetPositiveSpan() {
		if n == 0 {
			idx = s.GetOffset()
		} else {
			idx += s.GetOffset()
		}
		for range s.GetLength() {
			count += deltas[0]
			deltas = deltas[1:]
			got[idx] = uint64(count)
			idx++
		}
	}
	return got
}

// The exponential histogram pushed over OTLP is /metrics' native
// histogram: scale 6 as schema 6, each native bucket i as OTLP bucket i-1
// (the same bounds), the same zero count, count and sum; and each call is
// in the OTLP bucket whose bounds hold it.
func TestExponentialMatchesNative(t *testing.T) {
	h := report.NewHistogram()
	for _, v := range exactValues {
		h.Record(v)
	}
	prom := summarize(h).toDTO()
	dp := exponentialPoint(h)

	if dp.Scale != prom.GetSchema() || dp.Scale != 6 {
		t.Errorf("scale %d, Prometheus schema %d; want both 6", dp.Scale, prom.GetSchema())
	}
	if dp.ZeroCount != 2 || dp.ZeroCount != prom.GetZeroCount() || dp.ZeroThreshold != 0 {
		t.Errorf("zero count %d (threshold %g), Prometheus %d; want 2 at threshold 0", dp.ZeroCount, dp.ZeroThreshold, prom.GetZeroCount())
	}
	if dp.Count != uint64(len(exactValues)) || dp.Count != prom.GetSampleCount() {
		t.Errorf("count %d, Prometheus %d; want %d", dp.Count, prom.GetSampleCount(), len(exactValues))
	}
	var sum float64
	for _, v := range exactValues {
		sum += float64(v)
	}
	if dp.Sum != prom.GetSampleSum() || math.Abs(dp.Sum-sum/1e9) > 1e-12*sum/1e9 {
		t.Errorf("sum %v s, Prometheus %v; want %v", dp.Sum, prom.GetSampleSum(), sum/1e9)
	}
	if lo, ok := dp.Min.Value(); !ok || lo != 0 {
		t.Errorf("min %v (%v), want 0", lo, ok)
	}
	if hi, ok := dp.Max.Value(); !ok || hi != 2000 {
		t.Errorf("max %v (%v), want 2000 s", hi, ok)
	}
	if len(dp.NegativeBucket.Counts) != 0 {
		t.Errorf("negative buckets %v", dp.NegativeBucket)
	}

	// Each OTLP bucket k holds (2^(k/64), 2^((k+1)/64)] s: a call of v s
	// is in bucket ceil(64 log2 v) - 1, worked out here without package
	// buckets. 1 ns is in bucket -1914, 1 s (2^0) in -1, and calls past
	// 1024 s in the one above 1024 s, 640.
	want := map[int32]uint64{}
	for _, v := range exactValues {
		if v == 0 {
			continue
		}
		k := int32(math.Ceil(64*math.Log2(float64(v)/1e9))) - 1
		if v > 1024e9 {
			k = 640
		}
		want[k]++
	}
	if want[-1914] != 1 || want[-1] != 2 {
		t.Fatalf("the test's own bucket arithmetic is off: %v", want)
	}
	if dp.PositiveBucket.Offset != -1914 || len(dp.PositiveBucket.Counts) != 640-(-1914)+1 {
		t.Errorf("offset %d, %d buckets; want -1914 and %d (up to bucket 640)", dp.PositiveBucket.Offset, len(dp.PositiveBucket.Counts), 640+1914+1)
	}
	native := nativeOf(prom)
	for n, c := range dp.PositiveBucket.Counts {
		k := dp.PositiveBucket.Offset + int32(n)
		if c != want[k] {
			t.Errorf("OTLP bucket %d: %d calls, want %d", k, c, want[k])
		}
		if c != native[k+1] {
			t.Errorf("OTLP bucket %d: %d calls, Prometheus bucket %d: %d", k, c, k+1, native[k+1])
		}
		delete(native, k+1)
	}
	if len(native) != 0 {
		t.Errorf("Prometheus buckets with no OTLP bucket: %v", native)
	}

	// An empty histogram: no buckets, no extremes.
	empty := exponentialPoint(report.NewHistogram())
	if _, ok := empty.Min.Value(); ok || empty.Count != 0 || len(empty.PositiveBucket.Counts) != 0 {
		t.Errorf("empty histogram: %+v", empty)
	}
}

// testSeries are series of two traced files as Agent.exported would
// list them: the first file's work in a container, with a histogram of
// exactValues, and its idle function outside any; 7 series left out.
func testSeries(started time.Time) func() ([]*series, []*fileTotals, int) {
	h := report.NewHistogram()
	for _, v := range exactValues {
		h.Record(v)
	}
	ct := Target{Name: "ct", Labels: map[string]string{"team": "perf"}}
	served := []*series{
		{target: ct, binary: "/opt/ct", function: "work", where: where{container: "web-1", pod: "web-abc", namespace: "shop"}, hist: h, notReturned: 5, started: started},
		{target: ct, binary: "/opt/ct", function: "idle", hist: report.NewHistogram(), started: started},
	}
	files := []*fileTotals{
		{target: ct, binary: "/opt/ct", dropped: 3, unpaired: 4, processes: 2, started: started},
		{target: Target{Name: "other"}, binary: "/opt/other", started: started},
	}
	return func() ([]*series, []*fileTotals, int) { return served, files, 7 }
}

// checkPush checks one push of testSeries as the collector decodes it:
// every metric, its data points' attributes, values and times.
func checkPush(t *testing.T, md pmetric.Metrics, started time.Time) {
	t.Helper()
	if md.ResourceMetrics().Len() != 1 || md.ResourceMetrics().At(0).ScopeMetrics().Len() != 1 {
		t.Fatalf("want one resource and one scope: %d resources", md.ResourceMetrics().Len())
	}
	rm := md.ResourceMetrics().At(0)
	host, _ := os.Hostname()
	if res := otlptest.Attributes(rm.Resource().Attributes()); res["service.name"] != "ulat-agent" || res["service.version"] != "v-test" || res["host.name"] != host || len(res) != 3 {
		t.Errorf("resource %v", res)
	}
	if sc := rm.ScopeMetrics().At(0).Scope(); sc.Name() != otlpScope || sc.Version() != "v-test" {
		t.Errorf("scope %s %s", sc.Name(), sc.Version())
	}

	m, ok := otlptest.Metric(md, "ulat.function.duration")
	if !ok || m.Type() != pmetric.MetricTypeExponentialHistogram || m.Unit() != "s" {
		t.Fatalf("ulat.function.duration: %v, type %s", ok, m.Type())
	}
	eh := m.ExponentialHistogram()
	if eh.AggregationTemporality() != pmetric.AggregationTemporalityCumulative || eh.DataPoints().Len() != 2 {
		t.Fatalf("duration: temporality %s, %d points; want cumulative, 2", eh.AggregationTemporality(), eh.DataPoints().Len())
	}
	wantPoint := exponentialPoint(testSeriesHist())
	for _, p := range eh.DataPoints().All() {
		attrs := otlptest.Attributes(p.Attributes())
		want := map[string]string{"target": "ct", "binary": "/opt/ct", "team": "perf", "function": attrs["function"]}
		if attrs["function"] == "work" {
			// The place's labels where there is one, none where not.
			want["container"], want["pod"], want["namespace"] = "web-1", "web-abc", "shop"
		}
		if !maps.Equal(attrs, want) {
			t.Errorf("duration point's attributes %v, want %v", attrs, want)
		}
		if !p.StartTimestamp().AsTime().Equal(started) || !p.Timestamp().AsTime().After(started) {
			t.Errorf("%s: start %v, time %v; want start %v and a time after", attrs["function"], p.StartTimestamp().AsTime(), p.Timestamp().AsTime(), started)
		}
		if attrs["function"] == "idle" {
			if p.Count() != 0 || p.Positive().BucketCounts().Len() != 0 || p.HasMin() {
				t.Errorf("idle: count %d, %d buckets", p.Count(), p.Positive().BucketCounts().Len())
			}
			continue
		}
		if attrs["function"] != "work" || p.Count() != wantPoint.Count || p.Sum() != wantPoint.Sum || p.Scale() != 6 || p.ZeroCount() != 2 ||
			p.Min() != 0 || p.Max() != 2000 || p.Positive().Offset() != wantPoint.PositiveBucket.Offset ||
			!slices.Equal(p.Positive().BucketCounts().AsRaw(), wantPoint.PositiveBucket.Counts) || p.Negative().BucketCounts().Len() != 0 {
			t.Errorf("work: function %q, count %d, sum %v, scale %d, zero %d, min %v, max %v, offset %d, %d buckets; want %d, %v, 6, 2, 0, 2000, %d, %v",
				attrs["function"], p.Count(), p.Sum(), p.Scale(), p.ZeroCount(), p.Min(), p.Max(), p.Positive().Offset(), p.Positive().BucketCounts().Len(),
				wantPoint.Count, wantPoint.Sum, wantPoint.PositiveBucket.Offset, wantPoint.PositiveBucket.Counts)
		}
	}

	sums := map[string]map[string]int64{} // metric → target/function → value
	for _, name := range []string{"ulat.calls_not_returned", "ulat.dropped_events", "ulat.unpaired_exits"} {
		m, ok := otlptest.Metric(md, name)
		if !ok || m.Type() != pmetric.MetricTypeSum || !m.Sum().IsMonotonic() || m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
			t.Errorf("%s: %v, type %s: want a monotonic cumulative sum", name, ok, m.Type())
			continue
		}
		sums[name] = map[string]int64{}
		for _, p := range m.Sum().DataPoints().All() {
			attrs := otlptest.Attributes(p.Attributes())
			sums[name][attrs["target"]+"/"+attrs["function"]] = p.IntValue()
			if !p.StartTimestamp().AsTime().Equal(started) {
				t.Errorf("%s: start %v, want %v", name, p.StartTimestamp().AsTime(), started)
			}
		}
	}
	wantSums := map[string]map[string]int64{
		"ulat.calls_not_returned": {"ct/work": 5, "ct/idle": 0},
		"ulat.dropped_events":     {"ct/": 3, "other/": 0},
		"ulat.unpaired_exits":     {"ct/": 4, "other/": 0},
	}
	for name, w := range wantSums {
		if !maps.Equal(sums[name], w) {
			t.Errorf("%s: %v, want %v", name, sums[name], w)
		}
	}
	if m, ok := otlptest.Metric(md, "ulat.series_over_limit"); !ok || m.Type() != pmetric.MetricTypeGauge || m.Gauge().DataPoints().At(0).IntValue() != 7 {
		t.Errorf("ulat.series_over_limit: %v, type %s, want a gauge of 7", ok, m.Type())
	}
	procs := map[string]int64{}
	if m, ok := otlptest.Metric(md, "ulat.traced_processes"); ok && m.Type() == pmetric.MetricTypeGauge {
		for _, p := range m.Gauge().DataPoints().All() {
			procs[otlptest.Attributes(p.Attributes())["target"]] = p.IntValue()
		}
	}
	if !maps.Equal(procs, map[string]int64{"ct": 2, "other": 0}) {
		t.Errorf("ulat.traced_processes: %v, want a gauge of 2 for ct, 0 for other", procs)
	}
}

func testSeriesHist() *report.Histogram {
	served, _, _ := testSeries(time.Time{})()
	return served[0].hist
}

// syncBuffer is a log that tests read while the exporter writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Stopping the push (SIGTERM, a reload) pushes once, over each transport,
// with the config's headers and compression; the collector decodes every
// series.
func TestOTLPPushOnStop(t *testing.T) {
	for _, c := range []struct {
		name, compression string
		grpc              bool
	}{{"http", "", false}, {"http gzip", "gzip", false}, {"grpc", "", true}, {"grpc gzip", "gzip", true}} {
		t.Run(c.name, func(t *testing.T) {
			var recv *otlptest.Receiver
			var endpoint string
			if c.grpc {
				var addr string
				recv, addr = otlptest.NewGRPC(t)
				endpoint = "grpc://" + addr
			} else {
				recv, endpoint = otlptest.NewHTTP(t)
			}
			cfg := OTLP{Endpoint: endpoint, Compression: c.compression, Headers: map[string]string{"Authorization": "Bearer x"}}
			if err := cfg.check(); err != nil {
				t.Fatal(err)
			}
			cfg.Interval = time.Hour // no push but the last
			started := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
			var log syncBuffer
			p, err := startOTLP(cfg, otlpProducer{series: testSeries(started), version: "v-test", started: started}, slog.New(slog.NewTextHandler(&log, nil)))
			if err != nil {
				t.Fatal(err)
			}
			p.stop()
			reqs := recv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d pushes, want the last one only; log:\n%s", len(reqs), log.String())
			}
			if got := reqs[0].Header.Get("Authorization"); got != "Bearer x" {
				t.Errorf("authorization %q, want the config's", got)
			}
			encoding := reqs[0].Header.Get("Content-Encoding")
			if c.grpc {
				encoding = reqs[0].Header.Get("Grpc-Encoding")
			}
			if encoding != c.compression {
				t.Errorf("encoding %q, want %q", encoding, c.compression)
			}
			checkPush(t, reqs[0].Metrics, started)
			if log.String() != "" {
				t.Errorf("log: %s", log.String())
			}
		})
	}
}

// The push goes on every interval, cumulative: the same start time each
// time.
func TestOTLPPushEveryInterval(t *testing.T) {
	recv, endpoint := otlptest.NewHTTP(t)
	started := time.Now().Truncate(time.Microsecond)
	cfg := OTLP{Endpoint: endpoint, Interval: 50 * time.Millisecond, Timeout: 10 * time.Second}
	p, err := startOTLP(cfg, otlpProducer{series: testSeries(started), version: "v-test", started: started}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	reqs := recv.Wait(t, time.Minute, "3 pushes", func(r []otlptest.Request) bool { return len(r) >= 3 })
	for _, r := range reqs[:3] {
		checkPush(t, r.Metrics, started)
	}
}

// A collector that is down is logged once, not at every push, and the
// agent goes on; the last push is bounded in time and its failure logged.
func TestOTLPCollectorDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	cfg := OTLP{Endpoint: "http://" + addr, Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond}
	var log syncBuffer
	p, err := startOTLP(cfg, otlpProducer{series: testSeries(time.Now()), version: "v-test"}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for failed := 0; failed < 5; {
		p.exporter.mu.Lock()
		failed = p.exporter.total
		p.exporter.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d pushes failed in a minute, want 5; log:\n%s", failed, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(log.String(), "\n"); n != 1 || !strings.Contains(log.String(), "OTLP push to http://"+addr+" failed (logged again every 5m0s while it fails)") {
		t.Errorf("log after 5 failed pushes, want one line:\n%s", log.String())
	}
	begin := time.Now()
	p.stop()
	if took := time.Since(begin); took > otlpFlushTimeout+10*time.Second {
		t.Errorf("the last push took %s; the flush timeout is %s", took, otlpFlushTimeout)
	}
	if !strings.Contains(log.String(), "the last push failed") {
		t.Errorf("log does not say the last push failed:\n%s", log.String())
	}
}

// failingExporter fails every push with err, or none when err is nil.
type failingExporter struct {
	sdkmetric.Exporter
	mu  sync.Mutex
	err error
}

func (f *failingExporter) Export(context.Context, *metricdata.ResourceMetrics) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Failed pushes are logged when they start failing, then at most every
// exportLogEvery with how many failed, and when a push works again; the
// last push's failure always.
func TestLoggedExporterRate(t *testing.T) {
	var log syncBuffer
	now := time.Unix(0, 0)
	inner := &failingExporter{err: errors.New("connection refused")}
	e := &loggedExporter{Exporter: inner, log: slog.New(slog.NewTextHandler(&log, nil)), endpoint: "http://c:4318", now: func() time.Time { return now }}
	push := func(at time.Duration, err error) {
		now = time.Unix(0, 0).Add(at)
		inner.err = err
		if e.Export(context.Background(), &metricdata.ResourceMetrics{}) != nil {
			t.Errorf("Export returned an error to the SDK")
		}
	}
	down := errors.New("connection refused")
	push(0, down)
	push(time.Minute, down)
	push(4*time.Minute, down)
	push(5*time.Minute, down) // 5 minutes after the first line
	push(6*time.Minute, nil)
	push(7*time.Minute, nil)
	push(8*time.Minute, down)
	e.flushing()
	push(8*time.Minute+time.Second, down)
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	want := []string{
		"OTLP push to http://c:4318 failed (logged again every 5m0s while it fails): connection refused",
		"OTLP push to http://c:4318: 3 failed in the last 5m0s; the last: connection refused",
		"OTLP push to http://c:4318 works again, after 4 failed",
		"OTLP push to http://c:4318 failed (logged again every 5m0s while it fails): connection refused",
		"OTLP push to http://c:4318: the last push failed: connection refused",
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s\nwant %d lines", log.String(), len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant %q", i, lines[i], w)
		}
	}
}

// A series of two sessions (a file replaced while its old processes
// run) is cumulative from the earlier one's start; so are its file's
// totals.
func TestSeriesStartedEarliest(t *testing.T) {
	off := false
	a := &Agent{cfg: &Config{ContainerLabels: &off, MaxSeries: 10}, places: newPlaces("", nil)}
	t0 := time.Unix(1000, 0)
	tg := Target{Name: "ct"}
	snap := func(started time.Time, calls uint64) snapshot {
		h := report.NewHistogram()
		for range calls {
			h.Record(1000)
		}
		return snapshot{target: tg, exe: "/opt/ct", started: started, r: &report.Report{Functions: []report.FunctionStats{{Function: "work", Hist: h}}}}
	}
	all, files := a.seriesOf([]snapshot{snap(t0.Add(time.Minute), 2), snap(t0, 3)})
	if len(all) != 1 || !all[0].started.Equal(t0) || all[0].hist.Count() != 5 || len(files) != 1 || !files[0].started.Equal(t0) {
		t.Fatalf("%d series, started %v, %d calls; files started %v; want 1, %v, 5, %v", len(all), all[0].started, all[0].hist.Count(), files[0].started, t0, t0)
	}
}
