package doctor

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Status fields of /proc/PID/status that the checks use.
type procStatus struct {
	Name           string
	Seccomp        int // 0 none, 1 strict, 2 filter; -1 when the line is missing
	SeccompFilters int // number of filters; -1 when the line is missing (before 5.9)
	NoNewPrivs     bool
	CapEff         capSet
	HasCapEff      bool
}

// parseStatus reads the fields of procStatus from the text of
// /proc/PID/status.
func parseStatus(data []byte) (procStatus, error) {
	st := procStatus{Seccomp: -1, SeccompFilters: -1}
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
			st.CapEff, err = parseCaps(val)
			st.HasCapEff = err == nil
		}
		if err != nil {
			return st, fmt.Errorf("status line %q: %w", sc.Text(), err)
		}
	}
	return st, sc.Err()
}

// checkProcess checks that process pid exists and can be read, and
// whether a seccomp filter there can interfere with uretprobes. unreadable
// is what to do when its executable cannot be read (unreadableProcessFix).
func checkProcess(pid int, k kernel, f features, unreadable string) []Result {
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
	st, err := parseStatus(data)
	if err != nil {
		return []Result{{Check: "process", Status: Warn, Found: err.Error(), Fix: "please report this, with the contents of " + proc + "/status"}}
	}
	out := []Result{checkProcessExe(pid, st, unreadable)}
	goExe := isGoExecutable(proc + "/exe")
	out = append(out, checkSeccomp(pid, st, k, f, goExe), checkUretprobeSyscall(k, f))
	return out
}

func checkProcessExe(pid int, st procStatus, unreadable string) Result {
	r := Result{Check: "process"}
	proc := fmt.Sprintf("/proc/%d", pid)
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		r.Status = Fail
		r.Found = fmt.Sprintf("%d (%s) exists, but its executable cannot be read: %v", pid, st.Name, unwrapPath(err))
		r.Fix = unreadable
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

// unreadableProcessFix is what to do when a process's /proc/PID/exe cannot
// be read. The kernel shows it to a process of the same user that has all
// the target's capabilities, or to CAP_SYS_PTRACE: root without
// CAP_SYS_PTRACE (in a container, or a systemd unit's bounding set) cannot
// read other users' processes, nor root processes with more capabilities.
func unreadableProcessFix(euid int, caps capSet, capErr error) string {
	const how = "ulat finds the process's code through /proc/PID/exe and /proc/PID/maps"
	const kthread = "; a kernel thread has no code to trace"
	if euid == 0 && capErr == nil && !caps.has(capSysPtrace) {
		return how + ", which the kernel shows only to the process's own user with all its capabilities, or to CAP_SYS_PTRACE: this is root without CAP_SYS_PTRACE, as in a container; add it (Kubernetes: securityContext.capabilities.add SYS_PTRACE; systemd: CapabilityBoundingSet)" + kthread
	}
	return how + ": run it as root (or with CAP_SYS_PTRACE) to read another user's process" + kthread
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
var uretprobeSeccompFixed = kernelVersion{6, 14, 0}

// checkSeccomp: on x86-64 since Linux 6.11 a uretprobe returns through the
// uretprobe syscall, made from the kernel's trampoline in the traced
// process. A seccomp filter that does not know that syscall and kills or
// traps (Docker's default profile did) kills the process at the first
// traced return, until kernels let it through filters. ulat uses uretprobes
// only for native code: Go functions are timed with uprobes on their RETs.
func checkSeccomp(pid int, st procStatus, k kernel, f features, goExe bool) Result {
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
	case k.Err == nil && k.Version.atLeast(uretprobeSeccompFixed.Major, uretprobeSeccompFixed.Minor):
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

func checkUretprobeSyscall(k kernel, f features) Result {
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
