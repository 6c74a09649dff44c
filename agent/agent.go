package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ulat-dev/ulat/report"
	"github.com/ulat-dev/ulat/session"
)

// Options configure an agent.
type Options struct {
	Log     *slog.Logger // nil discards
	Version string       // ulat's, in reports
	// Reload, when it delivers, makes the agent read its config again: the
	// new one replaces the old when it is valid, else the old goes on.
	Reload <-chan struct{}
	// Ready, when not nil, is called with the address the agent listens on
	// once it serves (an address of port 0 gets one of the kernel's).
	Ready func(addr net.Addr)
}

// rescanEvery is how often the agent looks for executables that its
// targets' globs now match, and for traced files replaced on disk.
const rescanEvery = time.Second

// Agent traces the targets of a config and serves what it measures.
type Agent struct {
	opts Options
	log  *slog.Logger
	path string

	mu      sync.Mutex
	cfg     *Config
	traced  map[tracedKey]*traced // by target and executable file
	started time.Time
}

// tracedKey names a session: a target's executable file.
type tracedKey struct{ target, exe string }

// traced is one executable file of a target, traced in every process
// that runs it: one session, with the file's identity when it started.
type traced struct {
	target Target
	exe    string
	stat   os.FileInfo
	s      *session.Session
	cancel context.CancelFunc
	done   chan struct{}
}

// Run loads the config at path, traces its targets and serves until ctx
// ends. A target that cannot be traced (no such function, no file yet) is
// logged and retried; the others go on.
func Run(ctx context.Context, path string, opts Options) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	cfg, err := Load(path)
	if err != nil {
		return err
	}
	a := &Agent{opts: opts, log: opts.Log, path: path, cfg: cfg, traced: map[tracedKey]*traced{}, started: time.Now()}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	a.log.Info(fmt.Sprintf("serving /metrics, /report.json and /healthz on http://%s", ln.Addr()))
	defer a.stopAll()

	tick := time.NewTicker(rescanEvery)
	defer tick.Stop()
	a.rescan()
	for {
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shutdown)
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		case <-opts.Reload:
			a.reload()
		case <-tick.C:
			a.rescan()
		}
	}
}

// reload reads the config again and, when it is valid, traces what it
// names from now on.
func (a *Agent) reload() {
	cfg, err := Load(a.path)
	if err != nil {
		a.log.Warn(fmt.Sprintf("config not reloaded, the previous one goes on: %v", err))
		return
	}
	if cfg.Listen != a.cfg.Listen {
		a.log.Warn(fmt.Sprintf("listen %s: a new address takes a restart; still serving on %s", cfg.Listen, a.cfg.Listen))
		cfg.Listen = a.cfg.Listen
	}
	a.stopAll()
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	a.log.Info(fmt.Sprintf("config reloaded: %d targets", len(cfg.Targets)))
	a.rescan()
}

// rescan starts a session for each executable a target's exe matches that
// has none, and restarts the sessions of files replaced on disk (an
// upgrade): uprobes stay on the old file.
func (a *Agent) rescan() {
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	for _, t := range cfg.Targets {
		paths, _ := filepath.Glob(t.Exe) // the pattern was checked by Load
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			key := tracedKey{t.Name, p}
			a.mu.Lock()
			tr := a.traced[key]
			a.mu.Unlock()
			if tr != nil && os.SameFile(tr.stat, st) {
				continue
			}
			if tr != nil {
				a.log.Info(fmt.Sprintf("target %s: %s was replaced: tracing the new file", t.Name, p))
				a.stop(key)
			}
			a.start(t, p, st)
		}
	}
}

// start traces target t's executable exe in every process that runs it.
// A failure is logged, and the file is tried again when it changes.
func (a *Agent) start(t Target, exe string, st os.FileInfo) {
	key := tracedKey{t.Name, exe}
	tr := &traced{target: t, exe: exe, stat: st, done: make(chan struct{})}
	log := a.log.With("target", t.Name)
	s := session.New(session.Options{Log: log, Version: a.opts.Version})
	plan, err := session.Resolve(session.Spec{Binary: exe, Patterns: t.Functions}, log)
	if err == nil {
		err = s.Start(plan, session.Process{})
	}
	if err != nil {
		s.Close()
		a.log.Warn(fmt.Sprintf("target %s: %s not traced: %v", t.Name, exe, err))
		close(tr.done)
		a.mu.Lock()
		a.traced[key] = tr // not retried until the file changes
		a.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.s, tr.cancel = s, cancel
	go func() {
		defer close(tr.done)
		defer s.Close()
		if _, err := s.Run(ctx); err != nil {
			a.log.Warn(fmt.Sprintf("target %s: %s: tracing ended: %v", t.Name, exe, err))
		}
	}()
	a.mu.Lock()
	a.traced[key] = tr
	a.mu.Unlock()
	a.log.Info(fmt.Sprintf("target %s: timing %d functions in %s", t.Name, plan.Functions(), exe))
}

// stop ends one session and waits for it to let go of its probes.
func (a *Agent) stop(key tracedKey) {
	a.mu.Lock()
	tr := a.traced[key]
	delete(a.traced, key)
	a.mu.Unlock()
	if tr == nil {
		return
	}
	if tr.cancel != nil {
		tr.cancel()
	}
	<-tr.done
}

func (a *Agent) stopAll() {
	a.mu.Lock()
	keys := make([]tracedKey, 0, len(a.traced))
	for k := range a.traced {
		keys = append(keys, k)
	}
	a.mu.Unlock()
	for _, k := range keys {
		a.stop(k)
	}
}

// snapshot is a report of each traced file, in a stable order.
type snapshot struct {
	target Target
	exe    string
	r      *report.Report
}

func (a *Agent) snapshots() []snapshot {
	a.mu.Lock()
	trs := make([]*traced, 0, len(a.traced))
	for _, tr := range a.traced {
		if tr.s != nil {
			trs = append(trs, tr)
		}
	}
	a.mu.Unlock()
	sort.Slice(trs, func(i, j int) bool {
		if trs[i].target.Name != trs[j].target.Name {
			return trs[i].target.Name < trs[j].target.Name
		}
		return trs[i].exe < trs[j].exe
	})
	var out []snapshot
	for _, tr := range trs {
		r, err := tr.s.Snapshot()
		if err != nil {
			a.log.Warn(fmt.Sprintf("target %s: %s: %v", tr.target.Name, tr.exe, err))
			continue
		}
		out = append(out, snapshot{tr.target, tr.exe, r})
	}
	return out
}

func (a *Agent) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/report.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := report.WriteJSON(w, a.report()); err != nil {
			a.log.Warn(fmt.Sprintf("/report.json: %v", err))
		}
	})
	return mux
}

// report is the report of every traced file so far, as one: what ulat
// trace writes, so that ulat compare can judge it.
func (a *Agent) report() *report.Report {
	all := &report.Report{Elapsed: time.Since(a.started), OverheadCorrected: true}
	for i, sn := range a.snapshots() {
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
		all.Functions = append(all.Functions, r.Functions...)
		all.Lost.DroppedEvents += r.Lost.DroppedEvents
		all.Lost.UnpairedExits += r.Lost.UnpairedExits
		all.Lost.InFlight += r.Lost.InFlight
		all.Warnings = append(all.Warnings, r.Warnings...)
	}
	return all
}

// collector serves the agent's snapshots to Prometheus. It is unchecked
// (Describe sends nothing): targets' static labels differ, and series
// come and go with the processes.
type collector struct{ a *Agent }

func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.a.mu.Lock()
	limit := c.a.cfg.MaxSeries
	c.a.mu.Unlock()
	series, over := 0, 0
	for _, sn := range c.a.snapshots() {
		names, values := []string{"target", "binary"}, []string{sn.target.Name, sn.exe}
		for _, k := range sortedKeys(sn.target.Labels) {
			names, values = append(names, k), append(values, sn.target.Labels[k])
		}
		fnNames := append(append([]string(nil), names...), "function")
		duration := prometheus.NewDesc("ulat_function_duration_seconds", "How long calls of the function took, probe costs taken out.", fnNames, nil)
		notReturned := prometheus.NewDesc("ulat_calls_not_returned_total", "Calls of the function that never returned (a panic, longjmp or exit unwound them).", fnNames, nil)
		for _, f := range sn.r.Functions {
			if series >= limit {
				over++
				continue
			}
			series++
			lv := append(append([]string(nil), values...), f.Function)
			ch <- histogramMetric{desc: duration, labels: prometheus.MakeLabelPairs(duration, lv), h: toDTO(f.Hist)}
			ch <- prometheus.MustNewConstMetric(notReturned, prometheus.CounterValue, float64(f.DidNotReturn), lv...)
		}
		dropped := prometheus.NewDesc("ulat_dropped_events_total", "Calls not counted because the ring buffer was full.", names, nil)
		unpaired := prometheus.NewDesc("ulat_unpaired_exits_total", "Exits seen without their entry (the entry came before the probes).", names, nil)
		ch <- prometheus.MustNewConstMetric(dropped, prometheus.CounterValue, float64(sn.r.Lost.DroppedEvents), values...)
		ch <- prometheus.MustNewConstMetric(unpaired, prometheus.CounterValue, float64(sn.r.Lost.UnpairedExits), values...)
	}
	overLimit := prometheus.NewDesc("ulat_series_over_limit", "Functions whose series were not served, past max_series.", nil, nil)
	ch <- prometheus.MustNewConstMetric(overLimit, prometheus.GaugeValue, float64(over))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
