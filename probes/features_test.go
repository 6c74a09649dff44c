package probes

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckKernelRelease(t *testing.T) {
	for release, ok := range map[string]bool{
		"5.10.0-46-cloud-amd64": true, "6.1.0-57-cloud-amd64": true, "6.18.44-fc-v782": true,
		"5.15.0-91-generic": true, "5.14.0-427.el9.x86_64": true, "10.0": true, "odd": true,
		"5.4.0-150-generic": false, "4.19.0-27-amd64": false, "5.9.16": false,
	} {
		err := checkKernelRelease(release)
		if (err == nil) != ok {
			t.Errorf("%s: %v", release, err)
		}
		if err != nil && (!errors.Is(err, ErrKernelTooOld) || !strings.Contains(err.Error(), "this is Linux "+release)) {
			t.Errorf("%s: %v does not say which kernel", release, err)
		}
	}
}

// A process that ended but was not reaped yet no longer runs: its calls
// in flight never returned.
func TestProcessRunningSeesZombies(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Wait for it to end without reaping it.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if processRunning(pid) {
		t.Errorf("zombie %d counted as running", pid)
	}
	cmd.Wait()
	if processRunning(pid) {
		t.Errorf("reaped %d counted as running", pid)
	}
	if !processRunning(os.Getpid()) {
		t.Error("this process counted as not running")
	}
}
