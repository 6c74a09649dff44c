// Package ulattest runs the real ulat binary the way a user does and reads
// its JSON reports, for the end-to-end tests of e2e/ and of the kernel
// matrix (kernels/guest), which run on this kernel and in QEMU guests.
package ulattest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
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

// StartTimeout bounds how long ulat may take to say it is tracing. It only
// turns a hang into a failure: an emulated guest wants more.
var StartTimeout = 60 * time.Second

// Tracer is a running `ulat trace`.
type Tracer struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    string
	mu     sync.Mutex
	stderr bytes.Buffer
	said   chan struct{} // a line was added to stderr
	done   chan error
}

// Stderr is what ulat printed on stderr so far.
func (tr *Tracer) Stderr() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.stderr.String()
}

// WaitStderr waits until ulat has printed s on stderr, and reports
// whether it did before limit (which only turns a hang into a failure).
func (tr *Tracer) WaitStderr(s string, limit time.Duration) bool {
	deadline := time.After(limit)
	for !strings.Contains(tr.Stderr(), s) {
		select {
		case <-tr.said:
		case <-deadline:
			return false
		}
	}
	return true
}

// StartTrace runs `ulat trace -f json -o FILE args...` and waits until it
// says it is tracing.
func StartTrace(t *testing.T, ulat string, args ...string) *Tracer {
	t.Helper()
	return StartTraceIn(t, nil, ulat, args...)
}

// StartTraceIn is StartTrace with ulat run by a command that execs it, such
// as unshare: ulat's pid is the command's.
func StartTraceIn(t *testing.T, prefix []string, ulat string, args ...string) *Tracer {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	full := append(append(append([]string{}, prefix...), ulat, "trace", "-f", "json", "-o", out), args...)
	cmd := exec.Command(full[0], full[1:]...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ulat: %v", err)
	}
	tr := &Tracer{t: t, cmd: cmd, out: out, said: make(chan struct{}, 1), done: make(chan error, 1)}
	ready := make(chan bool, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		tracing := false
		for sc.Scan() {
			line := sc.Text()
			tr.mu.Lock()
			tr.stderr.WriteString(line + "\n")
			tr.mu.Unlock()
			select {
			case tr.said <- struct{}{}:
			default:
			}
			if !tracing && strings.HasPrefix(line, "Tracing ") {
				tracing = true
				ready <- true
			}
		}
		if !tracing {
			ready <- false
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-read // all of stderr is in
		tr.done <- err
	}()
	select {
	case ok := <-ready:
		if !ok {
			err := <-tr.done
			t.Fatalf("ulat %v ended before tracing: %v\n%s", full, err, tr.Stderr())
		}
	case <-time.After(StartTimeout):
		cmd.Process.Kill()
		t.Fatalf("ulat did not start tracing within %s\n%s", StartTimeout, tr.Stderr())
	}
	return tr
}

// Pid is ulat's process id.
func (tr *Tracer) Pid() int { return tr.cmd.Process.Pid }

// Signal sends sig to ulat.
func (tr *Tracer) Signal(sig os.Signal) { tr.cmd.Process.Signal(sig) }

// Kill kills ulat and waits until it is gone.
func (tr *Tracer) Kill() {
	tr.cmd.Process.Kill()
	<-tr.done
}

// Stop sends SIGINT and returns the report.
func (tr *Tracer) Stop() *report.JSONReport {
	tr.t.Helper()
	tr.cmd.Process.Signal(syscall.SIGINT)
	return tr.Wait(30 * time.Second)
}

// Wait waits for ulat to end by itself and returns the report.
func (tr *Tracer) Wait(limit time.Duration) *report.JSONReport {
	tr.t.Helper()
	select {
	case err := <-tr.done:
		if err != nil {
			tr.t.Fatalf("ulat failed: %v\n%s", err, tr.Stderr())
		}
	case <-time.After(limit):
		tr.cmd.Process.Kill()
		tr.t.Fatalf("ulat did not end within %s\n%s", limit, tr.Stderr())
	}
	return ReadReport(tr.t, tr.out)
}

// StopAll sends SIGINT and returns every report ulat wrote, in order: with
// --interval, one per interval and the total last.
func (tr *Tracer) StopAll() []*report.JSONReport {
	tr.t.Helper()
	tr.cmd.Process.Signal(syscall.SIGINT)
	tr.Wait(30 * time.Second)
	return ReadReports(tr.t, tr.out)
}

// Reports returns the reports ulat has written so far (with --interval,
// one per interval), leaving out one it is still writing.
func (tr *Tracer) Reports() []*report.JSONReport {
	tr.t.Helper()
	data, err := os.ReadFile(tr.out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tr.t.Fatalf("read reports: %v", err)
	}
	rs, _ := decodeReports(data)
	return rs
}

// ReadReports reads a file of JSON reports written one after another (as
// --interval writes them).
func ReadReports(t *testing.T, path string) []*report.JSONReport {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read reports: %v", err)
	}
	rs, err := decodeReports(data)
	if err != nil {
		t.Fatalf("read reports: %v", err)
	}
	return rs
}

// decodeReports decodes the reports in data up to the first that is not a
// whole report.
func decodeReports(data []byte) ([]*report.JSONReport, error) {
	var rs []*report.JSONReport
	for dec := json.NewDecoder(bytes.NewReader(data)); ; {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return rs, nil
		} else if err != nil {
			return rs, fmt.Errorf("document %d: %w", len(rs)+1, err)
		}
		r, err := report.ReadJSON(bytes.NewReader(raw))
		if err != nil {
			return rs, fmt.Errorf("document %d: %w", len(rs)+1, err)
		}
		rs = append(rs, r)
	}
}

// ReadReport reads a JSON report file.
func ReadReport(t *testing.T, path string) *report.JSONReport {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open report: %v", err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	return r
}

// Run runs `ulat run -f json -o FILE args...` and returns the report,
// ulat's exit status, and the command's stdout.
func Run(t *testing.T, ulat string, args ...string) (*report.JSONReport, int, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run.json")
	cmd := exec.Command(ulat, append([]string{"run", "-f", "json", "-o", out}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := ExitCode(t, cmd.Run())
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("ulat run %v (exit %d) wrote no report: %v\nstderr:\n%s", args, code, err, stderr.String())
	}
	return ReadReport(t, out), code, stdout.String()
}

// ExitCode is the exit status of a finished command, as a shell reports
// it (128+N for a signal).
func ExitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// Fn is the report's row of function name.
func Fn(t *testing.T, r *report.JSONReport, name string) report.JSONFunction {
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

// WantCount checks that name was called exactly want times, and that its
// histogram's buckets hold every call.
func WantCount(t *testing.T, r *report.JSONReport, name string, want uint64) report.JSONFunction {
	t.Helper()
	f := Fn(t, r, name)
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

// WantNoLoss checks that no event was dropped and no exit went unpaired.
func WantNoLoss(t *testing.T, r *report.JSONReport) {
	t.Helper()
	if r.Lost.DroppedEvents != 0 || r.Lost.UnpairedExits != 0 {
		t.Errorf("lost: %+v, want none", r.Lost)
	}
}

// WantUnwound checks that name returned exactly returned times and that
// exactly unwound calls never returned (a panic, Goexit or longjmp).
func WantUnwound(t *testing.T, r *report.JSONReport, name string, returned, unwound uint64) {
	t.Helper()
	f := WantCount(t, r, name, returned)
	if f.DidNotReturn != unwound {
		t.Errorf("%s: did_not_return %d, want exactly %d", name, f.DidNotReturn, unwound)
	}
}

// Output runs a program to completion and returns its stdout.
func Output(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return string(out)
}

// SyncBuffer is a bytes.Buffer that a process's output and a test's
// reads may share from several goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
