package session

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/symbols"
)

// Symbols that name one entry point are one target; the name kept is the
// one a pattern names exactly, else the plainest.
func TestMergeAliases(t *testing.T) {
	at := func(name string, entry uint64) target {
		return target{name: name, probe: probes.Function{Name: name, Entry: entry}}
	}
	targets := []target{at("__libc_malloc", 0x10), at("malloc", 0x10), at("__malloc", 0x10), at("free", 0x20), at("gsignal", 0x30), at("raise", 0x30)}
	names := func(ts []target) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.name)
		}
		return out
	}
	got, aliases := mergeAliases(targets, []string{"*"})
	if want := []string{"malloc", "free", "raise"}; !slices.Equal(names(got), want) {
		t.Errorf("kept %v, want %v", names(got), want)
	}
	if len(aliases) != 3 {
		t.Errorf("aliases %v, want 3", aliases)
	}
	got, _ = mergeAliases(targets, []string{"*", "gsignal"})
	if want := []string{"malloc", "free", "gsignal"}; !slices.Equal(names(got), want) {
		t.Errorf("with gsignal named: kept %v, want %v", names(got), want)
	}
}

//go:noinline
func resolvedByTests(n int) int { return n*3 + 1 }

//go:noinline
func alsoResolvedByTests(n int) int { return resolvedByTests(n) * 2 }

// Resolve finds a Go function of a binary and its probe points; a
// library's functions are a group of their own, and bad input is ErrInput.
func TestResolve(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if alsoResolvedByTests(1) != 8 {
		t.Fatal("arithmetic")
	}
	plan, err := Resolve(Spec{Binary: exe, Patterns: []string{"github.com/ulat-dev/ulat/session.*ResolvedByTests", "github.com/ulat-dev/ulat/session.resolvedByTests"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range plan.targets {
		names = append(names, tg.name)
		if !tg.probe.Go || tg.probe.Entry == 0 || len(tg.probe.Exits) == 0 || tg.overhead.Exit != probes.ExitRET {
			t.Errorf("%s: probes %+v, overhead %v: want a Go function with an entry and RET exits", tg.name, tg.probe, tg.overhead)
		}
	}
	slices.Sort(names)
	if want := []string{"github.com/ulat-dev/ulat/session.alsoResolvedByTests", "github.com/ulat-dev/ulat/session.resolvedByTests"}; !slices.Equal(names, want) {
		t.Errorf("resolved %v, want %v", names, want)
	}
	if plan.Functions() != 2 || plan.Files() != exe {
		t.Errorf("plan of %d functions in %q, want 2 in %q", plan.Functions(), plan.Files(), exe)
	}

	// libc, through the loader's cache: a second file.
	plan, err = Resolve(Spec{Binary: exe, Patterns: []string{"github.com/ulat-dev/ulat/session.resolvedByTests", "libc:getpid"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.groups) != 2 || plan.Functions() != 2 || !strings.Contains(plan.Files(), " and ") {
		t.Errorf("with libc:getpid: %d groups, %d functions in %q; want 2, 2, two files", len(plan.groups), plan.Functions(), plan.Files())
	}
	labelLibraryFunctions(plan.targets)
	if got := plan.targets[1].name; !strings.HasPrefix(got, "libc.so") || !strings.HasSuffix(got, ":getpid") {
		t.Errorf("library function labelled %q, want libc.so...:getpid", got)
	}

	for _, c := range []struct {
		name  string
		spec  Spec
		cause error
	}{
		{"missing file", Spec{Binary: "/nonexistent/ulat-test", Patterns: []string{"main"}}, fs.ErrNotExist},
		{"no match", Spec{Binary: exe, Patterns: []string{"no.such.function*"}}, symbols.ErrNoMatch},
		{"not ELF", Spec{Binary: "/etc/passwd", Patterns: []string{"main"}}, symbols.ErrNotELF},
		{"unknown library", Spec{Patterns: []string{"libnosuchlibrary:f"}}, symbols.ErrNoLibrary},
		{"no file", Spec{Patterns: []string{"main.f"}}, nil},
	} {
		_, err := Resolve(c.spec, nil)
		if !errors.Is(err, ErrInput) || (c.cause != nil && !errors.Is(err, c.cause)) {
			t.Errorf("%s: %v, want ErrInput caused by %v", c.name, err, c.cause)
		}
	}
}
