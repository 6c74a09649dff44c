package probes

import (
	"bytes"
	"os"
	"sync"
)

// The kernel features ulat's attach modes depend on, told by the names of
// the kernel's own functions and types in its BTF: that tells the truth
// about backports, where a version number does not. Every kernel ulat can
// run on has BTF (CO-RE needs it).

// BTFHasUprobeMulti reports whether a kernel's BTF has uprobe_multi links
// (Linux 6.6+).
func BTFHasUprobeMulti(btf []byte) bool { return btfHas(btf, "bpf_uprobe_multi_link") }

// BTFHasCookies reports whether a kernel's BTF has bpf_get_attach_cookie
// for uprobes (Linux 5.15+).
func BTFHasCookies(btf []byte) bool { return btfHas(btf, "bpf_get_attach_cookie_trace") }

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
		kernelBTF.multi, kernelBTF.cook = BTFHasUprobeMulti(b), BTFHasCookies(b)
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
