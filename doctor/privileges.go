package doctor

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h).
const (
	capSysPtrace   = 19
	capSysResource = 24
	capSysAdmin    = 21
	capPerfmon     = 38
	capBPF         = 39
)

var capNames = map[int]string{capSysAdmin: "CAP_SYS_ADMIN", capPerfmon: "CAP_PERFMON", capBPF: "CAP_BPF"}

// capSet is a capability set as a bit mask (bit n is capability n).
type capSet uint64

// has reports whether capability c is in the set.
func (c capSet) has(cap int) bool { return cap >= 0 && cap < 64 && c&(1<<uint(cap)) != 0 }

// parseCaps reads a mask as /proc/PID/status prints it (CapEff: 000001ffffffffff).
func parseCaps(hex string) (capSet, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("capability mask %q: %w", hex, err)
	}
	return capSet(v), nil
}

// effectiveCaps asks the kernel for this process's effective capabilities.
func effectiveCaps() (capSet, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return capSet(uint64(data[0].Effective) | uint64(data[1].Effective)<<32), nil
}

// hasTracingCaps reports whether caps are enough to load and attach ulat's
// programs: CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, which is all that
// counts on kernels before 5.8 (capLast < 38: they do not have the others).
func hasTracingCaps(caps capSet, capLast int) bool {
	if caps.has(capSysAdmin) {
		return true
	}
	return capLast >= capBPF && caps.has(capBPF) && caps.has(capPerfmon)
}

// checkPrivileges: multi says whether the kernel has uprobe_multi links;
// without them ulat attaches through perf_event_open's uprobe PMU, which
// "perf: Revert to requiring CAP_SYS_ADMIN for uprobes" (Linux 6.16, and
// stable kernels from July 2025 on) closed to CAP_PERFMON.
func checkPrivileges(euid int, caps capSet, capErr error, capLast int, multi bool) Result {
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
	for _, c := range []int{capBPF, capPerfmon, capSysAdmin} {
		if caps.has(c) {
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
	old := capLast > 0 && capLast < capPerfmon
	if old {
		r.Found += fmt.Sprintf(" (this kernel predates CAP_BPF and CAP_PERFMON: its last capability is %d)", capLast)
	}
	if hasTracingCaps(caps, capLast) {
		r.Status = Pass
		if !multi && !caps.has(capSysAdmin) {
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

// memlock is the RLIMIT_MEMLOCK of this process.
type memlock struct {
	Cur, Max uint64
	Err      error
}

func readMemlock() memlock {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
		return memlock{Err: err}
	}
	return memlock{Cur: rl.Cur, Max: rl.Max}
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
func checkMemlock(m memlock, k kernel, canRaise bool) Result {
	r := Result{Check: "memlock"}
	if m.Err != nil {
		r.Status = Warn
		r.Found = fmt.Sprintf("cannot read RLIMIT_MEMLOCK: %v", m.Err)
		r.Fix = "on kernels before 5.11 BPF memory counts against RLIMIT_MEMLOCK; the load check below tells whether it is enough"
		return r
	}
	lim := fmt.Sprintf("RLIMIT_MEMLOCK %s (hard %s)", formatLimit(m.Cur), formatLimit(m.Max))
	switch {
	case k.Err == nil && k.Version.atLeast(5, 11):
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
