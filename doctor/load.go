package doctor

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ulat-dev/ulat/probes"
)

// loadConfigs are the ways trace and run load ulat's BPF object, each
// with the programs it adds: what the load check loads.
var loadConfigs = []struct {
	name string
	opts probes.Options
}{
	{"in-kernel histograms (the default)", probes.Options{KernelHistograms: true, Functions: 1}},
	{"every call streamed (--aggregate user)", probes.Options{}},
	{"fork following (run --follow-forks)", probes.Options{FollowForks: true}},
}

// checkLoad loads the object as trace and run do. memlockShort says that
// the memlock check found RLIMIT_MEMLOCK too low for a kernel that charges
// BPF memory to it: the kernel then refuses the load with the same EPERM
// as for missing capabilities.
func checkLoad(verbose, memlockShort bool) Result {
	r := Result{Check: "load"}
	var loaded, failed []string
	var firstErr error
	var mode probes.AttachMode
	for _, c := range loadConfigs {
		opts := c.opts
		opts.LibbpfLog = libbpfLog(verbose)
		if opts.FollowForks {
			opts.Pid = os.Getpid()
		}
		t, err := probes.Open(opts)
		if err == nil {
			mode = t.Mode()
			err = t.Close()
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		loaded = append(loaded, c.name)
	}
	switch {
	case len(failed) == 0:
		r.Status = Pass
		r.Found = fmt.Sprintf("ulat's BPF object loads and unloads (%s programs) as trace and run load it: %s", modeName(mode), strings.Join(loaded, "; "))
	case len(loaded) == 0:
		r.Status = Fail
		r.Found = fmt.Sprintf("ulat's BPF object does not load: %s", strings.Join(failed, "; "))
		r.Fix = "fix the FAILs above first; ulat doctor -v shows libbpf's log with the verifier's reason"
		if errors.Is(firstErr, probes.ErrPermission) {
			r.Fix = loadPermissionFix(memlockShort)
		}
	default:
		r.Status = Warn
		r.Found = fmt.Sprintf("these load: %s; these do not: %s", strings.Join(loaded, "; "), strings.Join(failed, "; "))
		r.Fix = "ulat uses what loads: in-kernel histograms that the kernel rejects are replaced by user-space counting (--aggregate user), with a warning; please report the rejection with ulat doctor -v"
	}
	return r
}

// loadPermissionFix is what to do when the kernel refused the load with
// EPERM: on kernels before 5.11 that is also what exceeding RLIMIT_MEMLOCK
// gives.
func loadPermissionFix(memlockShort bool) string {
	if memlockShort {
		return "see memlock above: this kernel refuses BPF memory past RLIMIT_MEMLOCK with the same permission error as for missing capabilities; raise the limit (ulimit -l unlimited, LimitMEMLOCK=infinity in a systemd unit) or give ulat CAP_SYS_RESOURCE"
	}
	return "see privileges above: loading needs CAP_BPF and CAP_PERFMON (or root)"
}

func modeName(m probes.AttachMode) string {
	if m == probes.AttachMulti {
		return "uprobe_multi"
	}
	return "perf-event"
}

// checkAttach loads the object for one attach mode and attaches an entry
// probe and a uretprobe to ulat's own executable, at its ELF entry point,
// for this process only: that code has run already and never runs again,
// so nothing fires. needed says whether ulat uses this mode by default
// here: when it does not, a failure is only a WARN.
func checkAttach(mode probes.AttachMode, needed bool, verbose bool) Result {
	r := Result{Check: "attach (" + modeName(mode) + ")"}
	fail := func(found, fix string) Result {
		r.Status, r.Found, r.Fix = Fail, found, fix
		if !needed {
			r.Status = Warn
			r.Fix = "ulat does not use this mode here unless told to with --attach " + string(mode) + "; " + fix
		}
		return r
	}
	exe, off, err := selfEntry()
	if err != nil {
		r.Status = Warn
		r.Found = fmt.Sprintf("cannot find ulat's own entry point to attach to: %v", err)
		r.Fix = "the load check above still holds; try ulat trace on a test program"
		return r
	}
	// As trace and run open it: in-kernel histograms, or streaming where
	// the kernel rejects those.
	t, inKernel, _, err := probes.OpenCounting(probes.Options{Pid: os.Getpid(), Attach: mode, LibbpfLog: libbpfLog(verbose), KernelHistograms: true, Functions: 2}, true)
	if err != nil {
		return fail(fmt.Sprintf("cannot load the %s programs: %v", modeName(mode), err),
			"ulat doctor -v shows libbpf's log with the verifier's reason")
	}
	defer t.Close()
	// An entry, a RET-instruction exit (Go) and a uretprobe (native code):
	// every kind of probe ulat attaches.
	err = t.Attach([]probes.Function{
		{Name: "ulat's entry point", Binary: exe, Entry: off, Exits: []uint64{off}},
		{Name: "ulat's entry point (native)", Binary: exe, Entry: off},
	})
	if err != nil {
		fix := "ulat doctor -v shows libbpf's log"
		switch {
		case errors.Is(err, probes.ErrPermission) && mode == probes.AttachPerf:
			fix = "perf-event uprobes need CAP_SYS_ADMIN on recent kernels (6.16+, and stable kernels since July 2025: CAP_PERFMON no longer does), and a seccomp profile that allows perf_event_open: run ulat as root"
		case errors.Is(err, probes.ErrPermission):
			fix = "attaching needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), and a seccomp profile that allows bpf (docker: --cap-add BPF --cap-add PERFMON, or --privileged)"
		}
		return fail(fmt.Sprintf("cannot attach: %v", err), fix)
	}
	if err := t.Detach(); err != nil {
		r.Status = Warn
		r.Found = fmt.Sprintf("attached, but detaching failed: %v", err)
		r.Fix = "please report this"
		return r
	}
	r.Status = Pass
	r.Found = fmt.Sprintf("attached and detached an entry uprobe, an exit uprobe and a uretprobe on %s", exe)
	if !probes.KernelHasCookies() {
		r.Found += ", each with a program of its own (no BPF cookies)"
	}
	if !inKernel {
		r.Found += ", counting in user space (the kernel rejects the in-kernel histograms)"
	}
	if !needed {
		r.Found += " (used only with --attach " + string(mode) + ")"
	}
	return r
}

// selfEntry returns this executable's path and the file offset of its ELF
// entry point.
func selfEntry() (string, uint64, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, err
	}
	f, err := elf.Open(exe)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Filesz {
			return exe, f.Entry - p.Vaddr + p.Off, nil
		}
	}
	return "", 0, fmt.Errorf("%s: entry point %#x is in no executable segment", exe, f.Entry)
}

// libbpfLog is where libbpf's log goes: stderr when verbose.
func libbpfLog(verbose bool) io.Writer {
	if verbose {
		return os.Stderr
	}
	return nil
}
