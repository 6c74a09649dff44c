package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/ulat-dev/ulat/cgroup"
	"github.com/ulat-dev/ulat/internal/marked"
	"github.com/ulat-dev/ulat/session"
	"github.com/ulat-dev/ulat/symbols"
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

// rescanWithExecs is that period when the exec watcher reports new
// processes as they start: the look through /proc is then a safety net,
// and costs less at rest.
const rescanWithExecs = 5 * time.Second

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
	// dtos are the served series' Prometheus histograms, rebuilt only
	// for the series that had calls since the last scrape.
	dtos dtoCache
	// entries are the functions' /report.json entries, made anew only
	// after a call.
	entries entryCache

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
	file   symbols.ExecutableID
}

// traced is one executable file of a target, traced in the processes
// that run it (those the target selects): one session.
type traced struct {
	target Target
	exe    string // the file's path, as its processes see it: the binary label
	file   symbols.ExecutableID
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
	srv := &http.Server{Handler: a.handler(a.snapshots), ReadHeaderTimeout: 10 * time.Second}
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

	every := rescanEvery
	if a.execs != nil {
		every = rescanWithExecs
	}
	tick := time.NewTicker(every)
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
		next, err = startOTLP(*cfg, otlpProducer{series: func() ([]*series, []*fileTotals, int) { return a.exported(a.snapshots()) }, version: a.opts.Version, started: a.started}, a.log)
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
