package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ulat-dev/ulat/probes"
)

// kernelVersion is a kernel version, from the start of its release string.
type kernelVersion struct{ Major, Minor, Patch int }

func (v kernelVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// atLeast reports whether v is major.minor or newer.
func (v kernelVersion) atLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// parseVersion reads the version at the start of a kernel release such as
// "6.1.0-18-amd64", "5.15.0-91-generic" or "6.11.0-rc3+".
func parseVersion(release string) (kernelVersion, error) {
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
			return kernelVersion{}, fmt.Errorf("kernel release %q: %w", release, err)
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
		return kernelVersion{}, fmt.Errorf("kernel release %q does not start with a version", release)
	}
	return kernelVersion{n[0], n[1], n[2]}, nil
}

// kernel is the running kernel, from uname.
type kernel struct {
	Release string
	Machine string // x86_64, aarch64
	Version kernelVersion
	Err     error // the release could not be parsed
}

func readKernel() kernel {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernel{Err: fmt.Errorf("uname: %w", err)}
	}
	k := kernel{Release: unix.ByteSliceToString(u.Release[:]), Machine: unix.ByteSliceToString(u.Machine[:])}
	k.Version, k.Err = parseVersion(k.Release)
	return k
}

// minKernel is the oldest kernel ulat supports (probes.MinKernel).
var minKernel, _ = parseVersion(probes.MinKernel)

func checkKernel(k kernel) Result {
	r := Result{Check: "kernel"}
	if k.Err != nil {
		r.Status, r.Found = Warn, k.Err.Error()
		r.Fix = "ulat needs Linux " + probes.MinKernel + " or newer; the checks below test the features themselves"
		return r
	}
	r.Found = fmt.Sprintf("Linux %s (%s)", k.Release, k.Machine)
	if !k.Version.atLeast(minKernel.Major, minKernel.Minor) {
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

// features are the optional kernel features ulat uses, as far as they can
// be told without loading anything.
type features struct {
	Cookies, CookiesKnown                   bool   // bpf_get_attach_cookie for uprobes (5.15)
	UretprobeSyscall, UretprobeSyscallKnown bool   // return through a syscall (x86-64, 6.11)
	From                                    string // how they were told: "kernel BTF" or "kernel version"
}

// kernelFeatures looks for the features' functions in the kernel's BTF,
// which tells the truth about backports, and falls back on the version.
func kernelFeatures(k kernel, btf []byte, btfErr error) features {
	if btfErr == nil && len(btf) > 0 {
		return features{
			Cookies:               probes.BTFHasCookies(btf),
			CookiesKnown:          true,
			UretprobeSyscall:      probes.BTFHasUretprobeSyscall(btf),
			UretprobeSyscallKnown: true,
			From:                  "kernel BTF",
		}
	}
	if k.Err != nil {
		return features{}
	}
	return features{
		Cookies:               k.Version.atLeast(5, 15),
		CookiesKnown:          true,
		UretprobeSyscall:      k.Machine == "x86_64" && k.Version.atLeast(6, 11),
		UretprobeSyscallKnown: true,
		From:                  "kernel version",
	}
}

// uprobePMU is what the kernel says about its uprobe PMU.
type uprobePMU struct {
	Type int
	Err  error
}

func readUprobePMU() uprobePMU {
	b, err := os.ReadFile(uprobePMUType)
	if err != nil {
		return uprobePMU{Err: err}
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return uprobePMU{Err: fmt.Errorf("%s: %q is not a number", uprobePMUType, b)}
	}
	return uprobePMU{Type: t}
}

// checkUprobes: the uprobe PMU is what --attach perf opens, and proves that
// the kernel has uprobes at all; the kernel configuration says so too when
// it can be read.
func checkUprobes(pmu uprobePMU, cfg map[string]string, cfgFrom string) Result {
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

func checkUprobeMulti(has bool, k kernel) Result {
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

func checkCookies(f features, k kernel) Result {
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
