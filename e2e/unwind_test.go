package e2e

import (
	"testing"
)

// Go calls that never return (a recovered panic, runtime.Goexit, a panic
// unwinding through recursion) are counted as such, and calls after them
// still pair correctly; the target behaves as without tracing.
func TestUnwindGo(t *testing.T) {
	requireRoot(t)
	for _, attach := range []string{"multi", "perf"} {
		t.Run(attach, func(t *testing.T) { testUnwindGo(t, attach) })
	}
}

func testUnwindGo(t *testing.T, attach string) {
	bin := build(t, "gounwind", "go", "build", "-o", "$OUT", "./testdata/gounwind")
	const n = 40
	want := run(t, bin, itoa(n))

	tr := startTrace(t, "--attach", attach, bin, "main.panicky", "main.goexiter", "main.recurse", "main.works")
	got := run(t, bin, itoa(n))
	r := tr.Stop()

	if got != want {
		t.Errorf("target output changed under tracing: %q, untraced %q", got, want)
	}
	checkUnwound(t, r, "main.panicky", n/2, n/2)
	checkUnwound(t, r, "main.goexiter", 0, n)
	checkUnwound(t, r, "main.recurse", 0, 6)
	checkUnwound(t, r, "main.works", n, 0)
	if r.Lost.UnpairedExits != 0 || r.Lost.DroppedEvents != 0 || r.Lost.InFlight != 0 {
		t.Errorf("lost: %+v, want nothing unpaired, dropped or in flight", r.Lost)
	}
	if r.Lost.DidNotReturn != n/2+n+6 {
		t.Errorf("lost.did_not_return %d, want %d", r.Lost.DidNotReturn, n/2+n+6)
	}
}

// C: longjmp out of a traced function, a traced function called from a
// signal handler while another traced function is in flight on the same
// thread, and a function that leaves through a tail call.
func TestUnwindC(t *testing.T) {
	requireRoot(t)
	for _, attach := range []string{"multi", "perf"} {
		t.Run(attach, func(t *testing.T) { testUnwindC(t, attach) })
	}
}

func testUnwindC(t *testing.T, attach string) {
	bin := build(t, "cunwind", "gcc", "-O2", "-o", "$OUT", "testdata/cunwind/cunwind.c")
	const n = 40
	want := run(t, bin, itoa(n))

	tr := startTrace(t, "--attach", attach, bin, "jumper", "outer", "inner", "tailer", "leaf2")
	got := run(t, bin, itoa(n))
	r := tr.Stop()

	if got != want {
		t.Errorf("target output changed under tracing: %q, untraced %q", got, want)
	}
	checkUnwound(t, r, "jumper", n/2, n/2)
	checkUnwound(t, r, "outer", n, 0)
	checkUnwound(t, r, "inner", n, 0)
	// tailer ends in a jump to leaf2: its uretprobe fires when leaf2
	// returns, for both.
	checkUnwound(t, r, "tailer", n, 0)
	checkUnwound(t, r, "leaf2", n, 0)
	// tailer's own work is one instruction, and leaf2's probes are taken
	// out of it: the two meet within the stated uncertainty.
	if tl, lf := fn(t, r, "tailer"), fn(t, r, "leaf2"); tl.MinNs+tl.ProbeUncertaintyNs < lf.MinNs {
		t.Errorf("tailer (min %dns, ±%dns) is shorter than leaf2 (min %dns), which it includes", tl.MinNs, tl.ProbeUncertaintyNs, lf.MinNs)
	}
	if r.Lost.UnpairedExits != 0 || r.Lost.DroppedEvents != 0 {
		t.Errorf("lost: %+v, want nothing unpaired or dropped", r.Lost)
	}
	// inner runs inside outer: its calls must be shorter, up to the
	// stated uncertainty of outer's, whose durations have inner's probe
	// costs taken out at their calibrated value (a slow call, such as the
	// max, may have met them cheaper or dearer).
	if in, out := fn(t, r, "inner"), fn(t, r, "outer"); in.MaxNs >= out.MaxNs+out.ProbeUncertaintyNs {
		t.Errorf("inner (max %dns) is not shorter than outer (max %dns, ±%dns), which it runs inside", in.MaxNs, out.MaxNs, out.ProbeUncertaintyNs)
	}
}
