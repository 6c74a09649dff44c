package probes

import (
	"fmt"
	"io"
	"time"
)

// ExecWatcher reports each program exec'd on the machine as it happens, in
// any process: how the agent finds new processes within milliseconds
// rather than at its next look through /proc. Nothing is stopped or
// slowed but by the tracepoint's own cost, once per exec.
type ExecWatcher struct{ t *Tracer }

// Exec is a process that has just exec'd a program.
type Exec struct {
	Pid    int
	Cgroup uint64 // its cgroup v2 id
}

// WatchExecs loads and attaches the exec tracepoint alone. libbpfLog, when
// not nil, receives libbpf's log of the load.
func WatchExecs(libbpfLog io.Writer) (*ExecWatcher, error) {
	// The maps the tracepoint does not use get one entry, not the
	// thousands a session's probes need.
	t, err := Open(Options{watchExecs: true, LibbpfLog: libbpfLog, RingBuffer: execRingBytes, InFlight: 1})
	if err != nil {
		return nil, fmt.Errorf("watch execs: %w", err)
	}
	return &ExecWatcher{t: t}, nil
}

// execRingBytes holds 4,681 execs: more than a machine starts in the 100
// ms a reader may take to come back.
const execRingBytes = 256 << 10

// configureExecWatch sets the object up for WatchExecs.
func (t *Tracer) configureExecWatch() error {
	if err := t.mod.InitGlobalVariable("exec_all", true); err != nil {
		return fmt.Errorf("configure exec watch: %w", err)
	}
	return nil
}

// Poll waits up to timeout for execs and calls fn for each; it returns how
// many it read. Execs the ring buffer had no room for are counted in
// Dropped.
func (w *ExecWatcher) Poll(timeout time.Duration, fn func(Exec)) (int, error) {
	return w.t.Poll(timeout, func(e *Event) {
		if e.Kind == EventExec {
			fn(Exec{Pid: int(e.Pid), Cgroup: e.Cgroup})
		}
	})
}

// Wake ends a Poll that waits, or the next one, at once.
func (w *ExecWatcher) Wake() { w.t.Wake() }

// Dropped is how many execs were not reported: the ring buffer was full.
func (w *ExecWatcher) Dropped() (uint64, error) {
	c, err := w.t.Counters()
	return c.Dropped, err
}

// Close detaches the tracepoint and unloads the object.
func (w *ExecWatcher) Close() error { return w.t.Close() }
