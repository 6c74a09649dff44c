package probes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/cgroup"
)

// cgroupID is the cgroup v2 id of a process, which is what
// bpf_get_current_cgroup_id returns.
func cgroupID(t *testing.T, pid int) uint64 {
	t.Helper()
	mount, err := cgroup.Mount()
	if err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	path, err := cgroup.Of(pid)
	if err != nil {
		t.Fatal(err)
	}
	id, err := cgroup.ID(mount, path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// inNewCgroup moves process pid into a cgroup v2 of its own, made for the
// test and removed after it (the process is moved back first).
func inNewCgroup(t *testing.T, pid int) {
	t.Helper()
	mount, err := cgroup.Mount()
	if err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	was, err := cgroup.Of(pid)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mount, fmt.Sprintf("ulat-test-%d-%d", os.Getpid(), pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(mount, was, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0)
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the test's cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0); err != nil {
		t.Fatal(err)
	}
}

// With FollowForks and no first pid, nothing is traced until a process is
// followed, and then that process alone: exact counts of two processes
// calling the same library function, each event with its process's
// cgroup id.
func TestFollowSelectsProcesses(t *testing.T) {
	p := libzProbes(t, "crc32")
	a := startZlibCaller(t, "zlib.crc32(b'x')", 300, 400)
	b := startZlibCaller(t, "zlib.crc32(b'x')", 200, 100)
	inNewCgroup(t, b.pid())
	tr, err := Open(Options{FollowForks: true, ByCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Attach([]Function{{Name: "crc32", Binary: lib, Entry: p.Entry}}); err != nil {
		t.Fatal(err)
	}
	wantCgroup := map[int]uint64{a.pid(): cgroupID(t, a.pid()), b.pid(): cgroupID(t, b.pid())}
	if wantCgroup[a.pid()] == wantCgroup[b.pid()] {
		t.Fatalf("both processes in cgroup %d", wantCgroup[a.pid()])
	}
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
