package agent

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The Prometheus text format repeats a series' labels on each of its
// lines: 28 for a histogram with its classic buckets, 4.2 KB. A gzipped
// text scrape (Prometheus asks for one) of a thousand series was mostly
// compressing those 4.2 MB; the agent now compresses a series' lines once
// while it has no new call, and writes them as they are.

// metricsHandler serves reg as promhttp does, the text format through
// text.
func metricsHandler(reg *prometheus.Registry, text func(io.Writer) error, log *slog.Logger) http.Handler {
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
		w.Header().Add("Vary", "Accept")
		w.Header().Set("Content-Type", string(format))
		if err := text(w); err != nil {
			errorLog.Printf("writing metrics: %v", err)
		}
	})
}

// writeMetricsText writes the agent's metrics in the text format (0.0.4)
// exactly as promhttp writes its registry's (a test holds it to that,
// byte for byte): the series' families from each series' cached lines,
// the rest gathered from a registry of their own.
func (a *Agent) writeMetricsText(out io.Writer, snaps []snapshot) error {
	sc := a.scrapeOf(snaps)
	reg := prometheus.NewRegistry()
	reg.MustRegister(totalsCollector{sc})
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	order := make([]int, len(sc.served))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return compareLabelValues(sc.served[i].labels, sc.served[j].labels) })
	w := bufio.NewWriterSize(out, 64<<10)
	z, compressing := out.(deflatedWriter)
	// The series' families, in name order, to write among the others.
	own := []struct {
		name  string
		write func()
	}{
		{notReturnedName, func() {
			writeHeader(w, notReturnedName, notReturnedHelp, "counter")
			var line []byte
			for _, i := range order {
				line = appendLine(line[:0], notReturnedName, "", sc.served[i].escaped, "", float64(sc.series[i].notReturned))
				w.Write(line)
			}
		}},
		{durationName, func() {
			writeHeader(w, durationName, durationHelp, "histogram")
			var text []byte
			budget := deflatesPerScrape
			for _, i := range order {
				ss := sc.served[i]
				if compressing {
					if d := ss.deflatedText(&budget); d != nil {
						w.Flush()
						z.writeDeflated(*d) // an error is kept: the stream's next write or Close returns it
						continue
					}
				}
				text = ss.summary.appendText(text[:0], ss.escaped)
				w.Write(text)
			}
		}},
	}
	if len(order) == 0 {
		own = nil // a family with no metrics is not written
	}
	for _, mf := range mfs {
		for len(own) > 0 && own[0].name < mf.GetName() {
			own[0].write()
			own = own[1:]
		}
		if err := writeFamily(w, mf); err != nil {
			return err
		}
	}
	for _, o := range own {
		o.write()
	}
	return w.Flush() // bufio keeps the first error
}

// writeFamily writes a family in the text format as expfmt does:
// counters and gauges (the agent's per-file families) itself, the rest,
// and any family expfmt would write otherwise (names to quote, time
// stamps), through expfmt.
func writeFamily(w *bufio.Writer, mf *dto.MetricFamily) error {
	if !fastText(mf) {
		_, err := expfmt.MetricFamilyToText(w, mf)
		return err
	}
	typ := strings.ToLower(mf.GetType().String()) // counter or gauge
	name := mf.GetName()
	if mf.Help != nil {
		writeHeader(w, name, mf.GetHelp(), typ)
	} else {
		fmt.Fprintf(w, "# TYPE %s %s\n", name, typ)
	}
	var b []byte
	for _, m := range mf.Metric {
		labels := escapedLabels(m.Label)
		if mf.GetType() == dto.MetricType_COUNTER {
			b = appendLine(b[:0], name, "", labels, "", m.Counter.GetValue())
		} else {
			b = appendLine(b[:0], name, "", labels, "", m.Gauge.GetValue())
		}
		w.Write(b)
	}
	return nil // bufio keeps the first error, for Flush
}

// fastText says whether writeFamily writes mf itself.
func fastText(mf *dto.MetricFamily) bool {
	if len(mf.Metric) == 0 || !model.LegacyValidation.IsValidMetricName(mf.GetName()) {
		return false
	}
	typ := mf.GetType()
	for _, m := range mf.Metric {
		if m.TimestampMs != nil {
			return false
		}
		if !(typ == dto.MetricType_COUNTER && m.Counter != nil || typ == dto.MetricType_GAUGE && m.Gauge != nil) {
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

func writeHeader(w *bufio.Writer, name, help, typ string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, helpEscaper.Replace(help), name, typ)
}

// escapedLabels are label pairs as the text format writes them, once for
// all of a series' lines: expfmt escaped and checked them again on each
// of a histogram's 28, which was half of a text scrape of a thousand.
func escapedLabels(labels []*dto.LabelPair) string {
	var b strings.Builder
	for i, lp := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(lp.GetName())
		b.WriteString(`="`)
		labelEscaper.WriteString(&b, lp.GetValue())
		b.WriteByte('"')
	}
	return b.String()
}

// classicLe are the classic buckets' bounds as the text format writes
// them, made once: formatting them was a tenth of a scrape.
var classicLe = func() (out [classicHighExp - classicLowExp + 1]string) {
	for i, le := range classicUpperBounds {
		out[i] = strconv.FormatFloat(le, 'g', -1, 64)
	}
	return out
}()

// appendLine appends a sample's line; le is a bucket's bound, or empty.
func appendLine(b []byte, name, suffix, labels, le string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	switch {
	case le != "" && labels != "":
		b = append(b, '{')
		b = append(b, labels...)
		b = append(b, `,le="`...)
		b = append(b, le...)
		b = append(b, `"}`...)
	case le != "":
		b = append(b, `{le="`...)
		b = append(b, le...)
		b = append(b, `"}`...)
	case labels != "":
		b = append(b, '{')
		b = append(b, labels...)
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendValue(b, v)
	return append(b, '\n')
}

// appendValue appends v as expfmt writes it (strconv's shortest 'g',
// and 0 for -0), counts faster: 'g' writes an integer below 10^6 in
// plain digits, past that as 1.234567e+06.
func appendValue(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e6 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
