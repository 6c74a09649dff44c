package probes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
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

// Cost is what one kind of probe pair costs on this host, in ns, as
// Calibrate measures it.
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
	InnerSpread, NestedSpread uint64
}

// Costs are the measured costs of each kind of probe pair.
type Costs map[Overhead]Cost

// Uncertainty is how far a corrected duration of a function of kind o may
// be off because of the correction: the spread of its own probes' cost,
// and that of the nested probe costs taken out of it (nestedNs on
// average), at the largest relative spread of any kind's.
func (c Costs) Uncertainty(o Overhead, nestedNs uint64) uint64 {
	var rel float64
	for _, k := range c {
		if k.Nested > 0 {
			rel = max(rel, float64(k.NestedSpread)/float64(k.Nested))
		}
	}
	return c[o].InnerSpread + uint64(rel*float64(nestedNs)+0.5)
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

const calibrationArg = "__ulat_calibrate"

// Rounds and calls per round of each caller: the spread of the rounds'
// medians is the costs' uncertainty; all of it takes a fraction of a
// second even when every probe is single-stepped.
const (
	calibrationRounds = 9
	calibrationCalls  = 120
)

// RunCalibrationChild is the calibration process's main: when this process
// was started by Calibrate it calls the calibration functions and exits.
// Call it first thing in main.
func RunCalibrationChild() {
	if len(os.Args) != 3 || os.Args[1] != calibrationArg {
		return
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		os.Exit(2)
	}
	callers := calibrationTargets().layout().callers
	// A round each time the parent asks, answered when it is done; the
	// callers take turns so that every kind sees the same moments.
	in := bufio.NewReader(os.Stdin)
	for {
		if _, err := in.ReadString('\n'); err != nil {
			os.Exit(0)
		}
		for range n {
			for _, c := range callers {
				callCalibrationFunction(c)
			}
		}
		if _, err := os.Stdout.Write([]byte("d\n")); err != nil {
			os.Exit(3)
		}
	}
}

// Calibrate measures the costs of each kind of probe pair on this host, by
// tracing functions that do nothing, and callers of them, in a child
// process (this executable, started again), in rounds.
func Calibrate(opts Options) (Costs, error) {
	cal := calibrationTargets()
	if len(cal.kinds) == 0 {
		return nil, errors.New("probe overhead calibration is not available on this architecture")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	child := exec.Command(exe, calibrationArg, strconv.Itoa(calibrationCalls))
	stdin, err := child.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	if err := child.Start(); err != nil {
		return nil, fmt.Errorf("calibrate: start %s: %w", exe, err)
	}
	defer child.Wait()
	defer stdin.Close()
	fail := func(err error) (Costs, error) {
		child.Process.Kill()
		return nil, err
	}

	layout := cal.layout()
	var fns []Function
	for _, t := range cal.kinds {
		off, err := fileOffsetOfAddress(uintptr(t.addr))
		if err != nil {
			return fail(fmt.Errorf("calibrate: %w", err))
		}
		if b := *(*byte)(unsafe.Add(t.addr, t.ret)); b != 0xc3 {
			return fail(fmt.Errorf("calibrate: no RET at %s+%d", t.kind, t.ret))
		}
		f := Function{Name: "calibration " + t.kind.String(), Binary: exe, Entry: off, Kind: t.kind}
		if t.kind.Exit == ExitRET {
			f.Exits = []uint64{off + uint64(t.ret)}
		}
		fns = append(fns, f)
	}
	for i, addr := range layout.callers {
		off, err := fileOffsetOfAddress(uintptr(addr))
		if err != nil {
			return fail(fmt.Errorf("calibrate: %w", err))
		}
		fns = append(fns, Function{Name: fmt.Sprintf("calibration caller %d", i), Binary: exe, Entry: off,
			Kind: Overhead{Exit: ExitUretprobe, Entry: EntryEmulated}})
	}
	opts.Pid = child.Process.Pid
	opts.Aggregate, opts.Costs, opts.Raw = false, nil, false
	tr, err := Open(opts)
	if err != nil {
		return fail(err)
	}
	defer tr.Close()
	if err := tr.Attach(fns); err != nil {
		return fail(err)
	}

	// durations[round][function]
	durations := make([][][]uint64, calibrationRounds)
	deadline := time.Now().Add(30 * time.Second)
	answers := bufio.NewReader(stdout)
	for r := range durations {
		durations[r] = make([][]uint64, len(fns))
		collect := func(e *Event) {
			if e.Kind == EventCall && int(e.Fn) < len(fns) {
				durations[r][e.Fn] = append(durations[r][e.Fn], e.DurationNs)
			}
		}
		if _, err := stdin.Write([]byte("r\n")); err != nil {
			return fail(fmt.Errorf("calibrate: %w", err))
		}
		// Polled meanwhile, so that the ring buffer never fills.
		answered := make(chan error, 1)
		go func() { _, err := answers.ReadString('\n'); answered <- err }()
		for waiting := true; waiting; {
			select {
			case err := <-answered:
				if err != nil {
					return fail(fmt.Errorf("calibrate: calibration process: %w", err))
				}
				waiting = false
			default:
				if time.Now().After(deadline) {
					return fail(errors.New("calibrate: calibration process did not finish in 30s"))
				}
				if _, err := tr.Poll(5*time.Millisecond, collect); err != nil {
					return fail(err)
				}
			}
		}
		// The round's probes all ran before its calls returned.
		tr.Drain(collect)
	}
	stdin.Close()
	if err := tr.Detach(); err != nil {
		return nil, err
	}
	return costsOf(cal, layout, durations)
}

// costsOf turns the calibration's durations ([round][function], functions
// as calibLayout places them) into costs: a kind's Inner is the median of
// its function's durations; its Nested (Tail), the median of its caller's
// (tail caller's) minus the baseline's; the spreads, half the range of
// those figures taken round by round, but for the highest and the lowest.
func costsOf(cal calibration, l calibLayout, durations [][][]uint64) (Costs, error) {
	pooled := make([][]uint64, len(cal.kinds)+len(l.callers))
	for _, round := range durations {
		for f, d := range round {
			pooled[f] = append(pooled[f], d...)
		}
	}
	for f, d := range pooled {
		if len(d) < calibrationRounds*calibrationCalls/2 {
			return nil, fmt.Errorf("calibrate: only %d of %d calls of calibration function %d seen", len(d), calibrationRounds*calibrationCalls, f)
		}
	}
	costs := Costs{}
	for i, t := range cal.kinds {
		var inners, nesteds []uint64
		for _, round := range durations {
			if len(round[i]) == 0 || len(round[l.caller[i]]) == 0 || len(round[l.base]) == 0 {
				continue
			}
			inners = append(inners, median(round[i]))
			nesteds = append(nesteds, subFloor(median(round[l.caller[i]]), median(round[l.base])))
		}
		c := Cost{
			Inner:        median(pooled[i]),
			Nested:       subFloor(median(pooled[l.caller[i]]), median(pooled[l.base])),
			InnerSpread:  halfRange(inners),
			NestedSpread: halfRange(nesteds),
		}
		if l.tail[i] >= 0 {
			c.Tail = subFloor(median(pooled[l.tail[i]]), median(pooled[l.tailBase]))
		}
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
