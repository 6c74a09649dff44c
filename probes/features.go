package probes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
)

// The kernel features ulat's attach modes depend on, told by the names of
// the kernel's own functions and types in its BTF: that tells the truth
// about backports, where a version number does not. Every kernel ulat can
// run on has BTF (CO-RE needs it).

// btfHasUprobeMulti reports whether a kernel's BTF has uprobe_multi links
// (Linux 6.6+).
func btfHasUprobeMulti(btf []byte) bool { return btfHas(btf, "bpf_uprobe_multi_link") }

// BTFHasCookies reports whether a kernel's BTF has bpf_get_attach_cookie
// for uprobes (Linux 5.15+).
func BTFHasCookies(btf []byte) bool { return btfHas(btf, "bpf_get_attach_cookie_trace") }

// BTFHasUretprobeSyscall reports whether a kernel's BTF has the uretprobe
// system call (x86-64, Linux 6.11+), through which uretprobes return.
func BTFHasUretprobeSyscall(btf []byte) bool {
	return btfHas(btf, "__do_sys_uretprobe") || btfHas(btf, "__x64_sys_uretprobe")
}

// btfHas reports whether name is in the BTF's string table (names there
// are NUL-terminated, and the table starts with an empty string).
func btfHas(btf []byte, name string) bool {
	return bytes.Contains(btf, []byte("\x00"+name+"\x00"))
}

var kernelBTF struct {
	once        sync.Once
	multi, cook bool
}

func readKernelFeatures() {
	kernelBTF.once.Do(func() {
		b, err := os.ReadFile("/sys/kernel/btf/vmlinux")
		if err != nil {
			return
		}
		kernelBTF.multi, kernelBTF.cook = btfHasUprobeMulti(b), BTFHasCookies(b)
	})
}

// KernelHasUprobeMulti reports whether the running kernel has uprobe_multi
// links, by the same test Open makes to choose AttachMulti for AttachAuto:
// without them, AttachAuto falls back to AttachPerf.
func KernelHasUprobeMulti() bool {
	readKernelFeatures()
	return kernelBTF.multi
}

// KernelHasCookies reports whether the running kernel has BPF cookies for
// uprobes. Without them (before 5.15) AttachPerf gives each probe a program
// of its own, which costs a tail call per probe hit.
func KernelHasCookies() bool {
	readKernelFeatures()
	return kernelBTF.cook
}

// MinKernel is the oldest kernel ulat supports: the oldest of the kernel
// matrix (make test-kernels), Debian 11's. Older kernels lack what ulat
// cannot do without (the BPF ring buffer came in 5.8) or are not tested.
const MinKernel = "5.10"

// ErrKernelTooOld: the running kernel is older than MinKernel.
var ErrKernelTooOld = errors.New("the kernel is older than " + MinKernel + ", the oldest ulat supports")

// checkKernelRelease refuses a kernel release older than MinKernel; one
// it cannot read is let through (the load then tells).
func checkKernelRelease(release string) error {
	var major, minor, minMajor, minMinor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		return nil
	}
	fmt.Sscanf(MinKernel, "%d.%d", &minMajor, &minMinor)
	if major < minMajor || (major == minMajor && minor < minMinor) {
		return fmt.Errorf("%w: this is Linux %s; ulat runs on Linux %s and newer (Debian 11, Ubuntu 22.04, RHEL 9 and later), so upgrade the kernel", ErrKernelTooOld, release, MinKernel)
	}
	return nil
}
