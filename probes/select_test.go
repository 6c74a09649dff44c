package probes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupID is the cgroup v2 id of a process: the inode of its cgroup's
// directory, which is what bpf_get_current_cgroup_id returns.
func cgroupID(t *testing.T, pid int) uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join("/sys/fs/cgroup", path), &st); err != nil {
				t.Skipf("SKIPPED: cgroup v2 is not mounted at /sys/fs/cgroup: %v", err)
			}
			return st.Ino
		}
	}
	t.Skipf("SKIPPED: process %d is in no cgroup v2", pid)
	return 0
}

// With FollowForks and no first pid, nothing is traced until a process is
// followed, and then that process alone: exact counts of two processes
// calling the same library function, each event with its process's
// cgroup id.
func TestFollowSelectsProcesses(t *testing.T) {
	p := libzProbes(t, "crc32")
	a := startZlibCaller(t, "zlib.crc32(b'x')", 300, 400)
	b := startZlibCaller(t, "zlib.crc32(b'x')", 200, 100)
	tr, err := Open(Options{FollowForks: true, ByCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Attach([]Function{{Name: "crc32", Binary: lib, Entry: p.Entry}}); err != nil {
		t.Fatal(err)
	}
	wantCgroup := map[int]uint64{a.pid(): cgroupID(t, a.pid()), b.pid(): cgroupID(t, b.pid())}
	count := func() map[int]int {
		t.Helper()
		got := map[int]int{}
		tr.Drain(func(e *Event) {
			pid := int(e.Pid)
			if e.Kind != EventCall || e.Cgroup != wantCgroup[pid] {
				t.Errorf("event of process %d: kind %d, cgroup %d, want a call in cgroup %d", pid, e.Kind, e.Cgroup, wantCgroup[pid])
			}
			got[pid]++
		})
		return got
	}
	if err := tr.Follow(a.pid()); err != nil {
		t.Fatal(err)
	}
	a.batch()
	b.batch()
	if got := count(); len(got) != 1 || got[a.pid()] != 300 {
		t.Errorf("following process %d alone: calls per process %v, want 300 of its own", a.pid(), got)
	}
	if err := tr.Follow(b.pid()); err != nil {
		t.Fatal(err)
	}
	a.batch()
	b.batch()
	if got := count(); len(got) != 2 || got[a.pid()] != 400 || got[b.pid()] != 100 {
		t.Errorf("following both: calls per process %v, want %d: 400, %d: 100", got, a.pid(), b.pid())
	}
}

// The exec watcher reports every exec, with the process's cgroup.
func TestExecWatcherSeesEveryExec(t *testing.T) {
	requireRoot(t)
	w, err := WatchExecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	self := cgroupID(t, os.Getpid())
	want := map[int]bool{}
	for range 20 {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		want[cmd.Process.Pid] = true
	}
	deadline := time.Now().Add(time.Minute)
	for len(want) > 0 && time.Now().Before(deadline) {
		if _, err := w.Poll(100*time.Millisecond, func(e Exec) {
			if want[e.Pid] && e.Cgroup != self {
				t.Errorf("exec of process %d: cgroup %d, want %d", e.Pid, e.Cgroup, self)
			}
			delete(want, e.Pid)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(want) > 0 {
		t.Errorf("execs not reported: processes %v", want)
	}
	if dropped, err := w.Dropped(); err != nil || dropped != 0 {
		t.Errorf("dropped execs: %d, %v", dropped, err)
	}
}
