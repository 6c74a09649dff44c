// Package session is ulat's engine: it resolves what to trace into a Plan,
// measures the probes' own cost, attaches, collects calls into histograms,
// and reports them, as snapshots while it runs and in full at the end.
// Front-ends (the CLI's trace and run, an agent) parse their own input,
// call it, and print or export what it reports; none of them touches
// probes.
//
//	s := session.New(opts)     // starts measuring the probes' cost
//	defer s.Close()
//	plan, err := session.Resolve(spec, opts.Log)
//	err = s.Start(plan, session.Process{Pid: pid})
//	final, err := s.Run(ctx)   // Snapshot and Interval from elsewhere meanwhile
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/report"
	"github.com/ulat-dev/ulat/symbols"
)

// Aggregation is where calls are counted.
type Aggregation string

const (
	// AggregateAuto counts in the kernel unless the histograms would take
	// more than KernelHistogramBudget of kernel memory.
	AggregateAuto Aggregation = "auto"
	// AggregateKernel counts in per-CPU histograms in the kernel: nothing
	// to drop, nothing streamed.
	AggregateKernel Aggregation = "kernel"
	// AggregateUser streams every call to user space through the ring
	// buffer.
	AggregateUser Aggregation = "user"
)

// KernelHistogramBudget is the most kernel memory AggregateAuto lets
// in-kernel histograms take; past it (thousands of functions, or many
// CPUs), calls are streamed to user space instead.
const KernelHistogramBudget = 64 << 20

// AttachMode is how probes are attached.
type AttachMode = probes.AttachMode

const (
	AttachAuto  = probes.AttachAuto  // multi where the kernel has it, else perf
	AttachMulti = probes.AttachMulti // one uprobe_multi link per file (Linux >= 6.6)
	AttachPerf  = probes.AttachPerf  // one perf-event link per probe
)

// Options configure a Session.
type Options struct {
	// Log takes warnings (slog.LevelWarn) and notices (slog.LevelInfo);
	// nil discards them. Every warning is also in the report.
	Log *slog.Logger
	// LibbpfLog, when not nil, receives libbpf's own log while the BPF
	// object loads.
	LibbpfLog  io.Writer
	Attach     AttachMode  // "" is AttachAuto
	Aggregate  Aggregation // "" is AggregateAuto
	RingBuffer int         // bytes: a power of two, a multiple of the page size; 0 is 4 MiB
	InFlight   int         // calls in flight at once, at most (0: 65,536; see probes.Options)
	// Raw reports durations as measured: the probes' own cost is neither
	// taken out nor counted.
	Raw bool
	// Intervals keeps a second set of histograms for Interval, where
	// calls are streamed to user space.
	Intervals bool
	// LabelLibraries names the functions of libraries named by LIB:PATTERN
	// LIB:function when the plan has several files, as a table showing
	// them side by side needs.
	LabelLibraries bool
	// ByCgroup counts each cgroup's calls apart: a report then has an
	// entry per function and cgroup v2 (FunctionStats.Cgroup), for the
	// cgroups whose processes called it. Calls are streamed to user
	// space: in-kernel histograms count per function only.
	ByCgroup bool
	// PollEvery is how often Run drains the ring buffer when the kernel
	// does not wake it (0: 50 ms); snapshots drain it themselves. An
	// agent tracing for days polls less, to use less CPU at rest.
	PollEvery time.Duration
	// MaxCgroups bounds the cgroups counted apart (0: no bound): the
	// calls of cgroups past it are counted together, as cgroup 0's.
	MaxCgroups int
	// Calibration, when not nil, is where the probes' costs come from: a
	// measurement shared by sessions, which none of them closes.
	Calibration *Calibration
	Version     string // ulat's, recorded in reports
}

// Process says which processes the probes fire in.
type Process struct {
	// Pid is the only process traced (0: every process that runs the
	// traced files). Run ends when it exits.
	Pid int
	// FollowForks extends Pid to the processes it starts, and theirs.
	// With Pid 0, no process is traced until Session.Follow names one.
	FollowForks bool
	// Launched: the front-end started Pid for this session (ulat run), so
	// that other processes running its executable are none of its concern.
	Launched bool
}

// ErrEnded is returned by Interval once Run has returned.
var ErrEnded = errors.New("the session has ended")

// Session is one tracing session: New, Start, Run, Close. Snapshot and
// Interval may be called from any goroutine.
type Session struct {
	kernel     kernel
	opts       Options
	log        *slog.Logger
	calibrated chan calibration // delivers New's calibration, once

	// Set by Start, then read by Run.
	calibration costSource // nil when it could not start
	plan        *Plan
	proc        Process
	tracer      tracer
	inKernel    bool
	exited      <-chan struct{} // closed when proc.Pid exits
	quit        chan struct{}   // closed by Close: stops watching proc.Pid
	exe         symbols.ExecutableID
	exeErr      error
	replaced    *replacedFiles
	facts       report.Facts // what reports were measured with, from Start

	// mu guards what Snapshot and Interval read while Run collects.
	mu          sync.Mutex
	costs       probes.Costs // empty when not measured
	warnings    []string
	total       *tally
	window      *tally              // with Options.Intervals
	lastHists   []*probes.Histogram // in-kernel histograms at the last interval
	kernelSums  kernelTotals        // the in-kernel histograms' totals, as last read
	start       time.Time
	windowStart time.Time
	lostBefore  probes.Counters
	final       *report.Report
}

type calibration struct {
	c   costSource
	err error
}

// New starts a session's measurement of the probes' own cost on this host
// (in a child process), so that it goes on while the caller resolves what
// to trace.
func New(opts Options) *Session { return newSession(opts, probesKernel) }

func newSession(opts Options, k kernel) *Session {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Aggregate == "" {
		opts.Aggregate = AggregateAuto
	}
	s := &Session{kernel: k, opts: opts, log: opts.Log, calibrated: make(chan calibration, 1), quit: make(chan struct{})}
	go func() {
		if shared := opts.Calibration; shared != nil {
			<-shared.ready
			var c costSource
			if shared.c != nil {
				c = sharedCosts{shared.c}
			}
			s.calibrated <- calibration{c, shared.err}
			return
		}
		c, err := k.calibrate(probes.Options{LibbpfLog: opts.LibbpfLog, Attach: opts.Attach})
		s.calibrated <- calibration{c, err}
	}()
	return s
}

// Calibration measures the probes' own cost on this host for any number
// of sessions (Options.Calibration): a process that runs many sessions at
// once, as the agent does, measures once, where each session would
// otherwise start a calibration process of its own.
type Calibration struct {
	ready chan struct{} // closed once c or err is set
	c     costSource
	err   error
}

// NewCalibration starts measuring; sessions given it wait for its first
// figures as they would for their own.
func NewCalibration(libbpfLog io.Writer) *Calibration {
	return newCalibration(probesKernel, probes.Options{LibbpfLog: libbpfLog})
}

func newCalibration(k kernel, opts probes.Options) *Calibration {
	c := &Calibration{ready: make(chan struct{})}
	go func() {
		defer close(c.ready)
		c.c, c.err = k.calibrate(opts)
	}()
	return c
}

// Close ends the measurement, once the sessions that use it have ended.
func (c *Calibration) Close() error {
	<-c.ready
	if c.c == nil {
		return nil
	}
	return c.c.Close()
}

// sharedCosts is a shared Calibration as a session's: closing the session
// leaves it to its other sessions.
type sharedCosts struct{ c costSource }

func (s sharedCosts) Costs() (probes.Costs, error) { return s.c.Costs() }
func (sharedCosts) Close() error                   { return nil }

// warn logs a warning and keeps it for the report.
func (s *Session) warn(w string) {
	s.log.Warn(w)
	s.warnings = append(s.warnings, w)
}

// awaitCalibration takes New's calibration, once.
func (s *Session) awaitCalibration() {
	if s.calibrated == nil {
		return
	}
	cal := <-s.calibrated
	s.calibrated = nil
	// Without privileges, BTF or uprobes, opening the tracer says so.
	if cal.err != nil && !errors.Is(cal.err, probes.ErrPermission) && !errors.Is(cal.err, probes.ErrNoBTF) &&
		!errors.Is(cal.err, probes.ErrNoUprobes) && !errors.Is(cal.err, probes.ErrKernelTooOld) {
		s.warn(fmt.Sprintf("probe overhead not measured, durations include it: %v", cal.err))
	}
	s.calibration = cal.c
	if cal.c != nil {
		s.costs, _ = cal.c.Costs()
	}
}

// Start loads the BPF object and attaches the plan's functions, for the
// processes proc names: all or nothing.
func (s *Session) Start(plan *Plan, proc Process) error {
	if s.tracer != nil {
		return errors.New("session: started twice")
	}
	if proc.Pid > 0 {
		exited, err := watchProcess(proc.Pid, s.quit)
		if err != nil {
			return err
		}
		s.exited = exited
	}
	s.plan, s.proc = plan, proc
	// Waited for before attaching: once ulat attaches, nothing else of
	// ulat's is probing.
	s.awaitCalibration()
	s.warnings = append(s.warnings, plan.Warnings...)
	if s.opts.LabelLibraries && len(plan.groups) > 1 {
		labelLibraryFunctions(plan.targets)
	}
	if err := s.open(); err != nil {
		return err
	}
	select {
	case <-s.exited:
		s.tracer.Close()
		s.tracer = nil
		return fmt.Errorf("process %d exited while ulat was attaching: nothing was traced", proc.Pid)
	default:
	}
	if proc.Pid > 0 && !proc.Launched {
		// Taken now: the process may have exited by the end, and before
		// the caller says it is tracing, which whoever started ulat may
		// act on at once.
		s.exe, s.exeErr = symbols.ExecutableOf(proc.Pid)
	}
	newT := func() *tally { return newTally(plan.targets, s.costs, !s.opts.Raw, s.inKernel) }
	if s.opts.ByCgroup {
		newT = func() *tally { return newCgroupTally(plan.targets, s.costs, !s.opts.Raw, s.opts.MaxCgroups) }
	}
	s.total = newT()
	if s.opts.Intervals {
		s.window = newT()
	}
	s.replaced = watchReplaced(plan.targets)
	// The files' build IDs as they are now, when probed: a file replaced
	// while tracing has another.
	s.facts = runFacts(plan.groups, s.opts.Version, s.log)
	s.facts.Aggregation = "user"
	if s.inKernel {
		s.facts.Aggregation = "kernel"
	}
	// Until Run starts the clock, reports count from the attach.
	s.start = time.Now()
	s.windowStart = s.start
	return nil
}

// open loads the tracer and attaches the plan's functions.
func (s *Session) open() error {
	p := s.plan
	agg := s.opts.Aggregate
	switch {
	case p.follower != nil:
		// Functions are added while tracing, and the in-kernel
		// histograms are sized when the object loads.
		s.inKernel = false
		if agg == AggregateKernel {
			s.warn("in-kernel aggregation: functions of programs the command runs are added while it runs, so every call is streamed to user space instead")
		}
	case s.opts.ByCgroup:
		s.inKernel = false
		if agg == AggregateKernel {
			s.warn("in-kernel aggregation counts per function, not per cgroup: every call is streamed to user space instead")
		}
	case agg == AggregateKernel:
		s.inKernel = true
	case agg == AggregateUser:
		s.inKernel = false
	default:
		s.inKernel = s.kernel.histogramBytes(len(p.targets)) <= KernelHistogramBudget
	}
	opts := probes.Options{
		Pid:              s.proc.Pid,
		FollowForks:      s.proc.FollowForks,
		StopOnExec:       p.follower != nil,
		LibbpfLog:        s.opts.LibbpfLog,
		Attach:           s.opts.Attach,
		RingBuffer:       s.opts.RingBuffer,
		InFlight:         s.opts.InFlight,
		KernelHistograms: s.inKernel,
		ByCgroup:         s.opts.ByCgroup,
		Functions:        len(p.targets),
		Raw:              s.opts.Raw,
	}
	if !s.opts.Raw {
		opts.Costs = s.costs
	}
	tracer, inKernel, warning, err := s.kernel.open(opts, agg == AggregateAuto && p.follower == nil && !s.opts.ByCgroup)
	if err != nil {
		return err
	}
	if warning != "" {
		s.warn(warning)
	}
	s.inKernel = inKernel
	if len(p.targets) > 0 {
		if err := tracer.Attach(p.functions(0)); err != nil {
			tracer.Close()
			return err
		}
	}
	s.tracer = tracer
	s.noteRefused()
	return nil
}

// noteRefused marks and warns about the functions the last attach left out.
func (s *Session) noteRefused() {
	refused := s.tracer.Refused()
	if len(refused) == 0 {
		return
	}
	for _, r := range refused {
		s.plan.targets[r.Index].refused = true
	}
	s.warn(refusedWarning(refused))
}

// add attaches targets found while tracing (in a program a followed process
// exec'd) after the ones there are.
func (s *Session) add(ts []target) error {
	p := s.plan
	base := len(p.targets)
	p.targets = append(p.targets, ts...)
	if err := s.tracer.Add(p.functions(base), base); err != nil {
		p.targets = p.targets[:base]
		return err
	}
	s.noteRefused()
	s.total.grow(p.targets)
	if s.window != nil {
		s.window.grow(p.targets)
	}
	return nil
}

// refusedWarning says, in one line, which functions the kernel refused to
// probe: every name, since these are few and the user may want to know.
func refusedWarning(refused []probes.Refused) string {
	names := make([]string, len(refused))
	for i, r := range refused {
		names[i] = r.Name
	}
	return fmt.Sprintf("the kernel refused to probe %d %s (%v: an instruction its uprobes cannot handle), which %s not traced: %s",
		len(refused), plural(len(refused), "function", "functions"), refused[0].Err, plural(len(refused), "is", "are"), strings.Join(names, ", "))
}

// refreshCosts takes the calibration's latest probe costs, for the calls
// that complete from now on: in the kernel's map (unless toKernel is
// false) and in the tallies'.
func (s *Session) refreshCosts(toKernel bool) error {
	if s.calibration == nil {
		return nil
	}
	costs, err := s.calibration.Costs()
	if err != nil || reflect.DeepEqual(costs, s.costs) {
		return nil // a failed round keeps the costs measured until then
	}
	if toKernel && !s.opts.Raw {
		if err := s.tracer.SetCosts(costs); err != nil {
			return err
		}
	}
	s.costs = costs
	s.total.setCosts(costs)
	if s.window != nil {
		s.window.setCosts(costs)
	}
	return nil
}

// pollEvery is how often Run drains the ring buffer by default: events
// are submitted without wakeups, and this bounds how late a stop is
// noticed.
const pollEvery = 50 * time.Millisecond

// Run collects calls until ctx ends or the traced process exits, then
// detaches and returns the report of the whole session, whose elapsed time
// ends at that moment (not when the loop notices it, up to a poll later).
func (s *Session) Run(ctx context.Context) (*report.Report, error) {
	if s.tracer == nil {
		return nil, errors.New("session: Run before Start")
	}
	stop := make(chan time.Time, 1)
	tr := s.tracer // Close may clear s.tracer meanwhile; Wake after closing does nothing
	go func() {
		select {
		case <-ctx.Done():
		case <-s.exited:
		}
		stop <- time.Now()
		tr.Wake() // the loop may wait for PollEvery
	}()
	s.mu.Lock()
	s.start = time.Now()
	s.windowStart = s.start
	s.mu.Unlock()

	var (
		batch     []probes.Event
		execs     []int // processes stopped at exec, to let go on
		lastCheck = s.start
		stopAt    time.Time
	)
	keep := func(e *probes.Event) { batch = append(batch, *e) }
	for done := false; !done; {
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if err := s.everySecond(); err != nil {
				return nil, s.fail(err)
			}
		}
		select {
		case stopAt = <-stop:
			done = true
		default:
			batch = batch[:0]
			if _, err := s.tracer.Poll(s.pollEvery(), keep); err != nil {
				return nil, s.fail(err)
			}
			s.mu.Lock()
			execs = s.record(batch, execs)
			err := s.followExecs(execs)
			execs = execs[:0]
			s.mu.Unlock()
			if err != nil {
				return nil, s.fail(err)
			}
		}
	}
	return s.finish(stopAt.Sub(s.start))
}

// fail ends a session that cannot go on: its probes are detached at once.
func (s *Session) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tracer.Detach()
	s.final = &report.Report{}
	return err
}

func (s *Session) everySecond() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshCosts(true); err != nil {
		return err
	}
	for _, w := range s.replaced.check() {
		s.warn(w)
	}
	return nil
}

// record counts a batch of events; it returns execs with the processes
// stopped at exec added.
func (s *Session) record(batch []probes.Event, execs []int) []int {
	for i := range batch {
		e := &batch[i]
		if e.Kind == probes.EventExec {
			execs = append(execs, int(e.Pid))
			continue
		}
		s.total.record(e)
		if s.window != nil {
			s.window.record(e)
		}
	}
	return execs
}

// followExecs attaches, in each process stopped at exec, the functions of
// its new program, then lets it go on, whatever happens.
func (s *Session) followExecs(execs []int) error {
	var errs []error
	for _, pid := range execs {
		var ts []target
		if s.plan.follower != nil {
			ts = s.plan.follower.resolve(pid, s.log)
		}
		if len(ts) > 0 {
			if err := s.add(ts); err != nil {
				errs = append(errs, err)
			} else {
				s.log.Info(fmt.Sprintf("process %d runs %s: timing %d %s there", pid, ts[0].binary, len(ts), plural(len(ts), "function", "functions")))
			}
		}
		if err := s.tracer.Continue(pid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finish detaches (first, so that no call completes after the final
// drain), counts what is left, and makes the final report.
func (s *Session) finish(elapsed time.Duration) (*report.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.tracer.Detach(); err != nil {
		s.final = &report.Report{}
		return nil, fmt.Errorf("detach: %w", err)
	}
	var execs []int
	var batch []probes.Event
	s.tracer.Drain(func(e *probes.Event) { batch = append(batch, *e) })
	execs = s.record(batch, execs)
	for _, pid := range execs { // stopped as tracing ended: nothing to add
		s.tracer.Continue(pid)
	}
	r, err := s.report(s.total, elapsed, true)
	if err != nil {
		s.final = &report.Report{}
		return nil, err
	}
	s.final = r
	return r, nil
}

// report builds the report of agg (the session's total or its window); end
// makes it the final one: with the calls left in flight and the warnings
// only the end can give.
func (s *Session) report(agg *tally, elapsed time.Duration, end bool) (*report.Report, error) {
	lost, err := s.tracer.Counters()
	if err != nil {
		return nil, err
	}
	var left *probes.Unfinished
	if end {
		l, err := s.tracer.Unfinished()
		if err != nil {
			return nil, err
		}
		left = &l
		// The report states the costs and their spread over the whole
		// session.
		if err := s.refreshCosts(false); err != nil {
			return nil, err
		}
	}
	if s.inKernel {
		hs, err := s.tracer.Histograms(s.kernelSums.known)
		if err != nil {
			return nil, err
		}
		s.kernelSums.update(hs)
		agg.setKernelTotals(&s.kernelSums)
	}
	r := agg.report(elapsed, lost, left, slices.Clone(s.warnings))
	r.Facts = s.facts
	if !end {
		return r, nil
	}
	if s.proc.FollowForks && lost.Unfollowed > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d processes started by the command were not followed (more than 16384 at once)", lost.Unfollowed))
	}
	if f := s.plan.follower; f != nil {
		for _, w := range f.unmatched(s.plan.spec.Binary) {
			s.log.Warn(w)
			r.Warnings = append(r.Warnings, w)
		}
		r.Warnings = append(r.Warnings, f.warnings...)
	}
	if w := s.siblingsWarning(r); w != "" {
		r.Warnings = append(r.Warnings, w)
	}
	return r, nil
}

func (s *Session) pollEvery() time.Duration {
	if s.opts.PollEvery > 0 {
		return s.opts.PollEvery
	}
	return pollEvery
}

// drainNow counts the calls streamed so far, for a report of now; s.mu is
// held. Not while programs are followed across exec, whose stopped
// processes Run's loop lets go on.
func (s *Session) drainNow() {
	if s.inKernel || s.plan.follower != nil || s.tracer == nil {
		return
	}
	var batch []probes.Event
	s.tracer.Drain(func(e *probes.Event) { batch = append(batch, *e) })
	s.record(batch, nil)
}

// Snapshot is the report of the session so far: since Start, up to now
// (calls still between their probes and the ring buffer aside). Once Run
// has returned, it is Run's report.
func (s *Session) Snapshot() (*report.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final != nil {
		return s.final, nil
	}
	if s.total == nil {
		return nil, errors.New("session: Snapshot before Start")
	}
	s.drainNow()
	// Copies: the tally goes on counting after the report is built.
	snap := s.total.clone()
	return s.report(snap, time.Since(s.start), false)
}

// Interval is the report of the calls completed since the previous
// Interval (or since Run began), with that interval's exact extremes; it
// needs Options.Intervals.
func (s *Session) Interval() (*report.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final != nil {
		return nil, ErrEnded
	}
	if s.window == nil {
		return nil, errors.New("session: Interval needs Options.Intervals")
	}
	s.drainNow()
	now := time.Now()
	lost, err := s.tracer.Counters()
	if err != nil {
		return nil, err
	}
	if s.inKernel {
		hs, err := s.tracer.Histograms(nil)
		if err != nil {
			return nil, err
		}
		if err := s.tracer.NextInterval(); err != nil {
			return nil, err
		}
		s.window.setKernel(hs, s.lastHists)
		s.lastHists = hs
	}
	r := s.window.report(now.Sub(s.windowStart), lost.Minus(s.lostBefore), nil, slices.Clone(s.warnings))
	s.window.reset()
	s.windowStart, s.lostBefore = now, lost
	return r, nil
}

// ErrNotSelecting is returned by Follow for a session that traces a
// process and its children, or every process, rather than those it is
// given.
var ErrNotSelecting = errors.New("the session does not select processes (Process{FollowForks: true} with no Pid does)")

// Follow traces process pid from now on, and the processes it starts, in
// a session started with Process{FollowForks: true} and no Pid. It may be
// called from any goroutine while the session runs.
func (s *Session) Follow(pid int) error {
	if s.proc.Pid != 0 || !s.proc.FollowForks {
		return ErrNotSelecting
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer == nil || s.final != nil {
		return ErrEnded
	}
	return s.tracer.Follow(pid)
}

// Close stops the calibration and releases the probes; a session that
// was not Run is detached. Call it once Run has returned.
func (s *Session) Close() error {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.awaitCalibration()
	var errs []error
	if s.calibration != nil {
		errs = append(errs, s.calibration.Close())
		s.calibration = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer != nil {
		errs = append(errs, s.tracer.Close())
		s.tracer = nil
	}
	return errors.Join(errs...)
}

// siblingsWarning explains a session of one process without a single call
// when other processes run the same executable: a server's master process
// often only supervises the workers that do the work.
func (s *Session) siblingsWarning(r *report.Report) string {
	pid := s.proc.Pid
	if pid <= 0 || s.proc.Launched || s.exeErr != nil {
		return ""
	}
	for _, f := range r.Functions {
		if f.Hist.Count() > 0 || f.DidNotReturn > 0 {
			return ""
		}
	}
	others := symbols.ProcessesRunning(s.exe, pid)
	if len(others) == 0 {
		return ""
	}
	shown := others
	more := ""
	if len(shown) > 8 {
		shown, more = shown[:8], fmt.Sprintf(" and %d more", len(others)-8)
	}
	ids := make([]string, len(shown))
	for i, o := range shown {
		ids[i] = strconv.Itoa(o)
	}
	return fmt.Sprintf("process %d made no calls, and %d other %s run the same executable (%s%s): if they do the work (a server's workers), trace one of them, or every process that runs the executable",
		pid, len(others), plural(len(others), "process", "processes"), strings.Join(ids, ", "), more)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
