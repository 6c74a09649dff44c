package agent

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ulat-dev/ulat/report"
)

// What the agent serves: /metrics, /report.json, /healthz.

// snapshot is a report of each traced file, in a stable order.
type snapshot struct {
	target    Target
	exe       string
	processes int // traced, as of the last look
	r         *report.Report
	started   time.Time // the session's
}

func (a *Agent) snapshots() []snapshot {
	type one struct {
		tr      *traced
		procs   int
		started time.Time
	}
	a.mu.Lock()
	trs := make([]one, 0, len(a.traced))
	for _, tr := range a.traced {
		if tr.s != nil {
			trs = append(trs, one{tr, len(tr.procs), tr.started})
		}
	}
	a.mu.Unlock()
	sort.Slice(trs, func(i, j int) bool {
		if trs[i].tr.target.Name != trs[j].tr.target.Name {
			return trs[i].tr.target.Name < trs[j].tr.target.Name
		}
		return trs[i].tr.exe < trs[j].tr.exe
	})
	var out []snapshot
	for _, o := range trs {
		r, err := o.tr.s.Snapshot()
		if err != nil {
			a.log.Warn(fmt.Sprintf("target %s: %s: %v", o.tr.target.Name, o.tr.exe, err))
			continue
		}
		out = append(out, snapshot{o.tr.target, o.tr.exe, o.procs, r, o.started})
	}
	return out
}

// handler serves snaps' snapshots: the agent's own (snapshots), or a
// benchmark's.
func (a *Agent) handler(snaps func() []snapshot) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a, snaps})
	mux := http.NewServeMux()
	text := func(w io.Writer) error { return a.writeMetricsText(w, snaps()) }
	mux.Handle("/metrics", gzipped(metricsHandler(reg, text, a.log)))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/report.json", gzipped(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := a.writeReport(w, snaps()); err != nil {
			a.log.Warn(fmt.Sprintf("/report.json: %v", err))
		}
	})))
	return mux
}

// writeReport writes the report of snaps as ulat trace writes it (one
// line), each function's entry kept while it has no new call.
func (a *Agent) writeReport(w io.Writer, snaps []snapshot) error {
	r, spans := a.report(snaps)
	entries, err := a.entries.of(r, spans)
	if err != nil {
		return err
	}
	return report.WriteCompactJSONFrom(w, r, func(w io.Writer, i int) error {
		_, err := w.Write(entries[i])
		return err
	})
}

// sessionSpan is when the earliest and the latest of the sessions whose
// calls a function's entry counts started.
type sessionSpan struct{ earliest, latest time.Time }

// report is the report of snapshots of every traced file so far, as
// one: what ulat trace writes, so that ulat compare can judge it. Each
// function is one entry, its calls in every container together; spans
// are their sessions'.
func (a *Agent) report(snaps []snapshot) (*report.Report, []sessionSpan) {
	all := &report.Report{Elapsed: time.Since(a.started), OverheadCorrected: true}
	var spans []sessionSpan
	type fnKey struct{ binary, function string }
	index := map[fnKey]int{}
	for i, sn := range snaps {
		r := sn.r
		if i == 0 {
			all.Facts = r.Facts
			all.OverheadCorrected = r.OverheadCorrected
		} else {
			all.Facts.Binaries = append(all.Facts.Binaries, r.Facts.Binaries...)
			if all.Facts.Aggregation != r.Facts.Aggregation {
				all.Facts.Aggregation = ""
			}
		}
		for _, f := range r.Functions {
			f.Cgroup = 0
			if f.Binary != sn.exe && strings.HasPrefix(f.Binary, "/proc/") {
				f.Binary = sn.exe // found through a process: the path it has there
			}
			k := fnKey{f.Binary, f.Function}
			if j, ok := index[k]; ok {
				merged := all.Functions[j].Hist.Clone()
				merged.Merge(f.Hist)
				all.Functions[j].Hist = merged
				all.Functions[j].DidNotReturn += f.DidNotReturn
				sp := &spans[j]
				sp.earliest = earliest(sp.earliest, sn.started)
				if sn.started.After(sp.latest) {
					sp.latest = sn.started
				}
				continue
			}
			index[k] = len(all.Functions)
			all.Functions = append(all.Functions, f)
			spans = append(spans, sessionSpan{sn.started, sn.started})
		}
		all.Lost.DroppedEvents += r.Lost.DroppedEvents
		all.Lost.UnpairedExits += r.Lost.UnpairedExits
		all.Lost.InFlight += r.Lost.InFlight
		all.Warnings = append(all.Warnings, r.Warnings...)
	}
	return all, spans
}

// entryCache holds each function's /report.json entry while it has no
// new call: a scrape of a thousand functions spent half of its time
// making them anew.
type entryCache struct {
	mu    sync.Mutex
	byKey map[entryKey][]byte
}

// entryKey is what makes an entry: the function's figures but its
// histogram, the histogram's state (counts only grow while its sessions
// last, and a session replaced moves the span), and whether durations
// are corrected.
type entryKey struct {
	f                             report.FunctionStats // Hist nil
	count, sumHi, sumLo, min, max uint64
	span                          sessionSpan
	corrected                     bool
}

// of returns the entries of r's functions, in order. Each call keeps
// only the entries it returned.
func (c *entryCache) of(r *report.Report, spans []sessionSpan) ([][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]byte, len(r.Functions))
	next := make(map[entryKey][]byte, len(r.Functions))
	for i, f := range r.Functions {
		k := entryKey{f: f, span: spans[i], corrected: r.OverheadCorrected}
		k.f.Hist = nil
		k.count, k.min, k.max = f.Hist.Count(), f.Hist.Min(), f.Hist.Max()
		k.sumHi, k.sumLo = f.Hist.Sum()
		e, ok := c.byKey[k]
		if !ok {
			var err error
			if e, err = report.FunctionJSON(f, r.OverheadCorrected); err != nil {
				return nil, err
			}
		}
		out[i], next[k] = e, e
	}
	c.byKey = next
	return out, nil
}

// The series' families' names and help, and descriptions: the
// collector is unchecked, so their labels, which differ by target
// (static labels) and place (those with no value left out), are the
// metrics' own.
const (
	durationName    = "ulat_function_duration_seconds"
	durationHelp    = "How long calls of the function took, probe costs taken out."
	notReturnedName = "ulat_calls_not_returned_total"
	notReturnedHelp = "Calls of the function that never returned (a panic, longjmp or exit unwound them)."
)

var (
	durationDesc    = prometheus.NewDesc(durationName, durationHelp, nil, nil)
	notReturnedDesc = prometheus.NewDesc(notReturnedName, notReturnedHelp, nil, nil)
)

// scrape is what one scrape serves.
type scrape struct {
	series []*series
	served []*servedSeries // series[i] as it is served
	files  []*fileTotals
	over   int // series left out, past max_series
}

func (a *Agent) scrapeOf(snaps []snapshot) *scrape {
	series, files, over := a.exported(snaps)
	return &scrape{series, a.dtos.served(series), files, over}
}

// collect sends the scrape's metrics: the series' own (durations and
// calls not returned) only if withSeries.
func (sc *scrape) collect(ch chan<- prometheus.Metric, withSeries bool) {
	if withSeries {
		for i, ss := range sc.served {
			ch <- histogramMetric{desc: durationDesc, labels: ss.labels, h: ss.histogram()}
			ch <- counterMetric{desc: notReturnedDesc, labels: ss.labels, value: float64(sc.series[i].notReturned)}
		}
	}
	for _, ft := range sc.files {
		names, values := fileLabels(ft.target, ft.binary)
		dropped := prometheus.NewDesc("ulat_dropped_events_total", "Calls not counted because the ring buffer was full.", names, nil)
		unpaired := prometheus.NewDesc("ulat_unpaired_exits_total", "Exits seen without their entry (the entry came before the probes).", names, nil)
		procs := prometheus.NewDesc("ulat_traced_processes", "Processes traced that run the file, as of the agent's last look (at each exec, and every 5 s).", names, nil)
		ch <- prometheus.MustNewConstMetric(dropped, prometheus.CounterValue, float64(ft.dropped), values...)
		ch <- prometheus.MustNewConstMetric(unpaired, prometheus.CounterValue, float64(ft.unpaired), values...)
		ch <- prometheus.MustNewConstMetric(procs, prometheus.GaugeValue, float64(ft.processes), values...)
	}
	overLimit := prometheus.NewDesc("ulat_series_over_limit", "Series not served, past max_series.", nil, nil)
	ch <- prometheus.MustNewConstMetric(overLimit, prometheus.GaugeValue, float64(sc.over))
}

// collector serves the agent's snapshots to Prometheus. It is unchecked
// (Describe sends nothing): targets' static labels differ, and series
// come and go with the processes.
type collector struct {
	a     *Agent
	snaps func() []snapshot
}

func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) { c.a.scrapeOf(c.snaps()).collect(ch, true) }

// totalsCollector serves a scrape's metrics but its series' own, which
// the text format writes from their cache (writeMetricsText).
type totalsCollector struct{ sc *scrape }

func (totalsCollector) Describe(chan<- *prometheus.Desc) {}

func (c totalsCollector) Collect(ch chan<- prometheus.Metric) { c.sc.collect(ch, false) }

// fileLabels are the labels of a target's file: target, binary and the
// target's static labels.
func fileLabels(t Target, binary string) (names, values []string) {
	names, values = []string{"target", "binary"}, []string{t.Name, binary}
	for _, k := range sortedKeys(t.Labels) {
		names, values = append(names, k), append(values, t.Labels[k])
	}
	return names, values
}

// labels are a series' labels: its file's, the place's and the function.
func (se *series) labels() (names, values []string) {
	names, values = fileLabels(se.target, se.binary)
	names = append(names, "container", "pod", "namespace", "function")
	values = append(values, se.where.container, se.where.pod, se.where.namespace, se.function)
	return names, values
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
