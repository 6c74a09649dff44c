package launch

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sh(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start("/bin/sh", []string{"sh", "-c", script}, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func state(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

func itoa(n int) string { return strconv.Itoa(n) }

// Started, the command is the new program, stopped, and has not run: the
// file its first command writes does not exist until it is resumed.
func TestStartStopsBeforeTheFirstInstruction(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ran")
	p := sh(t, "echo yes > "+out+"; exit 7")
	exe, err := os.Readlink("/proc/" + itoa(p.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks("/bin/sh"); exe != want {
		t.Errorf("stopped process runs %s, want the new program %s", exe, want)
	}
	if s := state(t, p.Pid); s != "t" {
		t.Errorf("state %q, want t (stopped by the tracer)", s)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the command ran before Resume")
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait()
	if err != nil || code != 7 {
		t.Errorf("Wait = %d, %v; want 7", code, err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "yes\n" {
		t.Errorf("the command's output: %q, %v", b, err)
	}
	if err := p.Resume(); err == nil {
		t.Error("a second Resume succeeded")
	}
}

func TestExitStatusOfASignal(t *testing.T) {
	p := sh(t, "kill -TERM $$")
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); err != nil || code != 128+15 {
		t.Errorf("Wait = %d, %v; want 143 (128 + SIGTERM)", code, err)
	}
}

func TestSignal(t *testing.T) {
	p := sh(t, "exec sleep 10")
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.Wait(); code != 128+2 {
		t.Errorf("exit status %d, want 130 (128 + SIGINT)", code)
	}
}

func TestKillBeforeResume(t *testing.T) {
	p := sh(t, "sleep 10")
	p.Kill()
	if _, err := os.Stat("/proc/" + itoa(p.Pid)); err == nil {
		t.Errorf("process %d still exists after Kill", p.Pid)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("not a program\x00\x01"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing"), dir, text} {
		if _, err := Start(path, []string{path}, nil); !errors.Is(err, ErrNotStarted) {
			t.Errorf("Start(%s) error = %v, want ErrNotStarted", path, err)
		}
	}
}
