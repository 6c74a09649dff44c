// Package launch starts a command stopped before its first instruction, so
// that probes can be attached to it before any of its code runs, then lets
// it run and reports how it ended.
//
// The child asks to be traced (PTRACE_TRACEME) and execs; the kernel stops
// it with SIGTRAP once the new program is loaded and before it returns to
// user space: its pid and its executable's mappings exist, nothing of it has
// run. Resume detaches, and from then on the child is an ordinary child
// process. (A pipe the child waits on before exec, as bpftrace does, needs
// code between fork and exec, which Go's ForkExec does not allow.)
package launch

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNotStarted is returned (wrapped) when the command could not be started:
// not found, not executable, not a program.
var ErrNotStarted = errors.New("cannot start command")

// Process is a started command.
type Process struct {
	Pid int
	// ptrace requests must come from the thread that became the tracer;
	// this goroutine, locked to it, serves them until Resume.
	resume chan chan error
}

// Start starts path with argv (argv[0] included) and env, sharing ulat's
// standard input, output and error and its process group (so a terminal's
// Ctrl-C reaches it), and returns it stopped before its first instruction.
func Start(path string, argv, env []string) (*Process, error) {
	type started struct {
		pid int
		err error
	}
	ready := make(chan started)
	p := &Process{resume: make(chan chan error)}
	go func() {
		// Never unlocked: the thread was a tracer, and ends with this
		// goroutine rather than serve other goroutines.
		runtime.LockOSThread()
		pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Env:   env,
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Ptrace: true},
		})
		if err != nil {
			ready <- started{err: fmt.Errorf("%w: %s: %w", ErrNotStarted, path, err)}
			return
		}
		var ws unix.WaitStatus
		for {
			_, err = unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		switch {
		case err != nil:
			ready <- started{err: fmt.Errorf("wait for %s to start: %w", path, err)}
			return
		case !ws.Stopped():
			// Killed before it ran (and so already reaped).
			ready <- started{err: fmt.Errorf("%w: %s ended before it ran (%s)", ErrNotStarted, path, describe(ws))}
			return
		}
		ready <- started{pid: pid}
		done := <-p.resume
		done <- unix.PtraceDetach(pid)
	}()
	s := <-ready
	if s.err != nil {
		return nil, s.err
	}
	p.Pid = s.pid
	return p, nil
}

// Resume lets the stopped command run.
func (p *Process) Resume() error {
	if p.resume == nil {
		return errors.New("resume: already resumed")
	}
	done := make(chan error)
	p.resume <- done
	p.resume = nil
	if err := <-done; err != nil {
		return fmt.Errorf("resume process %d: %w", p.Pid, err)
	}
	return nil
}

// Kill ends the command and reaps it, whether it was resumed or not.
func (p *Process) Kill() {
	_ = unix.Kill(p.Pid, unix.SIGKILL)
	if p.resume != nil {
		// A killed tracee needs no detach; the tracer goroutine ends.
		done := make(chan error)
		p.resume <- done
		<-done
		p.resume = nil
	}
	_, _ = p.Wait()
}

// Signal sends sig to the command.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v: not a unix signal", sig)
	}
	return unix.Kill(p.Pid, s)
}

// Wait waits for the command to end and returns its exit status the way a
// shell reports it: the exit code, or 128 plus the number of the signal that
// ended it. Call it after Resume.
func (p *Process) Wait() (int, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(p.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for process %d: %w", p.Pid, err)
		}
		break
	}
	return status(ws), nil
}

func status(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}
