package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ulat-dev/ulat/cgroup"
	"github.com/ulat-dev/ulat/internal/marked"
	"github.com/ulat-dev/ulat/probes"
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

// rescanEvery is how often the agent looks through /proc for processes
// that the exec watcher did not report (those started before the agent,
// or past a full ring buffer), for processes that ended, for executables
// that its targets' globs now match, and for traced files replaced on
// disk.
const rescanEvery = time.Second

// idleAfter is how long a file found through a process (a container's, a
// deleted one) stays traced once no process runs it: a restart is back
// within it, and keeps its series.
const idleAfter = time.Minute

// Agent traces the targets of a config and serves what it measures.
type Agent struct {
	opts Options
	log  *slog.Logger
	path string
	// calibration measures the probes' cost once for every session.
	calibration *session.Calibration
	places      *places
	pods        *pods // nil outside Kubernetes
	// execs delivers the pid of each process that exec'd a program
	// (nil when the exec watcher could not start: /proc is read every
	// second only).
	execs <-chan int
	// otlp pushes over OTLP; nil without an otlp section. Only Run's
	// goroutine uses it.
	otlp *otlpPusher

	mu        sync.Mutex
	cfg       *Config
	selectors map[string]selector // by target name
	traced    map[tracedKey]*traced
	seen      map[int]*process // the processes looked at, decided
	// warnedPermission: a process could not be read for want of a
	// privilege, which was said once.
	warnedPermission bool
	started          time.Time
}

// tracedKey names a session: a target's executable file.
type tracedKey struct {
	target string
	file   fileID
}

// traced is one executable file of a target, traced in the processes
// that run it (those the target selects): one session.
type traced struct {
	target Target
	exe    string // the file's path, as its processes see it: the binary label
	file   fileID
	// byPath: found by the target's exe on the agent's own filesystem,
	// where a replaced file is noticed. Else found through a process.
	byPath bool
	// s is nil while the session starts (symbols read, probes attached:
	// seconds for a large program, which must not hold up the finding
	// of other processes) and when it could not start (failed).
	s       *session.Session
	started time.Time // when s started: its counts are cumulative from then
	failed  bool
	pending []*process // selected while it started: followed once it has
	cancel  context.CancelFunc
	done    chan struct{} // closed once the session has let go of its probes
	// procs are the processes traced in it, as of the agent's last look.
	procs    map[int]bool
	lastSeen time.Time // when a process last ran it
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
	a := &Agent{opts: opts, log: opts.Log, path: path, traced: map[tracedKey]*traced{}, seen: map[int]*process{}, started: time.Now()}
	a.setConfig(cfg)
	if a.pods, err = newPods(cfg.Kubernetes); err != nil {
		return marked.With(ErrConfig, err)
	}
	mount := cfg.CgroupRoot
	if mount == "" {
		if mount, err = cgroup.Mount(); err != nil {
			a.log.Warn(fmt.Sprintf("no container labels, and no selection by cgroup: %v", err))
		}
	}
	a.places = newPlaces(mount, a.pods)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.calibration = session.NewCalibration(nil)
	defer a.calibration.Close()
	defer a.stopAll()
	if err := a.setOTLP(cfg.OTLP); err != nil {
		srv.Close()
		return err
	}
	defer a.setOTLP(nil) // pushes once more, before stopAll ends the sessions
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	a.execs = a.watchExecs(watchCtx)
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	a.log.Info(fmt.Sprintf("serving /metrics, /report.json and /healthz on http://%s", ln.Addr()))

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
		case pid := <-a.execs:
			a.consider(pid)
		case <-tick.C:
			a.rescan()
		}
	}
}

// watchExecs reports the processes that exec a program, so that a new
// process is traced within milliseconds, not at the next look through
// /proc. Without the watcher (an old kernel, no privilege for it) the
// look every second still finds them.
func (a *Agent) watchExecs(ctx context.Context) <-chan int {
	w, err := probes.WatchExecs(nil)
	if err != nil {
		a.log.Warn(fmt.Sprintf("new processes are found once a second only: %v", err))
		return nil
	}
	out := make(chan int, 4096)
	go func() {
		defer w.Close()
		for ctx.Err() == nil {
			if _, err := w.Poll(100*time.Millisecond, func(e probes.Exec) {
				select {
				case out <- e.Pid:
				default: // the next look through /proc finds it
				}
			}); err != nil {
				a.log.Warn(fmt.Sprintf("exec watcher: %v: new processes are found once a second only", err))
				return
			}
		}
	}()
	return out
}

func (a *Agent) setConfig(cfg *Config) {
	sel := map[string]selector{}
	for _, t := range cfg.Targets {
		sel[t.Name] = newSelector(t)
	}
	a.mu.Lock()
	a.cfg, a.selectors = cfg, sel
	a.mu.Unlock()
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
	if !reflect.DeepEqual(cfg.OTLP, a.cfg.OTLP) {
		if err := a.setOTLP(cfg.OTLP); err != nil {
			a.log.Warn(fmt.Sprintf("otlp not reloaded, the previous one goes on: %v", err))
			cfg.OTLP = a.cfg.OTLP
		}
	}
	a.stopAll()
	a.setConfig(cfg)
	a.mu.Lock()
	a.seen = map[int]*process{}
	a.mu.Unlock()
	a.log.Info(fmt.Sprintf("config reloaded: %d targets", len(cfg.Targets)))
	a.rescan()
}

// setOTLP pushes to the endpoint cfg names from now on (nil: nowhere),
// instead of the one before, which pushes once more. It keeps the one
// before when the new one cannot start.
func (a *Agent) setOTLP(cfg *OTLP) error {
	var next *otlpPusher
	if cfg != nil {
		var err error
		next, err = startOTLP(*cfg, otlpProducer{series: a.exported, version: a.opts.Version, started: a.started}, a.log)
		if err != nil {
			return err
		}
	}
	if a.otlp != nil {
		a.otlp.stop()
		a.log.Info(fmt.Sprintf("OTLP push to %s stopped", a.otlp.cfg.Endpoint))
	}
	a.otlp = next
	if next != nil {
		a.log.Info(fmt.Sprintf("pushing OTLP metrics to %s every %s", cfg.Endpoint, cfg.Interval))
	}
	return nil
}

// rescan traces each executable a target's exe matches on this
// filesystem that is not traced yet, a file replaced on disk (an upgrade:
// uprobes stay on the old file) anew, and each process not looked at
// yet; it forgets processes that ended, and files no process ran for
// idleAfter.
func (a *Agent) rescan() {
	all, err := pids()
	if err != nil {
		a.log.Warn(err.Error())
		return
	}
	running := map[int]bool{}
	for _, pid := range all {
		running[pid] = true
	}
	a.mu.Lock()
	cfg := a.cfg
	for pid := range a.seen {
		if !running[pid] {
			delete(a.seen, pid)
		}
	}
	for _, tr := range a.traced {
		for pid := range tr.procs {
			if !running[pid] {
				delete(tr.procs, pid)
			}
		}
	}
	a.mu.Unlock()

	for _, t := range cfg.Targets {
		paths, _ := filepath.Glob(t.Exe) // the pattern was checked by Load
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			id := idOf(st)
			if a.tracing(tracedKey{t.Name, id}) != nil {
				continue
			}
			if old := a.tracingPath(t.Name, p); old != nil {
				a.log.Info(fmt.Sprintf("target %s: %s was replaced: tracing the new file", t.Name, p))
				a.mu.Lock()
				// Processes still running the old file stay traced until
				// they end; both files' calls are in the same series.
				old.byPath = false
				stillRun := len(old.procs) > 0
				a.mu.Unlock()
				if !stillRun {
					a.stop(tracedKey{t.Name, old.file})
				}
			}
			a.start(t, p, p, id, true)
		}
	}

	for _, pid := range all {
		a.mu.Lock()
		p := a.seen[pid]
		a.mu.Unlock()
		// A pid handed to a new process is one that exec'd (and was
		// reported), or a fork of a process running the same program.
		if p == nil || a.execs == nil && !p.alive() {
			a.consider(pid)
		}
	}
	var idle []tracedKey
	a.mu.Lock()
	for key, tr := range a.traced {
		if len(tr.procs) > 0 {
			tr.lastSeen = time.Now()
		} else if !tr.byPath && time.Since(tr.lastSeen) > idleAfter {
			idle = append(idle, key)
		}
	}
	a.mu.Unlock()
	for _, key := range idle {
		a.log.Info(fmt.Sprintf("target %s: no process has run %s for %v: no longer traced", key.target, a.tracing(key).exe, idleAfter))
		a.stop(key)
	}
}

func (a *Agent) tracing(key tracedKey) *traced {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.traced[key]
}

// tracingPath is the session of target's file found at path, if any.
func (a *Agent) tracingPath(target, path string) *traced {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, tr := range a.traced {
		if key.target == target && tr.byPath && tr.exe == path {
			return tr
		}
	}
	return nil
}

// consider looks at process pid (new, or that has exec'd a program) and
// traces it for each target that selects it, starting a session for its
// executable file when none traces it yet.
func (a *Agent) consider(pid int) {
	a.mu.Lock()
	delete(a.seen, pid)
	for _, tr := range a.traced {
		delete(tr.procs, pid)
	}
	cfg, selectors := a.cfg, a.selectors
	a.mu.Unlock()
	p, err := readProcess(pid)
	if errors.Is(err, fs.ErrPermission) && !a.warnedPermission {
		a.warnedPermission = true
		a.log.Warn(fmt.Sprintf("cannot read the executable of process %d, nor of others like it: %v (the agent needs CAP_SYS_PTRACE for other users' processes, every container's)", pid, err))
	}
	if err != nil {
		// Ended already, a kernel thread, or out of reach: not read again.
		if start, err := startTime(pid); err == nil {
			a.mu.Lock()
			a.seen[pid] = &process{pid: pid, start: start}
			a.mu.Unlock()
		}
		return
	}
	a.places.saw(p.cgroup)
	decided := true
	for _, t := range cfg.Targets {
		sel := selectors[t.Name]
		if !sel.runs(p) {
			continue
		}
		key := tracedKey{t.Name, p.file}
		tr := a.tracing(key)
		if tr == nil {
			// A file at its own path here is one the next look at the
			// target's exe would find: kept as long as it is there.
			open := p.openPath()
			tr = a.start(t, p.exe, open, p.file, open == p.exe)
		}
		a.mu.Lock()
		failed := tr.failed
		a.mu.Unlock()
		if failed {
			continue
		}
		if t.selects() {
			var pd *pod
			if sel.needsPod() {
				uid := cgroup.ContainerOf(p.cgroup).PodUID
				if pd, err = a.pods.get(uid); pd == nil && uid != "" {
					// A pod the API server has not listed yet: looked
					// at again in a second.
					decided = false
					if err != nil {
						a.log.Warn(fmt.Sprintf("target %s: process %d: %v", t.Name, pid, err))
					}
					continue
				}
			}
			if !sel.chooses(p, pd) {
				continue
			}
			if err := a.follow(tr, p); err != nil {
				a.log.Warn(fmt.Sprintf("target %s: process %d not traced: %v", t.Name, pid, err))
				continue
			}
		}
		a.mu.Lock()
		tr.procs[pid] = true
		tr.lastSeen = time.Now()
		a.mu.Unlock()
	}
	if decided {
		a.mu.Lock()
		a.seen[pid] = p
		a.mu.Unlock()
	}
}

// follow has tr's session trace process p, once it has started.
func (a *Agent) follow(tr *traced, p *process) error {
	a.mu.Lock()
	s := tr.s
	if s == nil {
		tr.pending = append(tr.pending, p)
	}
	a.mu.Unlock()
	if s == nil {
		return nil
	}
	a.log.Debug(fmt.Sprintf("target %s: tracing process %d (%s)", tr.target.Name, p.pid, p.cmdline))
	return s.Follow(p.pid)
}

// start traces target t's executable file: exe is its path as its
// processes see it, open a path to it here. The session starts in the
// background; a failure is logged, and the file is not tried again until
// it changes (or the config does).
func (a *Agent) start(t Target, exe, open string, file fileID, byPath bool) *traced {
	key := tracedKey{t.Name, file}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traced{target: t, exe: exe, file: file, byPath: byPath, cancel: cancel, done: make(chan struct{}), procs: map[int]bool{}, lastSeen: time.Now()}
	a.mu.Lock()
	a.traced[key] = tr
	byCgroup, maxSeries := a.cfg.Containers(), a.cfg.MaxSeries
	a.mu.Unlock()
	go func() {
		defer close(tr.done)
		log := a.log.With("target", t.Name)
		plan, err := session.Resolve(session.Spec{Binary: open, Patterns: t.Functions}, log)
		// Each container's calls of each function are a histogram:
		// bounded by max_series, the containers past it counted together.
		maxCgroups := 1
		if err == nil {
			maxCgroups = max(1, maxSeries/max(1, plan.Functions()))
		}
		s := session.New(session.Options{Log: log, Version: a.opts.Version, ByCgroup: byCgroup, MaxCgroups: maxCgroups, Calibration: a.calibration})
		defer s.Close()
		if err == nil {
			// A target that selects processes traces none until told.
			err = s.Start(plan, session.Process{FollowForks: t.selects()})
		}
		if err != nil {
			a.log.Warn(fmt.Sprintf("target %s: %s not traced: %v", t.Name, exe, err))
			a.mu.Lock()
			tr.failed, tr.pending = true, nil
			a.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return // stopped while it started
		}
		a.mu.Lock()
		tr.s, tr.started = s, time.Now()
		pending := tr.pending
		tr.pending = nil
		a.mu.Unlock()
		for _, p := range pending {
			if !p.alive() {
				continue // its pid may be another process's by now
			}
			if err := a.follow(tr, p); err != nil {
				a.log.Warn(fmt.Sprintf("target %s: process %d not traced: %v", t.Name, p.pid, err))
			}
		}
		a.log.Info(fmt.Sprintf("target %s: timing %d functions in %s", t.Name, plan.Functions(), exe))
		if _, err := s.Run(ctx); err != nil {
			a.log.Warn(fmt.Sprintf("target %s: %s: tracing ended: %v", t.Name, exe, err))
		}
	}()
	return tr
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
	tr.cancel()
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
// trace writes, so that ulat compare can judge it. Each function is one
// entry, its calls in every container together.
func (a *Agent) report() *report.Report {
	all := &report.Report{Elapsed: time.Since(a.started), OverheadCorrected: true}
	type fnKey struct{ binary, function string }
	index := map[fnKey]int{}
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
		for _, f := range r.Functions {
			f.Cgroup = 0
			if f.Binary != sn.exe && strings.HasPrefix(f.Binary, "/proc/") {
				f.Binary = sn.exe // found through a process: the path it has there
			}
			k := fnKey{f.Binary, f.Function}
			if j, ok := index[k]; ok {
				merged := report.NewHistogram()
				merged.Merge(all.Functions[j].Hist)
				merged.Merge(f.Hist)
				all.Functions[j].Hist = merged
				all.Functions[j].DidNotReturn += f.DidNotReturn
				continue
			}
			index[k] = len(all.Functions)
			all.Functions = append(all.Functions, f)
		}
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
	served, files, over := c.a.exported()
	for _, se := range served {
		names, values := se.labels()
		duration := prometheus.NewDesc("ulat_function_duration_seconds", "How long calls of the function took, probe costs taken out.", names, nil)
		notReturned := prometheus.NewDesc("ulat_calls_not_returned_total", "Calls of the function that never returned (a panic, longjmp or exit unwound them).", names, nil)
		ch <- histogramMetric{desc: duration, labels: prometheus.MakeLabelPairs(duration, values), h: toDTO(se.hist)}
		ch <- prometheus.MustNewConstMetric(notReturned, prometheus.CounterValue, float64(se.notReturned), values...)
	}
	for _, ft := range files {
		names, values := fileLabels(ft.target, ft.binary)
		dropped := prometheus.NewDesc("ulat_dropped_events_total", "Calls not counted because the ring buffer was full.", names, nil)
		unpaired := prometheus.NewDesc("ulat_unpaired_exits_total", "Exits seen without their entry (the entry came before the probes).", names, nil)
		procs := prometheus.NewDesc("ulat_traced_processes", "Processes traced that run the file, as of the agent's last look (every second, and at each exec).", names, nil)
		ch <- prometheus.MustNewConstMetric(dropped, prometheus.CounterValue, float64(ft.dropped), values...)
		ch <- prometheus.MustNewConstMetric(unpaired, prometheus.CounterValue, float64(ft.unpaired), values...)
		ch <- prometheus.MustNewConstMetric(procs, prometheus.GaugeValue, float64(ft.processes), values...)
	}
	overLimit := prometheus.NewDesc("ulat_series_over_limit", "Series not served, past max_series.", nil, nil)
	ch <- prometheus.MustNewConstMetric(overLimit, prometheus.GaugeValue, float64(over))
}

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
