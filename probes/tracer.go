// Package probes loads ulat's BPF object, attaches entry and exit uprobes to
// the functions it is given, and reads completed calls and loss counters
// back. It knows nothing of symbols or reports.
package probes

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	bpf "github.com/aquasecurity/libbpfgo"
	"golang.org/x/sys/unix"

	ulatbpf "github.com/ulat-dev/ulat/bpf"
	"github.com/ulat-dev/ulat/buckets"
	"github.com/ulat-dev/ulat/internal/procfs"
)

// Sentinel errors a caller can act on.
var (
	ErrPermission = errors.New("permission denied: ulat needs root, or the capabilities CAP_BPF and CAP_PERFMON (and CAP_SYS_ADMIN for perf-event probes on Linux 6.16 and later); try sudo")
	ErrAttach     = errors.New("attach failed")
	// ErrProbeKind: the kernel refused the kind of link the attach mode
	// makes; the other mode may work.
	ErrProbeKind = errors.New("the kernel does not support this kind of probe")
	// ErrNoBTF: libbpf found no kernel BTF for the CO-RE program.
	ErrNoBTF = errors.New("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): ulat's BPF program needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (the stock kernels of Debian 11+, Ubuntu 20.10+, Fedora 31+ and RHEL 8.2+ are); `ulat doctor` checks this")
	// ErrNoUprobes: the kernel cannot attach uprobes.
	ErrNoUprobes = errors.New("this kernel has no uprobe support (CONFIG_UPROBES and CONFIG_UPROBE_EVENTS are needed); `ulat doctor` checks this")
)

// Function is one function to time: where its entry is, and how its exits
// are caught.
type Function struct {
	Name   string
	Binary string   // absolute path of the file the offsets refer to
	Entry  uint64   // file offset of the entry probe
	Exits  []uint64 // file offsets of RET instructions; empty means use a uretprobe
	Go     bool     // pair calls by goroutine rather than by thread
	// Kind is its kind of probe pair, whose Options.Costs are taken out
	// of its durations.
	Kind Overhead
}

// AttachMode chooses how probes are attached.
type AttachMode string

const (
	// AttachAuto uses uprobe_multi links when the kernel has them.
	AttachAuto AttachMode = "auto"
	// AttachMulti uses one uprobe_multi link per binary and probe kind
	// (Linux >= 6.6): fast to attach thousands of probes.
	AttachMulti AttachMode = "multi"
	// AttachPerf uses one perf-event link per probe, as kernels before
	// 6.6 need (>= 5.15 for the cookie); slow past about a thousand probes.
	AttachPerf AttachMode = "perf"
)

// Options configure a Tracer at load time.
type Options struct {
	Pid int // only this process (0: every process that runs the binaries)
	// FollowForks extends Pid to the processes it starts from now on, and
	// theirs. Probes then fire in every process that runs the traced files
	// and the BPF program filters, where without it the kernel installs
	// them in Pid's process only. With Pid 0 the set starts empty, and
	// processes join it through Follow (and their children with them).
	FollowForks bool
	// ByCgroup makes each event carry its process's cgroup v2 id, so that
	// calls can be counted per container. Not with KernelHistograms,
	// which count per function only.
	ByCgroup bool
	// StopOnExec (with FollowForks) stops each followed process that
	// execs a program before its first instruction and reports it as an
	// EventExec, so that the program's functions can be added (Add)
	// before any of them runs; the reader lets it go on with Continue.
	StopOnExec bool
	// LibbpfLog, when not nil, receives libbpf's own log while the object
	// loads (loads take turns: libbpf's logger is process-wide).
	LibbpfLog io.Writer
	Attach    AttachMode // "" means AttachAuto
	// RingBuffer is the ring buffer's size in bytes: a power of two and a
	// multiple of the page size (0: the object's 4 MiB). Calls that
	// complete while it is full are dropped, and counted.
	RingBuffer int
	// InFlight is how many calls may be in flight at once (0: 65,536),
	// and how many threads and goroutines have their nested probe costs
	// kept: each entry takes ~100 bytes of kernel memory, and past it the
	// oldest in-flight call is forgotten (its exit counted as unpaired).
	InFlight int
	// KernelHistograms counts completed calls in per-CPU histograms in the
	// kernel (read with Histograms) instead of streaming each through the
	// ring buffer, which then carries only calls that never returned.
	// Functions is how many functions Attach will be given.
	KernelHistograms bool
	Functions        int
	// Costs are the probe costs taken out of each call's duration: its
	// own probes' Inner, and the Nested of each traced call made inside
	// it (on its thread or goroutine), counted as they happen, each at the
	// cost of the CPU its probe ran on. Events carry the raw duration and
	// the parts to take out; in-kernel histograms count the corrected
	// duration. Empty: nothing is taken out, but the
	// nested costs are still counted (so that a calibration's probes do
	// the same work as a session's). Raw: nothing is counted either.
	Costs Costs
	Raw   bool

	// noCookies makes the tracer work as on a kernel without BPF cookies,
	// so that tests cover that path on any kernel.
	noCookies bool
	// watchExecs loads the exec tracepoint alone, reporting every exec
	// (WatchExecs).
	watchExecs bool
}

// HistogramBytes is the kernel memory in-kernel histograms take for n
// functions on this machine's CPUs.
func HistogramBytes(n int) int {
	return n * int(unsafe.Sizeof(kernelHist{})) * possibleCPUs()
}

func possibleCPUs() int {
	n, err := bpf.NumPossibleCPUs()
	if err != nil || n < 1 {
		return runtime.NumCPU()
	}
	return n
}

// ErrRingBufferSize is returned for a ring buffer size the kernel refuses.
var ErrRingBufferSize = errors.New("ring buffer size must be a power of two and a multiple of the page size")

// Counters are what the BPF program counts besides calls: those it saw
// but could not report (a report's Lost), the entries in all, and the
// processes it could not follow.
type Counters struct {
	Dropped  uint64 // ring buffer was full
	Unpaired uint64 // exit without a recorded entry
	Entries  uint64 // entries seen in all (for cross-checks)
	// Unfollowed counts processes started by followed ones that could not
	// be followed: more than 16384 followed processes alive at once (a
	// process leaves the set when it ends).
	Unfollowed uint64
}

// Tracer is a loaded BPF object with its attached probes.
type Tracer struct {
	mod       *bpf.Module
	mode      AttachMode // multi or perf, once resolved
	links     []*bpf.BPFLink
	perfLinks []perfLink
	ring      *ringReader
	// waker is ring, kept after Close (which sets ring to nil), whose
	// wake does nothing once it is closed: Wake may come from another
	// goroutine while the tracer closes.
	waker    *ringReader
	counter  *bpf.BPFMap
	pid      int
	follow   bool
	hists    *bpf.BPFMap // with Options.KernelHistograms
	epoch    uint64      // the interval of the histograms' extremes (NextInterval)
	nfns     int
	forkLink *bpf.BPFLink
	exitLink *bpf.BPFLink // unfollows processes that end
	execLink *bpf.BPFLink // with stopOnExec
	// stopOnExec: followed processes stop at exec (Options.StopOnExec).
	stopOnExec bool
	// cookieProgs is set on kernels without BPF cookies: each perf-event
	// probe then runs a program of its own that passes its cookie on.
	cookieProgs *cookiePrograms
	refused     []Refused // by the last Attach
}

// Mode reports how probes are attached: AttachMulti or AttachPerf.
func (t *Tracer) Mode() AttachMode { return t.mode }

// multiPrograms and perfPrograms name the same probe kinds' programs for
// each attach mode; only one set is loaded.
var (
	multiPrograms = map[string]string{"entry": "ulat_entry", "exit": "ulat_exit", "return": "ulat_return", "check": "ulat_check"}
	perfPrograms  = map[string]string{"entry": "ulat_entry_pe", "exit": "ulat_exit_pe", "return": "ulat_return_pe"}
)

// loading serializes loads: libbpf's log, which says why a load failed,
// is process-wide, and the agent opens tracers from several goroutines.
var loading sync.Mutex

// Open loads the embedded BPF object into the kernel. It may be called
// from several goroutines: loads take turns.
func Open(opts Options) (*Tracer, error) {
	if err := checkKernelRelease(kernelRelease()); err != nil {
		return nil, err
	}
	loading.Lock()
	defer loading.Unlock()
	startLoadLog(opts.LibbpfLog)

	// libbpfgo opens objects from a path; a memfd gives the embedded bytes
	// one without a temporary file. Loading from a path with
	// SkipMemlockBump also avoids raising RLIMIT_MEMLOCK, which fails in
	// containers; kernels >= 5.11 charge BPF memory to the cgroup instead.
	memfd, err := unix.MemfdCreate("ulat.bpf.o", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create memfd for the bpf object: %w", err)
	}
	f := os.NewFile(uintptr(memfd), "ulat.bpf.o")
	defer f.Close()
	if _, err := f.Write(ulatbpf.Object); err != nil {
		return nil, fmt.Errorf("write bpf object to memfd: %w", err)
	}
	mod, err := bpf.NewModuleFromFileArgs(bpf.NewModuleArgs{
		BPFObjPath:      fmt.Sprintf("/proc/self/fd/%d", memfd),
		SkipMemlockBump: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open bpf object: %w", err)
	}
	t := &Tracer{mod: mod, pid: opts.Pid, mode: opts.Attach, follow: opts.FollowForks}
	if opts.Pid < 0 || !t.follow && opts.Pid == 0 && opts.StopOnExec {
		t.Close()
		return nil, fmt.Errorf("process %d: following needs a pid, or 0 with FollowForks", opts.Pid)
	}
	if opts.ByCgroup && opts.KernelHistograms {
		t.Close()
		return nil, errors.New("in-kernel histograms count per function, not per cgroup")
	}
	cookies := KernelHasCookies() && !opts.noCookies
	switch t.mode {
	case "", AttachAuto:
		t.mode = AttachPerf
		if KernelHasUprobeMulti() && cookies {
			t.mode = AttachMulti
		}
	case AttachMulti, AttachPerf:
	default:
		t.Close()
		return nil, fmt.Errorf("attach mode %q: must be auto, multi or perf", opts.Attach)
	}
	if t.mode == AttachMulti && !cookies {
		t.Close()
		return nil, errors.New("uprobe_multi links need BPF cookies to tell functions apart")
	}
	// Programs of the other mode are not loaded: on kernels before 6.6
	// the uprobe_multi ones would not load at all.
	unused := []string{}
	for _, name := range perfPrograms {
		if t.mode != AttachPerf {
			unused = append(unused, name)
		}
	}
	for _, name := range multiPrograms {
		if t.mode == AttachPerf {
			unused = append(unused, name)
		}
	}
	if !t.follow {
		unused = append(unused, "ulat_fork", "ulat_process_exit")
	}
	if (!t.follow || !opts.StopOnExec) && !opts.watchExecs {
		unused = append(unused, "ulat_exec")
	}
	if opts.watchExecs {
		unused = append(unused, "ulat_fork", "ulat_process_exit")
		for _, name := range perfPrograms {
			unused = append(unused, name)
		}
		for _, name := range multiPrograms {
			unused = append(unused, name)
		}
		if err := t.configureExecWatch(); err != nil {
			t.Close()
			return nil, err
		}
	}
	t.stopOnExec = t.follow && opts.StopOnExec
	for _, name := range unused {
		prog, err := mod.GetProgram(name)
		if err == nil {
			err = prog.SetAutoload(false)
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("configure program %s: %w", name, err)
		}
	}
	if opts.InFlight < 0 {
		t.Close()
		return nil, fmt.Errorf("%d calls in flight: want a positive number", opts.InFlight)
	}
	// Maps the options leave unused, or size, get what they need only.
	sizes := map[string]int{"starts": opts.InFlight, "nested": opts.InFlight}
	if !t.follow {
		sizes["followed"] = 1
	}
	for name, n := range sizes {
		if n == 0 {
			continue
		}
		m, err := mod.GetMap(name)
		if err == nil {
			err = m.SetMaxEntries(uint32(n))
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("size map %s: %w", name, err)
		}
	}
	if opts.RingBuffer != 0 {
		page := os.Getpagesize()
		if opts.RingBuffer < page || opts.RingBuffer%page != 0 || opts.RingBuffer&(opts.RingBuffer-1) != 0 {
			t.Close()
			return nil, fmt.Errorf("%d bytes: %w", opts.RingBuffer, ErrRingBufferSize)
		}
		events, err := mod.GetMap("events")
		if err == nil {
			err = events.SetMaxEntries(uint32(opts.RingBuffer))
		}
		if err == nil {
			// The wakeup threshold is an eighth of the buffer, as by default.
			err = mod.InitGlobalVariable("wakeup_threshold", uint64(opts.RingBuffer/8))
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("size the ring buffer: %w", err)
		}
	}
	// Following forks, the BPF program filters by the `followed` map
	// instead of by one tgid.
	targetTgid := uint32(opts.Pid)
	if t.follow {
		targetTgid = 0
	}
	if err := mod.InitGlobalVariable("target_tgid", targetTgid); err != nil {
		t.Close()
		return nil, fmt.Errorf("configure target pid: %w", err)
	}
	if err := mod.InitGlobalVariable("follow_forks", t.follow); err != nil {
		t.Close()
		return nil, fmt.Errorf("configure fork following: %w", err)
	}
	if err := mod.InitGlobalVariable("have_cookies", cookies); err != nil {
		t.Close()
		return nil, fmt.Errorf("configure cookies: %w", err)
	}
	if err := mod.InitGlobalVariable("count_nested", !opts.Raw); err != nil {
		t.Close()
		return nil, fmt.Errorf("configure nested calls: %w", err)
	}
	if err := mod.InitGlobalVariable("by_cgroup", opts.ByCgroup); err != nil {
		t.Close()
		return nil, fmt.Errorf("configure cgroup ids: %w", err)
	}
	if opts.KernelHistograms {
		if opts.Functions < 1 {
			t.Close()
			return nil, errors.New("in-kernel histograms need the number of functions")
		}
		hists, err := mod.GetMap("hists")
		if err == nil {
			err = hists.SetMaxEntries(uint32(opts.Functions))
		}
		if err == nil {
			err = mod.InitGlobalVariable("aggregate", true)
		}
		if err == nil {
			err = mod.InitGlobalVariable("hist_cells", buckets.CellSlots())
		}
		if err == nil {
			err = mod.InitGlobalVariable("hist_upper", buckets.Upper())
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("configure in-kernel histograms: %w", err)
		}
		t.nfns = opts.Functions
	}
	if err := mod.BPFLoadObject(); err != nil {
		t.Close()
		// The verifier refuses with EACCES or EINVAL, and libbpf names
		// the program; missing privileges are EPERM.
		if rejected := rejectedError(loadFailures()); rejected != nil && !errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("load bpf object: %w", rejected)
		}
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("load bpf object: %w", ErrPermission)
		}
		// libbpf also looks for BTF in /boot and /lib/modules, so the
		// missing file alone does not mean it found none.
		if _, statErr := os.Stat("/sys/kernel/btf/vmlinux"); statErr != nil && errors.Is(err, syscall.ESRCH) {
			return nil, fmt.Errorf("load bpf object: Linux %s: %w", kernelRelease(), ErrNoBTF)
		}
		return nil, fmt.Errorf("load bpf object: %w", err)
	}
	events, err := mod.GetMap("events")
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("find events map: %w", err)
	}
	t.ring, err = newRingReader(events.FileDescriptor(), int(events.MaxEntries()))
	if err != nil {
		t.Close()
		return nil, err
	}
	t.waker = t.ring
	t.counter, err = mod.GetMap("counters")
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("find counters map: %w", err)
	}
	if opts.KernelHistograms {
		if t.hists, err = mod.GetMap("hists"); err != nil {
			t.Close()
			return nil, fmt.Errorf("find hists map: %w", err)
		}
	}
	if err := t.SetCosts(opts.Costs); err != nil {
		t.Close()
		return nil, err
	}
	if t.follow {
		if err := t.startFollowing(); err != nil {
			t.Close()
			return nil, err
		}
	}
	if opts.watchExecs {
		prog, err := mod.GetProgram("ulat_exec")
		if err == nil {
			t.execLink, err = prog.AttachGeneric()
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("%w: exec tracepoint: %w", ErrAttach, unwrapErrno(err))
		}
		return t, nil
	}
	if !cookies {
		if err := t.fillTailProgs(); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// startFollowing puts the first process in the followed set and attaches
// the fork tracepoint that adds its descendants and the exit tracepoint
// that removes each when it ends.
func (t *Tracer) startFollowing() error {
	// Before the first process is in the set, so that it cannot end
	// unseen and leave its pid followed.
	exit, err := t.mod.GetProgram("ulat_process_exit")
	if err != nil {
		return fmt.Errorf("find program ulat_process_exit: %w", err)
	}
	if t.exitLink, err = exit.AttachGeneric(); err != nil {
		return fmt.Errorf("%w: exit tracepoint: %w", ErrAttach, unwrapErrno(err))
	}
	if t.pid > 0 {
		if err := t.Follow(t.pid); err != nil {
			return err
		}
	}
	prog, err := t.mod.GetProgram("ulat_fork")
	if err != nil {
		return fmt.Errorf("find program ulat_fork: %w", err)
	}
	if t.forkLink, err = prog.AttachGeneric(); err != nil {
		return fmt.Errorf("%w: fork tracepoint: %w", ErrAttach, unwrapErrno(err))
	}
	if t.stopOnExec {
		prog, err := t.mod.GetProgram("ulat_exec")
		if err != nil {
			return fmt.Errorf("find program ulat_exec: %w", err)
		}
		if t.execLink, err = prog.AttachGeneric(); err != nil {
			return fmt.Errorf("%w: exec tracepoint: %w", ErrAttach, unwrapErrno(err))
		}
	}
	return nil
}

// Follow adds a process to the followed set (FollowForks): its calls are
// traced from now on, and so are those of the processes it starts. The
// set holds the processes alive at once, 16384 at most.
func (t *Tracer) Follow(pid int) error {
	if !t.follow || t.mod == nil {
		return errors.New("follow a process: the tracer does not follow forks, or is closed")
	}
	followed, err := t.mod.GetMap("followed")
	if err != nil {
		return fmt.Errorf("find followed map: %w", err)
	}
	key, one := uint32(pid), uint8(1)
	if err := followed.Update(unsafe.Pointer(&key), unsafe.Pointer(&one)); err != nil {
		return fmt.Errorf("follow process %d: %w", pid, err)
	}
	return nil
}

// Followed returns the pids of the processes followed now (FollowForks):
// the first and those it started, directly or not, that have not ended.
func (t *Tracer) Followed() ([]int, error) {
	if !t.follow || t.mod == nil {
		return nil, errors.New("followed processes: the tracer does not follow forks, or is closed")
	}
	followed, err := t.mod.GetMap("followed")
	if err != nil {
		return nil, fmt.Errorf("find followed map: %w", err)
	}
	// A key deleted under the iterator restarts it from the first key:
	// the set keeps each pid once.
	seen := map[int]bool{}
	it := followed.Iterator()
	for it.Next() {
		if raw := it.Key(); len(raw) == 4 {
			seen[int(*(*uint32)(unsafe.Pointer(&raw[0])))] = true
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read followed map: %w", err)
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids, nil
}

// stopStopping detaches the exec tracepoint of StopOnExec.
func (t *Tracer) stopStopping() error {
	if t.execLink == nil {
		return nil
	}
	err := t.execLink.Destroy()
	t.execLink = nil
	if err != nil {
		return fmt.Errorf("detach exec tracepoint: %w", err)
	}
	return nil
}

// Continue lets a process that StopOnExec stopped go on. A process that
// has not reached its stop yet loses it (SIGCONT discards a pending
// SIGSTOP), which is as good.
func (t *Tracer) Continue(pid int) error {
	if err := unix.Kill(pid, unix.SIGCONT); err != nil && err != unix.ESRCH {
		return fmt.Errorf("continue process %d: %w", pid, err)
	}
	return nil
}

// probeSet is the probes of one kind in one file: one uprobe_multi link,
// or one perf-event link per offset.
type probeSet struct {
	kind    string // "entry", "exit" (a RET instruction) or "return" (uretprobe)
	ret     bool
	binary  string
	offsets []uint64
	cookies []uint64
	names   []string
}

// plan groups the functions' probes into one link per binary and probe
// kind; fns[i] is function index[i] in events (its cookie).
func plan(fns []Function, index []int) []*probeSet {
	sets := map[string]*probeSet{}
	add := func(kind string, ret bool, binary string, off, cookie uint64, name string) {
		k := kind + "\x00" + binary
		s := sets[k]
		if s == nil {
			s = &probeSet{kind: kind, ret: ret, binary: binary}
			sets[k] = s
		}
		s.offsets = append(s.offsets, off)
		s.cookies = append(s.cookies, cookie)
		s.names = append(s.names, name)
	}
	for i, fn := range fns {
		cookie := uint64(index[i]) | uint64(kindIndex(fn.Kind))<<cookieKindShift
		if fn.Go {
			cookie |= cookieGo
		}
		add("entry", false, fn.Binary, fn.Entry, cookie, fn.Name)
		if len(fn.Exits) == 0 {
			add("return", true, fn.Binary, fn.Entry, cookie, fn.Name)
		}
		for _, off := range fn.Exits {
			add("exit", false, fn.Binary, off, cookie, fn.Name)
		}
	}
	out := make([]*probeSet, 0, len(sets))
	for _, s := range sets {
		out = append(out, s)
	}
	// Entries last: a call that starts while we attach must not find its
	// exit probe missing and leave a start time behind.
	sort.Slice(out, func(i, j int) bool {
		if (out[i].kind == "entry") != (out[j].kind == "entry") {
			return out[j].kind == "entry"
		}
		if out[i].binary != out[j].binary {
			return out[i].binary < out[j].binary
		}
		return out[i].kind < out[j].kind
	})
	return out
}

// Refused is a function the kernel refused to probe when Attach tried: an
// instruction under one of its probes that its uprobes will not handle.
type Refused struct {
	Index int    // in the functions given to Attach (for Add: base + index)
	Name  string // Function.Name
	Err   error  // the kernel's answer
}

// Attach attaches entry and exit probes for fns; the index of a function in
// fns is the Fn of its events. All or nothing, function by function: when
// the kernel refuses a probe (ENOTSUPP: an instruction its uprobes cannot
// handle; one such offset fails a whole uprobe_multi link), the functions
// it belongs to are found, left out whole, and listed by Refused; the
// others are attached. Any other failure undoes every attach
// and the error names what failed.
func (t *Tracer) Attach(fns []Function) error {
	if t.hists != nil && len(fns) > t.nfns {
		return fmt.Errorf("attach %d functions: the in-kernel histograms were sized for %d", len(fns), t.nfns)
	}
	t.refused = nil
	return t.attach(fns, 0)
}

// Add attaches more functions while tracing, as Attach does: fns[i] is
// function base+i in events. Only what Add attached is undone when it
// fails; Refused lists the functions it left out.
func (t *Tracer) Add(fns []Function, base int) error {
	if t.hists != nil && base+len(fns) > t.nfns {
		return fmt.Errorf("add %d functions: the in-kernel histograms were sized for %d", base+len(fns), t.nfns)
	}
	t.refused = nil
	return t.attach(fns, base)
}

func (t *Tracer) attach(fns []Function, base int) error {
	pid := -1
	if t.pid > 0 && !t.follow {
		pid = t.pid
	}
	links, perfLinks := len(t.links), len(t.perfLinks)
	undo := func() {
		for i := len(t.links) - 1; i >= links; i-- {
			t.links[i].Destroy()
		}
		for i := len(t.perfLinks) - 1; i >= perfLinks; i-- {
			t.perfLinks[i].close()
		}
		t.links, t.perfLinks = t.links[:links], t.perfLinks[:perfLinks]
	}
	left := map[int]bool{} // by function index
	for {
		var keep []Function
		var index []int
		for i, f := range fns {
			if !left[base+i] {
				keep = append(keep, f)
				index = append(index, base+i)
			}
		}
		var refused []Refused
		var err error
		for _, s := range plan(keep, index) {
			if refused, err = t.attachSet(s, pid); err != nil || len(refused) > 0 {
				break
			}
		}
		if err != nil || len(refused) == 0 {
			if err != nil {
				undo()
			}
			return err
		}
		// Start again without them: a function is attached whole or
		// not at all.
		undo()
		for _, r := range refused {
			if !left[r.Index] {
				left[r.Index] = true
				t.refused = append(t.refused, r)
			}
		}
		if len(left) == len(fns) {
			return fmt.Errorf("%w: the kernel refused to probe every function (%s): %w", ErrAttach, summarize(names(t.refused)), t.refused[0].Err)
		}
	}
}

// Refused lists the functions the last Attach left out.
func (t *Tracer) Refused() []Refused { return t.refused }

func names(rs []Refused) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

// refusedErrno tells the kernel's "this instruction cannot be probed"
// (x86's arch_uprobe_analyze_insn: ENOTSUPP, 524, which Go's syscall
// package has no name for, or ENOEXEC when it cannot decode it) from other
// failures. (arm64 says EINVAL, as it does for a bad offset: not taken for
// a refusal until the arm64 matrix can tell them apart.)
func refusedErrno(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == 524 || errno == syscall.ENOEXEC)
}

// attachSet attaches one probe set. A set the kernel refuses comes back
// as the functions (by cookie index) whose offsets it refuses, with no
// error, and nothing of the set attached.
func (t *Tracer) attachSet(s *probeSet, pid int) ([]Refused, error) {
	refusedAt := func(i int, err error) []Refused {
		return []Refused{{Index: int(s.cookies[i] & cookieFnMask), Name: s.names[i], Err: unwrapErrno(err)}}
	}
	err := t.attachSetOnce(s, pid)
	if err == nil || !refusedErrno(err) {
		return nil, err
	}
	if t.mode == AttachPerf {
		var at *perfAttachError
		if errors.As(err, &at) {
			return refusedAt(at.index, err), nil
		}
		return nil, err
	}
	// Bisect the offsets with a program that does nothing, so that
	// finding the culprits leaves no trace in the maps.
	check, cerr := t.mod.GetProgram(multiPrograms["check"])
	if cerr != nil {
		return nil, err
	}
	var out []Refused
	var find func(idx []int) error
	find = func(idx []int) error {
		offs := make([]uint64, len(idx))
		for i, j := range idx {
			offs[i] = s.offsets[j]
		}
		l, e := check.AttachUprobeMulti(pid, s.binary, offs, nil)
		if e == nil {
			l.Destroy()
			return nil
		}
		if !refusedErrno(e) {
			return fmt.Errorf("%w: %s probes on %s (%s): %w", ErrAttach, s.kind, s.binary, summarize(s.names), unwrapErrno(e))
		}
		if len(idx) == 1 {
			out = append(out, refusedAt(idx[0], e)...)
			return nil
		}
		if e := find(idx[:len(idx)/2]); e != nil {
			return e
		}
		return find(idx[len(idx)/2:])
	}
	all := make([]int, len(s.offsets))
	for i := range all {
		all[i] = i
	}
	if e := find(all); e != nil {
		return nil, e
	}
	if len(out) == 0 {
		return nil, err // refused as a whole, but not offset by offset
	}
	return out, nil
}

// perfAttachError is a perf-event attach that failed at one offset.
type perfAttachError struct {
	index int
	err   error
}

func (e *perfAttachError) Error() string { return e.err.Error() }
func (e *perfAttachError) Unwrap() error { return e.err }

func (t *Tracer) attachSetOnce(s *probeSet, pid int) error {
	programs := multiPrograms
	if t.mode == AttachPerf {
		programs = perfPrograms
	}
	prog, err := t.mod.GetProgram(programs[s.kind])
	if err != nil {
		return fmt.Errorf("find program %s: %w", programs[s.kind], err)
	}
	if t.mode == AttachPerf {
		for i, off := range s.offsets {
			fd, noLink := prog.FileDescriptor(), t.cookieProgs != nil
			if noLink {
				p, err := t.cookieProgs.cookieProgram(s.cookies[i], tailIndex[s.kind])
				if err != nil {
					return fmt.Errorf("%w: %s probe on %s at %#x (%s): %w", ErrAttach, s.kind, s.binary, off, s.names[i], err)
				}
				fd = p.FD()
			}
			l, err := attachPerf(fd, s.binary, off, s.ret, pid, s.cookies[i], noLink)
			if err != nil {
				return &perfAttachError{i, fmt.Errorf("%w: %s probe on %s at %#x (%s): %w", ErrAttach, s.kind, s.binary, off, s.names[i], unwrapErrno(err))}
			}
			t.perfLinks = append(t.perfLinks, l)
		}
		return nil
	}
	var link *bpf.BPFLink
	if s.ret {
		link, err = prog.AttachURetprobeMulti(pid, s.binary, s.offsets, s.cookies)
	} else {
		link, err = prog.AttachUprobeMulti(pid, s.binary, s.offsets, s.cookies)
	}
	if err != nil {
		return fmt.Errorf("%w: %s probes on %s (%s): %w", ErrAttach, s.kind, s.binary, summarize(s.names), unwrapErrno(err))
	}
	t.links = append(t.links, link)
	return nil
}

func summarize(names []string) string {
	seen := map[string]bool{}
	var uniq []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			uniq = append(uniq, n)
		}
	}
	if len(uniq) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(uniq[:3], ", "), len(uniq)-3)
	}
	return strings.Join(uniq, ", ")
}

// libbpfgo's message lists every offset; the errno is what matters.
func unwrapErrno(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EPERM, syscall.EACCES:
			return fmt.Errorf("%w (%w)", errno, ErrPermission)
		case syscall.ESRCH:
			return fmt.Errorf("%w (the traced process exited while ulat was attaching: nothing was traced)", errno)
		case syscall.EOPNOTSUPP, syscall.ENOSYS:
			return fmt.Errorf("%w (%w: Linux %s)", errno, ErrProbeKind, kernelRelease())
		}
		return errno
	}
	return err
}

// Poll waits up to timeout for events, then hands every pending event to fn.
// The *Event is only valid during the call.
func (t *Tracer) Poll(timeout time.Duration, fn func(*Event)) (int, error) {
	if err := t.ring.wait(int(timeout / time.Millisecond)); err != nil {
		return 0, err
	}
	return t.ring.drain(fn), nil
}

// Wake ends a Poll that waits, or the next one, at once: a reader that
// polls with a long timeout at rest still stops promptly.
func (t *Tracer) Wake() {
	if t.waker != nil {
		t.waker.wake()
	}
}

// Drain hands every pending event to fn without waiting.
func (t *Tracer) Drain(fn func(*Event)) int {
	return t.ring.drain(fn)
}

// Counters reads the counters, summed over CPUs.
func (t *Tracer) Counters() (Counters, error) {
	var l Counters
	for idx, dst := range map[uint32]*uint64{counterDropped: &l.Dropped, counterUnpaired: &l.Unpaired, counterEntries: &l.Entries, counterUnfollowed: &l.Unfollowed} {
		key := idx
		raw, err := t.counter.GetValue(unsafe.Pointer(&key))
		if err != nil {
			return l, fmt.Errorf("read counter %d: %w", idx, err)
		}
		for off := 0; off+8 <= len(raw); off += 8 {
			*dst += *(*uint64)(unsafe.Pointer(&raw[off]))
		}
	}
	return l, nil
}

// SetCosts replaces the probe costs taken out of the calls that complete
// from now on (see Options.Costs), as a running Calibration refines them:
// on each CPU its own costs where they were measured, the costs over every
// CPU elsewhere.
func (t *Tracer) SetCosts(costs Costs) error {
	m, err := t.mod.GetMap("costs")
	if err != nil {
		return fmt.Errorf("find costs map: %w", err)
	}
	if len(costs.Kinds) == 0 {
		return nil
	}
	cpus := possibleCPUs()
	for _, o := range []Overhead{
		{ExitRET, EntryEmulated}, {ExitRET, EntryStepped}, {ExitUretprobe, EntryEmulated}, {ExitUretprobe, EntryStepped},
	} {
		vals := make([]cost, cpus)
		for cpu := range vals {
			c, ok := costs.CPU[cpu][o]
			if !ok {
				c = costs.Kinds[o]
			}
			vals[cpu] = cost{Inner: c.Inner, Nested: c.Nested, Tail: c.Tail}
		}
		key := uint32(kindIndex(o))
		if err := m.Update(unsafe.Pointer(&key), unsafe.Pointer(&vals[0])); err != nil {
			return fmt.Errorf("set the probe costs: %w", err)
		}
	}
	return nil
}

// Histogram is one function's in-kernel histogram, summed over CPUs.
type Histogram struct {
	Count        uint64
	SumHi, SumLo uint64 // the 128-bit sum of the durations
	Min, Max     uint64
	// IntervalMin and IntervalMax are the extremes of the calls since the
	// last NextInterval (since attaching before the first); IntervalCalls
	// tells whether there was any.
	IntervalMin, IntervalMax uint64
	IntervalCalls            bool
	// NestedNs is the sum of the probe costs of traced calls made inside
	// the calls, which their durations had taken out.
	NestedNs uint64
	Slots    [HistSlots]uint64 // counts of package buckets' slots
}

// Histograms reads every function's in-kernel histogram, in the order of
// the functions given to Attach. Only with Options.KernelHistograms. With
// known, a function whose count known says the caller has already (it was
// not called since the caller's last read) is nil: an agent reading a
// thousand idle functions at each scrape neither sums nor allocates their
// 17.8 KB of slots again.
func (t *Tracer) Histograms(known func(fn int, count uint64) bool) ([]*Histogram, error) {
	if t.hists == nil {
		return nil, errors.New("read histograms: not aggregating in the kernel")
	}
	out := make([]*Histogram, t.nfns)
	size := int(unsafe.Sizeof(kernelHist{}))
	// One buffer for every function's per-CPU values (17.9 KB a CPU):
	// GetValue would allocate 36 MB per read of 1,000 functions on 2 CPUs.
	n, err := bpf.CalcMapValueSize(t.hists.ValueSize(), t.hists.Type())
	if err != nil {
		return nil, fmt.Errorf("read histograms: %w", err)
	}
	raw := make([]byte, n)
	for fn := 0; fn < t.nfns; fn++ {
		key := uint32(fn)
		if err := t.hists.GetValueReadInto(unsafe.Pointer(&key), &raw); err != nil { //nolint:staticcheck // GetValue allocates per call
			return nil, fmt.Errorf("read histogram %d: %w", fn, err)
		}
		var count uint64
		for off := 0; off+size <= len(raw); off += size {
			count += (*kernelHist)(unsafe.Pointer(&raw[off])).Count
		}
		if known != nil && known(fn, count) {
			continue
		}
		h := &Histogram{}
		out[fn] = h
		for off := 0; off+size <= len(raw); off += size {
			k := (*kernelHist)(unsafe.Pointer(&raw[off]))
			if k.Count == 0 || k.MinPlus1 == 0 {
				continue
			}
			if h.Count == 0 || k.MinPlus1-1 < h.Min {
				h.Min = k.MinPlus1 - 1
			}
			h.Max = max(h.Max, k.Max)
			if k.Epoch == t.epoch && k.EMinPlus1 != 0 {
				if !h.IntervalCalls || k.EMinPlus1-1 < h.IntervalMin {
					h.IntervalMin = k.EMinPlus1 - 1
				}
				h.IntervalMax = max(h.IntervalMax, k.EMax)
				h.IntervalCalls = true
			}
			h.Count += k.Count
			h.NestedNs += k.NestedSum
			var carry uint64
			h.SumLo, carry = bits.Add64(h.SumLo, k.Sum, 0)
			h.SumHi += carry
			for i, c := range k.Slots {
				h.Slots[i] += c
			}
		}
	}
	return out, nil
}

// NextInterval starts a new interval of the histograms' extremes: read
// Histograms, then call NextInterval. A call that completes between the
// two (microseconds) is counted in the next interval's counts but not in
// any interval's extremes.
func (t *Tracer) NextInterval() error {
	if t.mod == nil {
		return errors.New("next interval: tracer is closed")
	}
	control, err := t.mod.GetMap("control")
	if err != nil {
		return fmt.Errorf("next interval: %w", err)
	}
	key, epoch := uint32(controlEpoch), uint32(t.epoch+1)
	if err := control.Update(unsafe.Pointer(&key), unsafe.Pointer(&epoch)); err != nil {
		return fmt.Errorf("next interval: %w", err)
	}
	t.epoch++
	return nil
}

// Unfinished are the calls whose entry is still recorded when tracing ends.
type Unfinished struct {
	// NoReturn counts, per function index, calls of processes that have
	// exited: they never returned (panic, exit, a signal).
	NoReturn map[uint32]uint64
	// InFlight counts calls of live processes still running (or whose
	// frame was unwound without the frame being used again).
	InFlight uint64
}

// Unfinished reads the calls still recorded as in flight. Call it after
// Detach, so that none is added meanwhile.
func (t *Tracer) Unfinished() (Unfinished, error) {
	l := Unfinished{NoReturn: map[uint32]uint64{}}
	starts, err := t.mod.GetMap("starts")
	if err != nil {
		return l, fmt.Errorf("find starts map: %w", err)
	}
	alive := map[uint32]bool{}
	it := starts.Iterator()
	for it.Next() {
		raw := it.Key()
		if len(raw) < int(unsafe.Sizeof(callKey{})) {
			continue
		}
		k := *(*callKey)(unsafe.Pointer(&raw[0]))
		val, err := starts.GetValue(unsafe.Pointer(&raw[0]))
		if err != nil || len(val) < int(unsafe.Sizeof(call{})) {
			continue // gone meanwhile (LRU)
		}
		c := *(*call)(unsafe.Pointer(&val[0]))
		live, ok := alive[k.Tgid]
		if !ok {
			live = processRunning(int(k.Tgid))
			alive[k.Tgid] = live
		}
		if live {
			l.InFlight++
		} else {
			l.NoReturn[c.Fn]++
		}
	}
	if err := it.Err(); err != nil {
		return l, fmt.Errorf("read starts map: %w", err)
	}
	return l, nil
}

// processRunning reports whether pid still runs: it exists and is not a
// zombie that ended but was not reaped yet (its calls in flight are over).
func processRunning(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return false
	}
	f, err := procfs.StatFields(pid)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	return f[0] != "Z" && f[0] != "X"
}

// Minus returns the counts that l has beyond an earlier reading.
func (l Counters) Minus(earlier Counters) Counters {
	return Counters{Dropped: l.Dropped - earlier.Dropped, Unpaired: l.Unpaired - earlier.Unpaired, Entries: l.Entries - earlier.Entries,
		Unfollowed: l.Unfollowed - earlier.Unfollowed}
}

// Detach removes every probe; events already submitted can still be
// drained and counters read until Close. Exits whose entry probe is
// already gone meanwhile are not counted as unpaired.
func (t *Tracer) Detach() error {
	// First, so that no process stops at exec once nobody will read it:
	// the reader lets those already stopped go on after its last Drain.
	if err := t.stopStopping(); err != nil {
		return err
	}
	if t.mod != nil {
		if control, err := t.mod.GetMap("control"); err == nil {
			key, one := uint32(controlStopping), uint32(1)
			_ = control.Update(unsafe.Pointer(&key), unsafe.Pointer(&one))
		}
	}
	return t.detach()
}

func (t *Tracer) detach() error {
	var errs []error
	// Reverse order: entries were attached last, so they go first.
	for i := len(t.links) - 1; i >= 0; i-- {
		if err := t.links[i].Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("detach link %d: %w", i, err))
		}
	}
	for i := len(t.perfLinks) - 1; i >= 0; i-- {
		if err := t.perfLinks[i].close(); err != nil {
			errs = append(errs, fmt.Errorf("detach probe %d: %w", i, err))
		}
	}
	t.links, t.perfLinks = nil, nil
	if t.cookieProgs != nil {
		if err := t.cookieProgs.close(); err != nil {
			errs = append(errs, fmt.Errorf("unload cookie programs: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close detaches every probe and unloads the object. Safe to call twice.
func (t *Tracer) Close() error {
	err := t.stopStopping()
	err = errors.Join(err, t.detach())
	if t.stopOnExec && t.ring != nil {
		// Processes stopped at exec that nobody has let go on yet.
		t.ring.drain(func(e *Event) {
			if e.Kind == EventExec {
				t.Continue(int(e.Pid))
			}
		})
	}
	if t.forkLink != nil {
		if e := t.forkLink.Destroy(); e != nil {
			err = errors.Join(err, fmt.Errorf("detach fork tracepoint: %w", e))
		}
		t.forkLink = nil
	}
	if t.exitLink != nil {
		if e := t.exitLink.Destroy(); e != nil {
			err = errors.Join(err, fmt.Errorf("detach exit tracepoint: %w", e))
		}
		t.exitLink = nil
	}
	if t.ring != nil {
		t.ring.close()
		t.ring = nil
	}
	if t.mod != nil {
		t.mod.Close()
		t.mod = nil
	}
	return err
}
