package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/e2e/ulattest"
)

// Where the code lives: libraries by the loader's names, --pid without a
// binary (also when the executable was deleted, or lives in another mount
// namespace), and the library a process has actually mapped.

// waitingTarget is a ctarget started with TARGET_WAIT=1: it blocks on
// stdin, with its libraries loaded, until go() is called.
type waitingTarget struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	pid int
}

func startWaiting(t *testing.T, argv []string, env ...string) *waitingTarget {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = append(append(os.Environ(), "TARGET_WAIT=1"), env...)
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	w := &waitingTarget{cmd: c, in: in, pid: c.Process.Pid}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return w
}

// waitBlocked waits until the target is blocked reading stdin, running
// a file whose name ends in exeSuffix.
func (w *waitingTarget) waitBlocked(t *testing.T, exeSuffix string) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		link, _ := os.Readlink("/proc/" + itoa(w.pid) + "/exe")
		stat, _ := os.ReadFile("/proc/" + itoa(w.pid) + "/stat")
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasSuffix(strings.TrimSuffix(link, " (deleted)"), exeSuffix) && strings.HasPrefix(rest, "S") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("target %d did not start waiting", w.pid)
}

func (w *waitingTarget) goAndWait(t *testing.T) {
	t.Helper()
	io.WriteString(w.in, "go\n")
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("target: %v", err)
	}
}

// libzPath is the loader's libz.so.1, or "" when it (or python3) is absent.
func libzPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		return ""
	}
	out, _ := exec.Command("/sbin/ldconfig", "-p").Output()
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "libz.so.1 (") && strings.Contains(line, "x86-64") {
			_, p, _ := strings.Cut(line, " => ")
			return p
		}
	}
	return ""
}

// (1) A library by the loader's name, no binary: every process using it.
func TestTraceLibraryByName(t *testing.T) {
	requireRoot(t)
	libz := libzPath(t)
	if libz == "" {
		t.Skip("SKIPPED: python3 or libz.so.1 is not installed")
	}
	const n = 137
	z := privateLibrary(t, libz)
	tr := z.startTrace(t, "libz:deflateEnd")
	z.run(t, "/usr/bin/python3", "-c", "import zlib\nfor i in range("+itoa(n)+"): zlib.compress(b'hello world' * i)")
	r := tr.Stop()
	f := wantCount(t, r, "deflateEnd", n) // JSON names the function plainly
	if f.Binary != libz {
		t.Errorf("binary %q, want the ld.so cache's %q", f.Binary, libz)
	}
	if !strings.Contains(tr.Stderr(), "Tracing 1 function in "+libz+"...") {
		t.Errorf("stderr: %s", tr.Stderr())
	}
	wantNoLoss(t, r)
}

// privateLibrary gives the test a copy of a shared library of this
// machine that no other program uses: in a mount namespace of its own, the
// copy is bind-mounted over the library's path. ulat (startTrace) and the
// test's workload (run) run in that namespace; every other process on the
// machine still maps the real file, whose calls ulat then cannot see, so
// that tests tracing every process count only their own calls.
type privateLib struct {
	prefix []string
	ulat   *tracer
}

func privateLibrary(t *testing.T, path string) *privateLib {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("SKIPPED: unshare (util-linux) is not installed")
	}
	lib, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(cp, lib, 0o755); err != nil {
		t.Fatal(err)
	}
	return &privateLib{prefix: []string{"unshare", "-m", "sh", "-c", `mount --bind "$0" "$1" && shift && exec "$@"`, cp, path}}
}

// startTrace starts ulat trace in the namespace.
func (p *privateLib) startTrace(t *testing.T, args ...string) *tracer {
	t.Helper()
	p.ulat = ulattest.StartTraceIn(t, p.prefix, ulatBin, args...)
	return p.ulat
}

// run runs a program in ulat's namespace, to completion.
func (p *privateLib) run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	return run(t, "nsenter", append([]string{"-t", itoa(p.ulat.Pid()), "-m", bin}, args...)...)
}

// (2) --pid with no binary traces the process's own executable, and only
// that process.
func TestTracePidNoBinary(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	a := startWaiting(t, []string{bin, "2", "10", "1000"})
	b := startWaiting(t, []string{bin, "2", "10", "1000"})
	a.waitBlocked(t, "/ctarget")
	tr := startTrace(t, "--pid", itoa(a.pid), "work", "fa*", "fib")
	io.WriteString(b.in, "go\n")
	a.goAndWait(t)
	b.cmd.Wait()
	r := tr.Wait(20 * time.Second)
	work := wantCount(t, r, "work", 2*10)
	wantCount(t, r, "fast", 2*10*10)
	wantCount(t, r, "fib", 177)
	if work.Binary != bin {
		t.Errorf("binary %q, want %q", work.Binary, bin)
	}
	wantNoLoss(t, r)
}

// (3) The executable was deleted (or replaced) after the process started:
// /proc/PID/exe still reaches the inode it runs.
func TestTracePidDeletedExecutable(t *testing.T) {
	requireRoot(t)
	orig := cTarget(t, true)
	for _, replace := range []bool{false, true} {
		name := "deleted"
		if replace {
			name = "replaced"
		}
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "ctarget-copy")
			copyExecutable(t, orig, bin)
			w := startWaiting(t, []string{bin, "1", "13", "1000"})
			w.waitBlocked(t, "/ctarget-copy")
			if err := os.Remove(bin); err != nil {
				t.Fatal(err)
			}
			if replace {
				copyExecutable(t, orig, bin) // same name, another inode
			}
			tr := startTrace(t, "--pid", itoa(w.pid), "work")
			w.goAndWait(t)
			r := tr.Wait(20 * time.Second)
			work := wantCount(t, r, "work", 13)
			if want := "/proc/" + itoa(w.pid) + "/exe"; work.Binary != want {
				t.Errorf("binary %q, want %q", work.Binary, want)
			}
			if !strings.Contains(tr.Stderr(), "("+bin+", deleted)") {
				t.Errorf("the Tracing line does not say the file was deleted: %s", tr.Stderr())
			}
			wantNoLoss(t, r)
		})
	}
}

// (2b) Processes in another mount namespace: their executable, and the
// library they have mapped, are reached through /proc/PID/root, checked by
// inode; the same paths from here name other files (or none).
func TestTracePidMountNamespace(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("SKIPPED: unshare (util-linux) is not installed")
	}
	orig := cTarget(t, true)
	t.Run("executable", func(t *testing.T) {
		dir := t.TempDir() // empty here; a tmpfs with the target inside the namespace
		script := "mount -t tmpfs ulat-test " + dir + " && cp " + orig + " " + dir + "/ct && exec " + dir + "/ct 1 11 1000"
		w := startWaiting(t, []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script})
		w.waitBlocked(t, "/ct")
		tr := startTrace(t, "--pid", itoa(w.pid), "work")
		w.goAndWait(t)
		r := tr.Wait(20 * time.Second)
		work := wantCount(t, r, "work", 11)
		if want := "/proc/" + itoa(w.pid) + "/root" + dir + "/ct"; work.Binary != want {
			t.Errorf("binary %q, want %q", work.Binary, want)
		}
		wantNoLoss(t, r)
	})
	t.Run("library", func(t *testing.T) {
		libc, err := filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libc.so.6")
		if err != nil {
			t.Skip("SKIPPED: no /lib/x86_64-linux-gnu/libc.so.6")
		}
		// Inside the namespace, libc is a copy bind-mounted over the real
		// one: the same path, another inode.
		cp := filepath.Join(t.TempDir(), "libc-copy.so.6")
		copyExecutable(t, libc, cp)
		script := "mount --bind " + cp + " " + libc + " && exec " + orig + " 1 12 1000"
		w := startWaiting(t, []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script})
		w.waitBlocked(t, "/ctarget")
		tr := startTrace(t, "--pid", itoa(w.pid), "libc:nanosleep", "work")
		w.goAndWait(t)
		r := tr.Wait(20 * time.Second)
		wantCount(t, r, "work", 12)
		ns := wantCount(t, r, "nanosleep", 12)
		if want := "/proc/" + itoa(w.pid) + "/root" + libc; ns.Binary != want {
			t.Errorf("binary %q, want %q", ns.Binary, want)
		}
		wantNoLoss(t, r)
	})
}

// (4) A libc function of a --pid process, beside its own functions: work()
// calls nanosleep once per call, which calls clock_nanosleep.
func TestTracePidLibc(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	w := startWaiting(t, []string{bin, "2", "10", "1000"})
	w.waitBlocked(t, "/ctarget")
	tr := startTrace(t, "--pid", itoa(w.pid), "work", "libc:nanosleep", "libc.so.6:clock_nanosleep")
	w.goAndWait(t)
	r := tr.Wait(20 * time.Second)
	work := wantCount(t, r, "work", 2*10)
	ns := wantCount(t, r, "nanosleep", 2*10)
	wantCount(t, r, "clock_nanosleep", 2*10)
	wantDuration(t, ns, time.Millisecond, 3*time.Millisecond)
	if work.Binary != bin || filepath.Base(ns.Binary) != "libc.so.6" {
		t.Errorf("binaries %q and %q, want %q and libc.so.6", work.Binary, ns.Binary, bin)
	}
	wantNoLoss(t, r)

	// Tables of several files name library functions with their library.
	w = startWaiting(t, []string{bin, "1", "5", "1000"})
	w.waitBlocked(t, "/ctarget")
	c := exec.Command(ulatBin, "trace", "--pid", itoa(w.pid), "work", "libc:nanosleep")
	var out strings.Builder
	c.Stdout = &out
	stderr, _ := c.StderrPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := stderr.Read(buf) // the Tracing line
	if !strings.HasPrefix(string(buf[:n]), "Tracing 2 functions in "+bin+" and ") {
		t.Errorf("Tracing line: %q", buf[:n])
	}
	w.goAndWait(t)
	io.Copy(io.Discard, stderr)
	if err := c.Wait(); err != nil {
		t.Fatalf("ulat: %v", err)
	}
	for _, s := range []string{"| work ", "| libc.so.6:nanosleep ", "libc.so.6:nanosleep  (ns)"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
}

// (5) Mistakes about libraries and processes: one line, exit status 2.
func TestLocateErrors(t *testing.T) {
	bin := cTarget(t, true)
	w := startWaiting(t, []string{bin, "1", "1", "1"})
	w.waitBlocked(t, "/ctarget")
	pid := itoa(w.pid)
	cases := []struct {
		name   string
		prefix []string
		args   []string
		msg    string
	}{
		{"unknown library", nil, []string{"trace", "libcc:malloc"}, `no library "libcc" in the ld.so cache (did you mean libc.so.6`},
		{"unknown library (symbols)", nil, []string{"symbols", "libcc"}, `no library "libcc" in the ld.so cache (did you mean libc.so.6`},
		{"library not mapped", nil, []string{"trace", "--pid", pid, "libz:deflate"}, "process " + pid + " does not map libz"},
		{"library path not mapped", nil, []string{"trace", "--pid", pid, "/no/such/libz.so.1:deflate"}, "process " + pid + " does not map /no/such/libz.so.1"},
		{"library not mapped (symbols)", nil, []string{"symbols", "--pid", pid, "libz.so.1"}, "process " + pid + " does not map libz.so.1"},
		{"no pattern with --pid", nil, []string{"trace", "--pid", pid}, "trace needs at least one PATTERN"},
		{"no binary, no --pid", nil, []string{"trace", "work", "fast"}, "open work: file does not exist"},
		{"no such pid (symbols)", nil, []string{"symbols", "--pid", "999999999"}, "--pid 999999999: no such process"},
		{"no such pid (trace)", nil, []string{"trace", "--pid", "999999999", "work"}, "process 999999999: no such process"},
		{"unknown function in library", nil, []string{"trace", "libc:mallocc"}, `no function matches "mallocc" (did you mean "malloc"`},
	}
	if _, err := exec.LookPath("setpriv"); err == nil && os.Geteuid() == 0 {
		cases = append(cases, struct {
			name   string
			prefix []string
			args   []string
			msg    string
		}{"unreadable /proc/PID", []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all"},
			[]string{"symbols", "--pid", "1"}, "process 1: cannot read /proc/1/exe: permission denied"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := ulatStatus(t, c.prefix, c.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q does not say %q", stderr, c.msg)
			}
			noPanic(t, stderr)
		})
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func goModuleTarget(t *testing.T) string {
	return build(t, "gomodule-work", "sh", "-c", "cd testdata/gomodule && go build -o $OUT ./cmd/work")
}

// (6) With --pid, a Go function's exact name has slashes in it
// (example.com/m/x.Work): it is a pattern, not a BINARY or library path;
// one name alone, two names, and a name after an explicit BINARY.
func TestTracePidGoNameWithSlash(t *testing.T) {
	requireRoot(t)
	bin := goModuleTarget(t)
	for _, tc := range []struct {
		name string
		args []string
		fns  []string
	}{
		{"one name", []string{"example.com/m/x.Work"}, []string{"example.com/m/x.Work"}},
		{"two names", []string{"example.com/m/x.Work", "example.com/m/x.Spin"}, []string{"example.com/m/x.Work", "example.com/m/x.Spin"}},
		{"after BINARY", []string{bin, "example.com/m/x.Spin"}, []string{"example.com/m/x.Spin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 7
			w := startWaiting(t, []string{bin, itoa(n)})
			w.waitBlocked(t, "/gomodule-work")
			tr := startTrace(t, append([]string{"--pid", itoa(w.pid)}, tc.args...)...)
			w.goAndWait(t)
			r := tr.Wait(20 * time.Second)
			for _, f := range tc.fns {
				wantCount(t, r, f, n)
			}
			wantNoLoss(t, r)
		})
	}
	// Neither a function nor a file: the error is about the function.
	w := startWaiting(t, []string{bin, "1"})
	w.waitBlocked(t, "/gomodule-work")
	code, stderr := ulatStatus(t, nil, "trace", "--pid", itoa(w.pid), "example.com/m/x.Wrok")
	if code != 2 || !strings.Contains(stderr, `no function matches "example.com/m/x.Wrok"`) || !strings.Contains(stderr, "example.com/m/x.Work") {
		t.Errorf("a misspelt Go name: exit %d, %q; want 2, no function matches, and the suggestion example.com/m/x.Work", code, stderr)
	}
}

// (7) --pid of a process that makes no calls while others run the same
// executable (a server's master and its workers): the report says so, and
// names them.
func TestTracePidSiblingsHint(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	master := startWaiting(t, []string{bin, "1", "1", "1000"})
	w1 := startWaiting(t, []string{bin, "1", "1", "1000"})
	w2 := startWaiting(t, []string{bin, "1", "1", "1000"})
	for _, w := range []*waitingTarget{master, w1, w2} {
		w.waitBlocked(t, "/ctarget")
	}
	tr := startTrace(t, "--pid", itoa(master.pid), "work")
	master.cmd.Process.Kill()
	master.cmd.Wait()
	r := tr.Wait(20 * time.Second)
	var hint string
	for _, w := range r.Warnings {
		if strings.Contains(w, "run the same executable") {
			hint = w
		}
	}
	if !strings.Contains(hint, "process "+itoa(master.pid)+" made no calls") || !strings.Contains(hint, itoa(w1.pid)) || !strings.Contains(hint, itoa(w2.pid)) || !strings.Contains(hint, "trace one of them") {
		t.Errorf("want a warning naming processes %d and %d that run the same executable; warnings: %q", w1.pid, w2.pid, r.Warnings)
	}
}
