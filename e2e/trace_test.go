package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// C: threads, exact counts, recursion, durations of a known sleep, and the
// target's output unchanged by tracing.
func TestTraceC(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		pie    bool
		attach string
	}{{true, "multi"}, {false, "multi"}, {true, "perf"}, {false, "perf"}} {
		name := "pie"
		if !c.pie {
			name = "nopie"
		}
		pie := c.pie
		t.Run(name+"/"+c.attach, func(t *testing.T) {
			bin := cTarget(t, pie)
			want := run(t, bin, "4", "25", "2000")

			tr := startTrace(t, "--attach", c.attach, bin, "work", "fast", "fib")
			got := run(t, bin, "4", "25", "2000")
			r := tr.Stop()

			if got != want {
				t.Errorf("target output changed under tracing: %q, untraced %q", got, want)
			}
			wantNoLoss(t, r)
			work := wantCount(t, r, "work", 4*25)
			wantDuration(t, work, 2*time.Millisecond, 3*time.Millisecond)
			wantCount(t, r, "fast", 4*25*10)
			wantCount(t, r, "fib", 177) // fib(10) calls fib 177 times
			if work.Binary != bin {
				t.Errorf("binary %q, want %q", work.Binary, bin)
			}
		})
	}
}

// Go: goroutines that sleep, yield and park on channels (so they resume on
// other threads mid-call), recursion, and a stack that grows mid-call.
func TestTraceGo(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct{ variant, attach string }{
		{"normal", "multi"}, {"pie", "multi"}, {"stripped", "multi"}, {"normal", "perf"},
	} {
		variant := c.variant
		t.Run(variant+"/"+c.attach, func(t *testing.T) {
			bin := goTarget(t, variant)
			want := run(t, bin, "8", "20", "2ms")

			tr := startTrace(t, "--attach", c.attach, bin, "main.work", "main.recurse", "main.deep", "main.grow")
			got := run(t, bin, "8", "20", "2ms")
			r := tr.Stop()

			if got != want {
				t.Errorf("target output changed under tracing: %q, untraced %q", got, want)
			}
			wantNoLoss(t, r)
			work := wantCount(t, r, "main.work", 8*20)
			wantDuration(t, work, 2*time.Millisecond, 3*time.Millisecond)
			wantCount(t, r, "main.recurse", 11) // recurse(10) .. recurse(0)
			wantCount(t, r, "main.deep", 201)   // deep(200) .. deep(0)
			grow := wantCount(t, r, "main.grow", 1)
			// grow's duration spans all of deep's nested calls. With
			// their probes' costs taken out of both, grow does little
			// but call deep: they may meet within the correction's
			// stated uncertainty, never cross by more.
			deep := fn(t, r, "main.deep")
			if grow.MaxNs+grow.ProbeUncertaintyNs < deep.MaxNs {
				t.Errorf("main.grow took %dns (±%dns), less than its callee main.deep (%dns): pairs are crossed", grow.MaxNs, grow.ProbeUncertaintyNs, deep.MaxNs)
			}
		})
	}
}

// Globs select functions; each is reported once.
func TestTraceGlob(t *testing.T) {
	requireRoot(t)
	bin := goTarget(t, "normal")
	tr := startTrace(t, bin, "main.re*", "main.recurse", "main.gro?")
	run(t, bin, "2", "3", "1ms")
	r := tr.Stop()
	if len(r.Functions) != 2 {
		t.Fatalf("want main.recurse and main.grow once each, got %d functions: %+v", len(r.Functions), r.Functions)
	}
	wantCount(t, r, "main.recurse", 11)
	wantCount(t, r, "main.grow", 1)
}

// --pid traces only that process and ends by itself when it exits.
func TestTracePid(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	start := func() (*exec.Cmd, *os.File) {
		c := exec.Command(bin, "2", "10", "1000")
		c.Env = append(os.Environ(), "TARGET_WAIT=1")
		w, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c, w.(*os.File)
	}
	a, aIn := start()
	b, bIn := start()
	defer b.Process.Kill()

	tr := startTrace(t, "--pid", itoa(a.Process.Pid), bin, "work")
	aIn.WriteString("go\n")
	bIn.WriteString("go\n")
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	r := tr.Wait(20 * time.Second) // no signal: ends because the pid exited
	wantCount(t, r, "work", 2*10)  // a's calls only, not b's
	wantNoLoss(t, r)
}

// --duration ends tracing by itself; --interval prints a report per interval
// and a total at the end.
func TestTraceDurationInterval(t *testing.T) {
	requireRoot(t)
	bin := cTarget(t, true)
	c := exec.Command(ulatBin, "trace", "--duration", "2s", "--interval", "500ms", bin, "work")
	var out bytes.Buffer
	c.Stdout = &out
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// --duration counts from when tracing begins, which ulat says.
	lines := bufio.NewScanner(stderr)
	var tracing time.Time
	var errb strings.Builder
	for lines.Scan() {
		fmt.Fprintln(&errb, lines.Text())
		if strings.HasPrefix(lines.Text(), "Tracing 1 function in ") {
			tracing = time.Now()
			break
		}
	}
	if tracing.IsZero() {
		c.Wait()
		t.Fatalf("ulat did not say it was tracing: %s", errb.String())
	}
	run(t, bin, "1", "20", "1000")
	io.Copy(&errb, stderr)
	if err := c.Wait(); err != nil {
		t.Fatalf("ulat: %v\n%s", err, errb.String())
	}
	// The upper bound only turns a hang into a failure.
	if took := time.Since(tracing); took < 2*time.Second || took > time.Minute {
		t.Errorf("--duration 2s took %s", took)
	}
	s := out.String()
	if n := strings.Count(s, "| FUNCTION |"); n < 4 {
		t.Errorf("want at least 3 interval tables and a total, got %d tables:\n%s", n, s)
	}
	if !strings.Contains(s, "Total over ") {
		t.Errorf("no total report:\n%s", s)
	}
}

// Programs nobody here wrote: gofmt from the Go distribution (a Go function
// called once per file it formats) and zlib from Debian through Python (C
// functions called once per compress()).
func TestTraceForeignPrograms(t *testing.T) {
	requireRoot(t)
	t.Run("gofmt", func(t *testing.T) {
		gofmt := gofmtPath(t)
		dir := t.TempDir()
		const files = 37
		var paths []string
		for i := 0; i < files; i++ {
			p := filepath.Join(dir, "f"+itoa(i)+".go")
			os.WriteFile(p, []byte("package p\nfunc F() int { return "+itoa(i)+" }\n"), 0o644)
			paths = append(paths, p)
		}
		tr := startTrace(t, gofmt, "main.processFile")
		run(t, gofmt, append([]string{"-l"}, paths...)...)
		r := tr.Stop()
		wantCount(t, r, "main.processFile", files)
		wantNoLoss(t, r)
	})
	t.Run("zlib", func(t *testing.T) {
		const python, libz = "/usr/bin/python3", "/lib/x86_64-linux-gnu/libz.so.1"
		for _, p := range []string{python, libz} {
			if _, err := os.Stat(p); err != nil {
				t.Skipf("SKIPPED: %s is not installed", p)
			}
		}
		z := privateLibrary(t, libz)
		tr := z.startTrace(t, libz, "deflateInit2_", "deflate", "deflateEnd")
		z.run(t, python, "-c", "import zlib\nfor i in range(250): zlib.compress(b'hello world' * i)")
		r := tr.Stop()
		wantCount(t, r, "deflateInit2_", 250)
		wantCount(t, r, "deflate", 250)
		wantCount(t, r, "deflateEnd", 250)
		wantNoLoss(t, r)
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

// gofmtPath is the Go distribution's gofmt.
func gofmtPath(t *testing.T) string {
	t.Helper()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(strings.TrimSpace(string(goroot)), "bin", "gofmt")
}
