// Package doctor checks whether this machine, this user and optionally one
// process can be traced by ulat, and explains what to do when not. Each
// check is a function that returns a Result; Run gathers what the checks
// need from the system and runs them all. cmd/ulat only prints the results.
package doctor

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ulat-dev/ulat/probes"
)

// Status is the outcome of one check.
type Status string

const (
	Pass Status = "PASS"
	Warn Status = "WARN" // ulat works, with a limit worth knowing
	Fail Status = "FAIL" // ulat will not work until this is fixed
)

// Result is one checked fact: what was found, and for WARN and FAIL what
// to do about it.
type Result struct {
	Status Status
	Check  string // short name of the check: "kernel", "BTF", "seccomp"...
	Found  string
	Fix    string // empty for PASS
}

// String formats r as ulat doctor prints it: one line, and an indented
// line with the fix for WARN and FAIL.
func (r Result) String() string {
	s := fmt.Sprintf("%s  %s: %s", r.Status, r.Check, r.Found)
	if r.Status != Pass && r.Fix != "" {
		s += "\n      " + r.Fix
	}
	return s
}

// Failed counts the results that are FAIL.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

// Options select the checks.
type Options struct {
	Pid     int  // also check that this process can be traced (0: none)
	Verbose bool // show libbpf's log while loading
}

// Paths of the kernel interfaces the checks read.
const (
	btfPath       = "/sys/kernel/btf/vmlinux"
	uprobePMUType = "/sys/bus/event_source/devices/uprobe/type"
)

// Run runs every check, in the order they are best read in.
func Run(opts Options) []Result {
	k := readKernel()
	btf, btfErr := os.ReadFile(btfPath)
	cfg, cfgFrom := readKernelConfig(k.Release)
	caps, capErr := effectiveCaps()
	capLast := readSysctlInt("/proc/sys/kernel/cap_last_cap")
	feat := kernelFeatures(k, btf, btfErr)
	multi := probes.KernelHasUprobeMulti()

	var out []Result
	out = append(out,
		checkKernel(k),
		checkBTF(btfPath, len(btf), btfErr),
		checkUprobes(readUprobePMU(), cfg, cfgFrom),
		checkUprobeMulti(multi, k),
		checkCookies(feat, k),
		checkPrivileges(os.Geteuid(), caps, capErr, capLast, multi),
		checkSysctls(readSysctlInt("/proc/sys/kernel/unprivileged_bpf_disabled"),
			readSysctlInt("/proc/sys/kernel/perf_event_paranoid"), hasTracingCaps(caps, capLast)),
		checkMemlock(readMemlock(), k, caps.Has(CapSysResource)),
	)
	load := checkLoad(opts.Verbose)
	out = append(out, load)
	if load.Status != Fail {
		if multi {
			out = append(out, checkAttach(probes.AttachMulti, true, opts.Verbose))
		}
		out = append(out, checkAttach(probes.AttachPerf, !multi, opts.Verbose))
	}
	if opts.Pid != 0 {
		out = append(out, checkProcess(opts.Pid, k, feat)...)
	}
	return out
}

// --- kernel ---

// Version is a kernel version, from the start of its release string.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// ParseVersion reads the version at the start of a kernel release such as
// "6.1.0-18-amd64", "5.15.0-91-generic" or "6.11.0-rc3+".
func ParseVersion(release string) (Version, error) {
	var n [3]int
	rest := release
	i := 0
	for ; i < 3; i++ {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 {
			break
		}
		v, err := strconv.Atoi(rest[:j])
		if err != nil {
			return Version{}, fmt.Errorf("kernel release %q: %w", release, err)
		}
		n[i] = v
		rest = rest[j:]
		if !strings.HasPrefix(rest, ".") {
			i++
			break
		}
		rest = rest[1:]
	}
	if i < 2 {
		return Version{}, fmt.Errorf("kernel release %q does not start with a version", release)
	}
	return Version{n[0], n[1], n[2]}, nil
}

// Kernel is the running kernel, from uname.
type Kernel struct {
	Release string
	Machine string // x86_64, aarch64
	Version Version
	Err     error // the release could not be parsed
}

func readKernel() Kernel {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Kernel{Err: fmt.Errorf("uname: %w", err)}
	}
	k := Kernel{Release: unix.ByteSliceToString(u.Release[:]), Machine: unix.ByteSliceToString(u.Machine[:])}
	k.Version, k.Err = ParseVersion(k.Release)
	return k
}

// minKernel is the oldest kernel ulat supports (probes.MinKernel).
var minKernel, _ = ParseVersion(probes.MinKernel)

func checkKernel(k Kernel) Result {
	r := Result{Check: "kernel"}
	if k.Err != nil {
		r.Status, r.Found = Warn, k.Err.Error()
		r.Fix = "ulat needs Linux " + probes.MinKernel + " or newer; the checks below test the features themselves"
		return r
	}
	r.Found = fmt.Sprintf("Linux %s (%s)", k.Release, k.Machine)
	if !k.Version.AtLeast(minKernel.Major, minKernel.Minor) {
		r.Status = Fail
		r.Found += ", older than " + probes.MinKernel
		r.Fix = "ulat supports Linux " + probes.MinKernel + " and newer (Debian 11's kernel and every later one); upgrade the kernel"
		return r
	}
	r.Status = Pass
	return r
}

func checkBTF(path string, size int, err error) Result {
	r := Result{Check: "BTF"}
	if err != nil {
		r.Status = Fail
		r.Found = fmt.Sprintf("cannot read %s: %v", path, unwrapPath(err))
		r.Fix = "ulat's BPF program is CO-RE and needs the kernel's BTF: use a kernel built with CONFIG_DEBUG_INFO_BTF=y (the stock kernels of Debian 11+, Ubuntu 20.10+, Fedora 31+ and RHEL 8.2+ are)"
		if errors.Is(err, fs.ErrPermission) {
			r.Fix = "run ulat as root: the kernel's BTF is needed to load ulat's program"
		}
		return r
	}
	r.Status = Pass
	r.Found = fmt.Sprintf("%s (%.1f MiB)", path, float64(size)/(1<<20))
	return r
}

// Features are the optional kernel features ulat uses, as far as they can
// be told without loading anything.
type Features struct {
	Cookies, CookiesKnown                   bool   // bpf_get_attach_cookie for uprobes (5.15)
	UretprobeSyscall, UretprobeSyscallKnown bool   // return through a syscall (x86-64, 6.11)
	From                                    string // how they were told: "kernel BTF" or "kernel version"
}

// kernelFeatures looks for the features' functions in the kernel's BTF,
// which tells the truth about backports, and falls back on the version.
func kernelFeatures(k Kernel, btf []byte, btfErr error) Features {
	if btfErr == nil && len(btf) > 0 {
		return Features{
			Cookies:               probes.BTFHasCookies(btf),
			CookiesKnown:          true,
			UretprobeSyscall:      probes.BTFHasUretprobeSyscall(btf),
			UretprobeSyscallKnown: true,
			From:                  "kernel BTF",
		}
	}
	if k.Err != nil {
		return Features{}
	}
	return Features{
		Cookies:               k.Version.AtLeast(5, 15),
		CookiesKnown:          true,
		UretprobeSyscall:      k.Machine == "x86_64" && k.Version.AtLeast(6, 11),
		UretprobeSyscallKnown: true,
		From:                  "kernel version",
	}
}

// PMU is what the kernel says about its uprobe PMU.
type PMU struct {
	Type int
	Err  error
}

func readUprobePMU() PMU {
	b, err := os.ReadFile(uprobePMUType)
	if err != nil {
		return PMU{Err: err}
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return PMU{Err: fmt.Errorf("%s: %q is not a number", uprobePMUType, b)}
	}
	return PMU{Type: t}
}

// checkUprobes: the uprobe PMU is what --attach perf opens, and proves that
// the kernel has uprobes at all; the kernel configuration says so too when
// it can be read.
func checkUprobes(pmu PMU, cfg map[string]string, cfgFrom string) Result {
	r := Result{Check: "uprobes"}
	var conf string
	if cfg != nil {
		conf = fmt.Sprintf("CONFIG_UPROBES=%s, CONFIG_UPROBE_EVENTS=%s in %s",
			orUnset(cfg["CONFIG_UPROBES"]), orUnset(cfg["CONFIG_UPROBE_EVENTS"]), cfgFrom)
	}
	switch {
	case pmu.Err == nil:
		r.Status = Pass
		r.Found = fmt.Sprintf("uprobe PMU present (type %d)", pmu.Type)
		if conf != "" {
			r.Found += "; " + conf
		}
	case cfg != nil && cfg["CONFIG_UPROBES"] == "y" && cfg["CONFIG_UPROBE_EVENTS"] == "y":
		r.Status = Warn
		r.Found = fmt.Sprintf("the kernel has uprobes (%s) but %s cannot be read: %v", conf, uprobePMUType, unwrapPath(pmu.Err))
		r.Fix = "--attach perf needs the uprobe PMU in /sys: in a container, mount the host's /sys (uprobe_multi attaching does not need it)"
	case cfg != nil:
		r.Status = Fail
		r.Found = fmt.Sprintf("no uprobe PMU (%v) and %s", unwrapPath(pmu.Err), conf)
		r.Fix = "ulat needs a kernel built with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y"
	default:
		r.Status = Fail
		r.Found = fmt.Sprintf("no uprobe PMU (%v), and no kernel configuration to read (/proc/config.gz, /boot/config-RELEASE)", unwrapPath(pmu.Err))
		r.Fix = "ulat needs a kernel built with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y; in a container, mount the host's /sys"
	}
	return r
}

func orUnset(v string) string {
	if v == "" {
		return "unset"
	}
	return v
}

func checkUprobeMulti(has bool, k Kernel) Result {
	r := Result{Check: "uprobe_multi"}
	if has {
		r.Status = Pass
		r.Found = "present (Linux 6.6+): all the probes in one file attach through one link"
		return r
	}
	r.Status = Warn
	r.Found = "missing (it came in Linux 6.6)"
	if k.Err == nil {
		r.Found = fmt.Sprintf("missing (it came in Linux 6.6; this is %d.%d)", k.Version.Major, k.Version.Minor)
	}
	r.Fix = "ulat falls back to --attach perf by itself: one perf-event link per probe, which works but is slow to attach past about a thousand probes; a 6.6+ kernel attaches them at once"
	return r
}

func checkCookies(f Features, k Kernel) Result {
	r := Result{Check: "BPF cookies"}
	switch {
	case !f.CookiesKnown:
		r.Status = Warn
		r.Found = "cannot tell: no kernel BTF and no kernel version"
		r.Fix = "without BPF cookies (Linux 5.15+) ulat gives each probe a small program of its own; the attach checks below test it"
	case f.Cookies:
		r.Status = Pass
		r.Found = fmt.Sprintf("bpf_get_attach_cookie for uprobes present (Linux 5.15+, from the %s): --attach perf can tell functions apart", f.From)
	default:
		r.Status = Warn
		r.Found = fmt.Sprintf("bpf_get_attach_cookie for uprobes missing (it came in Linux 5.15; from the %s)", f.From)
		r.Fix = "ulat gives each probe a small program of its own that tells its function apart: it works, at the cost of a tail call per probe hit and a program per probe to load"
	}
	return r
}

// --- privileges ---

// Capability numbers (linux/capability.h).
const (
	CapSysResource = 24
	CapSysAdmin    = 21
	CapPerfmon     = 38
	CapBPF         = 39
)

var capNames = map[int]string{CapSysAdmin: "CAP_SYS_ADMIN", CapPerfmon: "CAP_PERFMON", CapBPF: "CAP_BPF"}

// Caps is a capability set as a bit mask (bit n is capability n).
type Caps uint64

// Has reports whether capability c is in the set.
func (c Caps) Has(cap int) bool { return cap >= 0 && cap < 64 && c&(1<<uint(cap)) != 0 }

// ParseCaps reads a mask as /proc/PID/status prints it (CapEff: 000001ffffffffff).
func ParseCaps(hex string) (Caps, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("capability mask %q: %w", hex, err)
	}
	return Caps(v), nil
}

// effectiveCaps asks the kernel for this process's effective capabilities.
func effectiveCaps() (Caps, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return Caps(uint64(data[0].Effective) | uint64(data[1].Effective)<<32), nil
}

// hasTracingCaps reports whether caps are enough to load and attach ulat's
// programs: CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, which is all that
// counts on kernels before 5.8 (capLast < 38: they do not have the others).
func hasTracingCaps(caps Caps, capLast int) bool {
	if caps.Has(CapSysAdmin) {
		return true
	}
	return capLast >= CapBPF && caps.Has(CapBPF) && caps.Has(CapPerfmon)
}

// checkPrivileges: multi says whether the kernel has uprobe_multi links;
// without them ulat attaches through perf_event_open's uprobe PMU, which
// "perf: Revert to requiring CAP_SYS_ADMIN for uprobes" (Linux 6.16, and
// stable kernels from July 2025 on) closed to CAP_PERFMON.
func checkPrivileges(euid int, caps Caps, capErr error, capLast int, multi bool) Result {
	r := Result{Check: "privileges"}
	who := fmt.Sprintf("effective uid %d", euid)
	if euid == 0 {
		who += " (root)"
	}
	if capErr != nil {
		r.Status = Warn
		r.Found = fmt.Sprintf("%s; cannot read capabilities: %v", who, capErr)
		r.Fix = "ulat needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; the load check below tells whether they are there"
		return r
	}
	var have, miss []string
	for _, c := range []int{CapBPF, CapPerfmon, CapSysAdmin} {
		if caps.Has(c) {
			have = append(have, capNames[c])
		} else {
			miss = append(miss, capNames[c])
		}
	}
	r.Found = who
	if len(have) > 0 {
		r.Found += "; has " + strings.Join(have, ", ")
	}
	if len(miss) > 0 {
		r.Found += "; lacks " + strings.Join(miss, ", ")
	}
	old := capLast > 0 && capLast < CapPerfmon
	if old {
		r.Found += fmt.Sprintf(" (this kernel predates CAP_BPF and CAP_PERFMON: its last capability is %d)", capLast)
	}
	if hasTracingCaps(caps, capLast) {
		r.Status = Pass
		if !multi && !caps.Has(CapSysAdmin) {
			r.Status = Warn
			r.Fix = "without uprobe_multi ulat attaches through perf_event_open, and recent kernels (6.16+, stable kernels since July 2025) allow that for uprobes only with CAP_SYS_ADMIN: if the attach check below fails, run ulat as root"
		}
		return r
	}
	r.Status = Fail
	switch {
	case old:
		r.Fix = "on this kernel ulat needs CAP_SYS_ADMIN: run it as root (sudo)"
	case euid == 0:
		r.Fix = "you are root without the capabilities, as in a container: give it CAP_BPF and CAP_PERFMON (docker run --cap-add BPF --cap-add PERFMON, or --privileged), or run ulat on the host"
	default:
		r.Fix = "run ulat as root (sudo), or give the binary the capabilities: sudo setcap cap_bpf,cap_perfmon+ep $(command -v ulat)"
	}
	return r
}

// readSysctlInt reads a number from a /proc/sys file; -1 when it cannot.
func readSysctlInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return v
}

func sysctlValue(v int) string {
	if v < 0 {
		return "unreadable"
	}
	return strconv.Itoa(v)
}

// checkSysctls reports the two settings people look at first. Neither
// changes anything for ulat: its programs are tracing programs, which need
// CAP_BPF and CAP_PERFMON whatever unprivileged_bpf_disabled says, and
// perf_event_paranoid does not apply to CAP_PERFMON.
func checkSysctls(unprivBPF, paranoid int, privileged bool) Result {
	r := Result{Check: "sysctls", Status: Pass}
	r.Found = fmt.Sprintf("kernel.unprivileged_bpf_disabled=%s, kernel.perf_event_paranoid=%s",
		sysctlValue(unprivBPF), sysctlValue(paranoid))
	if privileged {
		r.Found += " (they do not apply with the capabilities above)"
	} else {
		r.Found += " (no value of these lets ulat run without CAP_BPF and CAP_PERFMON: tracing programs always need them)"
	}
	return r
}

// Memlock is the RLIMIT_MEMLOCK of this process.
type Memlock struct {
	Cur, Max uint64
	Err      error
}

func readMemlock() Memlock {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
		return Memlock{Err: err}
	}
	return Memlock{Cur: rl.Cur, Max: rl.Max}
}

func formatLimit(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	switch {
	case v >= 1<<20 && v%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", v>>20)
	case v >= 1<<10 && v%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", v>>10)
	}
	return fmt.Sprintf("%d bytes", v)
}

// checkMemlock: before Linux 5.11, BPF maps and programs were charged to
// RLIMIT_MEMLOCK; since, to the memory cgroup. On an older kernel libbpf
// raises the limit to unlimited itself while ulat loads, which needs
// CAP_SYS_RESOURCE (root has it, except in most containers).
func checkMemlock(m Memlock, k Kernel, canRaise bool) Result {
	r := Result{Check: "memlock"}
	if m.Err != nil {
		r.Status = Warn
		r.Found = fmt.Sprintf("cannot read RLIMIT_MEMLOCK: %v", m.Err)
		r.Fix = "on kernels before 5.11 BPF memory counts against RLIMIT_MEMLOCK; the load check below tells whether it is enough"
		return r
	}
	lim := fmt.Sprintf("RLIMIT_MEMLOCK %s (hard %s)", formatLimit(m.Cur), formatLimit(m.Max))
	switch {
	case k.Err == nil && k.Version.AtLeast(5, 11):
		r.Status = Pass
		r.Found = lim + "; not used for BPF: Linux 5.11+ charges BPF memory to the memory cgroup"
	case m.Cur == unix.RLIM_INFINITY:
		r.Status = Pass
		r.Found = lim + "; BPF memory counts against it on this kernel, and it is unlimited"
	case canRaise:
		r.Status = Pass
		r.Found = lim + "; BPF memory counts against it on this kernel, and ulat raises it while loading (it has CAP_SYS_RESOURCE)"
	default:
		r.Status = Warn
		r.Found = lim + "; on kernels before 5.11 BPF memory counts against it, ulat cannot raise it without CAP_SYS_RESOURCE, and ulat's maps (a 4 MiB ring buffer by default, a 65,536-entry call table) need about 10 MiB"
		r.Fix = "raise it before running ulat: ulimit -l unlimited (as root), LimitMEMLOCK=infinity in a systemd unit, docker run --ulimit memlock=-1"
	}
	return r
}

// --- loading and attaching ---

// loadConfigs are the ways trace and run load ulat's BPF object, each
// with the programs it adds: what the load check loads.
var loadConfigs = []struct {
	name string
	opts probes.Options
}{
	{"in-kernel histograms (the default)", probes.Options{Aggregate: true, Functions: 1}},
	{"every call streamed (--aggregate user)", probes.Options{}},
	{"fork following (run --follow-forks)", probes.Options{FollowForks: true}},
}

func checkLoad(verbose bool) Result {
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
			r.Fix = "see privileges above: loading needs CAP_BPF and CAP_PERFMON (or root)"
		}
	default:
		r.Status = Warn
		r.Found = fmt.Sprintf("these load: %s; these do not: %s", strings.Join(loaded, "; "), strings.Join(failed, "; "))
		r.Fix = "ulat uses what loads: in-kernel histograms that the kernel rejects are replaced by user-space counting (--aggregate user), with a warning; please report the rejection with ulat doctor -v"
	}
	return r
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
	t, inKernel, _, err := probes.OpenCounting(probes.Options{Pid: os.Getpid(), Attach: mode, LibbpfLog: libbpfLog(verbose), Aggregate: true, Functions: 2}, true)
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

// --- one process ---

// Status fields of /proc/PID/status that the checks use.
type ProcStatus struct {
	Name           string
	Seccomp        int // 0 none, 1 strict, 2 filter; -1 when the line is missing
	SeccompFilters int // number of filters; -1 when the line is missing (before 5.9)
	NoNewPrivs     bool
	CapEff         Caps
	HasCapEff      bool
}

// ParseStatus reads the fields of ProcStatus from the text of
// /proc/PID/status.
func ParseStatus(data []byte) (ProcStatus, error) {
	st := ProcStatus{Seccomp: -1, SeccompFilters: -1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "Name":
			st.Name = val
		case "Seccomp":
			st.Seccomp, err = strconv.Atoi(val)
		case "Seccomp_filters":
			st.SeccompFilters, err = strconv.Atoi(val)
		case "NoNewPrivs":
			st.NoNewPrivs = val == "1"
		case "CapEff":
			st.CapEff, err = ParseCaps(val)
			st.HasCapEff = err == nil
		}
		if err != nil {
			return st, fmt.Errorf("status line %q: %w", sc.Text(), err)
		}
	}
	return st, sc.Err()
}

// checkProcess checks that process pid exists and can be read, and
// whether a seccomp filter there can interfere with uretprobes.
func checkProcess(pid int, k Kernel, f Features) []Result {
	proc := fmt.Sprintf("/proc/%d", pid)
	data, err := os.ReadFile(proc + "/status")
	if err != nil {
		r := Result{Check: "process", Status: Fail}
		if errors.Is(err, fs.ErrNotExist) {
			r.Found = fmt.Sprintf("no process %d", pid)
			r.Fix = "check the pid (ps -C NAME -o pid=, pgrep NAME); a pid in a container's namespace differs from the host's: use the host's"
		} else {
			r.Found = fmt.Sprintf("cannot read %s/status: %v", proc, unwrapPath(err))
			r.Fix = "run ulat as root"
		}
		return []Result{r}
	}
	st, err := ParseStatus(data)
	if err != nil {
		return []Result{{Check: "process", Status: Warn, Found: err.Error(), Fix: "please report this, with the contents of " + proc + "/status"}}
	}
	out := []Result{checkProcessExe(pid, st)}
	goExe := isGoExecutable(proc + "/exe")
	out = append(out, checkSeccomp(pid, st, k, f, goExe), checkUretprobeSyscall(k, f))
	return out
}

func checkProcessExe(pid int, st ProcStatus) Result {
	r := Result{Check: "process"}
	proc := fmt.Sprintf("/proc/%d", pid)
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		r.Status = Fail
		r.Found = fmt.Sprintf("%d (%s) exists, but its executable cannot be read: %v", pid, st.Name, unwrapPath(err))
		r.Fix = "ulat finds the process's code through /proc/PID/exe and /proc/PID/maps: run it as root (or with CAP_SYS_PTRACE) to read another user's process; a kernel thread has no code to trace"
		return r
	}
	r.Status = Pass
	r.Found = fmt.Sprintf("%d (%s) runs %s", pid, st.Name, exe)
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	its, err2 := os.Readlink(proc + "/ns/mnt")
	if err1 == nil && err2 == nil && self != its {
		r.Found += "; it is in another mount namespace (a container): ulat reaches its files through " + proc + "/root"
	}
	return r
}

// isGoExecutable reports whether the ELF file at path is a Go program.
func isGoExecutable(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Section(".go.buildinfo") != nil || f.Section(".gopclntab") != nil
}

// uretprobeSeccompFixed is the first kernel whose seccomp lets the
// uretprobe syscall through every filter ("seccomp: passthrough uretprobe
// systemcall without filtering", also backported to 6.12 and 6.13 stable
// kernels in February 2025).
var uretprobeSeccompFixed = Version{6, 14, 0}

// checkSeccomp: on x86-64 since Linux 6.11 a uretprobe returns through the
// uretprobe syscall, made from the kernel's trampoline in the traced
// process. A seccomp filter that does not know that syscall and kills or
// traps (Docker's default profile did) kills the process at the first
// traced return, until kernels let it through filters. ulat uses uretprobes
// only for native code: Go functions are timed with uprobes on their RETs.
func checkSeccomp(pid int, st ProcStatus, k Kernel, f Features, goExe bool) Result {
	r := Result{Check: "seccomp"}
	mode := "no seccomp filter"
	switch st.Seccomp {
	case -1:
		r.Status = Pass
		r.Found = "unknown (this kernel does not report it)"
		return r
	case 0:
		r.Status = Pass
		r.Found = fmt.Sprintf("%d has no seccomp filter", pid)
		return r
	case 1:
		mode = "strict seccomp mode"
	case 2:
		mode = "a seccomp filter"
		if st.SeccompFilters > 0 {
			mode = fmt.Sprintf("a seccomp filter (%d)", st.SeccompFilters)
		}
	default:
		mode = fmt.Sprintf("seccomp mode %d", st.Seccomp)
	}
	r.Found = fmt.Sprintf("%d has %s", pid, mode)
	switch {
	case f.UretprobeSyscallKnown && !f.UretprobeSyscall:
		r.Status = Pass
		r.Found += "; harmless here: this kernel returns from uretprobes with a trap, not the uretprobe syscall"
	case k.Err == nil && k.Version.AtLeast(uretprobeSeccompFixed.Major, uretprobeSeccompFixed.Minor):
		r.Status = Pass
		r.Found += "; harmless here: Linux 6.14+ lets the uretprobe syscall through every seccomp filter"
	default:
		r.Status = Warn
		r.Found += "; this kernel returns from uretprobes through the uretprobe syscall (Linux 6.11+), which filters saw before 6.14"
		r.Fix = "a filter that kills or traps syscalls it does not know (Docker's default profile did) would kill the process at the first traced return of a native (C, C++, Rust) function"
		if goExe {
			r.Fix += "; its Go functions are safe (ulat probes their RET instructions, no uretprobe), only C functions of a cgo program are at risk"
		} else {
			r.Fix += "; Go functions are not affected (ulat probes their RET instructions instead)"
		}
		r.Fix += ". Use a kernel with the fix (6.14+, or a 6.12/6.13 stable kernel from February 2025 on), or allow syscall 335 (uretprobe) in the profile"
	}
	return r
}

func checkUretprobeSyscall(k Kernel, f Features) Result {
	r := Result{Check: "uretprobe syscall", Status: Pass}
	switch {
	case !f.UretprobeSyscallKnown:
		r.Found = "cannot tell (no kernel BTF and no kernel version)"
	case f.UretprobeSyscall:
		r.Found = fmt.Sprintf("present (x86-64, Linux 6.11+, from the %s): a uretprobe costs one trap and a syscall", f.From)
	case k.Machine != "x86_64":
		r.Found = fmt.Sprintf("absent (only x86-64 has it, from the %s): uretprobes return with a trap", f.From)
	default:
		r.Found = fmt.Sprintf("absent (it came in Linux 6.11, from the %s): uretprobes return with a second trap", f.From)
	}
	return r
}

// --- kernel configuration ---

// readKernelConfig reads the running kernel's configuration from
// /proc/config.gz or /boot/config-RELEASE; nil when neither can be read.
func readKernelConfig(release string) (map[string]string, string) {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			if cfg, err := ParseKernelConfig(zr); err == nil {
				return cfg, "/proc/config.gz"
			}
		}
	}
	if release != "" {
		p := filepath.Join("/boot", "config-"+release)
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			if cfg, err := ParseKernelConfig(f); err == nil {
				return cfg, p
			}
		}
	}
	return nil, ""
}

// ParseKernelConfig reads a kernel .config: CONFIG_X=value lines, and
// "# CONFIG_X is not set", which it records as "n".
func ParseKernelConfig(r io.Reader) (map[string]string, error) {
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok {
			if name, ok = strings.CutSuffix(name, " is not set"); ok && strings.HasPrefix(name, "CONFIG_") {
				cfg[name] = "n"
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = strings.Trim(v, `"`)
		}
	}
	return cfg, sc.Err()
}

// unwrapPath drops the path from a *fs.PathError when the message names it
// already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// libbpfLog is where libbpf's log goes: stderr when verbose.
func libbpfLog(verbose bool) io.Writer {
	if verbose {
		return os.Stderr
	}
	return nil
}
