package agent

import (
	"bytes"
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

// writeText writes what expfmt writes, byte for byte: the agent's own
// families (labels with quotes, backslashes and newlines in them), and
// histograms it leaves to expfmt.
func TestWriteTextIsExpfmts(t *testing.T) {
	a, snaps := benchAgent(nil)
	snaps = snaps[:2]
	snaps[0].target.Labels = map[string]string{"team": "a \"quoted\" \\ back\nslash", "zone": ""}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a, func() []snapshot { return snaps }})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
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
	withInf := hist("with_inf_seconds", []*dto.LabelPair{{Name: proto.String("a"), Value: proto.String("b")}}, 0.5, math.Inf(+1))
	floats := hist("float_counts", nil, 2)
	floats.Metric[0].Histogram.SampleCountFloat = proto.Float64(1.5)
	stamped := hist("stamped", nil, 2)
	stamped.Metric[0].TimestampMs = proto.Int64(1234)
	counter := &dto.MetricFamily{Name: proto.String("a_total"), Help: proto.String("a \\ counter"), Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1e21)}}, {Label: []*dto.LabelPair{{Name: proto.String("x"), Value: proto.String("\"")}}, Counter: &dto.Counter{Value: proto.Float64(-1)}}}}
	gauge := &dto.MetricFamily{Name: proto.String("a_gauge"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(math.NaN())}}, {Gauge: &dto.Gauge{Value: proto.Float64(0.5)}, TimestampMs: proto.Int64(7)}}}
	mfs = append(mfs, noLabels, withInf, floats, stamped, counter, gauge)

	var got bytes.Buffer
	if err := writeText(&got, mfs); err != nil {
		t.Fatal(err)
	}
	want := expfmtText(t, mfs)
	if got.String() != want {
		g, w := strings.Split(got.String(), "\n"), strings.Split(want, "\n")
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				t.Fatalf("line %d:\n got %q\nwant %q", i+1, g[i], w[i])
			}
		}
		t.Fatalf("%d lines, expfmt's %d", len(g), len(w))
	}
	if n := strings.Count(want, "ulat_function_duration_seconds_bucket{"); n != 400*27 {
		t.Errorf("%d bucket lines, want 27 for each of 400 series", n)
	}
}

// /metrics serves the text format to a scraper that asks for it (or for
// nothing), protobuf to one that asks for that.
func TestMetricsHandlerNegotiates(t *testing.T) {
	a, snaps := benchAgent(nil)
	snaps = snaps[:1]
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a, func() []snapshot { return snaps }})
	h := metricsHandler(reg, slog.New(slog.DiscardHandler))
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
