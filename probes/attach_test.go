package probes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/symbols"
)

// bpfLinks counts this process's open BPF link and perf event file
// descriptors (a perf-mode probe has one of each).
func bpfLinks(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && (target == "anon_inode:bpf_link" || target == "anon_inode:[perf_event]") {
			n++
		}
	}
	return n
}

// lib is the shared library these tests probe.
const lib = "/lib/x86_64-linux-gnu/libz.so.1"

// libzProbes is where to probe fn of libz (skipping when libz is absent).
func libzProbes(t *testing.T, fn string) symbols.Probes {
	t.Helper()
	bin, err := symbols.Open(lib)
	if err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	defer bin.Close()
	return probesOf(t, bin, fn)
}

// probesOf returns the probe points of the first function of b that name
// matches.
func probesOf(t *testing.T, b *symbols.Binary, name string) symbols.Probes {
	t.Helper()
	fns, err := b.Match(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Probes(&fns[0])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// When one attach fails, the links already made are destroyed and the
// error names the probes that failed; in both attach modes.
func TestAttachAllOrNothing(t *testing.T) {
	for _, mode := range []AttachMode{AttachMulti, AttachPerf} {
		t.Run(string(mode), func(t *testing.T) { testAttachAllOrNothing(t, mode) })
	}
}

func testAttachAllOrNothing(t *testing.T, mode AttachMode) {
	requireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := libzProbes(t, "deflate")

	tr, err := Open(Options{Attach: mode})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	before := bpfLinks(t)
	// libz's probes sort before this test binary's, so they are attached
	// first and must be undone when the bogus offset fails.
	err = tr.Attach([]Function{
		{Name: "deflate", Binary: lib, Entry: p.Entry},
		{Name: "bogus", Binary: exe, Entry: 1 << 40},
	})
	if !errors.Is(err, ErrAttach) {
		t.Fatalf("attach with a bogus offset: %v, want ErrAttach", err)
	}
	if !strings.Contains(err.Error(), "on "+exe) || !strings.Contains(err.Error(), "(bogus)") {
		t.Errorf("error does not say which probes failed: %v", err)
	}
	if n := bpfLinks(t); n != before || len(tr.links) != 0 {
		t.Errorf("%d links left after a failed attach (%d before), tracer holds %d", n, before, len(tr.links))
	}

	// The same tracer can attach good probes afterwards, and Close
	// releases them; a second Close is harmless.
	if err := tr.Attach([]Function{{Name: "deflate", Binary: lib, Entry: p.Entry}}); err != nil {
		t.Fatal(err)
	}
	want := before + 2 // an entry and a return link
	if mode == AttachPerf {
		want = before + 4 // and their perf events
	}
	if n := bpfLinks(t); n != want {
		t.Errorf("%d links after attaching entry and return probes, want %d", n, want)
	}
	if tr.Mode() != mode {
		t.Errorf("tracer mode %s, want %s", tr.Mode(), mode)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if n := bpfLinks(t); n != 0 {
		t.Errorf("%d links left after Close", n)
	}
}

// The probe pairs' own costs are measured for each kind: an emulated entry
// is cheaper than a single-stepped one, and a traced call costs its caller
// at least what it costs itself (its probes' whole work, not only the part
// between its timestamps).
func TestCalibrate(t *testing.T) {
	requireRoot(t)
	c, err := StartCalibration(Options{})
	if err != nil {
		t.Fatal(err)
	}
	costs, err := c.Costs()
	if err := errors.Join(err, c.Close()); err != nil {
		t.Fatal(err)
	}
	for _, exit := range []ExitKind{ExitRET, ExitUretprobe} {
		emu, step := costs.Kinds[Overhead{exit, EntryEmulated}], costs.Kinds[Overhead{exit, EntryStepped}]
		if emu.Inner == 0 || step.Inner == 0 {
			t.Errorf("%s: costs %v, want every kind measured", exit, costs)
		}
		if emu.Inner >= step.Inner || emu.Nested >= step.Nested {
			t.Errorf("%s: emulated entry %+v, single-stepped %+v: want emulated cheaper", exit, emu, step)
		}
		for _, c := range []Cost{emu, step} {
			if c.Nested < c.Inner {
				t.Errorf("%s: a traced call costs its caller %d ns, less than its own measured %d ns", exit, c.Nested, c.Inner)
			}
		}
	}
	// Each CPU this process may use was measured on its own.
	if n := runtime.NumCPU(); len(costs.CPU) != n {
		t.Errorf("costs measured on %d CPUs, want all %d: %+v", len(costs.CPU), n, costs.CPU)
	}
	t.Logf("costs: %+v", costs)
}

// A ring buffer that fills drops calls, counts every one of them, and
// takes events again once drained.
func TestRingBufferFullCountsDrops(t *testing.T) {
	p := libzProbes(t, "crc32")
	z := startZlibCaller(t, "zlib.crc32(b'x')", 2000, 50)
	tr, err := Open(Options{Pid: z.pid(), RingBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Attach([]Function{{Name: "crc32", Binary: lib, Entry: p.Entry}}); err != nil {
		t.Fatal(err)
	}
	// 2000 calls and nobody draining: a page holds about a hundred.
	z.batch()
	got := tr.Drain(func(*Event) {})
	lost, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if lost.Dropped == 0 || uint64(got)+lost.Dropped != 2000 {
		t.Errorf("read %d events and counted %d dropped: want some dropped, and 2000 in all", got, lost.Dropped)
	}
	// Drained, it takes events again.
	z.batch()
	if got := tr.Drain(func(*Event) {}); got != 50 {
		t.Errorf("after draining, read %d events of 50 calls", got)
	}
}

// In-kernel histograms count every call, even with a one-page ring buffer
// that nobody drains, and take out the cost of the function's kind of probe
// pair.
func TestAggregateCountsEveryCall(t *testing.T) {
	p := libzProbes(t, "crc32")
	kind := Overhead{Exit: ExitUretprobe, Entry: EntryStepped}
	run := func(inner uint64) Histogram {
		t.Helper()
		z := startZlibCaller(t, "zlib.crc32(b'x')", 3000)
		costs := Costs{Kinds: map[Overhead]Cost{kind: {Inner: inner}}}
		tr, err := Open(Options{Pid: z.pid(), RingBuffer: 4096, KernelHistograms: true, Functions: 2, Costs: costs})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		// Sized for two functions, given one: the second histogram stays empty.
		if err := tr.Attach([]Function{{Name: "crc32", Binary: lib, Entry: p.Entry, Kind: kind}}); err != nil {
			t.Fatal(err)
		}
		z.batch()
		if err := tr.Detach(); err != nil {
			t.Fatal(err)
		}
		hs, err := tr.Histograms(nil)
		if err != nil {
			t.Fatal(err)
		}
		lost, _ := tr.Counters()
		if got := tr.Drain(func(*Event) {}); got != 0 || lost.Dropped != 0 {
			t.Errorf("%d events streamed and %d dropped: completed calls should only be counted in the kernel", got, lost.Dropped)
		}
		if len(hs) != 2 || hs[1].Count != 0 {
			t.Errorf("histograms: %d, the unused one counts %d", len(hs), hs[1].Count)
		}
		return *hs[0]
	}
	raw := run(0)
	var inSlots uint64
	for _, c := range raw.Slots {
		inSlots += c
	}
	if raw.Count != 3000 || inSlots != raw.Count || raw.Min > raw.Max || raw.SumLo < raw.Min*raw.Count {
		t.Errorf("histogram: count %d (buckets %d), min %d, max %d, sum %d", raw.Count, inSlots, raw.Min, raw.Max, raw.SumLo)
	}
	// A cost of 16.7 ms takes every call shorter than it to 0; a call
	// preempted for longer on a busy machine keeps only its excess, so a
	// few may land elsewhere, never most.
	biased := run(1<<24 - 1)
	var above uint64
	for _, c := range biased.Slots[1:] {
		above += c
	}
	if biased.Count != 3000 || biased.Slots[0]+above != biased.Count || biased.Slots[0] < biased.Count*9/10 {
		t.Errorf("with a 16.7 ms bias: count %d, in bucket 0: %d, above: %d (max %d)", biased.Count, biased.Slots[0], above, biased.Max)
	}
}

// Detaching takes ~80 ms per probe on the perf-event path, entries first;
// exits that fire meanwhile are not "exits without entry" (thousands were
// counted before the control flag).
func TestDetachCountsNoUnpairedExits(t *testing.T) {
	python := requirePython(t)
	p := libzProbes(t, "crc32")
	load := exec.Command(python, "-c", "import zlib\nwhile True: zlib.crc32(b'x')")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { load.Process.Kill(); load.Wait() }()
	tr, err := Open(Options{Pid: load.Process.Pid, Attach: AttachPerf})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Attach([]Function{{Name: "crc32", Binary: lib, Entry: p.Entry}}); err != nil {
		t.Fatal(err)
	}
	// Detach while calls are in flight: wait until some were made.
	var before Counters
	for deadline := time.Now().Add(time.Minute); before.Entries < 1000; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls seen in a minute", before.Entries)
		}
		time.Sleep(10 * time.Millisecond)
		if before, err = tr.Counters(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Detach(); err != nil {
		t.Fatal(err)
	}
	after, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after.Unpaired != before.Unpaired {
		t.Errorf("%d exits without entry counted while detaching (%d calls entered before)", after.Unpaired-before.Unpaired, before.Entries)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to load BPF programs")
	}
}

// requirePython skips unless root (to load BPF) and Python (which calls
// Debian's zlib for the tests) are there, and returns Python's path.
func requirePython(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("SKIPPED: %s is not installed", python)
	}
	return python
}

// zlibCaller is a Python process that calls zlib in batches, each when
// told to, so that a tracer can attach to its pid first: the tests count
// this process's calls only, never other programs' zlib calls.
type zlibCaller struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// startZlibCaller starts Python running call (a Python expression of
// zlib's, such as "zlib.crc32(b'x')") batches[i] times in batch i.
func startZlibCaller(t *testing.T, call string, batches ...int) *zlibCaller {
	t.Helper()
	python := requirePython(t)
	script := fmt.Sprintf("import sys, zlib\nfor n in %s:\n  sys.stdin.readline()\n  for i in range(n): %s\n  print('done', flush=True)\n",
		strings.ReplaceAll(fmt.Sprint(append(batches, 0)), " ", ","), call)
	cmd := exec.Command(python, "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	z := &zlibCaller{t: t, cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	t.Cleanup(func() { z.cmd.Process.Kill(); z.cmd.Wait() })
	return z
}

func (z *zlibCaller) pid() int { return z.cmd.Process.Pid }

// batch runs the next batch of calls and waits until it is done.
func (z *zlibCaller) batch() {
	z.t.Helper()
	if _, err := z.stdin.Write([]byte("go\n")); err != nil {
		z.t.Fatal(err)
	}
	if line, err := z.stdout.ReadString('\n'); err != nil || line != "done\n" {
		z.t.Fatalf("python: %q, %v", line, err)
	}
}

// Without BPF cookies (kernels before 5.15) each probe passes its
// function on through a program of its own: two functions in one file,
// entries and uretprobes, are told apart exactly, in both aggregation modes.
func TestNoCookiesTellsFunctionsApart(t *testing.T) {
	crc, adler := libzProbes(t, "crc32"), libzProbes(t, "adler32")
	for _, aggregate := range []bool{false, true} {
		t.Run(fmt.Sprintf("aggregate=%v", aggregate), func(t *testing.T) {
			z := startZlibCaller(t, "zlib.crc32(b'x'), zlib.adler32(b'x'), zlib.adler32(b'x')", 1000)
			tr, err := Open(Options{Pid: z.pid(), Attach: AttachPerf, KernelHistograms: aggregate, Functions: 2, noCookies: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if tr.cookieProgs == nil {
				t.Fatal("the tracer uses cookies")
			}
			if err := tr.Attach([]Function{{Name: "crc32", Binary: lib, Entry: crc.Entry}, {Name: "adler32", Binary: lib, Entry: adler.Entry}}); err != nil {
				t.Fatal(err)
			}
			if n := len(tr.cookieProgs.progs); n != 4 {
				t.Errorf("%d cookie programs, want 4 (an entry and a return for each function)", n)
			}
			z.batch()
			if err := tr.Detach(); err != nil {
				t.Fatal(err)
			}
			counts := map[uint32]uint64{}
			if aggregate {
				hs, err := tr.Histograms(nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, h := range hs {
					counts[uint32(i)] = h.Count
				}
			} else {
				tr.Drain(func(e *Event) {
					if e.Kind == EventCall {
						counts[e.Fn]++
					}
				})
			}
			lost, err := tr.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if counts[0] != 1000 || counts[1] != 2000 || lost.Unpaired != 0 || lost.Dropped != 0 {
				t.Errorf("crc32 %d calls (want 1000), adler32 %d (want 2000); lost %+v", counts[0], counts[1], lost)
			}
			if len(tr.cookieProgs.progs) != 0 {
				t.Errorf("%d cookie programs left after Detach", len(tr.cookieProgs.progs))
			}
		})
	}
}

// A probe on an instruction the kernel refuses (here a LOCK prefix) fails
// a whole uprobe_multi link. Attach finds the function it belongs to,
// leaves that function out whole, attaches the rest and lists it in
// Refused; in both attach modes. The kernel looks at the instruction when
// it installs the probe in a process that maps the file, so one runs.
func TestAttachLeavesOutRefusedFunctions(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "refused.c")
	bin := filepath.Join(dir, "refused")
	os.WriteFile(src, []byte(`#include <unistd.h>
__attribute__((naked)) void fine(void) { __asm__("nop\n\tret"); }
__attribute__((naked)) void locked(void) { __asm__("nop\n\tlock addl $0,(%rsp)\n\tret"); }
__attribute__((naked)) void also_fine(void) { __asm__("nop\n\tret"); }
int main(void) { sleep(60); return 0; }
`), 0o644)
	if out, err := exec.Command("gcc", "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: gcc: %v\n%s", err, out)
	}
	target := exec.Command(bin)
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { target.Process.Kill(); target.Wait() }()
	for i := 0; ; i++ { // until it has mapped its executable
		if maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", target.Process.Pid)); strings.Contains(string(maps), bin) {
			break
		}
		if i == 500 {
			t.Fatal("the target did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := symbols.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	entry := func(name string) uint64 { return probesOf(t, b, name).Entry }
	fns := []Function{
		{Name: "fine", Binary: bin, Entry: entry("fine")},
		{Name: "locked", Binary: bin, Entry: entry("locked") + 1}, // the lock-prefixed instruction
		{Name: "also_fine", Binary: bin, Entry: entry("also_fine")},
	}
	for _, mode := range []AttachMode{AttachMulti, AttachPerf} {
		t.Run(string(mode), func(t *testing.T) {
			before := bpfLinks(t)
			tr, err := Open(Options{Attach: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if err := tr.Attach(fns); err != nil {
				t.Fatalf("Attach: %v", err)
			}
			refused := tr.Refused()
			if len(refused) != 1 || refused[0].Index != 1 || refused[0].Name != "locked" || !strings.Contains(refused[0].Err.Error(), "524") {
				t.Errorf("Refused() = %+v, want locked (index 1) with errno 524", refused)
			}
			// fine and also_fine: an entry and a return probe each.
			want := before + 2
			if mode == AttachPerf {
				want = before + 8
			}
			if n := bpfLinks(t); n != want {
				t.Errorf("%d links, want %d (the other two functions attached)", n, want)
			}
			// Every function refused: an error that names them.
			err = tr.Attach(fns[1:2])
			if !errors.Is(err, ErrAttach) || !strings.Contains(err.Error(), "locked") {
				t.Errorf("Attach of the refused function alone: %v, want ErrAttach naming it", err)
			}
		})
	}
}

// The nested probe costs taken out of a call are exactly those of the
// traced calls made inside it, counted as they happen, each at its kind's
// cost: with made-up costs (1 s for an emulated callee's probes, 1 µs for
// a single-stepped one), every call of the caller of testdata/nested
// carries exactly ten seconds and a microsecond, its callees nothing; in
// the kernel's histograms, the same sums.
func TestNestedCostsCountedExactly(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "nested")
	if out, err := exec.Command("gcc", "-O2", "-fno-omit-frame-pointer", "-o", bin, "../e2e/testdata/nested/nested.c").CombinedOutput(); err != nil {
		t.Fatalf("build the target: %v\n%s", err, out)
	}
	b, err := symbols.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	emulated := Overhead{Exit: ExitUretprobe, Entry: EntryEmulated}
	stepped := Overhead{Exit: ExitUretprobe, Entry: EntryStepped}
	fn := func(name string, kind Overhead) Function {
		p := probesOf(t, b, name)
		if p.EntryEmulated != (kind.Entry == EntryEmulated) {
			t.Fatalf("%s: entry emulated %v, want %s", name, p.EntryEmulated, kind)
		}
		return Function{Name: name, Binary: bin, Entry: p.Entry, Kind: kind}
	}
	fns := []Function{fn("caller", emulated), fn("stepped", stepped)}
	for i := range 10 {
		fns = append(fns, fn(fmt.Sprintf("callee%d", i), emulated))
	}
	costs := Costs{Kinds: map[Overhead]Cost{emulated: {Nested: 1e9}, stepped: {Nested: 1e3}}}
	const calls, want = 20, 10*1e9 + 1e3
	for _, aggregate := range []bool{false, true} {
		t.Run(fmt.Sprintf("aggregate=%v", aggregate), func(t *testing.T) {
			tr, err := Open(Options{Costs: costs, KernelHistograms: aggregate, Functions: len(fns)})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if err := tr.Attach(fns); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, strconv.Itoa(calls)).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", bin, err, out)
			}
			if err := tr.Detach(); err != nil {
				t.Fatal(err)
			}
			if aggregate {
				hs, err := tr.Histograms(nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, h := range hs {
					w := uint64(0)
					if i == 0 {
						w = calls * want
					}
					if h.Count != calls || h.NestedNs != w {
						t.Errorf("%s: %d calls, nested %d ns; want %d, %d", fns[i].Name, h.Count, h.NestedNs, calls, w)
					}
				}
				return
			}
			seen := make([]int, len(fns))
			tr.Drain(func(e *Event) {
				if e.Kind != EventCall {
					return
				}
				seen[e.Fn]++
				w := uint64(0)
				if e.Fn == 0 {
					w = want
				}
				if e.NestedNs != w {
					t.Errorf("%s: a call with %d ns of nested costs, want %d", fns[e.Fn].Name, e.NestedNs, w)
				}
			})
			for i, n := range seen {
				if n != calls {
					t.Errorf("%s: %d calls, want %d", fns[i].Name, n, calls)
				}
			}
		})
	}
}

// Wake ends a Poll waiting with nothing to read (no process traced, so
// nothing else can end it before its hour), and one called before a Poll
// ends that Poll at once; after Close it does nothing.
func TestWakeEndsPoll(t *testing.T) {
	requireRoot(t)
	tr, err := Open(Options{Pid: os.Getpid(), RingBuffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	poll := func() chan error {
		done := make(chan error, 1)
		go func() {
			_, err := tr.Poll(time.Hour, func(*Event) {})
			done <- err
		}()
		return done
	}
	waitPoll := func(what string, done chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: Poll(1h) still waits a minute after Wake", what)
		}
	}
	done := poll()
	time.Sleep(10 * time.Millisecond) // most likely waiting by now; either order must end it
	tr.Wake()
	waitPoll("woken while waiting", done)
	tr.Wake()
	waitPoll("woken before", poll())
	tr.Close()
	tr.Wake()
}

// A function whose count the caller knows is not read again (nil); the
// others are, with every call.
func TestHistogramsSkipsKnownCounts(t *testing.T) {
	p := libzProbes(t, "crc32")
	z := startZlibCaller(t, "zlib.crc32(b'x')", 100, 50)
	tr, err := Open(Options{Pid: z.pid(), RingBuffer: 4096, KernelHistograms: true, Functions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Attach([]Function{{Name: "crc32", Binary: lib, Entry: p.Entry}}); err != nil {
		t.Fatal(err)
	}
	knownCounts := map[int]uint64{}
	asked := map[int]uint64{}
	known := func(fn int, count uint64) bool {
		asked[fn] = count
		c, ok := knownCounts[fn]
		return ok && c == count
	}
	read := func() []*Histogram {
		t.Helper()
		hs, err := tr.Histograms(known)
		if err != nil {
			t.Fatal(err)
		}
		for fn, h := range hs {
			if h != nil {
				knownCounts[fn] = h.Count
			}
		}
		return hs
	}
	z.batch()
	first := read()
	if first[0] == nil || first[0].Count != 100 || first[1] == nil || first[1].Count != 0 {
		t.Fatalf("first read: %v, want histograms of 100 and 0 calls", first)
	}
	if again := read(); again[0] != nil || again[1] != nil || asked[0] != 100 || asked[1] != 0 {
		t.Errorf("read again with no call between: %v (counts asked about: %v), want both skipped", again, asked)
	}
	z.batch()
	after := read()
	if after[0] == nil || after[0].Count != 150 || after[1] != nil {
		t.Errorf("after 50 more calls: %v, want the called function's 150 calls read, the idle one skipped", after)
	}
}
