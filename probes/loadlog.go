package probes

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	bpf "github.com/aquasecurity/libbpfgo"
	"golang.org/x/sys/unix"
)

// ErrRejected: the kernel's verifier refused one of ulat's BPF programs.
// That is a property of the kernel, not of the user's privileges; the
// error names the kernel, the program and the verifier's reason.
var ErrRejected = errors.New("the kernel rejected ulat's BPF program")

// libbpfLog is what libbpf said while an object loaded: it is shown only
// to Options.LibbpfLog, but a program's load failure is always kept, so that
// the error can say which program the kernel rejected and why. libbpf's
// logger is process-wide.
var libbpfLog struct {
	mu       sync.Mutex
	w        io.Writer // nil: libbpf's messages are not shown
	failures []loadFailure
}

type loadFailure struct {
	prog, reason string
}

var (
	progFailed = regexp.MustCompile(`prog '([^']+)': BPF program load failed`)
	progLog    = regexp.MustCompile(`(?s)prog '([^']+)': -- BEGIN PROG LOAD LOG --\n(.*)-- END PROG LOAD LOG --`)
)

func init() {
	bpf.SetLoggerCbs(bpf.Callbacks{Log: onLibbpfLog})
}

func onLibbpfLog(level int, msg string) {
	libbpfLog.mu.Lock()
	defer libbpfLog.mu.Unlock()
	if libbpfLog.w != nil {
		// libbpf's messages carry their own "libbpf: " prefix.
		fmt.Fprint(libbpfLog.w, msg)
	}
	if m := progFailed.FindStringSubmatch(msg); m != nil {
		libbpfLog.failures = append(libbpfLog.failures, loadFailure{prog: m[1]})
	}
	if m := progLog.FindStringSubmatch(msg); m != nil {
		for i := range libbpfLog.failures {
			if f := &libbpfLog.failures[i]; f.prog == m[1] && f.reason == "" {
				f.reason = verifierReason(m[2])
			}
		}
	}
}

// startLoadLog starts keeping load failures anew; w, when not nil, gets
// every message of libbpf's.
func startLoadLog(w io.Writer) {
	libbpfLog.mu.Lock()
	defer libbpfLog.mu.Unlock()
	libbpfLog.w, libbpfLog.failures = w, nil
}

func loadFailures() []loadFailure {
	libbpfLog.mu.Lock()
	defer libbpfLog.mu.Unlock()
	return append([]loadFailure(nil), libbpfLog.failures...)
}

// verifierReason is the line of a verifier log that says why it refused
// the program: its last line but for the statistics after it.
func verifierReason(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == "", strings.HasPrefix(l, "processed "), strings.HasPrefix(l, "verification time"),
			strings.HasPrefix(l, "stack depth"), strings.HasPrefix(l, "-- END"):
			continue
		}
		return l
	}
	return ""
}

// rejectedError says which program the kernel refused, and why, when
// libbpf reported one.
func rejectedError(fs []loadFailure) error {
	if len(fs) == 0 {
		return nil
	}
	f := fs[0]
	why := ""
	if f.reason != "" {
		why = fmt.Sprintf(" (the verifier: %q)", f.reason)
	}
	return fmt.Errorf("%w %s on Linux %s%s", ErrRejected, f.prog, kernelRelease(), why)
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown)"
	}
	return unix.ByteSliceToString(u.Release[:])
}
