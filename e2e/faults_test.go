package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/e2e/ulattest"
)

// bpfObjects returns the ids of the BPF programs and links a process holds,
// from its file descriptors' fdinfo.
func bpfObjects(t *testing.T, pid int) (progs, links []string) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	for _, fd := range fds {
		target, _ := os.Readlink(filepath.Join(dir, fd.Name()))
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		id := func(key string) string {
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, key+":"); ok {
					return strings.TrimSpace(v)
				}
			}
			return ""
		}
		switch target {
		case "anon_inode:bpf-prog":
			progs = append(progs, id("prog_id"))
		case "anon_inode:bpf_link":
			links = append(links, id("link_id"))
		}
	}
	return progs, links
}

// stillInKernel returns the ids that bpftool still finds.
func stillInKernel(kind string, ids []string) []string {
	var left []string
	for _, id := range ids {
		if exec.Command("bpftool", kind, "show", "id", id).Run() == nil {
			left = append(left, id)
		}
	}
	return left
}

// waitGone waits for the kernel to free progs and links (it does so
// asynchronously once the last file descriptor is closed).
func waitGone(t *testing.T, progs, links []string) {
	t.Helper()
	var lp, ll []string
	for i := 0; i < 50; i++ {
		if lp, ll = stillInKernel("prog", progs), stillInKernel("link", links); len(lp)+len(ll) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("programs %v and links %v are still in the kernel", lp, ll)
}

// Killed with SIGKILL, ulat cannot clean up, and need not: its links and
// programs live only as long as its file descriptors.
func TestSIGKILLLeavesNothingAttached(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("bpftool"); err != nil {
		t.Skip("SKIPPED: bpftool is not installed")
	}
	bin := cTarget(t, true)
	for _, attach := range []string{"multi", "perf"} {
		t.Run(attach, func(t *testing.T) {
			tr := startTrace(t, "--attach", attach, bin, "work", "fast")
			progs, links := bpfObjects(t, tr.Pid())
			// Twice the mode's entry, exit and return programs (and in
			// multi mode the no-op one that finds offsets the kernel
			// refuses): the session's, and the probe-cost calibration's,
			// which goes on while tracing. Links: in multi mode one
			// entry and one return link for both functions, and the
			// calibration's entry, exit and return links; in perf mode
			// one link per probe, 4 and the calibration's 24 (12
			// functions, 2 of them with RET probes, 10 with uretprobes).
			wantProgs := map[string]int{"multi": 8, "perf": 6}[attach]
			wantLinks := map[string]int{"multi": 2 + 3, "perf": 4 + 24}[attach]
			if len(progs) != wantProgs || len(links) != wantLinks {
				t.Errorf("ulat holds %d programs and %d links while tracing, want %d and %d", len(progs), len(links), wantProgs, wantLinks)
			}
			tr.Kill()
			waitGone(t, progs, links)
			// And the target runs untouched.
			if out := run(t, bin, "1", "2", "10"); !strings.HasPrefix(out, "total=") {
				t.Errorf("target output after ulat was killed: %q", out)
			}
		})
	}
}

// SIGTERM, like Ctrl-C, ends tracing with the report so far and status 0,
// and detaches everything.
func TestSIGTERMReports(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	tr := startTrace(t, bin, "work")
	progs, links := bpfObjects(t, tr.Pid())
	run(t, bin, "1", "7", "100")
	tr.Signal(syscall.SIGTERM)
	r := tr.Wait(20 * time.Second)
	wantCount(t, r, "work", 7)
	waitGone(t, progs, links)
}

// libbpf's own log is quiet unless --verbose asks for it.
func TestLibbpfLogOnlyWhenVerbose(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	for _, verbose := range []bool{false, true} {
		args := []string{"trace", "-d", "200ms"}
		if verbose {
			args = append(args, "--verbose")
		}
		out, err := exec.Command(ulatBin, append(args, bin, "work")...).CombinedOutput()
		if err != nil {
			t.Fatalf("ulat %v: %v\n%s", args, err, out)
		}
		n := strings.Count(string(out), "libbpf: ")
		if verbose && n == 0 {
			t.Errorf("--verbose shows no libbpf log:\n%s", out)
		}
		if !verbose && n != 0 {
			t.Errorf("without --verbose, %d libbpf lines:\n%s", n, out)
		}
		if verbose && strings.Contains(string(out), "libbpf: libbpf: ") {
			t.Errorf("libbpf lines carry a doubled prefix:\n%s", out)
		}
	}
}

// More calls in flight than the map of entries holds: the oldest entries
// are evicted and their exits counted as unpaired, every call is accounted
// for, and tracing goes on exactly afterwards.
func TestMoreCallsInFlightThanTheMapHolds(t *testing.T) {
	requireRoot(t)
	bin := build(t, "goflood", "go", "build", "-o", "$OUT", "./testdata/goflood")
	const n = 70000 // the map holds 65536
	tr := startTrace(t, bin, "main.block", "main.after")
	out := run(t, bin, itoa(n))
	r := tr.Stop()
	if want := fmt.Sprintf("total=%d\n", n+5050); out != want {
		t.Errorf("target output %q, want %q", out, want)
	}
	block := fn(t, r, "main.block")
	if r.Lost.UnpairedExits == 0 || block.Count+r.Lost.UnpairedExits != n {
		t.Errorf("main.block: %d timed and %d exits without entry, want some without entry and %d in all", block.Count, r.Lost.UnpairedExits, n)
	}
	wantCount(t, r, "main.after", 100)
}

// A --pid process that exits while ulat attaches is an error that says so.
// The target makes that happen: it exits as soon as it sees the first of
// ulat's probes written into its code, while ulat, attaching one
// perf-event probe at a time, has 199 to go. Should ulat still finish
// first on some machine, it must then end on the exit with an empty report.
func TestPidExitsDuringAttach(t *testing.T) {
	requireRoot(t)
	bin := build(t, "attachwatch", "gcc", "-O2", "-o", "$OUT", "testdata/attachwatch/attachwatch.c")
	target := exec.Command(bin)
	stdout, err := target.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { target.Process.Kill(); target.Wait() }()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("attachwatch did not start: %q", lines.Text())
	}
	out := filepath.Join(t.TempDir(), "report.json")
	code, stderr := ulatStatus(t, nil, "trace", "--attach", "perf", "-f", "json", "-o", out, "--pid", itoa(target.Process.Pid), bin, "f?", "f??")
	target.Process.Kill() // ends it, should ulat have failed before attaching
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "probed f") {
		t.Fatalf("the target did not see a probe (it printed %q); ulat: exit %d, %s", lines.Text(), code, stderr)
	}
	if code == 0 {
		r := ulattest.ReadReport(t, out)
		for _, f := range r.Functions {
			if f.Count != 0 {
				t.Errorf("%s: %d calls, from a process that made none", f.Function, f.Count)
			}
		}
		t.Logf("ulat attached every probe before the process was gone, and ended on its exit: %s", stderr)
		return
	}
	if code != 1 || !strings.Contains(stderr, "exited while ulat was attaching: nothing was traced") {
		t.Errorf("exit %d, stderr %q: want 1 and a message that the process exited while ulat was attaching", code, stderr)
	}
	noPanic(t, stderr)
}

// Processes the target forks and execs run the same binary: without --pid
// all of them are traced; with --pid only that process.
func TestForkAndExec(t *testing.T) {
	requireRoot(t)
	bin := build(t, "cforker", "gcc", "-O2", "-o", "$OUT", "testdata/cforker/cforker.c")
	want := run(t, bin)

	tr := startTrace(t, bin, "work")
	if got := run(t, bin); got != want {
		t.Errorf("output under tracing %q, untraced %q", got, want)
	}
	wantCount(t, tr.Stop(), "work", 5+7+11)

	c := exec.Command(bin)
	c.Env = append(os.Environ(), "TARGET_WAIT=1")
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	tr = startTrace(t, "--pid", itoa(c.Process.Pid), bin, "work")
	io.WriteString(in, "go\n")
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	wantCount(t, tr.Wait(20*time.Second), "work", 5) // the parent's own calls only
}

// A traced binary replaced on disk while tracing (a rebuild, an upgrade):
// processes of the old file are still traced, ones of the new file are not,
// and ulat says so on stderr and in the report.
func TestBinaryReplacedWhileTracing(t *testing.T) {
	requireRoot(t)
	src, err := os.ReadFile(cTarget(t, true))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	tr := startTrace(t, bin, "work")
	run(t, bin, "1", "3", "100")
	// Replace it the way installers do: write a new file, rename it over.
	if err := os.WriteFile(bin+".new", src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	run(t, bin, "1", "4", "100")
	const msg = " was replaced or removed while tracing: processes still running the old file are traced, ones started from the new file are not"
	// ulat looks once a second; the limit only turns a hang into a failure.
	if !tr.WaitStderr(bin+msg, time.Minute) {
		t.Errorf("no warning on stderr that %s was replaced: %s", bin, tr.Stderr())
	}
	r := tr.Stop()
	wantCount(t, r, "work", 3)
	found := false
	for _, w := range r.Warnings {
		found = found || strings.Contains(w, bin+msg)
	}
	if !found {
		t.Errorf("no warning in the report that %s was replaced: %q", bin, r.Warnings)
	}
}
