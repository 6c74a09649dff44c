package probes

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// perfLink is one probe attached the pre-6.6 way: a perf event of the
// uprobe PMU and a BPF link from the program to it, carrying the cookie.
// Before 5.15 there are neither links nor cookies: the program is set on
// the perf event itself (linkFD is then -1), and closing the event detaches
// it.
type perfLink struct {
	perfFD, linkFD int
}

func (l perfLink) close() error {
	var err error
	if l.linkFD >= 0 {
		err = unix.Close(l.linkFD)
	}
	return errors.Join(err, unix.Close(l.perfFD))
}

var uprobePMU struct {
	once   sync.Once
	typ    uint32
	retBit uint
	err    error
}

// uprobePMUInfo reads the dynamic PMU type of uprobes and which config bit
// makes one a return probe.
func uprobePMUInfo() (uint32, uint, error) {
	uprobePMU.once.Do(func() {
		const dir = "/sys/bus/event_source/devices/uprobe"
		b, err := os.ReadFile(dir + "/type")
		if err != nil {
			uprobePMU.err = fmt.Errorf("Linux %s: %w: cannot read %s: %v", kernelRelease(), ErrNoUprobes, dir, err)
			return
		}
		t, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			uprobePMU.err = fmt.Errorf("uprobe PMU type %q: %w", b, err)
			return
		}
		uprobePMU.typ = uint32(t)
		b, err = os.ReadFile(dir + "/format/retprobe")
		if err != nil {
			uprobePMU.err = fmt.Errorf("uprobe PMU retprobe format: %w", err)
			return
		}
		bit, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "config:")
		n, err := strconv.ParseUint(bit, 10, 6)
		if !ok || err != nil {
			uprobePMU.err = fmt.Errorf("uprobe PMU retprobe format %q is not config:N", b)
			return
		}
		uprobePMU.retBit = uint(n)
	})
	return uprobePMU.typ, uprobePMU.retBit, uprobePMU.err
}

// bpfLinkCreatePerf is union bpf_attr's link_create with its perf_event
// member, which carries the cookie.
type bpfLinkCreatePerf struct {
	progFD     uint32
	targetFD   uint32
	attachType uint32
	flags      uint32
	cookie     uint64
}

// attachPerf attaches progFD to one uprobe (or uretprobe) at offset in
// path, for pid (-1: every process), through a BPF link that carries the
// cookie; with noLink (kernels before 5.15), without link or cookie.
func attachPerf(progFD int, path string, offset uint64, ret bool, pid int, cookie uint64, noLink bool) (perfLink, error) {
	typ, retBit, err := uprobePMUInfo()
	if err != nil {
		return perfLink{}, err
	}
	cpath, err := unix.BytePtrFromString(path)
	if err != nil {
		return perfLink{}, err
	}
	attr := unix.PerfEventAttr{
		Type: typ,
		Ext1: uint64(uintptr(unsafe.Pointer(cpath))), // config1: path
		Ext2: offset,                                 // config2: offset
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	if ret {
		attr.Config |= 1 << retBit
	}
	cpu := -1
	if pid < 0 {
		// A uprobe on a file fires in every process on every CPU; the
		// perf API only wants one of pid and cpu to be "any".
		pid, cpu = -1, 0
	}
	pfd, err := unix.PerfEventOpen(&attr, pid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	runtime.KeepAlive(cpath)
	if err != nil {
		return perfLink{}, fmt.Errorf("perf_event_open: %w", err)
	}
	if noLink {
		if err := unix.IoctlSetInt(pfd, unix.PERF_EVENT_IOC_SET_BPF, progFD); err != nil {
			unix.Close(pfd)
			return perfLink{}, fmt.Errorf("perf event set bpf: %w", err)
		}
		return perfLink{perfFD: pfd, linkFD: -1}, nil
	}
	la := bpfLinkCreatePerf{progFD: uint32(progFD), targetFD: uint32(pfd), attachType: unix.BPF_PERF_EVENT, cookie: cookie}
	lfd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&la)), unsafe.Sizeof(la))
	if errno != 0 {
		unix.Close(pfd)
		return perfLink{}, fmt.Errorf("bpf link_create: %w", errno)
	}
	return perfLink{perfFD: pfd, linkFD: int(lfd)}, nil
}
