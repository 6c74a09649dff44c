package session

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/symbols"
)

// Spec names what to trace: Patterns in Binary (a path), in the process
// Pid's executable when Binary is "", or in a library for LIB:PATTERN
// (through Pid's mappings when Pid is not 0).
type Spec struct {
	Binary   string
	Pid      int
	Patterns []string
	// FollowExecs: the patterns Binary has no function for wait for the
	// programs that followed processes exec, where they are looked for as
	// each starts (ulat run --follow-forks: go test runs a test binary it
	// builds after ulat started it).
	FollowExecs bool
}

// Plan is a resolved Spec: the functions to probe, and where.
type Plan struct {
	spec    Spec
	targets []target
	groups  []*group
	// Warnings name the functions that cannot be timed, and why; the
	// final report lists them too.
	Warnings []string
	follower *execFollower // with Spec.FollowExecs, when patterns wait
}

// Functions is how many functions the plan probes.
func (p *Plan) Functions() int { return len(p.targets) }

// Files names the files the plan probes, as "a, b and c".
func (p *Plan) Files() string { return describeGroups(p.groups) }

// functions are the probes' view of the targets from base on.
func (p *Plan) functions(base int) []probes.Function {
	fns := make([]probes.Function, 0, len(p.targets)-base)
	for _, t := range p.targets[base:] {
		fns = append(fns, t.probe)
	}
	return fns
}

// warningsShown is how many of a plan's warnings Resolve logs: broad globs
// over a large binary can match thousands of functions that cannot be
// timed, and the report lists all of them.
const warningsShown = 20

// Resolve finds the functions spec names and where to probe them. It is
// an error (ErrInput) when a file cannot be found or read, when a pattern
// matches nothing, or when none of the functions can be timed; functions
// that cannot be timed are the plan's warnings, logged as they are found.
func Resolve(spec Spec, log *slog.Logger) (*Plan, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Plan{spec: spec}
	here, later := spec.Patterns, []string(nil)
	if spec.FollowExecs {
		var err error
		if here, later, err = splitByCommand(spec.Binary, spec.Patterns); err != nil {
			return nil, AsInput(err)
		}
		if len(later) > 0 {
			p.follower = newExecFollower(later, spec.Binary)
		}
	}
	// No patterns left: every one waits for a program the command execs.
	if len(here) > 0 {
		var err error
		if p.targets, p.groups, p.Warnings, err = resolveTargets(spec.Binary, spec.Pid, here); err != nil {
			logWarnings(log, p.Warnings)
			return nil, AsInput(err)
		}
	}
	logWarnings(log, p.Warnings)
	return p, nil
}

func logWarnings(log *slog.Logger, warnings []string) {
	for i, w := range warnings {
		if i == warningsShown {
			log.Warn(fmt.Sprintf("... and %d more (all are listed at the end of the report)", len(warnings)-warningsShown))
			break
		}
		log.Warn(w)
	}
}

// target is a function that will be probed.
type target struct {
	name     string // as reported: the function, or LIB:function in tables of several files
	binary   string // the path probes attach to
	probe    probes.Function
	lib      string          // base name of its library when it was named by LIB
	overhead probes.Overhead // the kind of probe pair it gets, for its bias
	refused  bool            // the kernel refused its probes: not traced, not reported
}

// group is the patterns to look for in one file.
type group struct {
	spec     fileSpec
	loc      symbols.Location
	patterns []string
}

// fileSpec is how the user named a file.
type fileSpec struct {
	arg string // BINARY, or LIB of LIB:FUNC; "" is the traced process's executable
	lib bool   // from LIB:FUNC: a library, resolved through the process when given
}

// isPathArg reports whether s names a file by path: it contains a slash,
// or a file of that name exists.
func isPathArg(s string) bool {
	if strings.Contains(s, "/") {
		return true
	}
	_, err := os.Stat(s)
	return err == nil
}

// looksLikePath reports whether s is written as a path ('/x', './x',
// '../x') or is an existing file; Go patterns with slashes
// ('github.com/x/y.F') are not.
func looksLikePath(s string) bool {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") {
		return true
	}
	st, err := os.Stat(s)
	return err == nil && !st.IsDir()
}

// NamesFile tells whether arg, the first argument given with a pid, names
// a file (a binary or library) rather than a pattern for the process's
// executable:
// a path, or a library name that has ".so" in it or that the process has
// mapped ("libc"; but not a C function such as "libusb_open").
//
// A name that is a function of the process's executable is a pattern, even
// with slashes in it (Go's 'net/http.serverHandler.ServeHTTP'), unless it
// is written as a path ('./x', '/x').
func NamesFile(arg string, pid int) bool {
	if _, _, ok := symbols.SplitLibrary(arg); ok {
		return false
	}
	explicit := strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, "./") || strings.HasPrefix(arg, "../")
	if explicit {
		return true
	}
	if !looksLikePath(arg) && !symbols.LooksLikeLibrary(arg) {
		return false
	}
	if executableHas(pid, arg) {
		return false
	}
	if looksLikePath(arg) || strings.Contains(arg, ".so") {
		return true
	}
	_, err := symbols.LocateLibrary(arg, pid)
	if err == nil {
		return true
	}
	if symbols.IsLibraryPath(arg) {
		// Neither a file here nor mapped: a pattern, which the
		// process's executable will report with suggestions.
		return false
	}
	if !errors.Is(err, symbols.ErrNotMapped) {
		return true // an error locate will report
	}
	_, err = symbols.LocateLibrary(arg, 0) // a library the loader knows
	return err == nil
}

// executableHas reports whether pattern names a function of pid's
// executable. Any failure is left for resolution to report.
func executableHas(pid int, pattern string) bool {
	loc, err := symbols.ProcessExecutable(pid)
	if err != nil {
		return false
	}
	bin, err := symbols.Open(loc.Path)
	if err != nil {
		return false
	}
	defer bin.Close()
	fns, err := bin.Match(pattern)
	return err == nil && len(fns) > 0
}

// Locate finds the file arg names, a path or a library (through pid's
// mappings when pid is not 0).
func Locate(arg string, pid int) (symbols.Location, error) {
	loc, err := locate(fileSpec{arg: arg}, pid)
	return loc, AsInput(err)
}

// locate finds the file spec names.
func locate(spec fileSpec, pid int) (symbols.Location, error) {
	switch {
	case spec.arg == "":
		return symbols.ProcessExecutable(pid)
	case spec.lib || (!isPathArg(spec.arg) && symbols.LooksLikeLibrary(spec.arg)):
		return symbols.LocateLibrary(spec.arg, pid)
	}
	// As before: BINARY is a path in this mount namespace, used as given
	// even with --pid (so a library can be traced before the process
	// loads it); symbols.Open reports what is wrong with it.
	return symbols.Location{Path: spec.arg, Name: spec.arg}, nil
}

// groupPatterns sorts patterns by the file they are in: LIB:FUNC in LIB,
// the others in binary (or, when it is "", the --pid process's
// executable). Groups that name the same file are merged, so a function is
// probed once.
func groupPatterns(binary string, pid int, patterns []string) ([]*group, error) {
	var groups []*group
	find := func(spec fileSpec) (*group, error) {
		for _, g := range groups {
			if g.spec == spec {
				return g, nil
			}
		}
		loc, err := locate(spec, pid)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			if sameFile(g.loc.Path, loc.Path) {
				return g, nil
			}
		}
		g := &group{spec: spec, loc: loc}
		groups = append(groups, g)
		return g, nil
	}
	for _, p := range patterns {
		spec, fn := fileSpec{arg: binary}, p
		if lib, f, ok := symbols.SplitLibrary(p); ok {
			spec, fn = fileSpec{arg: lib, lib: true}, f
		} else if binary == "" && pid == 0 {
			return nil, Inputf("pattern %q names no file: it needs a binary, a process, or the form LIB:PATTERN", p)
		}
		g, err := find(spec)
		if err != nil {
			return nil, err
		}
		g.patterns = append(g.patterns, fn)
	}
	return groups, nil
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// resolveTargets finds the functions matching patterns and where to probe
// them: each pattern in binary, in the --pid process's executable when
// binary is "", or in LIB for LIB:FUNC. Functions that cannot be timed are
// returned as warnings; it is an error when none can.
func resolveTargets(binary string, pid int, patterns []string) ([]target, []*group, []string, error) {
	groups, err := groupPatterns(binary, pid, patterns)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		targets  []target
		warnings []string
		matched  int
	)
	for _, g := range groups {
		ts, ws, n, err := resolveGroup(g)
		if err != nil {
			return nil, nil, nil, err
		}
		targets = append(targets, ts...)
		warnings = append(warnings, ws...)
		matched += n
	}
	if len(targets) == 0 {
		return nil, groups, warnings, Inputf("none of the %d matching functions can be timed (see the warnings)", matched)
	}
	return targets, groups, warnings, nil
}

func resolveGroup(g *group) ([]target, []string, int, error) {
	bin, err := symbols.Open(g.loc.Path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer bin.Close()
	lib := ""
	if g.spec.lib {
		lib = filepath.Base(g.loc.Name)
	}
	return resolveIn(bin, g.patterns, lib)
}

// resolveIn turns the functions of bin that patterns match into targets;
// lib, when not "", is the library name they were asked for by.
func resolveIn(bin *symbols.Binary, patterns []string, lib string) ([]target, []string, int, error) {
	fns, err := bin.Match(patterns...)
	if err != nil {
		return nil, nil, 0, err
	}
	var (
		targets  []target
		warnings []string
	)
	if bin.Warning != "" {
		warnings = append(warnings, bin.Warning)
	}
	var refused []string
	for i := range fns {
		f := &fns[i]
		p, err := bin.Probes(f)
		var cannot *symbols.ErrCannotProbe
		if errors.As(err, &cannot) && cannot.Refused != "" {
			refused = append(refused, fmt.Sprintf("%s (%s)", f.Name, cannot.Refused))
			continue
		}
		if errors.As(err, &cannot) {
			warnings = append(warnings, cannot.Error())
			continue
		}
		if err != nil {
			return nil, nil, 0, err
		}
		if f.Inlined {
			warnings = append(warnings, fmt.Sprintf("%s is inlined into some callers; only calls to its out-of-line copy are timed", f.Name))
		}
		overhead := probes.Overhead{Exit: probes.ExitUretprobe, Entry: probes.EntryStepped}
		if p.Exits != nil {
			overhead.Exit = probes.ExitRET
		}
		if p.EntryEmulated {
			overhead.Entry = probes.EntryEmulated
		}
		targets = append(targets, target{
			name:     f.Name,
			binary:   bin.Path,
			lib:      lib,
			overhead: overhead,
			probe: probes.Function{
				Name:   f.Name,
				Binary: bin.Path,
				Entry:  p.Entry,
				Exits:  p.Exits,
				Go:     f.Lang == symbols.Go,
				Kind:   overhead,
			},
		})
	}
	if len(refused) > 0 {
		warnings = append(warnings, fmt.Sprintf("the kernel's uprobes refuse an instruction where %d %s probes would go, so %s not traced: %s",
			len(refused), plural(len(refused), "function's", "functions'"), plural(len(refused), "it is", "they are"), strings.Join(refused, ", ")))
	}
	targets, aliases := mergeAliases(targets, patterns)
	if len(aliases) > 0 {
		warnings = append(warnings, fmt.Sprintf("%d %s other names of a traced function, timed once under its name: %s",
			len(aliases), plural(len(aliases), "function is", "functions are"), strings.Join(aliases, ", ")))
	}
	return targets, warnings, len(fns), nil
}

// mergeAliases keeps one target per entry point. Symbols that name one
// address (a static glibc's malloc, __malloc and __libc_malloc) are one
// function: probed under each name, every call would enter it three times
// and pair with only one. The name kept is one a pattern names exactly,
// else the one with the fewest leading underscores, then the shortest.
func mergeAliases(targets []target, patterns []string) ([]target, []string) {
	exact := map[string]bool{}
	for _, p := range patterns {
		exact[p] = true
	}
	better := func(a, b string) bool {
		if exact[a] != exact[b] {
			return exact[a]
		}
		ua, ub := len(a)-len(strings.TrimLeft(a, "_")), len(b)-len(strings.TrimLeft(b, "_"))
		if ua != ub {
			return ua < ub
		}
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	}
	byEntry := map[uint64]int{}
	var out []target
	var aliases []string
	for _, t := range targets {
		i, ok := byEntry[t.probe.Entry]
		if !ok {
			byEntry[t.probe.Entry] = len(out)
			out = append(out, t)
			continue
		}
		if better(t.name, out[i].name) {
			aliases = append(aliases, fmt.Sprintf("%s (as %s)", out[i].name, t.name))
			out[i] = t
		} else {
			aliases = append(aliases, fmt.Sprintf("%s (as %s)", t.name, out[i].name))
		}
	}
	return out, aliases
}

// labelLibraryFunctions prefixes the functions of libraries named by LIB
// with the library's file name (libc.so.6:malloc), for tables that show
// functions of several files.
func labelLibraryFunctions(targets []target) {
	for i := range targets {
		if targets[i].lib != "" {
			targets[i].name = targets[i].lib + ":" + targets[i].name
		}
	}
}

// describeGroups names the traced files for the "Tracing ..." line.
func describeGroups(groups []*group) string {
	var names []string
	for _, g := range groups {
		names = append(names, g.loc.String())
	}
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
