package probes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ExitKind is how a function's return is caught.
type ExitKind string

// EntryKind tells whether the kernel can emulate the instruction under the
// entry probe or must single-step it, which costs several times more.
type EntryKind string

const (
	ExitRET       ExitKind  = "ret"       // a uprobe on each RET (Go)
	ExitUretprobe ExitKind  = "uretprobe" // native code
	EntryEmulated EntryKind = "emulated"
	EntryStepped  EntryKind = "stepped"
)

// Overhead names a kind of probe pair.
type Overhead struct {
	Exit  ExitKind
	Entry EntryKind
}

func (o Overhead) String() string { return string(o.Exit) + "/" + string(o.Entry) }

// Cost is what one kind of probe pair costs on this host, in ns, as a
// Calibration measures it.
type Cost struct {
	// Inner is what a call of a function that does nothing is measured to
	// take: the part of its probes' work that falls between the two
	// timestamps. Subtracted from each of the function's own durations.
	Inner uint64
	// Nested is what a traced call adds to the duration of the traced
	// call it is made in: its probes' whole work. Subtracted from that
	// caller's duration once per such call, as they happen.
	Nested uint64
	// Tail is what a traced tail call (a jmp) adds to the traced call
	// that made it: less than Nested, since both return through one trap.
	// 0 for kinds whose tail calls are not told apart (Go's).
	Tail uint64
	// InnerSpread and NestedSpread are how far the true costs may be from
	// these: half the range of the medians of the calibration's rounds,
	// the highest and the lowest left out (one round can be preempted).
	// A running Calibration's rounds span the session, so the spread
	// covers how the host's load moved the costs meanwhile.
	InnerSpread, NestedSpread uint64
}

// Costs are the measured costs of each kind of probe pair: over every CPU
// (Kinds, what reports state), and on each CPU that has been measured
// (CPU): on one CPU a probe can cost a third more than on another, so the
// BPF program takes out the cost of the CPU the probe ran on.
type Costs struct {
	Kinds map[Overhead]Cost
	CPU   map[int]map[Overhead]Cost
}

// Uncertainty is how far a corrected duration of a function of kind o may
// be off because of the correction: the spread of its own probes' cost,
// and that of the nested probe costs taken out of it (nestedNs on
// average), at the largest relative spread of any kind's; on the CPU where
// those are the largest.
func (c Costs) Uncertainty(o Overhead, nestedNs uint64) uint64 {
	tables := []map[Overhead]Cost{c.Kinds}
	if len(c.CPU) > 0 {
		tables = tables[:0]
		for _, t := range c.CPU {
			tables = append(tables, t)
		}
	}
	var inner uint64
	var rel float64
	for _, t := range tables {
		inner = max(inner, t[o].InnerSpread)
		for _, k := range t {
			if k.Nested > 0 {
				rel = max(rel, float64(k.NestedSpread)/float64(k.Nested))
			}
		}
	}
	return inner + uint64(rel*float64(nestedNs)+0.5)
}

// calibTarget is one calibration function in this executable, and the
// functions that call it (tailCaller by a jmp; nil where the kind's tail
// calls are not told apart).
type calibTarget struct {
	kind               Overhead
	addr               unsafe.Pointer
	ret                int // offset of its RET
	caller, tailCaller unsafe.Pointer
}

// calibration is this executable's calibration functions: one per probe
// kind, and callers of an untraced function that does nothing, by a call
// and by a jmp.
type calibration struct {
	kinds                  []calibTarget
	baseline, tailBaseline unsafe.Pointer
}

// calibLayout is where the calibration's functions are in the list traced:
// each kind's function first, then callers, each kind's by index (tail:
// -1 for none).
type calibLayout struct {
	callers        []unsafe.Pointer // what the child calls, in turn
	base, tailBase int
	caller, tail   []int
}

func (c calibration) layout() calibLayout {
	k := len(c.kinds)
	l := calibLayout{base: k, tailBase: -1}
	add := func(f unsafe.Pointer) int {
		l.callers = append(l.callers, f)
		return k + len(l.callers) - 1
	}
	add(c.baseline)
	for _, t := range c.kinds {
		l.caller = append(l.caller, add(t.caller))
	}
	l.tailBase = add(c.tailBaseline)
	for _, t := range c.kinds {
		i := -1
		if t.tailCaller != nil {
			i = add(t.tailCaller)
		}
		l.tail = append(l.tail, i)
	}
	return l
}

// The calibration child is this executable started again with
// calibrationArg and calibrationEnv: both, so that neither a user's
// argument nor an inherited environment alone turns a program into one.
const (
	calibrationArg = "__ulat_calibrate"
	calibrationEnv = "ULAT_CALIBRATION_CHILD"
)

// init takes the calibration child over before its main runs: every
// program that uses this package (ulat, an agent, a test binary) is a
// correct child without calling anything, where a main that forgot to
// would have run again with odd arguments (a second agent).
func init() {
	if len(os.Args) == 3 && os.Args[1] == calibrationArg && os.Getenv(calibrationEnv) == "1" {
		runCalibrationChild()
	}
}

// runCalibrationChild is the calibration process's main: it calls the
// calibration functions each time the parent asks, and exits; it never
// returns.
func runCalibrationChild() {
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		os.Exit(2)
	}
	callers := calibrationTargets().layout().callers
	// A round each time the parent asks ("r|c CPU CALLS"), answered when
	// it is done; the callers take turns so that every kind sees the same
	// moments. In a cold round each call comes after a walk over 8 MiB,
	// which evicts what the probes' path had in the caches, as a function
	// called now and then amid other work (rather than in a tight loop)
	// finds them.
	in := bufio.NewReader(os.Stdin)
	// The walk's memory is given back after each cold round: rounds come
	// a minute apart for most of a long session (an agent's), and 8 MiB
	// held between them was a third of this process's memory.
	pollution, err := unix.Mmap(-1, 0, calibrationColdWalk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		os.Exit(2)
	}
	// The calls run on this thread, on the CPU each round names.
	runtime.LockOSThread()
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			os.Exit(0)
		}
		var kind string
		cpu, calls := -1, n
		fmt.Sscanf(line, "%s %d %d", &kind, &cpu, &calls)
		cold := kind == "c"
		if cpu >= 0 {
			var set unix.CPUSet
			set.Set(cpu)
			unix.SchedSetaffinity(0, &set) // a CPU gone meanwhile: the round runs where it can
		}
		for range calls {
			for _, c := range callers {
				if cold {
					for i := 0; i < len(pollution); i += 64 {
						pollution[i]++
					}
				}
				callCalibrationFunction(c)
			}
		}
		if cold {
			unix.Madvise(pollution, unix.MADV_DONTNEED) // zero pages when next walked, as at first
		}
		if _, err := os.Stdout.Write([]byte("d\n")); err != nil {
			os.Exit(3)
		}
	}
}

// Calibration measures the probe costs of each kind on this host, by
// tracing functions that do nothing, and callers of them, in a child
// process (this executable, started again), in rounds: a few when it
// starts, then one every roundEvery for a minute and every roundEveryLater
// while the session lasts after that, so that the costs follow the host's
// load, and their spread covers the session (its last 1,024 rounds: 17
// hours).
// Rounds alternate between hot (calls back to back, as a function called
// in a tight loop sees its probes) and cold (each call after walking 8 MiB,
// as a function called amid other work does): the two differ by 15–30%
// here, and a function's calls can be either, so the costs taken out are
// the hot ones and the spread is at least their difference.
// Each pair of rounds runs on the next CPU this process may use: on this
// VM a probe costs a third more on one of its two CPUs than on the other,
// and a traced function may run on any.
// Its methods are safe for concurrent use.
type Calibration struct {
	cal     calibration
	layout  calibLayout
	child   *exec.Cmd
	stdin   io.WriteCloser
	answers *bufio.Reader
	tr      *Tracer
	done    chan struct{}
	stopped chan struct{}

	cpus []int // the CPUs rounds go round, one hot and one cold round each

	mu       sync.Mutex
	rounds   []calibRound
	ran      int   // rounds run, those dropped too
	costs    Costs // of rounds, computed after each
	costsErr error
	err      error // a round failed
}

// calibRound is one round's median duration of each calibration function
// (0: no call seen).
type calibRound struct {
	cold    bool
	cpu     int // -1: any
	medians []uint64
}

// Calibration rounds: how many a calibration starts with, how many calls of
// each calibration function a round makes, how often a round runs after
// the first ones, and how many recent rounds the costs are taken from.
const (
	calibrationFirstRounds = 6 // hot and cold in turn, on the CPUs in turn: ~0.2 s
	calibrationCalls       = 120
	// Cold rounds make fewer calls: each walks 8 MiB first (~130 µs).
	// Walking 1 MiB made no difference here; 32 MiB (past the last-level
	// cache and the TLB's reach) made probes cost up to 2.8 times their
	// hot cost, which is where a function whose process works on that
	// much memory between calls may be.
	calibrationColdCalls  = 30
	calibrationColdWalk   = 8 << 20
	calibrationKeptRounds = 15
	// roundEvery is how often a running Calibration measures again in
	// its first minute (busyRounds rounds), and roundEveryLater after: a
	// hot round takes ~15 ms of one CPU, a cold one ~40 ms, so ~1.4% of
	// a CPU at first and ~0.05% for a long session (an agent's, whose
	// idle CPU this was most of at a round every 30 s).
	roundEvery      = 2 * time.Second
	busyRounds      = 30
	roundEveryLater = time.Minute
	// calibrationMaxRounds bounds the rounds kept, whose spread makes the
	// costs' uncertainty: the last 17 hours of a long session.
	calibrationMaxRounds = 1024
)

// StartCalibration starts the calibration process, runs the first rounds,
// and goes on with a round every roundEvery until Close.
func StartCalibration(opts Options) (*Calibration, error) {
	cal := calibrationTargets()
	if len(cal.kinds) == 0 {
		return nil, errors.New("probe overhead calibration is not available on this architecture")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	c := &Calibration{cal: cal, layout: cal.layout(), done: make(chan struct{}), stopped: make(chan struct{})}
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		for cpu := range 1024 {
			if set.IsSet(cpu) {
				c.cpus = append(c.cpus, cpu)
			}
		}
	}
	c.child = exec.Command(exe, calibrationArg, strconv.Itoa(calibrationCalls))
	c.child.Env = append(os.Environ(), calibrationEnv+"=1")
	if c.stdin, err = c.child.StdinPipe(); err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	stdout, err := c.child.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	c.answers = bufio.NewReader(stdout)
	if err := c.child.Start(); err != nil {
		return nil, fmt.Errorf("calibrate: start %s: %w", exe, err)
	}
	fail := func(err error) (*Calibration, error) {
		c.child.Process.Kill()
		c.stdin.Close()
		c.child.Wait()
		if c.tr != nil {
			c.tr.Close()
		}
		return nil, err
	}
	fns, err := c.functions(exe)
	if err != nil {
		return fail(err)
	}
	opts.Pid = c.child.Process.Pid
	opts.KernelHistograms, opts.Costs, opts.Raw, opts.FollowForks, opts.StopOnExec = false, Costs{}, false, false, false
	// A round streams ~70 KB of events, drained as they come.
	opts.RingBuffer = 1 << 18
	// One thread, a few calls deep.
	opts.InFlight = 1024
	if c.tr, err = Open(opts); err != nil {
		return fail(err)
	}
	if err := c.tr.Attach(fns); err != nil {
		return fail(err)
	}
	for range calibrationFirstRounds {
		if err := c.round(); err != nil {
			return fail(err)
		}
	}
	if _, err := c.Costs(); err != nil {
		return fail(err)
	}
	go c.run()
	return c, nil
}

// functions lists the calibration functions to trace, in calibLayout's
// order.
func (c *Calibration) functions(exe string) ([]Function, error) {
	var fns []Function
	for _, t := range c.cal.kinds {
		off, err := fileOffsetOfAddress(uintptr(t.addr))
		if err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		if b := *(*byte)(unsafe.Add(t.addr, t.ret)); b != 0xc3 {
			return nil, fmt.Errorf("calibrate: no RET at %s+%d", t.kind, t.ret)
		}
		f := Function{Name: "calibration " + t.kind.String(), Binary: exe, Entry: off, Kind: t.kind}
		if t.kind.Exit == ExitRET {
			f.Exits = []uint64{off + uint64(t.ret)}
		}
		fns = append(fns, f)
	}
	for i, addr := range c.layout.callers {
		off, err := fileOffsetOfAddress(uintptr(addr))
		if err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		fns = append(fns, Function{Name: fmt.Sprintf("calibration caller %d", i), Binary: exe, Entry: off,
			Kind: Overhead{Exit: ExitUretprobe, Entry: EntryEmulated}})
	}
	return fns, nil
}

// run measures a round every roundEvery, then every roundEveryLater,
// until Close.
func (c *Calibration) run() {
	defer close(c.stopped)
	for n := 0; ; n++ {
		every := roundEvery
		if n >= busyRounds {
			every = roundEveryLater
		}
		select {
		case <-c.done:
			return
		case <-time.After(every):
			if err := c.round(); err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
		}
	}
}

// round has the child call every calibration function calibrationCalls
// times, and keeps the medians of their durations.
func (c *Calibration) round() error {
	c.mu.Lock()
	i := c.ran
	c.mu.Unlock()
	cold := i%2 == 1
	kind, calls := "r", calibrationCalls
	if cold {
		kind, calls = "c", calibrationColdCalls
	}
	cpu := -1
	if len(c.cpus) > 0 {
		cpu = c.cpus[i/2%len(c.cpus)]
	}
	kind += fmt.Sprintf(" %d %d\n", cpu, calls)
	n := len(c.cal.kinds) + len(c.layout.callers)
	durations := make([][]uint64, n)
	collect := func(e *Event) {
		if e.Kind == EventCall && int(e.Fn) < n {
			durations[e.Fn] = append(durations[e.Fn], e.DurationNs)
		}
	}
	if _, err := c.stdin.Write([]byte(kind)); err != nil {
		return fmt.Errorf("calibrate: %w", err)
	}
	// Polled meanwhile, so that the ring buffer never fills.
	answered := make(chan error, 1)
	go func() { _, err := c.answers.ReadString('\n'); answered <- err }()
	deadline := time.Now().Add(30 * time.Second)
	for waiting := true; waiting; {
		select {
		case err := <-answered:
			if err != nil {
				return fmt.Errorf("calibrate: calibration process: %w", err)
			}
			waiting = false
		default:
			if time.Now().After(deadline) {
				return errors.New("calibrate: calibration process did not finish a round in 30s")
			}
			if _, err := c.tr.Poll(5*time.Millisecond, collect); err != nil {
				return err
			}
		}
	}
	// The round's probes all ran before its calls returned.
	c.tr.Drain(collect)
	medians := make([]uint64, n)
	for f, d := range durations {
		if len(d) >= calls/2 {
			medians[f] = median(d)
		}
	}
	c.mu.Lock()
	c.ran++
	c.rounds = append(c.rounds, calibRound{cold: cold, cpu: cpu, medians: medians})
	if len(c.rounds) > calibrationMaxRounds {
		c.rounds = append(c.rounds[:0:0], c.rounds[len(c.rounds)-calibrationMaxRounds:]...)
	}
	c.costs, c.costsErr = c.costsOfRounds()
	c.mu.Unlock()
	return nil
}

// Costs returns the costs measured so far, from the recent rounds (see
// costsOf); an error when the calibration failed.
func (c *Calibration) Costs() (Costs, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return Costs{}, c.err
	}
	return c.costs, c.costsErr
}

// costsOfRounds computes the costs of the rounds so far, over every CPU
// and for each, once a round: Costs is asked far more often. c.mu is held.
func (c *Calibration) costsOfRounds() (Costs, error) {
	kinds, err := costsOf(c.cal, c.layout, c.rounds)
	if err != nil {
		return Costs{}, err
	}
	costs := Costs{Kinds: kinds, CPU: map[int]map[Overhead]Cost{}}
	byCPU := map[int][]calibRound{}
	for _, r := range c.rounds {
		if r.cpu >= 0 {
			byCPU[r.cpu] = append(byCPU[r.cpu], r)
		}
	}
	for cpu, rounds := range byCPU {
		if k, err := costsOf(c.cal, c.layout, rounds); err == nil {
			costs.CPU[cpu] = k
		}
	}
	return costs, nil
}

// Close stops the calibration process.
func (c *Calibration) Close() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	close(c.done)
	<-c.stopped
	c.stdin.Close()
	err := c.child.Wait()
	if cerr := c.tr.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("calibration process: %w", err)
	}
	return nil
}

// costsOf turns the rounds' medians (functions as calibLayout places them)
// into costs. For hot and cold rounds apart, from the last
// calibrationKeptRounds of each: a kind's Inner is the median of its
// function's round medians; its Nested (Tail), that of its caller's (tail
// caller's) minus the baseline's; and their spread, half the range of
// those figures over every round but the highest and the lowest (covering
// how the costs moved during the whole calibration). The costs taken out
// are the hot ones, the least the probes cost: a call made amid other work
// is under-corrected by up to the cold excess, never over-corrected, so
// that a caller is never made shorter than the traced calls it made (deep
// recursion multiplies any excess by its depth). The spreads are the cold
// excess plus the larger of the two spreads.
func costsOf(cal calibration, l calibLayout, rounds []calibRound) (map[Overhead]Cost, error) {
	usable := func(r []uint64, fs ...int) bool {
		for _, f := range fs {
			if r[f] == 0 {
				return false
			}
		}
		return true
	}
	type figures struct{ inner, nested, tail []uint64 }
	recent := func(v []uint64) []uint64 { return v[max(0, len(v)-calibrationKeptRounds):] }
	// least returns the hot figure, and how far the truth may be from it.
	least := func(hot, cold []uint64) (uint64, uint64) {
		if len(hot) == 0 || len(cold) == 0 {
			v := append(hot, cold...)
			if len(v) == 0 {
				return 0, 0
			}
			return median(recent(v)), halfRange(v)
		}
		h, c := median(recent(hot)), median(recent(cold))
		return h, c - min(c, h) + max(halfRange(hot), halfRange(cold))
	}
	costs := map[Overhead]Cost{}
	for i, t := range cal.kinds {
		var hot, cold figures
		seen := 0
		for _, r := range rounds {
			if !usable(r.medians, i, l.caller[i], l.base) {
				continue
			}
			seen++
			f := &hot
			if r.cold {
				f = &cold
			}
			m := r.medians
			f.inner = append(f.inner, m[i])
			f.nested = append(f.nested, subFloor(m[l.caller[i]], m[l.base]))
			if l.tail[i] >= 0 && usable(m, l.tail[i], l.tailBase) {
				f.tail = append(f.tail, subFloor(m[l.tail[i]], m[l.tailBase]))
			}
		}
		if seen == 0 || seen < (len(rounds)+1)/2 {
			return nil, fmt.Errorf("calibrate: %s: only %d of %d rounds saw the calls", t.kind, seen, len(rounds))
		}
		var c Cost
		c.Inner, c.InnerSpread = least(hot.inner, cold.inner)
		c.Nested, c.NestedSpread = least(hot.nested, cold.nested)
		c.Tail, _ = least(hot.tail, cold.tail)
		costs[t.kind] = c
	}
	return costs, nil
}

func median(d []uint64) uint64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func subFloor(a, b uint64) uint64 { return a - min(a, b) }

func halfRange(v []uint64) uint64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) > 4 {
		s = s[1 : len(s)-1]
	}
	if len(s) == 0 {
		return 0
	}
	return (s[len(s)-1] - s[0] + 1) / 2
}

// fileOffsetOfAddress maps an address of this process's executable code to
// its offset in the file, through /proc/self/maps (PIE or not).
func fileOffsetOfAddress(addr uintptr) (uint64, error) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if uint64(addr) >= start && uint64(addr) < end {
			return uint64(addr) - start + off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is not mapped", addr)
}
