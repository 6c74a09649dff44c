// Package e2e runs the real bin/ulat, as root, against targets whose call
// counts and durations are known by construction, and checks what it
// reports. `make test` builds bin/ulat first.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/report"
)

var (
	ulatBin   string
	targetDir string
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	ulatBin = filepath.Join(root, "bin", "ulat")
	if _, err := os.Stat(ulatBin); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s is missing: run `make build` (or `make test`) first\n", ulatBin)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "ulat-e2e-")
	if err != nil {
		panic(err)
	}
	targetDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireRoot skips privileged tests, loudly, when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to load BPF programs (run `sudo make test`)")
	}
}

var buildMu sync.Mutex

// build compiles a target once per test run and returns its path.
func build(t *testing.T, name string, cmd ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	out := filepath.Join(targetDir, name)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	args := make([]string, len(cmd))
	for i, a := range cmd {
		args[i] = strings.ReplaceAll(a, "$OUT", out)
	}
	c := exec.Command(args[0], args[1:]...)
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

func cTarget(t *testing.T, pie bool) string {
	if pie {
		return build(t, "ctarget", "gcc", "-O2", "-g", "-pthread", "-o", "$OUT", "testdata/ctarget/ctarget.c")
	}
	return build(t, "ctarget-nopie", "gcc", "-O2", "-no-pie", "-pthread", "-o", "$OUT", "testdata/ctarget/ctarget.c")
}

func goTarget(t *testing.T, variant string) string {
	switch variant {
	case "pie":
		return build(t, "gotarget-pie", "go", "build", "-buildmode=pie", "-o", "$OUT", "./testdata/gotarget")
	case "stripped":
		return build(t, "gotarget-stripped", "go", "build", "-ldflags=-s -w", "-o", "$OUT", "./testdata/gotarget")
	}
	return build(t, "gotarget", "go", "build", "-o", "$OUT", "./testdata/gotarget")
}

// tracer is a running `ulat trace`.
type tracer struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    string
	stderr *bytes.Buffer
	done   chan error
}

// startTrace runs `ulat trace -f json -o FILE args...` and waits until it
// says it is tracing.
func startTrace(t *testing.T, args ...string) *tracer {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	full := append([]string{"trace", "-f", "json", "-o", out}, args...)
	cmd := exec.Command(ulatBin, full...)
	pr, pw := io.Pipe()
	stderr := &bytes.Buffer{}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ulat: %v", err)
	}
	tr := &tracer{t: t, cmd: cmd, out: out, stderr: stderr, done: make(chan error, 1)}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		said := false
		for sc.Scan() {
			line := sc.Text()
			stderr.WriteString(line + "\n")
			if !said && strings.HasPrefix(line, "Tracing ") {
				said = true
				ready <- true
			}
		}
		if !said {
			ready <- false
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		tr.done <- err
	}()
	select {
	case ok := <-ready:
		if !ok {
			err := <-tr.done
			t.Fatalf("ulat %v ended before tracing: %v\n%s", full, err, stderr)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("ulat did not start tracing within 60s\n%s", stderr)
	}
	return tr
}

// stop sends SIGINT and returns the report.
func (tr *tracer) stop() *report.JSONReport {
	tr.t.Helper()
	tr.cmd.Process.Signal(syscall.SIGINT)
	return tr.wait(30 * time.Second)
}

// wait waits for ulat to end by itself and returns the report.
func (tr *tracer) wait(limit time.Duration) *report.JSONReport {
	tr.t.Helper()
	select {
	case err := <-tr.done:
		if err != nil {
			tr.t.Fatalf("ulat failed: %v\n%s", err, tr.stderr)
		}
	case <-time.After(limit):
		tr.cmd.Process.Kill()
		tr.t.Fatalf("ulat did not end within %s\n%s", limit, tr.stderr)
	}
	f, err := os.Open(tr.out)
	if err != nil {
		tr.t.Fatalf("open report: %v", err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		tr.t.Fatalf("read report: %v", err)
	}
	return r
}

// run runs a target to completion and returns its stdout.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return string(out)
}

type reportJSON = report.JSONReport

func fn(t *testing.T, r *report.JSONReport, name string) report.JSONFunction {
	t.Helper()
	for _, f := range r.Functions {
		if f.Function == name {
			return f
		}
	}
	b, _ := json.Marshal(r)
	t.Fatalf("function %s not in report: %s", name, b)
	return report.JSONFunction{}
}

func wantCount(t *testing.T, r *report.JSONReport, name string, want uint64) report.JSONFunction {
	t.Helper()
	f := fn(t, r, name)
	if f.Count != want {
		t.Errorf("%s: count %d, want exactly %d", name, f.Count, want)
	}
	var sum uint64
	for _, b := range f.Buckets {
		sum += b.Count
	}
	if sum != f.Count {
		t.Errorf("%s: buckets sum to %d, count is %d", name, sum, f.Count)
	}
	return f
}

// wantDuration checks a sleep-bound function: no call can be shorter than
// the sleep, and on this noisy VM the median is within slack above it.
func wantDuration(t *testing.T, f report.JSONFunction, sleep, slack time.Duration) {
	t.Helper()
	if time.Duration(f.MinNs) < sleep {
		t.Errorf("%s: min %s is shorter than the %s the function sleeps", f.Function, time.Duration(f.MinNs), sleep)
	}
	if p50 := time.Duration(f.P50Ns); p50 < sleep || p50 > sleep+slack {
		t.Errorf("%s: p50 %s, want within [%s, %s]", f.Function, p50, sleep, sleep+slack)
	}
	if !(f.MinNs <= f.P50Ns && f.P50Ns <= f.P90Ns && f.P90Ns <= f.P99Ns && f.P99Ns <= f.MaxNs) {
		t.Errorf("%s: percentiles out of order: %+v", f.Function, f)
	}
}

func wantNoLoss(t *testing.T, r *report.JSONReport) {
	t.Helper()
	if r.Lost.DroppedEvents != 0 || r.Lost.UnpairedExits != 0 {
		t.Errorf("lost: %+v, want none", r.Lost)
	}
}
