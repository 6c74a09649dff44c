package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ulat-dev/ulat/cgroup"
	"github.com/ulat-dev/ulat/glob"
	"github.com/ulat-dev/ulat/internal/procfs"
	"github.com/ulat-dev/ulat/symbols"
)

// process is what the agent reads of a running process.
type process struct {
	pid   int
	start uint64 // in clock ticks after boot: tells a reused pid apart
	exe   string // the executable's path in the process's mount namespace
	// file is the executable's identity, which outlives its path: an
	// upgrade puts another file at the path, and a container's file has a
	// path of its own mount namespace.
	file symbols.ExecutableID
	// cmdline is its arguments joined by spaces.
	cmdline string
	cgroup  string // cgroup v2 path
}

// readProcess reads process pid; it fails for a process that has ended
// and for kernel threads, which run no executable.
func readProcess(pid int) (*process, error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return nil, err
	}
	file, err := symbols.ExecutableOf(pid)
	if err != nil {
		return nil, err
	}
	start, err := startTime(pid)
	if err != nil {
		return nil, err
	}
	args, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return nil, err
	}
	cg, err := cgroup.Of(pid)
	if err != nil {
		cg = "" // no cgroup v2: selection by cgroup matches nothing
	}
	return &process{
		pid: pid, start: start, exe: exe, file: file, cgroup: cg,
		cmdline: string(bytes.TrimRight(bytes.ReplaceAll(args, []byte{0}, []byte{' '}), " ")),
	}, nil
}

// startTime is field 22 of /proc/PID/stat: when the process started, in
// clock ticks after boot.
func startTime(pid int) (uint64, error) {
	f, err := procfs.StatFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive says whether p still runs: its pid has not been handed to
// another process.
func (p *process) alive() bool {
	start, err := startTime(p.pid)
	return err == nil && start == p.start
}

// openPath is a path to p's executable the agent can open and probe: the
// path itself when it names that file here; else through the process's
// root (a container's file); else /proc/PID/exe (a file deleted or
// replaced since the process started, or a root the agent cannot reach).
func (p *process) openPath() string {
	same := func(path string) bool {
		id, err := symbols.IdentifyFile(path)
		return err == nil && id == p.file
	}
	exe := strings.TrimSuffix(p.exe, " (deleted)")
	if same(exe) {
		return exe
	}
	if inRoot := filepath.Join(fmt.Sprintf("/proc/%d/root", p.pid), exe); same(inRoot) {
		return inRoot
	}
	return fmt.Sprintf("/proc/%d/exe", p.pid)
}

// matcher is a Match compiled.
type matcher struct {
	cmdline, cgroup, namespace, pod *regexp.Regexp
	podLabels                       map[string]string
}

func compile(m Match) matcher {
	re := func(p string) *regexp.Regexp {
		if p == "" {
			return nil
		}
		return glob.Regexp(p)
	}
	return matcher{re(m.Cmdline), re(m.Cgroup), re(m.Namespace), re(m.Pod), m.PodLabels}
}

// needsPod says whether matching needs the process's pod.
func (m matcher) needsPod() bool {
	return m.namespace != nil || m.pod != nil || len(m.podLabels) > 0
}

// matches says whether p (in pod, nil outside one) is selected by m.
func (m matcher) matches(p *process, pod *pod) bool {
	if m.cmdline != nil && !m.cmdline.MatchString(p.cmdline) {
		return false
	}
	if m.cgroup != nil && !m.cgroup.MatchString(p.cgroup) {
		return false
	}
	if !m.needsPod() {
		return true
	}
	if pod == nil {
		return false
	}
	if m.namespace != nil && !m.namespace.MatchString(pod.Namespace) || m.pod != nil && !m.pod.MatchString(pod.Name) {
		return false
	}
	for k, v := range m.podLabels {
		if pod.Labels[k] != v {
			return false
		}
	}
	return true
}

// selector is a target's choice of processes.
type selector struct {
	exe     string // the target's exe: a path, or a glob of paths
	match   matcher
	exclude []matcher
}

func newSelector(t Target) selector {
	s := selector{exe: t.Exe, match: compile(t.Match)}
	for _, m := range t.Exclude {
		s.exclude = append(s.exclude, compile(m))
	}
	return s
}

// needsPod says whether choosing needs the process's pod.
func (s selector) needsPod() bool {
	if s.match.needsPod() {
		return true
	}
	for _, m := range s.exclude {
		if m.needsPod() {
			return true
		}
	}
	return false
}

// runs says whether p runs the target's executable, by its path in p's
// mount namespace.
func (s selector) runs(p *process) bool {
	ok, _ := filepath.Match(s.exe, strings.TrimSuffix(p.exe, " (deleted)")) // the pattern was checked by Load
	return ok
}

// chooses says whether the target traces p.
func (s selector) chooses(p *process, pod *pod) bool {
	if !s.match.matches(p, pod) {
		return false
	}
	for _, m := range s.exclude {
		if m.matches(p, pod) {
			return false
		}
	}
	return true
}
