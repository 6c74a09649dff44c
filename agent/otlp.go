package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc/credentials"

	"github.com/ulat-dev/ulat/report"
)

// The OTLP metrics' names are chosen so that a collector's Prometheus
// exporter turns them into /metrics' names (ulat.function.duration in
// seconds becomes ulat_function_duration_seconds, a monotonic sum gets
// _total).
const (
	otlpDuration    = "ulat.function.duration"
	otlpNotReturned = "ulat.calls_not_returned"
	otlpDropped     = "ulat.dropped_events"
	otlpUnpaired    = "ulat.unpaired_exits"
	otlpProcesses   = "ulat.traced_processes"
	otlpOverLimit   = "ulat.series_over_limit"
)

// otlpScope is the instrumentation scope of everything the agent pushes.
const otlpScope = "github.com/ulat-dev/ulat/agent"

// otlpFlushTimeout bounds the last push when the agent ends or its OTLP
// config changes, so that a collector that is down does not hold it up.
const otlpFlushTimeout = 5 * time.Second

// otlpProducer gives the OpenTelemetry SDK the agent's series as they
// are when it pushes: ulat keeps its own histograms, so they go through a
// metric producer rather than SDK instruments.
type otlpProducer struct {
	series  func() ([]*series, []*fileTotals, int) // Agent.exported
	version string
	started time.Time // the agent's: the over-limit gauge's
}

// Produce is the series as OTLP metrics: an exponential histogram of
// scale 6 (ulat's own buckets, so exact) and a calls-not-returned sum per
// series, dropped-event and unpaired-exit sums and a traced-processes
// gauge per traced file, the sums cumulative since their sessions
// started, and how many series max_series left out.
func (p otlpProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	served, files, over := p.series()
	now := time.Now()
	duration := metricdata.ExponentialHistogram[float64]{Temporality: metricdata.CumulativeTemporality}
	notReturned := metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
	dropped := metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
	unpaired := metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
	processes := metricdata.Gauge[int64]{}
	point := func(attrs attribute.Set, started time.Time, v uint64) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Attributes: attrs, StartTime: started, Time: now, Value: int64(v)}
	}
	for _, se := range served {
		attrs := attributes(se.labels())
		dp := exponentialPoint(se.hist)
		dp.Attributes, dp.StartTime, dp.Time = attrs, se.started, now
		duration.DataPoints = append(duration.DataPoints, dp)
		notReturned.DataPoints = append(notReturned.DataPoints, point(attrs, se.started, se.notReturned))
	}
	for _, ft := range files {
		attrs := attributes(fileLabels(ft.target, ft.binary))
		dropped.DataPoints = append(dropped.DataPoints, point(attrs, ft.started, ft.dropped))
		unpaired.DataPoints = append(unpaired.DataPoints, point(attrs, ft.started, ft.unpaired))
		processes.DataPoints = append(processes.DataPoints, metricdata.DataPoint[int64]{Attributes: attrs, Time: now, Value: int64(ft.processes)})
	}
	overLimit := metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{StartTime: p.started, Time: now, Value: int64(over)}}}

	var metrics []metricdata.Metrics
	if len(served) > 0 {
		metrics = append(metrics,
			metricdata.Metrics{Name: otlpDuration, Description: "How long calls of the function took, probe costs taken out.", Unit: "s", Data: duration},
			metricdata.Metrics{Name: otlpNotReturned, Description: "Calls of the function that never returned (a panic, longjmp or exit unwound them).", Unit: "{call}", Data: notReturned})
	}
	if len(files) > 0 {
		metrics = append(metrics,
			metricdata.Metrics{Name: otlpDropped, Description: "Calls not counted because the ring buffer was full.", Unit: "{event}", Data: dropped},
			metricdata.Metrics{Name: otlpUnpaired, Description: "Exits seen without their entry (the entry came before the probes).", Unit: "{exit}", Data: unpaired},
			metricdata.Metrics{Name: otlpProcesses, Description: "Processes traced that run the file, as of the agent's last look (at each exec, and every 5 s).", Unit: "{process}", Data: processes})
	}
	metrics = append(metrics, metricdata.Metrics{Name: otlpOverLimit, Description: "Series not served, past max_series.", Unit: "{series}", Data: overLimit})
	return []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: otlpScope, Version: p.version}, Metrics: metrics}}, nil
}

// attributes are a series' labels as OTLP attributes. A label with no
// value is left out, as Prometheus does (the container, pod and
// namespace of calls outside any).
func attributes(names, values []string) attribute.Set {
	kvs := make([]attribute.KeyValue, 0, len(names))
	for i, n := range names {
		if values[i] != "" {
			kvs = append(kvs, attribute.String(n, values[i]))
		}
	}
	return attribute.NewSet(kvs...)
}

// exponentialPoint is a histogram as an OTLP exponential histogram of
// scale 6, in seconds: the native buckets of nativeBuckets, the ones
// /metrics serves, with their boundaries. Only the numbering differs:
// Prometheus's bucket i holds (2^((i-1)/64), 2^(i/64)] s, OTLP's bucket k
// holds (2^(k/64), 2^((k+1)/64)] s, so native bucket i is OTLP's i-1. The
// zero bucket holds the calls of 0 ns (threshold 0); calls over 1024 s,
// past ulat's layout, are in the first bucket above 1024 s, as on
// /metrics. Min and max are exact.
func exponentialPoint(h *report.Histogram) metricdata.ExponentialHistogramDataPoint[float64] {
	zero, native := nativeBuckets(h)
	dp := metricdata.ExponentialHistogramDataPoint[float64]{
		Count:     h.Count(),
		Sum:       sumSeconds(h),
		Scale:     nativeSchema,
		ZeroCount: zero,
	}
	if h.Count() > 0 {
		dp.Min = metricdata.NewExtrema(float64(h.Min()) / 1e9)
		dp.Max = metricdata.NewExtrema(float64(h.Max()) / 1e9)
	}
	if len(native) > 0 {
		first, last := native[0].index, native[len(native)-1].index
		counts := make([]uint64, last-first+1)
		for _, b := range native {
			counts[b.index-first] = b.count
		}
		dp.PositiveBucket = metricdata.ExponentialBucket{Offset: first - 1, Counts: counts}
	}
	return dp
}

// otlpPusher pushes the agent's series to one OTLP endpoint, every
// interval, through the SDK's periodic reader.
type otlpPusher struct {
	cfg      OTLP
	exporter *loggedExporter
	provider *sdkmetric.MeterProvider
}

// startOTLP starts pushing what p produces as cfg says; the first push is
// one interval from now.
func startOTLP(cfg OTLP, p otlpProducer, log *slog.Logger) (*otlpPusher, error) {
	exp, err := newOTLPExporter(cfg)
	if err != nil {
		return nil, err
	}
	le := &loggedExporter{Exporter: exp, log: log, endpoint: cfg.Endpoint, now: time.Now}
	reader := sdkmetric.NewPeriodicReader(le,
		sdkmetric.WithInterval(cfg.Interval),
		sdkmetric.WithTimeout(cfg.Timeout),
		sdkmetric.WithProducer(p))
	host, _ := os.Hostname() // "" when unknown: the attribute is then empty
	res := resource.NewSchemaless(
		attribute.String("service.name", "ulat-agent"),
		attribute.String("service.version", p.version),
		attribute.String("host.name", host))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	return &otlpPusher{cfg: cfg, exporter: le, provider: provider}, nil
}

// stop pushes once more, within otlpFlushTimeout, and stops.
func (o *otlpPusher) stop() {
	o.exporter.flushing()
	ctx, cancel := context.WithTimeout(context.Background(), otlpFlushTimeout)
	defer cancel()
	if err := o.provider.Shutdown(ctx); err != nil {
		o.exporter.log.Warn(fmt.Sprintf("OTLP push to %s: stopping: %v", o.cfg.Endpoint, err))
	}
}

// newOTLPExporter is the SDK's OTLP/HTTP or OTLP/gRPC exporter to cfg's
// endpoint. The options are given even when they are the defaults, so
// that OTEL_EXPORTER_OTLP_* variables do not change what the config says
// (but for gRPC's compression, whose option has no "none").
func newOTLPExporter(cfg OTLP) (sdkmetric.Exporter, error) {
	u, err := cfg.endpointURL()
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		if tlsCfg, err = cfg.TLS.config(); err != nil {
			return nil, fmt.Errorf("otlp: tls: %w", err)
		}
	}
	headers := cfg.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	ctx := context.Background()
	switch u.Scheme {
	case "http", "https":
		path := u.Path
		if path == "" || path == "/" {
			path = "/v1/metrics"
		}
		opts := []otlpmetrichttp.Option{
			otlpmetrichttp.WithEndpoint(u.Host),
			otlpmetrichttp.WithURLPath(path),
			otlpmetrichttp.WithTimeout(cfg.Timeout),
			otlpmetrichttp.WithHeaders(headers),
			otlpmetrichttp.WithCompression(otlpmetrichttp.NoCompression),
		}
		if cfg.Compression == "gzip" {
			opts = append(opts, otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
		}
		if u.Scheme == "http" {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		} else {
			opts = append(opts, otlpmetrichttp.WithTLSClientConfig(tlsCfg))
		}
		return otlpmetrichttp.New(ctx, opts...)
	default: // grpc, grpcs: checked by endpointURL
		opts := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithEndpoint(u.Host),
			otlpmetricgrpc.WithTimeout(cfg.Timeout),
			otlpmetricgrpc.WithHeaders(headers),
		}
		if cfg.Compression == "gzip" {
			opts = append(opts, otlpmetricgrpc.WithCompressor("gzip"))
		}
		if u.Scheme == "grpc" {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		} else {
			opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		return otlpmetricgrpc.New(ctx, opts...)
	}
}

// exportLogEvery is how often a push that keeps failing (a collector that
// is down) is logged again.
const exportLogEvery = 5 * time.Minute

// loggedExporter logs failed pushes without flooding the log while the
// collector is down: the first failure at once, then at most one line
// every exportLogEvery saying how many failed meanwhile, and the first
// push that works again. It returns no error to the SDK, which would print
// every one.
type loggedExporter struct {
	sdkmetric.Exporter
	log      *slog.Logger
	endpoint string
	now      func() time.Time

	mu      sync.Mutex
	failing bool      // the last push failed
	since   int       // pushes failed since the last line about them
	total   int       // pushes failed since the last that worked
	logged  time.Time // when the last line about failures was written
	final   bool      // the last push: log whatever happens
}

func (e *loggedExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	e.note(e.Exporter.Export(ctx, rm))
	return nil
}

func (e *loggedExporter) flushing() {
	e.mu.Lock()
	e.final = true
	e.mu.Unlock()
}

func (e *loggedExporter) note(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if err == nil {
		if e.failing {
			e.log.Info(fmt.Sprintf("OTLP push to %s works again, after %d failed", e.endpoint, e.total))
		}
		e.failing, e.since, e.total = false, 0, 0
		return
	}
	e.since++
	e.total++
	switch {
	case e.final:
		e.log.Warn(fmt.Sprintf("OTLP push to %s: the last push failed: %v", e.endpoint, err))
	case !e.failing:
		e.log.Warn(fmt.Sprintf("OTLP push to %s failed (logged again every %s while it fails): %v", e.endpoint, exportLogEvery, err))
	case now.Sub(e.logged) >= exportLogEvery:
		e.log.Warn(fmt.Sprintf("OTLP push to %s: %d failed in the last %s; the last: %v", e.endpoint, e.since, now.Sub(e.logged).Round(time.Second), err))
	default:
		return
	}
	e.failing, e.since, e.logged = true, 0, now
}
