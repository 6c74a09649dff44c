// Package e2e runs the real bin/ulat, as root, against targets whose call
// counts and durations are known by construction, and checks what it
// reports. `make test` builds bin/ulat first.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/e2e/ulattest"
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
type tracer = ulattest.Tracer

// startTrace runs `ulat trace -f json -o FILE args...` and waits until it
// says it is tracing.
func startTrace(t *testing.T, args ...string) *tracer {
	t.Helper()
	return ulattest.StartTrace(t, ulatBin, args...)
}

type reportJSON = report.JSONReport

var (
	fn         = ulattest.Fn
	wantCount  = ulattest.WantCount
	wantNoLoss = ulattest.WantNoLoss
	exitCode   = ulattest.ExitCode
	// run runs a target to completion and returns its stdout.
	run = ulattest.Output
	// checkUnwound checks the calls of a function that returned and that
	// never did.
	checkUnwound = ulattest.WantUnwound
)

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
