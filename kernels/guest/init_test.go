package guest

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulat-dev/ulat/e2e/ulattest"
)

// runAsInit is the suite as a guest's init: the bundle is in BundleDir,
// and the output goes to ResultPort.
func runAsInit(m *testing.M) int {
	mounts := []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"},
		{"sys", "/sys", "sysfs"},
		{"dev", "/dev", "devtmpfs"},
		{"tmp", "/tmp", "tmpfs"},
		{"tracefs", "/sys/kernel/tracing", "tracefs"},
		{"debugfs", "/sys/kernel/debug", "debugfs"},
		{"bpffs", "/sys/fs/bpf", "bpf"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2"}, // the agent's container labels
	}
	var mountErrs []string
	for _, mt := range mounts {
		os.MkdirAll(mt.dst, 0o755)
		if err := unix.Mount(mt.src, mt.dst, mt.typ, 0, ""); err != nil {
			mountErrs = append(mountErrs, fmt.Sprintf("mount %s: %v", mt.dst, err))
		}
	}
	// The agent serves on 127.0.0.1.
	if err := loopbackUp(); err != nil {
		mountErrs = append(mountErrs, fmt.Sprintf("loopback: %v", err))
	}
	if out, err := os.OpenFile(ResultPort, os.O_WRONLY, 0); err == nil {
		unix.Dup2(int(out.Fd()), 1)
		unix.Dup2(int(out.Fd()), 2)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("KERNEL %s\n", unix.ByteSliceToString(uts.Release[:]))
	for _, e := range mountErrs {
		fmt.Println("guest:", e)
	}
	// An emulated guest is many times slower than the host: the limits
	// only turn a hang into a failure.
	ulattest.StartTimeout = 10 * time.Minute
	flag.Set("test.v", "true")
	flag.Set("test.timeout", "60m")
	os.Setenv("PATH", "/bin")
	dir = BundleDir
	code := m.Run()
	fmt.Printf("%s %d\n", ExitMarker, code)
	os.Stdout.Sync()
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return code
}

// loopbackUp brings up lo, which a guest's kernel leaves down without an
// init system to do it.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
