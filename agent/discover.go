package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ulat-dev/ulat/cgroup"
	"github.com/ulat-dev/ulat/internal/procfs"
	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/session"
	"github.com/ulat-dev/ulat/symbols"
)

// Finding the processes each target selects and the files they run, and
// the sessions that trace those files.

// A traced file's kernel memory: a 1 MiB ring buffer (18,700 calls,
// woken at an eighth full: ~190 ms of 100,000 calls a second, drained in
// 1 ms) and room for 8,192 calls in flight at once, about 3 MB in all
// (the defaults, for ulat trace, are 4 MiB and 65,536: 18 MB).
// At rest each session wakes every agentPollEvery; a burst of calls wakes
// it sooner, and its end at once.
const (
	agentRingBuffer = 1 << 20
	agentInFlight   = 8192
	agentPollEvery  = 5 * time.Second
)

// watchExecs reports the processes that exec a program, so that a new
// process is traced within milliseconds, not at the next look through
// /proc. Without the watcher (an old kernel, no privilege for it) the
// look through /proc, every second then, still finds them.
func (a *Agent) watchExecs(ctx context.Context) <-chan int {
	w, err := probes.WatchExecs(nil)
	if err != nil {
		a.log.Warn(fmt.Sprintf("new processes are found once a second only: %v", err))
		return nil
	}
	out := make(chan int, 4096)
	stop := context.AfterFunc(ctx, w.Wake)
	go func() {
		defer w.Close()
		defer stop()
		for ctx.Err() == nil {
			// Each exec wakes it, and the agent's end.
			if _, err := w.Poll(time.Minute, func(e probes.Exec) {
				select {
				case out <- e.Pid:
				default: // the next look through /proc finds it
				}
			}); err != nil {
				a.log.Warn(fmt.Sprintf("exec watcher: %v: new processes are found by looking through /proc only (every 5 s)", err))
				return
			}
		}
	}()
	return out
}

// rescan traces each executable a target's exe matches on this
// filesystem that is not traced yet, a file replaced on disk (an upgrade:
// uprobes stay on the old file) anew, and each process not looked at
// yet; it forgets processes that ended, and files no process ran for
// idleAfter.
func (a *Agent) rescan() {
	all, err := procfs.Pids()
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
			id, err := symbols.IdentifyFile(p)
			if err != nil {
				continue
			}
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
					// at again at the next look through /proc.
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
func (a *Agent) start(t Target, exe, open string, file symbols.ExecutableID, byPath bool) *traced {
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
		s := session.New(session.Options{
			Log: log, Version: a.opts.Version, Calibration: a.calibration,
			ByCgroup: byCgroup, MaxCgroups: maxCgroups,
			// At rest for days: the ring buffer is drained every 5 s
			// (and for each scrape) unless an eighth of it fills, which
			// wakes the agent, and kernel memory is sized for a service,
			// not a benchmark.
			PollEvery: agentPollEvery, RingBuffer: agentRingBuffer, InFlight: agentInFlight,
		})
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
