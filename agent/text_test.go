package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// expfmtText is the text format as expfmt writes it.
func expfmtText(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// The agent's text is what promhttp writes of its registry, byte for
// byte (labels with quotes, backslashes and newlines in them), from the
// series' cached lines too; and writeFamily writes other families as
// expfmt does, or leaves them to it.
func TestWriteTextIsExpfmts(t *testing.T) {
	a, snaps := benchAgent(nil)
	snaps = snaps[:2]
	snaps[0].target.Labels = map[string]string{"team": "a \"quoted\" \\ back\nslash", "zone": ""}
	snaps[1].r.Functions[3].DidNotReturn = 2
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a, func() []snapshot { return snaps }})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := expfmtText(t, mfs)
	for _, round := range []string{"plain", "gzipped", "gzipped from the cache"} {
		var got, zipped bytes.Buffer
		if round == "plain" {
			if err := a.writeMetricsText(&got, snaps); err != nil {
				t.Fatal(err)
			}
		} else {
			z := newGzipStream()
			z.Reset(&zipped)
			if err := a.writeMetricsText(gzipResponse{z: z}, snaps); err != nil {
				t.Fatal(err)
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(&zipped)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(&got, zr); err != nil {
				t.Fatalf("%s: %v", round, err)
			}
		}
		sameText(t, round, got.String(), want)
	}
	if n := strings.Count(want, "ulat_function_duration_seconds_bucket{"); n != 400*27 {
		t.Errorf("%d bucket lines, want 27 for each of 400 series", n)
	}
	if !strings.Contains(want, `ulat_calls_not_returned_total{binary="/opt/idle/bin/idle1",container="c1000",function="main.work003",namespace="ns",pod="pod",target="idle1"} 2`) {
		t.Errorf("no series with 2 calls not returned")
	}

	hist := func(name string, labels []*dto.LabelPair, bounds ...float64) *dto.MetricFamily {
		h := &dto.Histogram{SampleCount: proto.Uint64(7), SampleSum: proto.Float64(0.25)}
		for i, b := range bounds {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(uint64(i + 3))})
		}
		return &dto.MetricFamily{Name: proto.String(name), Help: proto.String("help with \\ and\nnewline"), Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{Label: labels, Histogram: h}}}
	}
	noLabels := hist("no_labels_seconds", nil, 0.001, 1, 1e-7)
	noLabels.Help = nil
	withInf := hist("with_inf_seconds", []*dto.LabelPair{{Name: proto.String("a"), Value: proto.String("b")}}, 0.5, math.Inf(+1))
	floats := hist("float_counts", nil, 2)
	floats.Metric[0].Histogram.SampleCountFloat = proto.Float64(1.5)
	stamped := hist("stamped", nil, 2)
	stamped.Metric[0].TimestampMs = proto.Int64(1234)
	counter := &dto.MetricFamily{Name: proto.String("a_total"), Help: proto.String("a \\ counter"), Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1e21)}}, {Label: []*dto.LabelPair{{Name: proto.String("x"), Value: proto.String("\"")}}, Counter: &dto.Counter{Value: proto.Float64(-1)}}}}
	gauge := &dto.MetricFamily{Name: proto.String("a_gauge"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(math.NaN())}}, {Gauge: &dto.Gauge{Value: proto.Float64(0.5)}, TimestampMs: proto.Int64(7)}}}
	inf := &dto.MetricFamily{Name: proto.String("inf_gauge"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(math.Inf(-1))}}, {Gauge: &dto.Gauge{Value: proto.Float64(math.Inf(+1))}},
			{Gauge: &dto.Gauge{Value: proto.Float64(math.Copysign(0, -1))}}, {Gauge: &dto.Gauge{Value: proto.Float64(999_999_999_999_999)}},
			{Gauge: &dto.Gauge{Value: proto.Float64(999_999)}}, {Gauge: &dto.Gauge{Value: proto.Float64(-999_999)}}, {Gauge: &dto.Gauge{Value: proto.Float64(1e6)}},
			{Gauge: &dto.Gauge{Value: proto.Float64(1e15)}}, {Gauge: &dto.Gauge{Value: proto.Float64(-12345.5)}}}}
	others := []*dto.MetricFamily{noLabels, withInf, floats, stamped, counter, gauge, inf}
	var got bytes.Buffer
	w := bufio.NewWriter(&got)
	for _, mf := range others {
		if err := writeFamily(w, mf); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	sameText(t, "other families", got.String(), expfmtText(t, others))
}

// sameText fails the test at the first line where got is not want.
func sameText(t *testing.T, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			t.Fatalf("%s: line %d:\n got %q\nwant %q", what, i+1, g[i], w[i])
		}
	}
	t.Fatalf("%s: %d lines, expfmt's %d", what, len(g), len(w))
}

// /metrics serves the text format to a scraper that asks for it (or for
// nothing), protobuf to one that asks for that.
func TestMetricsHandlerNegotiates(t *testing.T) {
	a, snaps := benchAgent(nil)
	snaps = snaps[:1]
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a, func() []snapshot { return snaps }})
	h := metricsHandler(reg, func(w io.Writer) error { return a.writeMetricsText(w, snaps) }, slog.New(slog.DiscardHandler))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := expfmtText(t, mfs)
	for _, c := range []struct{ accept, contentType string }{
		{"", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"},
		{"text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"},
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != c.contentType {
			t.Errorf("Accept %q: %d, Content-Type %q, want 200, %q", c.accept, rec.Code, rec.Header().Get("Content-Type"), c.contentType)
			continue
		}
		if strings.HasPrefix(c.contentType, "text/") {
			if rec.Body.String() != want {
				t.Errorf("Accept %q: the body is not expfmt's text", c.accept)
			}
			continue
		}
		n := 0
		dec := expfmt.NewDecoder(rec.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != len(mfs) {
			t.Errorf("protobuf: %d families, want %d", n, len(mfs))
		}
	}
}
