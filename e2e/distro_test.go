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
