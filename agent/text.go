package agent

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The Prometheus text format repeats a series' labels on each of its
// lines: 28 for a histogram with its classic buckets. expfmt escapes and
// checks every label of every line again, which was half of a text scrape
// of a thousand histograms; writeText escapes a series' labels once.

// metricsHandler serves reg as promhttp does, writing the text format
// itself.
func metricsHandler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	promHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:           errorLog,
		DisableCompression: true, // gzipped's, at its fastest level
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
		if format.FormatType() != expfmt.TypeTextPlain {
			promHandler.ServeHTTP(w, r)
			return
		}
		mfs, err := reg.Gather()
		if err != nil {
			errorLog.Printf("gathering metrics: %v", err)
			http.Error(w, "gathering metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Add("Vary", "Accept")
		w.Header().Set("Content-Type", string(format))
		if err := writeText(w, mfs); err != nil {
			errorLog.Printf("writing metrics: %v", err)
		}
	})
}

// writeText writes families in the text format (0.0.4) exactly as expfmt
// does (a test holds it to that, byte for byte): histograms, counters and
// gauges itself, the rest, and any family expfmt would write otherwise
// (names to quote, time stamps, float counts), through expfmt.
func writeText(out io.Writer, mfs []*dto.MetricFamily) error {
	w := bufio.NewWriterSize(out, 64<<10)
	for _, mf := range mfs {
		var err error
		if fastText(mf) {
			err = writeFastText(w, mf)
		} else {
			_, err = expfmt.MetricFamilyToText(w, mf)
		}
		if err != nil {
			return err
		}
	}
	return w.Flush()
}

// fastText says whether writeFastText writes mf as expfmt would.
func fastText(mf *dto.MetricFamily) bool {
	if len(mf.Metric) == 0 || !model.LegacyValidation.IsValidMetricName(mf.GetName()) {
		return false
	}
	typ := mf.GetType()
	for _, m := range mf.Metric {
		if m.TimestampMs != nil {
			return false
		}
		switch {
		case typ == dto.MetricType_COUNTER && m.Counter != nil, typ == dto.MetricType_GAUGE && m.Gauge != nil:
		case typ == dto.MetricType_HISTOGRAM && m.Histogram != nil && m.Histogram.SampleCountFloat == nil:
			for _, b := range m.Histogram.Bucket {
				if b.CumulativeCountFloat != nil {
					return false
				}
			}
		default:
			return false
		}
		for _, lp := range m.Label {
			if !model.LegacyValidation.IsValidLabelName(lp.GetName()) {
				return false
			}
		}
	}
	return true
}

var labelEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`, "\"", `\"`)
var helpEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`)

// writeFastText writes a histogram, counter or gauge family that
// fastText accepts.
func writeFastText(w *bufio.Writer, mf *dto.MetricFamily) error {
	name := mf.GetName()
	if mf.Help != nil {
		fmt.Fprintf(w, "# HELP %s %s\n", name, helpEscaper.Replace(mf.GetHelp()))
	}
	fmt.Fprintf(w, "# TYPE %s %s\n", name, strings.ToLower(mf.GetType().String())) // histogram, counter or gauge
	var labels strings.Builder
	num := make([]byte, 0, 32)
	bounds := map[float64]string{} // the le values, the same in every series
	line := func(suffix, labels, le string, v float64) {
		w.WriteString(name)
		w.WriteString(suffix)
		switch {
		case le != "" && labels != "":
			w.WriteByte('{')
			w.WriteString(labels)
			w.WriteString(`,le="`)
			w.WriteString(le)
			w.WriteString(`"}`)
		case le != "":
			w.WriteString(`{le="`)
			w.WriteString(le)
			w.WriteString(`"}`)
		case labels != "":
			w.WriteByte('{')
			w.WriteString(labels)
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		num = strconv.AppendFloat(num[:0], v, 'g', -1, 64)
		w.Write(num)
		w.WriteByte('\n')
	}
	for _, m := range mf.Metric {
		labels.Reset()
		for i, lp := range m.Label {
			if i > 0 {
				labels.WriteByte(',')
			}
			labels.WriteString(lp.GetName())
			labels.WriteString(`="`)
			labelEscaper.WriteString(&labels, lp.GetValue())
			labels.WriteByte('"')
		}
		ls := labels.String()
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			line("", ls, "", m.Counter.GetValue())
			continue
		case dto.MetricType_GAUGE:
			line("", ls, "", m.Gauge.GetValue())
			continue
		}
		h := m.Histogram
		infSeen := false
		for _, b := range h.Bucket {
			le, ok := bounds[b.GetUpperBound()]
			if !ok {
				le = strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
				bounds[b.GetUpperBound()] = le
			}
			line("_bucket", ls, le, float64(b.GetCumulativeCount()))
			infSeen = infSeen || math.IsInf(b.GetUpperBound(), +1)
		}
		if !infSeen {
			line("_bucket", ls, "+Inf", float64(h.GetSampleCount()))
		}
		line("_sum", ls, "", h.GetSampleSum())
		line("_count", ls, "", float64(h.GetSampleCount()))
	}
	return nil // bufio keeps the first error, for Flush
}
