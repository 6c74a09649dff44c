package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/buckets"
	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/report"
)

// fakeTracer hands the session the events and histograms a test gives it,
// as probes.Tracer would from the kernel.
type fakeTracer struct {
	mu           sync.Mutex
	pending      []probes.Event
	lost         probes.Counters
	left         probes.Unfinished
	hists        []probes.Histogram
	refused      []probes.Refused
	attachErr    error
	attached     []probes.Function
	nextInterval int
	costs        []probes.Costs
	continued    []int
	followed     []int
	detached     bool
	closed       bool
}

func (f *fakeTracer) push(es ...probes.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, es...)
}

func (f *fakeTracer) Attach(fns []probes.Function) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.attachErr != nil {
		return f.attachErr
	}
	f.attached = append(f.attached, fns...)
	return nil
}

func (f *fakeTracer) Add(fns []probes.Function, base int) error { return f.Attach(fns) }
func (f *fakeTracer) Refused() []probes.Refused                 { return f.refused }

func (f *fakeTracer) Poll(timeout time.Duration, fn func(*probes.Event)) (int, error) {
	time.Sleep(time.Millisecond) // a poll that waits, as the real one does
	return f.Drain(fn), nil
}

func (f *fakeTracer) Wake() {}

func (f *fakeTracer) Drain(fn func(*probes.Event)) int {
	f.mu.Lock()
	es := f.pending
	f.pending = nil
	f.mu.Unlock()
	for i := range es {
		fn(&es[i])
	}
	return len(es)
}

func (f *fakeTracer) Counters() (probes.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lost, nil
}

func (f *fakeTracer) Unfinished() (probes.Unfinished, error) { return f.left, nil }

func (f *fakeTracer) Histograms(known func(fn int, count uint64) bool) ([]*probes.Histogram, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*probes.Histogram, len(f.hists))
	for i := range f.hists {
		if known != nil && known(i, f.hists[i].Count) {
			continue
		}
		h := f.hists[i] // a copy: the tests change theirs
		out[i] = &h
	}
	return out, nil
}

func (f *fakeTracer) NextInterval() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextInterval++
	return nil
}

func (f *fakeTracer) SetCosts(c probes.Costs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.costs = append(f.costs, c)
	return nil
}

func (f *fakeTracer) Continue(pid int) error {
	f.continued = append(f.continued, pid)
	return nil
}

func (f *fakeTracer) Follow(pid int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.followed = append(f.followed, pid)
	return nil
}

func (f *fakeTracer) Detach() error { f.detached = true; return nil }
func (f *fakeTracer) Close() error  { f.closed = true; return nil }

// fakeCosts is a calibration whose costs are fixed.
type fakeCosts struct{ costs probes.Costs }

func (c fakeCosts) Costs() (probes.Costs, error) { return c.costs, nil }
func (c fakeCosts) Close() error                 { return nil }

var goKind = probes.Overhead{Exit: probes.ExitRET, Entry: probes.EntryEmulated}

func testCosts() probes.Costs {
	c := probes.Cost{Inner: 100, Nested: 50, InnerSpread: 10, NestedSpread: 5}
	return probes.Costs{Kinds: map[probes.Overhead]probes.Cost{goKind: c}, CPU: map[int]map[probes.Overhead]probes.Cost{0: {goKind: c}}}
}

// fakeKernel opens f, counting in the kernel when histograms fit in
// budget bytes (64 bytes a function here), and records what it was asked.
type fakeKernel struct {
	f        *fakeTracer
	costs    probes.Costs
	opened   []probes.Options
	fallback []bool
}

func (k *fakeKernel) kernel() kernel {
	return kernel{
		open: func(opts probes.Options, fallback bool) (tracer, bool, string, error) {
			k.opened = append(k.opened, opts)
			k.fallback = append(k.fallback, fallback)
			return k.f, opts.KernelHistograms, "", nil
		},
		calibrate: func(probes.Options) (costSource, error) {
			if k.costs.Kinds == nil {
				return nil, probes.ErrPermission // as without privileges: not warned about
			}
			return fakeCosts{k.costs}, nil
		},
		histogramBytes: func(n int) int { return n * (KernelHistogramBudget / 1000) },
	}
}

// testPlan is a plan of fns, Go functions of a file that does not exist.
func testPlan(fns ...string) *Plan {
	p := &Plan{}
	for _, name := range fns {
		p.targets = append(p.targets, target{name: name, binary: "/nonexistent/bin", overhead: goKind,
			probe: probes.Function{Name: name, Binary: "/nonexistent/bin", Go: true, Kind: goKind}})
	}
	return p
}

// logLines collects what a session logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func call(fn uint32, d, inner, nested uint64) probes.Event {
	return probes.Event{Pid: 1, Tid: 1, Fn: fn, Kind: probes.EventCall, DurationNs: d, InnerNs: inner, NestedNs: nested}
}

// started is a session of plan on the fake kernel k, started.
func started(t *testing.T, k *fakeKernel, opts Options, plan *Plan) *Session {
	t.Helper()
	s := newSession(opts, k.kernel())
	t.Cleanup(func() { s.Close() })
	if err := s.Start(plan, Process{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// running runs s until the returned function is called, which returns
// Run's report.
func running(t *testing.T, s *Session) func() *report.Report {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		r   *report.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.Run(ctx)
		done <- result{r, err}
	}()
	return func() *report.Report {
		cancel()
		res := <-done
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res.r
	}
}

// waitForCalls waits until s's snapshot has n calls of fn: the events were
// drained. Not a bound on speed: the poll runs every millisecond, and the
// limit only keeps a broken session from hanging the test.
func waitForCalls(t *testing.T, s *Session, fn int, n uint64) *report.Report {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Functions[fn].Hist.Count(); got == n {
			return r
		} else if got > n || time.Now().After(deadline) {
			t.Fatalf("snapshot has %d calls of %s, want %d", got, r.Functions[fn].Function, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Each call's own probe cost and the nested ones are taken out; calls that
// never returned, dropped events and calls left in flight are counted.
func TestRunCountsCallsAndTakesCostsOut(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			f := &fakeTracer{
				lost: probes.Counters{Dropped: 4, Unpaired: 1},
				left: probes.Unfinished{InFlight: 3, NoReturn: map[uint32]uint64{1: 1}},
			}
			k := &fakeKernel{f: f, costs: testCosts()}
			s := started(t, k, Options{Aggregate: AggregateUser, Raw: raw, Version: "test"}, testPlan("main.f", "main.g"))
			if k.opened[0].KernelHistograms || k.fallback[0] {
				t.Errorf("user aggregation opened %+v, fallback %v", k.opened[0], k.fallback[0])
			}
			if !raw && k.opened[0].Costs.Kinds[goKind].Inner != 100 {
				t.Errorf("costs not given to the tracer: %+v", k.opened[0].Costs)
			}
			stop := running(t, s)
			f.push(call(0, 1000, 100, 0), call(0, 1000, 100, 0), call(0, 1000, 100, 0), call(0, 5000, 100, 200))
			f.push(probes.Event{Fn: 1, Kind: probes.EventNoReturn}, probes.Event{Fn: 1, Kind: probes.EventNoReturn})
			waitForCalls(t, s, 0, 4)
			r := stop()
			fs := r.Functions[0]
			wantMin, wantMax := uint64(900), uint64(4700)
			if raw {
				wantMin, wantMax = 1000, 5000
			}
			if fs.Hist.Count() != 4 || fs.Hist.Min() != wantMin || fs.Hist.Max() != wantMax {
				t.Errorf("main.f: %d calls, min %d, max %d; want 4, %d, %d", fs.Hist.Count(), fs.Hist.Min(), fs.Hist.Max(), wantMin, wantMax)
			}
			if hi, lo := fs.Hist.Sum(); hi != 0 || lo != 3*wantMin+wantMax {
				t.Errorf("main.f: sum %d, want %d", lo, 3*wantMin+wantMax)
			}
			if g := r.Functions[1]; g.Hist.Count() != 0 || g.DidNotReturn != 3 {
				t.Errorf("main.g: %d calls, %d did not return; want 0 and 3 (2 unwound, 1 of an exited process)", g.Hist.Count(), g.DidNotReturn)
			}
			if r.Lost != (report.Lost{DroppedEvents: 4, UnpairedExits: 1, InFlight: 3}) {
				t.Errorf("lost %+v", r.Lost)
			}
			if r.OverheadCorrected == raw {
				t.Errorf("OverheadCorrected %v with raw %v", r.OverheadCorrected, raw)
			}
			if !raw && (fs.ProbeOverheadNs != 100 || fs.NestedOverheadNs != 50) {
				t.Errorf("main.f: probe overhead %d, nested %d a call; want 100 and 50", fs.ProbeOverheadNs, fs.NestedOverheadNs)
			}
			if r.Facts.UlatVersion != "test" || r.Facts.Aggregation != "user" {
				t.Errorf("run facts %+v", r.Facts)
			}
			if !f.detached {
				t.Error("not detached at the end")
			}
			if again, err := s.Snapshot(); err != nil || again != r {
				t.Errorf("Snapshot after Run: %p, %v; want Run's report %p", again, err, r)
			}
		})
	}
}

// Snapshots from another goroutine, while calls come in, see counts that
// only grow, and never change once taken.
func TestSnapshotWhileRunning(t *testing.T) {
	f := &fakeTracer{}
	s := started(t, &fakeKernel{f: f}, Options{Aggregate: AggregateUser}, testPlan("main.f"))
	stop := running(t, s)
	var wg sync.WaitGroup
	wg.Add(1)
	errs := make(chan error, 1)
	go func() {
		defer wg.Done()
		var last uint64
		for i := 0; i < 200; i++ {
			r, err := s.Snapshot()
			if err != nil {
				errs <- err
				return
			}
			n := r.Functions[0].Hist.Count()
			if n < last {
				errs <- fmt.Errorf("snapshot %d has %d calls, after %d", i, n, last)
				return
			}
			last = n
			time.Sleep(100 * time.Microsecond)
			if again := r.Functions[0].Hist.Count(); again != n {
				errs <- fmt.Errorf("a snapshot changed after it was taken: %d calls, then %d", n, again)
				return
			}
		}
	}()
	for i := range 100 {
		f.push(call(0, uint64(1000+i), 0, 0))
		time.Sleep(50 * time.Microsecond)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	waitForCalls(t, s, 0, 100)
	if r := stop(); r.Functions[0].Hist.Count() != 100 || r.Functions[0].Hist.Min() != 1000 || r.Functions[0].Hist.Max() != 1099 {
		t.Errorf("final: %d calls, min %d, max %d", r.Functions[0].Hist.Count(), r.Functions[0].Hist.Min(), r.Functions[0].Hist.Max())
	}
}

// Intervals of streamed calls hold the calls since the last one, with
// their own extremes; the final report holds them all.
func TestIntervalsOfStreamedCalls(t *testing.T) {
	f := &fakeTracer{}
	s := started(t, &fakeKernel{f: f}, Options{Aggregate: AggregateUser, Intervals: true}, testPlan("main.f"))
	stop := running(t, s)
	f.push(call(0, 3000, 0, 0), call(0, 1000, 0, 0), call(0, 2000, 0, 0))
	waitForCalls(t, s, 0, 3)
	first, err := s.Interval()
	if err != nil {
		t.Fatal(err)
	}
	f.push(call(0, 7000, 0, 0), call(0, 5000, 0, 0))
	waitForCalls(t, s, 0, 5)
	second, err := s.Interval()
	if err != nil {
		t.Fatal(err)
	}
	final := stop()
	for _, c := range []struct {
		name          string
		r             *report.Report
		count, lo, hi uint64
	}{{"first interval", first, 3, 1000, 3000}, {"second interval", second, 2, 5000, 7000}, {"total", final, 5, 1000, 7000}} {
		h := c.r.Functions[0].Hist
		if h.Count() != c.count || h.Min() != c.lo || h.Max() != c.hi {
			t.Errorf("%s: %d calls in [%d, %d], want %d in [%d, %d]", c.name, h.Count(), h.Min(), h.Max(), c.count, c.lo, c.hi)
		}
	}
	if _, err := s.Interval(); !errors.Is(err, ErrEnded) {
		t.Errorf("Interval after Run: %v, want ErrEnded", err)
	}
}

// kernelHist is an in-kernel histogram of durations ds, with the extremes
// of the calls since the last interval given.
func kernelHist(ds []uint64, ivMin, ivMax uint64) probes.Histogram {
	h := probes.Histogram{Min: ^uint64(0), IntervalMin: ivMin, IntervalMax: ivMax, IntervalCalls: len(ds) > 0}
	for _, d := range ds {
		h.Slots[buckets.Of(d)]++
		h.Count++
		var c uint64
		h.SumLo, c = bits.Add64(h.SumLo, d, 0)
		h.SumHi += c
		h.Min, h.Max = min(h.Min, d), max(h.Max, d)
	}
	return h
}

// With in-kernel histograms, an interval is the difference of two reads,
// with the kernel's per-interval extremes, and each starts the kernel's
// next interval.
func TestIntervalsOfKernelHistograms(t *testing.T) {
	f := &fakeTracer{}
	k := &fakeKernel{f: f}
	s := started(t, k, Options{Intervals: true}, testPlan("main.f"))
	if !k.opened[0].KernelHistograms || !k.fallback[0] {
		t.Fatalf("auto aggregation of one function: opened %+v, fallback %v; want in the kernel, with the fallback", k.opened[0], k.fallback[0])
	}
	stop := running(t, s)
	f.mu.Lock()
	f.hists = []probes.Histogram{kernelHist([]uint64{1000, 3000}, 1000, 3000)}
	f.mu.Unlock()
	first, err := s.Interval()
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.hists = []probes.Histogram{kernelHist([]uint64{1000, 3000, 20000, 40000, 60000}, 20000, 60000)}
	f.mu.Unlock()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Interval()
	if err != nil {
		t.Fatal(err)
	}
	final := stop()
	for _, c := range []struct {
		name          string
		r             *report.Report
		count, lo, hi uint64
		sum           uint64
	}{
		{"first interval", first, 2, 1000, 3000, 4000},
		{"snapshot", snap, 5, 1000, 60000, 124000},
		{"second interval", second, 3, 20000, 60000, 120000},
		{"total", final, 5, 1000, 60000, 124000},
	} {
		h := c.r.Functions[0].Hist
		_, sum := h.Sum()
		if h.Count() != c.count || h.Min() != c.lo || h.Max() != c.hi || sum != c.sum {
			t.Errorf("%s: %d calls in [%d, %d], sum %d; want %d in [%d, %d], sum %d", c.name, h.Count(), h.Min(), h.Max(), sum, c.count, c.lo, c.hi, c.sum)
		}
	}
	if f.nextInterval != 2 {
		t.Errorf("the kernel's interval was moved on %d times, want 2 (once per Interval)", f.nextInterval)
	}
	if final.Facts.Aggregation != "kernel" {
		t.Errorf("aggregation %q, want kernel", final.Facts.Aggregation)
	}
}

// Auto aggregation streams calls when in-kernel histograms would take
// more than the budget, and never falls back when kernel is asked for.
func TestAggregationChoice(t *testing.T) {
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("main.f%d", i)
	}
	for _, c := range []struct {
		agg      Aggregation
		fns      []string
		inKernel bool
		fallback bool
	}{
		{AggregateAuto, []string{"main.f"}, true, true},
		{AggregateAuto, many, false, true},
		{AggregateKernel, many, true, false},
		{AggregateUser, []string{"main.f"}, false, false},
	} {
		k := &fakeKernel{f: &fakeTracer{}}
		started(t, k, Options{Aggregate: c.agg}, testPlan(c.fns...))
		if k.opened[0].KernelHistograms != c.inKernel || k.fallback[0] != c.fallback {
			t.Errorf("%s, %d functions: in kernel %v, fallback %v; want %v, %v", c.agg, len(c.fns), k.opened[0].KernelHistograms, k.fallback[0], c.inKernel, c.fallback)
		}
	}
}

// Attaching is all or nothing: a failed attach closes the tracer.
func TestStartUndoesAFailedAttach(t *testing.T) {
	f := &fakeTracer{attachErr: errors.New("attach: no")}
	s := newSession(Options{}, (&fakeKernel{f: f}).kernel())
	defer s.Close()
	if err := s.Start(testPlan("main.f"), Process{}); err == nil || err.Error() != "attach: no" {
		t.Fatalf("Start: %v, want the attach error", err)
	}
	if !f.closed {
		t.Error("the tracer was left open")
	}
}

// Functions the kernel refused are warned about and left out of the report.
func TestRefusedFunctionsAreLeftOut(t *testing.T) {
	f := &fakeTracer{refused: []probes.Refused{{Index: 1, Name: "main.g", Err: syscall.EOPNOTSUPP}}}
	log := &logLines{}
	s := started(t, &fakeKernel{f: f}, Options{Log: slog.New(log)}, testPlan("main.f", "main.g"))
	r := running(t, s)()
	if len(r.Functions) != 1 || r.Functions[0].Function != "main.f" {
		t.Errorf("reported %+v, want main.f alone", r.Functions)
	}
	const want = "the kernel refused to probe 1 function"
	if !strings.Contains(log.String(), "WARN "+want) || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "main.g") {
		t.Errorf("log %q, warnings %q: want %q naming main.g in both", log, r.Warnings, want)
	}
}

// Run ends when the traced process exits.
func TestRunEndsWhenTheProcessExits(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := newSession(Options{}, (&fakeKernel{f: &fakeTracer{}}).kernel())
	defer s.Close()
	if err := s.Start(testPlan("main.f"), Process{Pid: cmd.Process.Pid, Launched: true}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(context.Background())
		done <- err
	}()
	cmd.Process.Kill()
	cmd.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A process that does not exist is the user's mistake.
func TestStartWithoutTheProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	s := newSession(Options{}, (&fakeKernel{f: &fakeTracer{}}).kernel())
	defer s.Close()
	err := s.Start(testPlan("main.f"), Process{Pid: cmd.Process.Pid})
	if !errors.Is(err, ErrInput) || !errors.Is(err, ErrNoProcess) {
		t.Errorf("Start on an exited process: %v, want ErrInput and ErrNoProcess", err)
	}
}

// On the real kernel: a session of this test process counts exactly the
// calls it makes, in snapshots while it runs and at the end, in both
// aggregation modes, with the probes' cost measured by a calibration child
// that is this test binary (taken over by probes' init).
func TestSessionOnTheKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, agg := range []Aggregation{AggregateKernel, AggregateUser} {
		t.Run(string(agg), func(t *testing.T) {
			log := &logLines{}
			s := New(Options{Log: slog.New(log), Aggregate: agg, Intervals: true})
			defer s.Close()
			plan, err := Resolve(Spec{Binary: exe, Pid: os.Getpid(), Patterns: []string{"github.com/ulat-dev/ulat/session.resolvedByTests"}}, s.log)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(plan, Process{Pid: os.Getpid()}); err != nil {
				t.Fatal(err)
			}
			stop := running(t, s)
			for i := range 300 {
				resolvedByTests(i)
			}
			waitForCalls(t, s, 0, 300)
			iv, err := s.Interval()
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				resolvedByTests(i)
			}
			r := stop()
			if n := r.Functions[0].Hist.Count(); n != 500 {
				t.Errorf("%d calls in the final report, want 500", n)
			}
			if n := iv.Functions[0].Hist.Count(); n != 300 {
				t.Errorf("%d calls in the first interval, want 300", n)
			}
			if r.Facts.Aggregation != string(agg) || !r.OverheadCorrected || r.Functions[0].ProbeOverheadNs == 0 {
				t.Errorf("aggregation %q, corrected %v, probe cost %d ns: want %s, corrected by a measured cost", r.Facts.Aggregation, r.OverheadCorrected, r.Functions[0].ProbeOverheadNs, agg)
			}
			if r.Lost != (report.Lost{}) {
				t.Errorf("lost %+v", r.Lost)
			}
			t.Logf("log:\n%s", log)
		})
	}
}

// By cgroup, each cgroup's calls are a histogram of their own, costs taken
// out as ever, functions a cgroup did not call left out; the calls are
// streamed even when in-kernel histograms were asked for; processes join
// through Follow, which a session of one process refuses.
func TestByCgroupCountsEachCgroupApart(t *testing.T) {
	f := &fakeTracer{}
	k := &fakeKernel{f: f, costs: testCosts()}
	log := &logLines{}
	s := newSession(Options{Aggregate: AggregateKernel, ByCgroup: true, Intervals: true, Log: slog.New(log)}, k.kernel())
	t.Cleanup(func() { s.Close() })
	if err := s.Start(testPlan("main.f", "main.g"), Process{FollowForks: true}); err != nil {
		t.Fatal(err)
	}
	if o := k.opened[0]; o.KernelHistograms || !o.ByCgroup || !o.FollowForks || o.Pid != 0 {
		t.Errorf("opened %+v: want streamed calls by cgroup, following no process yet", o)
	}
	if !strings.Contains(log.String(), "not per cgroup") {
		t.Errorf("no warning that kernel aggregation was not taken:\n%s", log)
	}
	if err := s.Follow(42); err != nil || len(f.followed) != 1 || f.followed[0] != 42 {
		t.Errorf("Follow(42): %v, tracer follows %v", err, f.followed)
	}
	stop := running(t, s)
	at := func(cg uint64, fn uint32, d uint64) probes.Event {
		e := call(fn, d, 100, 0)
		e.Cgroup = cg
		return e
	}
	f.push(at(7, 0, 1100), at(7, 0, 1100), at(9, 0, 2100), at(9, 1, 3100), at(9, 1, 3100), at(9, 1, 3100))
	type key struct {
		cg uint64
		fn string
	}
	counts := func(r *report.Report) map[key]uint64 {
		m := map[key]uint64{}
		for _, f := range r.Functions {
			m[key{f.Cgroup, f.Function}] = f.Hist.Count()
		}
		return m
	}
	want := map[key]uint64{{7, "main.f"}: 2, {9, "main.f"}: 1, {9, "main.g"}: 3}
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		got := counts(r)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			for _, f := range r.Functions {
				if f.Cgroup == 9 && f.Function == "main.g" && (f.Hist.Min() != 3000 || f.Hist.Max() != 3000) {
					t.Errorf("cgroup 9, main.g: min %d, max %d, want 3000 (the 100 ns probe cost taken out)", f.Hist.Min(), f.Hist.Max())
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls by cgroup and function: %v, want %v", got, want)
		}
		time.Sleep(time.Millisecond)
	}
	iv, err := s.Interval()
	if err != nil {
		t.Fatal(err)
	}
	if got := counts(iv); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first interval: %v, want %v", got, want)
	}
	f.push(at(9, 1, 3100))
	waitSnapshot := func() {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			r, _ := s.Snapshot()
			if counts(r)[key{9, "main.g"}] == 4 {
				return
			}
		}
		t.Fatal("the fourth call of main.g in cgroup 9 was not counted")
	}
	waitSnapshot()
	iv, err = s.Interval()
	if err != nil {
		t.Fatal(err)
	}
	if got, w := counts(iv), map[key]uint64{{9, "main.g"}: 1}; fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("second interval: %v, want %v", got, w)
	}
	if r := stop(); fmt.Sprint(counts(r)) != fmt.Sprint(map[key]uint64{{7, "main.f"}: 2, {9, "main.f"}: 1, {9, "main.g"}: 4}) {
		t.Errorf("final report: %v", counts(r))
	}

	// Past MaxCgroups, new cgroups' calls count as cgroup 0's.
	f2 := &fakeTracer{}
	bounded := newSession(Options{ByCgroup: true, MaxCgroups: 2}, (&fakeKernel{f: f2}).kernel())
	t.Cleanup(func() { bounded.Close() })
	if err := bounded.Start(testPlan("main.f"), Process{}); err != nil {
		t.Fatal(err)
	}
	stopBounded := running(t, bounded)
	f2.push(at(1, 0, 1100), at(2, 0, 1100), at(3, 0, 1100), at(4, 0, 1100), at(1, 0, 1100))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		r, _ := bounded.Snapshot()
		got := counts(r)
		w := map[key]uint64{{1, "main.f"}: 2, {2, "main.f"}: 1, {0, "main.f"}: 2}
		if fmt.Sprint(got) == fmt.Sprint(w) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with at most 2 cgroups: %v, want %v", got, w)
		}
	}
	stopBounded()

	one := newSession(Options{}, (&fakeKernel{f: &fakeTracer{}}).kernel())
	t.Cleanup(func() { one.Close() })
	if err := one.Start(testPlan("main.f"), Process{}); err != nil {
		t.Fatal(err)
	}
	if err := one.Follow(42); !errors.Is(err, ErrNotSelecting) {
		t.Errorf("Follow in a session of every process: %v, want ErrNotSelecting", err)
	}
}

// countedCosts is a calibration that counts how often it was closed.
type countedCosts struct {
	fakeCosts
	closed *int
}

func (c countedCosts) Close() error { *c.closed++; return nil }

// Sessions given one Calibration measure once: its costs reach each, and
// closing a session leaves it to the others; closing it ends it.
func TestSharedCalibration(t *testing.T) {
	starts, closed := 0, 0
	k := (&fakeKernel{f: &fakeTracer{}}).kernel()
	k.calibrate = func(probes.Options) (costSource, error) {
		starts++
		return countedCosts{fakeCosts{testCosts()}, &closed}, nil
	}
	shared := newCalibration(k, probes.Options{})
	for i := range 3 {
		s := newSession(Options{Calibration: shared, Aggregate: AggregateUser}, k)
		if err := s.Start(testPlan("main.f"), Process{}); err != nil {
			t.Fatal(err)
		}
		if s.costs.Kinds[goKind].Inner != 100 {
			t.Errorf("session %d: costs %+v, want the shared calibration's", i, s.costs)
		}
		s.Close()
	}
	if starts != 1 || closed != 0 {
		t.Errorf("after 3 sessions: %d calibrations started, %d closed; want 1 and 0", starts, closed)
	}
	if err := shared.Close(); err != nil || closed != 1 {
		t.Errorf("closing the calibration: %v, %d closed", err, closed)
	}
}
