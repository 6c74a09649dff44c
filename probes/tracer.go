// Package probes loads ulat's BPF object, attaches entry and exit uprobes to
// the functions it is given, and reads completed calls and loss counters
// back. It knows nothing of symbols or reports.
package probes

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"

	bpf "github.com/aquasecurity/libbpfgo"
	"golang.org/x/sys/unix"

	ulatbpf "github.com/ulat-dev/ulat/bpf"
)

// Sentinel errors a caller can act on.
var (
	ErrPermission = errors.New("permission denied: ulat needs root, or the capabilities CAP_BPF and CAP_PERFMON (try sudo)")
	ErrAttach     = errors.New("attach failed")
)

// Function is one function to time: where its entry is, and how its exits
// are caught.
type Function struct {
	Name   string
	Binary string   // absolute path of the file the offsets refer to
	Entry  uint64   // file offset of the entry probe
	Exits  []uint64 // file offsets of RET instructions; empty means use a uretprobe
	Go     bool     // pair calls by goroutine rather than by thread
}

// Options configure a Tracer at load time.
type Options struct {
	Pid     int  // only this process (0: every process that runs the binaries)
	Verbose bool // show libbpf's own log on stderr
}

// Lost counts calls the tracer saw but could not report.
type Lost struct {
	Dropped  uint64 // ring buffer was full
	Unpaired uint64 // exit without a recorded entry
	Entries  uint64 // entries seen in all (for cross-checks)
}

// Tracer is a loaded BPF object with its attached probes.
type Tracer struct {
	mod     *bpf.Module
	links   []*bpf.BPFLink
	ring    *ringReader
	counter *bpf.BPFMap
	pid     int
}

// the libbpf logger is process-wide.
func setLibbpfLog(verbose bool) {
	bpf.SetLoggerCbs(bpf.Callbacks{
		Log: func(level int, msg string) {
			if verbose {
				fmt.Fprint(os.Stderr, "libbpf: "+msg)
			}
		},
	})
}

// Open loads the embedded BPF object into the kernel.
func Open(opts Options) (*Tracer, error) {
	setLibbpfLog(opts.Verbose)

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
	t := &Tracer{mod: mod, pid: opts.Pid}
	if err := mod.InitGlobalVariable("target_tgid", uint32(opts.Pid)); err != nil {
		t.Close()
		return nil, fmt.Errorf("configure target pid: %w", err)
	}
	if err := mod.BPFLoadObject(); err != nil {
		t.Close()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("load bpf object: %w", ErrPermission)
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
	t.counter, err = mod.GetMap("counters")
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("find counters map: %w", err)
	}
	return t, nil
}

// probeSet is one uprobe_multi link: a program, a file, offsets and cookies.
type probeSet struct {
	prog    string
	ret     bool
	binary  string
	offsets []uint64
	cookies []uint64
	names   []string
}

// plan groups the functions' probes into one link per binary and probe kind.
func plan(fns []Function) []*probeSet {
	sets := map[string]*probeSet{}
	add := func(prog string, ret bool, binary string, off, cookie uint64, name string) {
		k := prog + "\x00" + binary
		s := sets[k]
		if s == nil {
			s = &probeSet{prog: prog, ret: ret, binary: binary}
			sets[k] = s
		}
		s.offsets = append(s.offsets, off)
		s.cookies = append(s.cookies, cookie)
		s.names = append(s.names, name)
	}
	for i, fn := range fns {
		cookie := uint64(i)
		if fn.Go {
			cookie |= cookieGo
		}
		add("ulat_entry", false, fn.Binary, fn.Entry, cookie, fn.Name)
		if len(fn.Exits) == 0 {
			add("ulat_return", true, fn.Binary, fn.Entry, cookie, fn.Name)
		}
		for _, off := range fn.Exits {
			add("ulat_exit", false, fn.Binary, off, cookie, fn.Name)
		}
	}
	out := make([]*probeSet, 0, len(sets))
	for _, s := range sets {
		out = append(out, s)
	}
	// Entries last: a call that starts while we attach must not find its
	// exit probe missing and leave a start time behind.
	sort.Slice(out, func(i, j int) bool {
		if (out[i].prog == "ulat_entry") != (out[j].prog == "ulat_entry") {
			return out[j].prog == "ulat_entry"
		}
		if out[i].binary != out[j].binary {
			return out[i].binary < out[j].binary
		}
		return out[i].prog < out[j].prog
	})
	return out
}

// Attach attaches entry and exit probes for fns; the index of a function in
// fns is the Fn of its events. All or nothing: when one attach fails, the
// ones already made are undone and the error names what failed.
func (t *Tracer) Attach(fns []Function) error {
	pid := -1
	if t.pid > 0 {
		pid = t.pid
	}
	for _, s := range plan(fns) {
		prog, err := t.mod.GetProgram(s.prog)
		if err != nil {
			t.detach()
			return fmt.Errorf("find program %s: %w", s.prog, err)
		}
		var link *bpf.BPFLink
		if s.ret {
			link, err = prog.AttachURetprobeMulti(pid, s.binary, s.offsets, s.cookies)
		} else {
			link, err = prog.AttachUprobeMulti(pid, s.binary, s.offsets, s.cookies)
		}
		if err != nil {
			t.detach()
			return fmt.Errorf("%w: %s probes on %s (%s): %w", ErrAttach, kind(s), s.binary, summarize(s.names), unwrapErrno(err))
		}
		t.links = append(t.links, link)
	}
	return nil
}

func kind(s *probeSet) string {
	switch s.prog {
	case "ulat_entry":
		return "entry"
	case "ulat_return":
		return "return"
	}
	return "exit"
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
		case syscall.EOPNOTSUPP, syscall.ENOSYS:
			return fmt.Errorf("%w (this kernel has no uprobe_multi; it needs Linux 6.6 or newer)", errno)
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

// Drain hands every pending event to fn without waiting.
func (t *Tracer) Drain(fn func(*Event)) int {
	return t.ring.drain(fn)
}

// Lost reads the loss counters, summed over CPUs.
func (t *Tracer) Lost() (Lost, error) {
	var l Lost
	for idx, dst := range map[uint32]*uint64{counterDropped: &l.Dropped, counterUnpaired: &l.Unpaired, counterEntries: &l.Entries} {
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

// Minus returns the counts that l has beyond an earlier reading.
func (l Lost) Minus(earlier Lost) Lost {
	return Lost{Dropped: l.Dropped - earlier.Dropped, Unpaired: l.Unpaired - earlier.Unpaired, Entries: l.Entries - earlier.Entries}
}

// Detach removes every probe; events already submitted can still be
// drained and counters read until Close.
func (t *Tracer) Detach() error { return t.detach() }

func (t *Tracer) detach() error {
	var errs []error
	// Reverse order: entries were attached last, so they go first.
	for i := len(t.links) - 1; i >= 0; i-- {
		if err := t.links[i].Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("detach link %d: %w", i, err))
		}
	}
	t.links = nil
	return errors.Join(errs...)
}

// Close detaches every probe and unloads the object. Safe to call twice.
func (t *Tracer) Close() error {
	err := t.detach()
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
