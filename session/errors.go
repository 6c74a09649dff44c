package session

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/ulat-dev/ulat/internal/marked"
	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/symbols"
)

// ErrInput marks an error that is the user's to fix (a file that does not
// exist or is not a program ulat can read, a pattern that matches nothing,
// a process that does not exist), as opposed to a failure while tracing.
// Front-ends test for it with errors.Is; the error's text says what is
// wrong.
var ErrInput = errors.New("invalid input")

// Inputf makes an error that is the user's to fix (ErrInput).
func Inputf(format string, a ...any) error { return marked.With(ErrInput, fmt.Errorf(format, a...)) }

// inputCauses are the errors of other packages that say the user's input
// is wrong.
var inputCauses = []error{
	fs.ErrNotExist, symbols.ErrNotELF, symbols.ErrUnsupported, symbols.ErrNoSymbols,
	symbols.ErrNoMatch, symbols.ErrNoLibrary, symbols.ErrNotMapped, symbols.ErrNoProcess,
	symbols.ErrProcess, ErrNoProcess,
}

// AsInput marks err as ErrInput when its cause is one that says the
// user's input is wrong (a file that does not exist or cannot be read as a
// program, a pattern without a match, a process that does not exist), for
// front-ends that call symbols themselves.
func AsInput(err error) error {
	if err == nil || errors.Is(err, ErrInput) {
		return err
	}
	for _, c := range inputCauses {
		if errors.Is(err, c) {
			return marked.With(ErrInput, err)
		}
	}
	return err
}

// Failures of the kernel or the host that a front-end may explain in its
// own terms (which option to use instead): the probes' sentinels.
var (
	ErrPermission   = probes.ErrPermission   // not root, or without CAP_BPF and CAP_PERFMON
	ErrNoBTF        = probes.ErrNoBTF        // the kernel has no BTF
	ErrNoUprobes    = probes.ErrNoUprobes    // the kernel has no uprobes
	ErrKernelTooOld = probes.ErrKernelTooOld // older than probes.MinKernel
	ErrRejected     = probes.ErrRejected     // the verifier refused a program
	ErrProbeKind    = probes.ErrProbeKind    // the kernel lacks the attach mode's kind of link
)

// ErrNoProcess: the process to trace does not exist.
var ErrNoProcess = errors.New("no such process")

// watchProcess fails when pid does not exist, and otherwise returns a
// channel closed when it exits; it stops watching when quit is closed.
func watchProcess(pid int, quit <-chan struct{}) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, Inputf("process %d: %w", pid, ErrNoProcess)
		}
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	ch := make(chan struct{})
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			// A timeout, so that a session that ends first (an agent's)
			// leaves no goroutine and no descriptor behind.
			n, err := unix.Poll(fds, 200)
			if n > 0 || (err != nil && err != unix.EINTR) {
				break
			}
			select {
			case <-quit:
				return
			default:
			}
		}
		close(ch)
	}()
	return ch, nil
}
