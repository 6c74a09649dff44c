package e2e

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// C++: demangled names match, overloads are told apart.
func TestTraceCXX(t *testing.T) {
	requireRoot(t)
	bin := build(t, "cxxtarget", "g++", "-O2", "-o", "$OUT", "testdata/cxxtarget/server.cc")
	const n = 30
	want := run(t, bin, itoa(n))
	tr := startTrace(t, bin, "Server::handle", "myapp::parse*", "twice<*")
	got := run(t, bin, itoa(n))
	r := tr.Stop()
	if got != want {
		t.Errorf("target output changed under tracing: %q, untraced %q", got, want)
	}
	// g++ -O2 may time the only copy of a function as a clone
	// ("Server::handle(int) [clone .isra.0]"); the pattern finds it.
	byPrefix := func(prefix string) string {
		t.Helper()
		for _, f := range r.Functions {
			if strings.HasPrefix(f.Function, prefix) {
				return f.Function
			}
		}
		t.Fatalf("no function %s... in %+v", prefix, r.Functions)
		return ""
	}
	if len(r.Functions) != 4 {
		t.Errorf("want 4 functions (two overloads, parse, one template instance), got %d: %+v", len(r.Functions), r.Functions)
	}
	wantCount(t, r, byPrefix("Server::handle(int)"), n)
	wantCount(t, r, byPrefix("Server::handle(std::"), n)
	wantCount(t, r, byPrefix("myapp::parse(char const*)"), n)
	wantCount(t, r, byPrefix("long twice<long>(long)"), n/2)
	wantNoLoss(t, r)
}

// Thousands of goroutines in the same function at once.
func TestTraceManyGoroutines(t *testing.T) {
	requireRoot(t)
	bin := goTarget(t, "normal")
	tr := startTrace(t, bin, "main.work")
	run(t, bin, "5000", "1", "20ms")
	r := tr.Stop()
	f := wantCount(t, r, "main.work", 5000)
	if f.MinNs < 20e6 {
		t.Errorf("main.work: min %dns, shorter than its 20ms sleep", f.MinNs)
	}
	wantNoLoss(t, r)
}

// An inlined-only function is named with the reason, and the rest traced.
func TestTraceInlinedWarning(t *testing.T) {
	requireRoot(t)
	bin := goTarget(t, "normal")
	tr := startTrace(t, bin, "main.tiny", "main.recurse")
	run(t, bin, "1", "1", "1ms")
	r := tr.Stop()
	wantCount(t, r, "main.recurse", 11)
	const msg = "main.tiny cannot be timed: it is inlined into every caller and has no out-of-line copy"
	if len(r.Warnings) != 1 || r.Warnings[0] != msg {
		t.Errorf("warnings %q, want [%q]", r.Warnings, msg)
	}
	if !strings.Contains(tr.Stderr(), "warning: "+msg) {
		t.Errorf("stderr lacks the warning: %s", tr.Stderr())
	}
}

// Without --pid, every process running the binary is traced, including
// several at once.
func TestTraceEveryProcess(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	tr := startTrace(t, bin, "work")
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := exec.Command(bin, "2", "10", "1000").Run(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r := tr.Stop()
	wantCount(t, r, "work", 3*2*10)
	wantNoLoss(t, r)
}

// Thousands of functions of a program nobody here wrote, the Go runtime's
// included, in one go: gofmt's output and exit status do not change, and
// the function with a known count still has it.
func TestTraceThousandsOfFunctions(t *testing.T) {
	requireRoot(t)
	gofmt := gofmtPath(t)
	dir := t.TempDir()
	const files = 23
	for i := 0; i < files; i++ {
		os.WriteFile(dir+"/f"+itoa(i)+".go", []byte("package p\nfunc F()   {}\n"), 0o644)
	}
	want, err := exec.Command(gofmt, "-l", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	tr := startTrace(t, gofmt, "*")
	got, err := exec.Command(gofmt, "-l", dir).Output()
	if err != nil {
		t.Errorf("gofmt under tracing: %v", err)
	}
	r := tr.Stop()
	if string(got) != string(want) {
		t.Errorf("gofmt output changed under tracing:\n%s\nwant:\n%s", got, want)
	}
	if len(r.Functions) < 2000 {
		t.Errorf("only %d functions traced, want thousands", len(r.Functions))
	}
	wantCount(t, r, "main.processFile", files)
	if !strings.Contains(tr.Stderr(), "more (all are listed at the end of the report)") || len(r.Warnings) < 100 {
		t.Errorf("want the functions that cannot be timed listed (%d warnings), and summarised on stderr:\n%s", len(r.Warnings), tr.Stderr())
	}
}

// Rust: demangled paths match; the exit is a uretprobe as for C.
func TestTraceRust(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("rustc"); err != nil {
		t.Skip("SKIPPED: rustc is not installed")
	}
	bin := build(t, "rusttarget", "rustc", "-C", "opt-level=1", "--crate-name", "myapp", "-o", "$OUT", "testdata/rusttarget/main.rs")
	const n = 25
	want := run(t, bin, itoa(n))
	tr := startTrace(t, bin, "myapp::parse")
	got := run(t, bin, itoa(n))
	r := tr.Stop()
	if got != want {
		t.Errorf("target output changed under tracing: %q, untraced %q", got, want)
	}
	wantCount(t, r, "myapp::parse", n)
	wantNoLoss(t, r)
}

// cgo: a Go function (RET probes, by goroutine) calling a C function of
// the same binary (uretprobe, by thread) through cgo, from 4 goroutines.
// Stripped too, as distributions ship Go programs built with cgo: then the
// Go functions come from .gopclntab alone (the C ones have no name left).
func TestTraceCgo(t *testing.T) {
	requireRoot(t)
	bin := build(t, "gocgo", "env", "CGO_ENABLED=1", "go", "build", "-o", "$OUT", "./testdata/gocgo")
	bare := build(t, "gocgo-stripped", "sh", "-c", "cp "+bin+" $OUT && strip $OUT")
	for _, tc := range []struct {
		name, bin string
		fns       []string
	}{
		{"symbols", bin, []string{"main.callC", "C.cwork"}},
		{"stripped", bare, []string{"main.callC"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			want := run(t, tc.bin, itoa(n))
			tr := startTrace(t, append([]string{tc.bin}, tc.fns...)...)
			got := run(t, tc.bin, itoa(n))
			r := tr.Stop()
			if got != want {
				t.Errorf("target output changed under tracing: %q, untraced %q", got, want)
			}
			for _, f := range tc.fns {
				wantCount(t, r, f, 4*n)
			}
			wantNoLoss(t, r)
		})
	}
}
