package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// Code as distributions build it (issue 12): tail calls at -O2, and a
// function whose first instruction the kernel refuses to probe. Counts are
// checked against the program's own count of its entries.

func cDistro(t *testing.T) string {
	return build(t, "cdistro", "gcc", "-O2", "-g", "-o", "$OUT", "testdata/cdistro/cdistro.c")
}

// distroCounts parses cdistro's own count of every function's entries.
func distroCounts(t *testing.T, out string) map[string]uint64 {
	t.Helper()
	var ping, pong, countdown, locked, plain, sum uint64
	if _, err := fmt.Sscanf(out, "ping %d pong %d countdown %d locked %d plain %d sum %d", &ping, &pong, &countdown, &locked, &plain, &sum); err != nil {
		t.Fatalf("cdistro output %q: %v", out, err)
	}
	return map[string]uint64{"ping": ping, "pong": pong, "countdown": countdown, "locked": locked, "plain": plain}
}

// A tail call (a jmp to a function, itself included) is a call that
// returns with the ret of the function it jumped to: every entry is a call
// that returns, none is lost or left unpaired. ping and pong jump to each
// other (traced together and ping alone), countdown to itself through a
// pointer; chains of 21 calls.
func TestTraceTailCalls(t *testing.T) {
	requireRoot(t)
	bin := cDistro(t)
	for _, fns := range [][]string{{"ping", "pong", "countdown", "plain"}, {"ping"}} {
		t.Run(strings.Join(fns, "+"), func(t *testing.T) {
			var args []string
			for _, f := range fns {
				args = append(args, "--func", f)
			}
			r, code, out := ulatRun(t, append(args, "--", bin, "50", "20")...)
			if code != 0 {
				t.Fatalf("ulat run: exit %d", code)
			}
			want := distroCounts(t, out)
			if want["ping"] != 50*11 || want["countdown"] != 50*21 {
				t.Fatalf("cdistro counted %v: not the chains it was built for", want)
			}
			for _, f := range fns {
				wantCount(t, r, f, want[f])
				if d := fn(t, r, f).DidNotReturn; d != 0 {
					t.Errorf("%s: %d calls reported as not returning; every call returned", f, d)
				}
			}
			wantNoLoss(t, r)
			if r.Lost.InFlight != 0 {
				t.Errorf("%d calls left in flight", r.Lost.InFlight)
			}
		})
	}
}

// A function whose first instruction has a LOCK prefix cannot be probed:
// a glob over the whole binary leaves it out, says so in one warning with
// its name and the reason, and traces the rest; `ulat symbols` marks it.
func TestTraceRefusedInstruction(t *testing.T) {
	requireRoot(t)
	bin := cDistro(t)
	r, code, out := ulatRun(t, "--func", "*", "--", bin, "30", "4")
	if code != 0 {
		t.Fatalf("ulat run --func '*': exit %d", code)
	}
	want := distroCounts(t, out)
	for _, f := range []string{"ping", "pong", "countdown", "plain"} {
		wantCount(t, r, f, want[f])
	}
	for _, f := range r.Functions {
		if f.Function == "locked" {
			t.Errorf("locked is in the report (%d calls): the kernel cannot probe it", f.Count)
		}
	}
	var warned []string
	for _, w := range r.Warnings {
		if strings.Contains(w, "locked (a LOCK prefix)") {
			warned = append(warned, w)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "not traced") {
		t.Errorf("want one warning naming locked and its LOCK prefix, got %q", r.Warnings)
	}
	sym, err := exec.Command(ulatBin, "symbols", bin, "locked").Output()
	if err != nil || !strings.Contains(string(sym), "LOCK prefix") {
		t.Errorf("ulat symbols %s locked: %v\n%s\nwant the LOCK prefix named", bin, err, sym)
	}
}

// The program's behaviour never changes under ulat: with every function of
// the binary traced (_start included, which must not get a return probe),
// it sees its arguments and prints what it prints alone.
func TestTraceEverythingLeavesTheProgramAlone(t *testing.T) {
	requireRoot(t)
	bin := cDistro(t)
	want := run(t, bin, "7", "3")
	_, code, got := ulatRun(t, "--func", "*", "--", bin, "7", "3")
	if code != 0 || got != want {
		t.Errorf("under ulat run --func '*': exit %d, output %q; alone: exit 0, %q", code, got, want)
	}
}

// `ulat symbols` of a large Go program is readable: a row is as long as
// its own name needs, whatever the longest name in the binary (generic
// instantiations run to hundreds of characters), and every function the
// binary's .gopclntab has is listed (checked against `go tool nm`'s text
// symbols on gofmt, which keeps its symbol table).
func TestSymbolsLargeBinary(t *testing.T) {
	gofmt := gofmtPath(t)
	out, err := exec.Command(ulatBin, "symbols", gofmt).Output()
	if err != nil {
		t.Fatalf("ulat symbols %s: %v", gofmt, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	header := strings.Fields(lines[0])
	if strings.Join(header, " ") != "LANG ENTRY EXITS INLINED FUNCTION" {
		t.Fatalf("header %q", lines[0])
	}
	rows := 0
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 5 {
			t.Fatalf("row %q", l)
		}
		name := f[4]
		// The columns before the name are padded to fixed widths; the
		// name and an optional note follow.
		before := strings.Index(l, name)
		if before < 0 || before > 60 {
			t.Errorf("row padded before its name (%d characters): %q", before, l)
		}
		rows++
	}
	nm, err := exec.Command("go", "tool", "nm", gofmt).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	text := map[string]bool{}
	for _, l := range strings.Split(string(nm), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && (f[1] == "T" || f[1] == "t") && !strings.HasSuffix(f[2], ".abi0") {
			text[f[2]] = true
		}
	}
	listed := map[string]bool{}
	for _, l := range lines[1:] {
		listed[strings.Fields(l)[4]] = true
	}
	missing := 0
	for name := range text {
		if strings.HasPrefix(name, "main.") || strings.HasPrefix(name, "go/") {
			if !listed[name] {
				missing++
				t.Logf("missing: %s", name)
			}
		}
	}
	if missing > 0 || rows < 1000 {
		t.Errorf("%d rows; %d functions of main and go/... that go tool nm lists are missing", rows, missing)
	}
}

// A glob over many functions of which few are called: the functions
// without calls are summed up in one line, not a line each.
func TestTraceManyFunctionsWithoutCalls(t *testing.T) {
	requireRoot(t)
	bin := cDistro(t)
	out, err := exec.Command(ulatBin, "run", "--func", "libc:str*", "--", bin, "3", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("ulat run: %v\n%s", err, out)
	}
	var summary, single int
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.Contains(l, "functions had no calls: "):
			summary++
		case strings.HasSuffix(l, ": no calls"):
			single++
		}
	}
	if summary != 1 || single != 0 {
		t.Errorf("want one summary line of the functions without calls and no line each; got %d and %d:\n%s", summary, single, out)
	}
}

// A static binary (glibc inside) traced whole: glibc names many functions
// several times (malloc, __malloc, __libc_malloc), and each is timed once,
// so no exit goes unpaired; the program's own counts are exact and its
// output unchanged.
func TestTraceStaticBinaryWhole(t *testing.T) {
	requireRoot(t)
	bin := build(t, "cdistro-static", "gcc", "-static", "-O2", "-g", "-o", "$OUT", "testdata/cdistro/cdistro.c")
	want := run(t, bin, "20", "10")
	r, code, out := ulatRun(t, "--func", "*", "--", bin, "20", "10")
	if code != 0 || out != want {
		t.Fatalf("under ulat run --func '*': exit %d, output %q; alone %q", code, out, want)
	}
	counts := distroCounts(t, out)
	for _, f := range []string{"ping", "pong", "countdown", "plain"} {
		wantCount(t, r, f, counts[f])
	}
	wantNoLoss(t, r)
	aliases := false
	for _, w := range r.Warnings {
		aliases = aliases || strings.Contains(w, "other names of a traced function")
	}
	if !aliases {
		t.Errorf("no warning about the functions merged as other names of one: %q", r.Warnings)
	}
}
