package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/e2e/ulattest"
	"github.com/ulat-dev/ulat/report"
)

func runTarget(t *testing.T) string {
	return build(t, "runtarget", "gcc", "-O2", "-g", "-o", "$OUT", "testdata/runtarget/runtarget.c")
}

// ulatRun runs `ulat run -f json -o FILE args...` and returns the report,
// ulat's exit status, and the command's stdout.
func ulatRun(t *testing.T, args ...string) (*report.JSONReport, int, string) {
	t.Helper()
	return ulattest.Run(t, ulatBin, args...)
}

// ulat run passes the command's exit status through, counts every call
// from the first (startup is main's first call), leaves the command's
// stdout alone, and records what ran.
func TestRunExitStatusAndCounts(t *testing.T) {
	requireRoot(t)
	bin := runTarget(t)
	for _, tc := range []struct {
		args []string
		exit int
	}{
		{[]string{"1000", "0"}, 0},
		{[]string{"10", "3"}, 3},
		{[]string{"20", "signal"}, 128 + int(syscall.SIGUSR1)},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			bare := exec.Command(bin, tc.args...)
			wantOut, err := bare.Output()
			if got := exitCode(t, err); got != tc.exit {
				t.Fatalf("without ulat: exit %d, want %d", got, tc.exit)
			}
			r, code, out := ulatRun(t, append([]string{"--func", "startup", "--func", "work", "--func", "libc:strtol", "--", bin}, tc.args...)...)
			if code != tc.exit {
				t.Errorf("ulat run exit status %d, want the command's %d", code, tc.exit)
			}
			if out != string(wantOut) {
				t.Errorf("command's stdout under ulat run = %q, without = %q", out, wantOut)
			}
			n, _ := strconv.Atoi(tc.args[0])
			wantCount(t, r, "startup", 1)
			wantCount(t, r, "work", uint64(n))
			// atoi is strtol inlined: for N, and for STATUS when the
			// command does not end by a signal first.
			wantCount(t, r, "strtol", map[bool]uint64{true: 1, false: 2}[tc.args[1] == "signal"])
			wantNoLoss(t, r)
			if r.ExitStatus == nil || *r.ExitStatus != tc.exit {
				t.Errorf("report exit_status %v, want %d", r.ExitStatus, tc.exit)
			}
			if want := append([]string{bin}, tc.args...); strings.Join(r.Command, " ") != strings.Join(want, " ") {
				t.Errorf("report command %q, want %q", r.Command, want)
			}
			if r.UlatVersion == "" || r.Kernel == "" || r.ElapsedNs <= 0 || len(r.ProbeOverheadNs) == 0 {
				t.Errorf("report lacks run facts: version %q, kernel %q, elapsed %d, overhead %v", r.UlatVersion, r.Kernel, r.ElapsedNs, r.ProbeOverheadNs)
			}
			ids := map[string]string{}
			for _, b := range r.Binaries {
				ids[filepath.Base(b.Path)] = b.BuildID
			}
			if len(ids[filepath.Base(bin)]) != 40 || len(ids["libc.so.6"]) != 40 {
				t.Errorf("build ids %v: want GNU build ids of runtarget and libc.so.6", ids)
			}
		})
	}
}

// A Go function called from an init function, before main, is counted:
// probes are in place before the command's first instruction.
func TestRunGoFromTheFirstInstruction(t *testing.T) {
	requireRoot(t)
	bin := build(t, "gorun", "go", "build", "-o", "$OUT", "./testdata/gorun")
	r, code, out := ulatRun(t, "--func", "main.setup", "--func", "main.step", "--", bin, "5000", "7")
	if code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	if !strings.Contains(out, "gorun: 5000 steps") {
		t.Errorf("stdout %q", out)
	}
	wantCount(t, r, "main.setup", 1)
	wantCount(t, r, "main.step", 5000)
	wantNoLoss(t, r)
}

// cforker: the parent calls work 5 times and forks; the child calls it 7
// times and execs itself, which calls it 11 times. Both attach modes: the
// kernel filters by pid without --follow-forks, the BPF program with it.
func TestRunFollowForks(t *testing.T) {
	requireRoot(t)
	bin := build(t, "cforker", "gcc", "-O2", "-g", "-o", "$OUT", "testdata/cforker/cforker.c")
	for _, mode := range []string{"multi", "perf"} {
		t.Run(mode, func(t *testing.T) {
			r, code, _ := ulatRun(t, "--attach", mode, "--func", "work", "--", bin)
			if code != 0 {
				t.Errorf("exit status %d", code)
			}
			wantCount(t, r, "work", 5)
			r, code, _ = ulatRun(t, "--attach", mode, "--follow-forks", "--func", "work", "--", bin)
			if code != 0 {
				t.Errorf("--follow-forks: exit status %d", code)
			}
			wantCount(t, r, "work", 5+7+11)
			wantNoLoss(t, r)
		})
	}
}

// SIGTERM sent to ulat reaches the command; ulat reports and exits with
// the command's status.
func TestRunForwardsSIGTERM(t *testing.T) {
	requireRoot(t)
	bin := runTarget(t)
	out := filepath.Join(t.TempDir(), "run.json")
	cmd := exec.Command(ulatBin, "run", "-f", "json", "-o", out, "--func", "work", "--", bin, "100", "sleep")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The command prints once its calls are made, then sleeps.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "100 calls") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the command did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCode(t, err); code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit status %d, want 143 (the command ended by SIGTERM)", code)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("ulat run did not end after SIGTERM")
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	wantCount(t, r, "work", 100)
}

func TestRunErrors(t *testing.T) {
	requireRoot(t)
	bin := runTarget(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "notexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		exit int
		msg  string
	}{
		{"no command", []string{"run", "--func", "work"}, 2, "run needs a command"},
		{"no --func", []string{"run", "--", bin}, 2, "run needs at least one --func PATTERN"},
		{"unknown function", []string{"run", "--func", "wrok", "--", bin}, 2, `did you mean "work"`},
		{"command not found", []string{"run", "--func", "work", "--", "no-such-command-xyz"}, 127, `"no-such-command-xyz": executable file not found in $PATH`},
		{"not executable", []string{"run", "--func", "work", "--", notExec}, 126, "permission denied"},
		{"bad format", []string{"run", "-f", "yaml", "--func", "work", "--", bin}, 2, `--format "yaml": must be table or json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(ulatBin, tc.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			code := exitCode(t, cmd.Run())
			if code != tc.exit || !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.exit, tc.msg)
			}
			if strings.Contains(stderr.String(), "goroutine ") || strings.Contains(stderr.String(), "panic") {
				t.Errorf("stack trace in stderr:\n%s", stderr.String())
			}
		})
	}
}

// The CI loop: record a baseline with ulat run, then compare. A 40%
// slower parseRecord is caught (exit 1) and named; identical runs are not
// flagged; renderRecord, unchanged, is never flagged.
func TestRunCompareCatchesARegression(t *testing.T) {
	requireRoot(t)
	demo := build(t, "ulat-demo", "go", "build", "-o", "$OUT", "../cmd/ulat-demo")
	dir := t.TempDir()
	record := func(name string, args ...string) string {
		out := filepath.Join(dir, name+".json")
		argv := append([]string{"run", "-f", "json", "-o", out, "--func", "main.*Record", "--", demo, "work", "-n", "2000"}, args...)
		if code, stderr := ulatStatus(t, nil, argv...); code != 0 {
			t.Fatalf("ulat %v: exit %d\n%s", argv, code, stderr)
		}
		return out
	}
	compare := func(files ...string) (int, string) {
		c := exec.Command(ulatBin, append([]string{"compare"}, files...)...)
		out, err := c.CombinedOutput()
		return exitCode(t, err), string(out)
	}
	base1, base2, same := record("base1"), record("base2"), record("same")
	slower := record("slower", "-slower", "40")

	if code, out := compare(base1, same); code != 0 {
		t.Errorf("identical runs: exit %d, want 0 (not flagged)\n%s", code, out)
	}
	if code, out := compare(base1, base2, "--", same); code != 0 {
		t.Errorf("identical runs against a merged baseline: exit %d, want 0\n%s", code, out)
	}
	code, out := compare(base1, base2, "--", slower)
	if code != 1 {
		t.Fatalf("40%% slower parseRecord: exit %d, want 1\n%s", code, out)
	}
	// The table's rows: notes under it may name the functions too.
	var parse, render string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "| main.parseRecord "):
			parse = line
		case strings.HasPrefix(line, "| main.renderRecord "):
			render = line
		}
	}
	if !strings.Contains(parse, "regressed") {
		t.Errorf("parseRecord not reported as regressed: %q\n%s", parse, out)
	}
	if render == "" || strings.Contains(render, "regressed") {
		t.Errorf("renderRecord (unchanged) line: %q\n%s", render, out)
	}

	// Runs recorded with different aggregation are compared, with a
	// warning. (Explicit flags: make test runs this test again with
	// ULAT_AGGREGATE=user.)
	aggregated := map[string]string{}
	for _, mode := range []string{"kernel", "user"} {
		aggregated[mode] = filepath.Join(dir, mode+".json")
		if code, stderr := ulatStatus(t, nil, "run", "--aggregate", mode, "-f", "json", "-o", aggregated[mode], "--func", "main.*Record", "--", demo, "work", "-n", "2000"); code != 0 {
			t.Fatalf("ulat run --aggregate %s: exit %d\n%s", mode, code, stderr)
		}
	}
	if _, out := compare(aggregated["kernel"], aggregated["user"]); !strings.Contains(out, "warning: aggregation differs (baseline: kernel, current: user)") {
		t.Errorf("no warning that the aggregation differs:\n%s", out)
	}
}

// The report's elapsed time is the command's run time, not that time
// rounded up to the next poll of the ring buffer (it was in 50 ms steps).
// main's own duration, timed by its probes, is the independent measure:
// elapsed adds only exec, the loader and exit around it.
func TestRunElapsedIsTheRunTime(t *testing.T) {
	requireRoot(t)
	bin := runTarget(t)
	r, code, _ := ulatRun(t, "--func", "main", "--", bin, "1", "nap")
	if code != 0 {
		t.Fatalf("ulat run exit status %d", code)
	}
	main := wantCount(t, r, "main", 1)
	elapsed := time.Duration(r.ElapsedNs)
	mainTook := time.Duration(main.MaxNs)
	// Startup and exit of a small C program take about a millisecond;
	// 20 ms leaves room for a busy machine.
	const slack = 20 * time.Millisecond
	if elapsed < mainTook || elapsed > mainTook+slack {
		t.Errorf("elapsed %v; main ran %v, so the command ran between that and %v", elapsed, mainTook, mainTook+slack)
	}
}

// The CI workflow a Go user tries first: `go test` builds the test binary
// after ulat has started it, so with --follow-forks the patterns the go
// command does not have are looked for in each program it runs, and
// attached before the test binary's first instruction. Without
// --follow-forks the error says to add it; a pattern that never matched is
// named at the end.
func TestRunFollowsGoTest(t *testing.T) {
	requireRoot(t)
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("SKIPPED: no go command: %v", err)
	}
	dir, err := filepath.Abs("testdata/gomodule")
	if err != nil {
		t.Fatal(err)
	}
	gotest := []string{gotool, "test", "-count=1", "-v", "-run", "TestWork", "./x"}
	run := func(args ...string) (*reportJSON, int, string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "run.json")
		c := exec.Command(ulatBin, append([]string{"run", "-f", "json", "-o", out}, args...)...)
		c.Dir = dir
		c.Env = append(os.Environ(), "WORK_CALLS=13", "GOFLAGS=", "GOWORK=off")
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		code := exitCode(t, c.Run())
		if code != 0 {
			return nil, code, stderr.String()
		}
		return ulattest.ReadReport(t, out), code, stdout.String() + stderr.String()
	}

	r, code, out := run(append([]string{"--follow-forks", "--func", "example.com/m/x.Work", "--func", "example.com/m/x.Nothing"}, append([]string{"--"}, gotest...)...)...)
	if code != 0 {
		t.Fatalf("ulat run --follow-forks -- go test: exit %d\n%s", code, out)
	}
	var calls uint64
	for _, line := range strings.Split(out, "\n") {
		if _, err := fmt.Sscanf(line, "TestWork: %d calls", &calls); err == nil {
			break
		}
	}
	if calls != 13 {
		t.Fatalf("the test did not say it made 13 calls:\n%s", out)
	}
	wantCount(t, r, "example.com/m/x.Work", calls)
	wantNoLoss(t, r)
	var named bool
	for _, w := range r.Warnings {
		named = named || strings.Contains(w, `pattern "example.com/m/x.Nothing" matched no function`) && strings.Contains(w, "x.test")
	}
	if !named {
		t.Errorf("want a warning that example.com/m/x.Nothing matched nothing, naming the test binary; warnings: %q", r.Warnings)
	}

	_, code, stderr := run(append([]string{"--func", "example.com/m/x.Work", "--"}, gotest...)...)
	if code != 2 || !strings.Contains(stderr, "add --follow-forks") {
		t.Errorf("without --follow-forks: exit %d, %q; want 2 and a hint to add --follow-forks", code, stderr)
	}
}
