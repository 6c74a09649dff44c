package session

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ulat-dev/ulat/symbols"
)

// execFollower finds functions in the programs that followed processes
// exec: `go test` builds the test binary after ulat starts it, so
// `ulat run --follow-forks --func example.com/m/x.Work -- go test ./x`
// has nothing to match in the go command itself. Each program is looked
// at once (by file identity), while its process waits, stopped, before its
// first instruction.
type execFollower struct {
	patterns []string // the patterns the command's own binary did not have
	matched  map[string]bool
	seen     map[symbols.ExecutableID]bool
	programs []string // looked at, in order
	warnings []string
}

// newExecFollower waits for the patterns in the programs the command runs;
// command is its own executable, already resolved.
func newExecFollower(patterns []string, command string) *execFollower {
	f := &execFollower{patterns: patterns, matched: map[string]bool{}, seen: map[symbols.ExecutableID]bool{}}
	if id, err := symbols.IdentifyFile(command); err == nil {
		f.seen[id] = true
	}
	return f
}

// resolve looks for the patterns in the program pid has just exec'd.
func (f *execFollower) resolve(pid int, log *slog.Logger) []target {
	id, err := symbols.ExecutableOf(pid)
	if err != nil || f.seen[id] {
		return nil // gone already, or a program seen before
	}
	f.seen[id] = true
	loc, err := symbols.ProcessExecutable(pid)
	if err != nil {
		return nil
	}
	name := strings.TrimSuffix(loc.Name, " (deleted)")
	f.programs = append(f.programs, name)
	bin, err := symbols.Open(loc.Path)
	if err != nil {
		return nil // not a program ulat can read (a script's interpreter is)
	}
	defer bin.Close()
	var here []string
	for _, p := range f.patterns {
		if fns, err := bin.Match(p); err == nil && len(fns) > 0 {
			here = append(here, p)
		}
	}
	if len(here) == 0 {
		return nil
	}
	targets, warnings, _, err := resolveIn(bin, here, "")
	if err != nil {
		f.warnings = append(f.warnings, fmt.Sprintf("%s: %v", name, err))
		return nil
	}
	for _, p := range here {
		f.matched[p] = true
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	f.warnings = append(f.warnings, warnings...)
	return targets
}

// unmatched says which patterns matched nothing anywhere, and where ulat
// looked.
func (f *execFollower) unmatched(command string) []string {
	var out []string
	for _, p := range f.patterns {
		if f.matched[p] {
			continue
		}
		where := "no program it ran"
		if n := len(f.programs); n > 0 {
			shown := f.programs
			if n > 5 {
				shown = shown[:5]
			}
			where = fmt.Sprintf("the %d %s it ran (%s", n, plural(n, "program", "programs"), strings.Join(shown, ", "))
			if n > 5 {
				where += fmt.Sprintf(", and %d more", n-5)
			}
			where += ")"
		}
		out = append(out, fmt.Sprintf("pattern %q matched no function in %s or in %s", p, command, where))
	}
	return out
}

// splitByCommand sorts run's plain patterns into those the command's own
// executable has and those it does not: with --follow-forks, the second
// wait for the programs it runs. LIB: patterns stay with the first. A
// stripped launcher (make, a shell) has no functions of its own to match.
func splitByCommand(path string, patterns []string) (here, later []string, err error) {
	bin, err := symbols.Open(path)
	if err != nil && !errors.Is(err, symbols.ErrNoSymbols) {
		return nil, nil, err
	}
	if bin != nil {
		defer bin.Close()
	}
	has := func(p string) bool {
		if _, _, ok := symbols.SplitLibrary(p); ok || bin == nil {
			return ok
		}
		fns, err := bin.Match(p)
		return err == nil && len(fns) > 0
	}
	for _, p := range patterns {
		if has(p) {
			here = append(here, p)
		} else {
			later = append(later, p)
		}
	}
	return here, later, nil
}
