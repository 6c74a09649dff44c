// Package doctor checks whether this machine, this user and optionally one
// process can be traced by ulat, and explains what to do when not. Each
// check is a function that returns a Result; Run gathers what the checks
// need from the system and runs them all. cmd/ulat only prints the results.
package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

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

	memlock := checkMemlock(readMemlock(), k, caps.has(capSysResource))
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
		memlock,
	)
	// memlock warns only where RLIMIT_MEMLOCK may be what refuses the load.
	load := checkLoad(opts.Verbose, memlock.Status == Warn)
	out = append(out, load)
	if load.Status != Fail {
		if multi {
			out = append(out, checkAttach(probes.AttachMulti, true, opts.Verbose))
		}
		out = append(out, checkAttach(probes.AttachPerf, !multi, opts.Verbose))
	}
	if opts.Pid != 0 {
		out = append(out, checkProcess(opts.Pid, k, feat, unreadableProcessFix(os.Geteuid(), caps, capErr))...)
	}
	return out
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
