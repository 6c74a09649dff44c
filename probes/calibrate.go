package probes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
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

// Bias is the measured cost of each kind of probe pair on this host, in
// ns: what a call of a function that does nothing is reported to take.
type Bias map[Overhead]uint64

// calibTarget is one calibration function in this executable.
type calibTarget struct {
	kind Overhead
	addr unsafe.Pointer
	ret  int // offset of its RET
}

const calibrationArg = "__ulat_calibrate"

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
	// Wait for the parent to attach.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		os.Exit(3)
	}
	for t := range calibrationTargets() {
		for i := 0; i < n; i++ {
			callCalibrationTarget(t)
		}
	}
	os.Exit(0)
}

// calibrationCalls per kind: enough for a stable median, few enough to
// take a fraction of a second even when every probe is single-stepped.
const calibrationCalls = 1000

// Calibrate measures the cost of each kind of probe pair on this host, by
// tracing functions that do nothing in a child process (this executable,
// started again). The median of each kind is its bias.
func Calibrate(opts Options) (Bias, error) {
	targets := calibrationTargets()
	if len(targets) == 0 {
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
	if err := child.Start(); err != nil {
		return nil, fmt.Errorf("calibrate: start %s: %w", exe, err)
	}
	defer child.Wait()
	defer stdin.Close()

	fns := make([]Function, len(targets))
	for i, t := range targets {
		off, err := fileOffsetOfAddress(uintptr(t.addr))
		if err != nil {
			child.Process.Kill()
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		if b := *(*byte)(unsafe.Add(t.addr, t.ret)); b != 0xc3 {
			child.Process.Kill()
			return nil, fmt.Errorf("calibrate: no RET at %s+%d", t.kind, t.ret)
		}
		fns[i] = Function{Name: "calibration " + t.kind.String(), Binary: exe, Entry: off}
		if t.kind.Exit == ExitRET {
			fns[i].Exits = []uint64{off + uint64(t.ret)}
		}
	}
	opts.Pid = child.Process.Pid
	tr, err := Open(opts)
	if err != nil {
		child.Process.Kill()
		return nil, err
	}
	defer tr.Close()
	if err := tr.Attach(fns); err != nil {
		child.Process.Kill()
		return nil, err
	}
	durations := make([][]uint64, len(fns))
	collect := func(e *Event) {
		if e.Kind == EventCall && int(e.Fn) < len(durations) {
			durations[e.Fn] = append(durations[e.Fn], e.DurationNs)
		}
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		child.Process.Kill()
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	timeout := time.After(30 * time.Second)
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				return nil, fmt.Errorf("calibrate: calibration process: %w", err)
			}
			running = false
		case <-timeout:
			child.Process.Kill()
			return nil, errors.New("calibrate: calibration process did not finish in 30s")
		default:
			if _, err := tr.Poll(10*time.Millisecond, collect); err != nil {
				child.Process.Kill()
				return nil, err
			}
		}
	}
	if err := tr.Detach(); err != nil {
		return nil, err
	}
	tr.Drain(collect)
	bias := Bias{}
	for i, t := range targets {
		d := durations[i]
		if len(d) < calibrationCalls/2 {
			return nil, fmt.Errorf("calibrate: only %d of %d calls of %s seen", len(d), calibrationCalls, t.kind)
		}
		sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
		bias[t.kind] = d[len(d)/2]
	}
	return bias, nil
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
