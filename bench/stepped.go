package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ulat-dev/ulat/compare"
)

// stepRun is one `ulat run` of the C target's spin, whose entry probe is
// single-stepped.
type stepRun struct {
	path                  string
	kind                  string  // probe_kind
	costNs, uncertaintyNs float64 // probe_overhead_ns (the calibrated cost subtracted), probe_uncertainty_ns
	p50Ns                 float64 // corrected
	twinNs                float64 // p50 of spin's untraced twin, called in turn with it
	cpuStart, cpuEnd      int     // the CPUs the target's loop started and ended on
	wall                  time.Duration
}

// The parts of `ulat run -f json` this section reads.
type stepRunJSON struct {
	Functions []struct {
		Function           string `json:"function"`
		P50Ns              uint64 `json:"p50_ns"`
		ProbeOverheadNs    uint64 `json:"probe_overhead_ns"`
		ProbeKind          string `json:"probe_kind"`
		ProbeUncertaintyNs uint64 `json:"probe_uncertainty_ns"`
	} `json:"functions"`
}

// stepPair is what `ulat compare PREV NEXT` said about spin.
type stepPair struct {
	i                 int // runs i and i+1
	verdict, reason   string
	change, low, high float64
	uncertaintyNs     uint64
	resolutionLimited bool
}

// steppedSection measures ulat compare's false regressions on reruns of one
// build whose traced function has a single-stepped entry probe: the C
// target's spin (its first instruction, a test, is single-stepped), a body
// of -stepped-body of CPU, run -stepped-runs times, each run compared with
// the next by compare's default thresholds. Such probes cost 10-20 µs
// here, and what calibration measures of them varies from run to run;
// compare must not take that for a change of the code.
//
// The machine can change the code's speed too, and that compare should
// flag. To tell the two apart, the target calls spin and an untraced twin
// (the same loop under another name) in turn and reports the twin's p50:
// what spin took in that run, had it not been traced. A pair whose twin
// moved by more than half the limit is the machine's doing; the false
// regressions that count against compare are those of the other pairs.
// The target is also bound to one CPU (-stepped-cpu; ulat is not, so its
// calibration runs on any): on a VM whose virtual CPUs share physical ones
// unevenly, spin runs at different speeds on different CPUs, which the
// section measures first.
func (b *bench) steppedSection(ctx context.Context, c *target) error {
	dir := filepath.Join(b.dir, "stepped")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	load := strings.Fields(readTrim("/proc/loadavg"))
	iters := int(b.stepBody.Seconds() * 1e6 * float64(c.spinIters))
	first := "?"
	if out, err := b.output(ctx, []string{"objdump", "-d", "--no-show-raw-insn", "--disassemble=spin", c.bin}); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.SplitN(strings.TrimSpace(line), "\t", 2); len(f) == 2 && strings.HasSuffix(f[0], ":") {
				first = strings.Join(strings.Fields(f[1]), " ")
				break
			}
		}
	}

	// spin untraced on each CPU: the machine's own run-to-run difference.
	var env []string
	if b.stepCPU >= 0 {
		env = []string{"CTARGET_CPU=" + strconv.Itoa(b.stepCPU)}
	}
	var speeds []string
	for cpu := range runtime.NumCPU() {
		var xs []float64
		for range 3 {
			out, err := b.output(ctx, []string{c.bin, "spin", strconv.Itoa(max(b.stepCalls/10, 1)), strconv.Itoa(iters)}, "CTARGET_CPU="+strconv.Itoa(cpu))
			if err != nil {
				return err
			}
			v, err := field(out, "cpu_ns_per_call")
			if err != nil {
				return err
			}
			xs = append(xs, v)
		}
		speeds = append(speeds, fmt.Sprintf("CPU %d %s", cpu, fmtNs(median(xs))))
	}

	runs := make([]*stepRun, b.stepRuns)
	for i := range runs {
		progress("stepped: run %d of %d (ctarget spintwin %d %d)", i+1, len(runs), b.stepCalls, iters)
		r := &stepRun{path: filepath.Join(dir, fmt.Sprintf("run-%02d.json", i+1))}
		argv := []string{b.ulat, "run", "-f", "json", "-o", r.path, "--func", "spin", "--", c.bin, "spintwin", strconv.Itoa(b.stepCalls), strconv.Itoa(iters)}
		t0 := time.Now()
		out, err := b.output(ctx, argv, env...)
		if err != nil {
			return err
		}
		r.wall = time.Since(t0)
		cs, err1 := field(out, "cpu_start")
		ce, err2 := field(out, "cpu_end")
		twin, err3 := field(out, "twin_p50_ns")
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("ctarget spintwin: %w", err)
		}
		r.cpuStart, r.cpuEnd, r.twinNs = int(cs), int(ce), twin
		data, err := os.ReadFile(r.path)
		if err != nil {
			return err
		}
		var doc stepRunJSON
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%s: %w", r.path, err)
		}
		if len(doc.Functions) != 1 || doc.Functions[0].Function != "spin" {
			return fmt.Errorf("%s: want one function, spin", r.path)
		}
		f := doc.Functions[0]
		r.kind, r.costNs, r.uncertaintyNs, r.p50Ns = f.ProbeKind, float64(f.ProbeOverheadNs), float64(f.ProbeUncertaintyNs), float64(f.P50Ns)
		runs[i] = r
	}

	var pairs []stepPair
	for i := 0; i+1 < len(runs); i++ {
		p, err := b.comparePair(ctx, runs[i].path, runs[i+1].path)
		if err != nil {
			return err
		}
		p.i = i
		pairs = append(pairs, p)
	}

	const limit = 0.10 // compare's default p50 threshold
	var costs, uncs, p50s, raws, twins, errs, walls []float64
	kinds := map[string]int{}
	byCPU := map[int][]float64{}
	moved := 0
	for _, r := range runs {
		kinds[r.kind]++
		costs = append(costs, r.costNs)
		uncs = append(uncs, r.uncertaintyNs)
		p50s = append(p50s, r.p50Ns)
		raws = append(raws, r.p50Ns+r.costNs)
		twins = append(twins, r.twinNs)
		errs = append(errs, r.p50Ns-r.twinNs)
		walls = append(walls, r.wall.Seconds())
		if r.cpuStart == r.cpuEnd {
			byCPU[r.cpuEnd] = append(byCPU[r.cpuEnd], r.twinNs)
		} else {
			moved++
		}
	}
	// A pair is steady when spin's untraced twin moved by at most half
	// the limit: a change past the limit is then not the machine's.
	var changes, twinChanges, pairUnc []float64
	regressed, improved, limited, over, machine, steadyRegressed := 0, 0, 0, 0, 0, 0
	steady := func(p stepPair) bool {
		tc := runs[p.i+1].twinNs/runs[p.i].twinNs - 1
		return tc <= limit/2 && tc >= -limit/2
	}
	for _, p := range pairs {
		switch p.verdict {
		case "regressed":
			regressed++
			if steady(p) {
				steadyRegressed++
			}
		case "improved":
			improved++
		}
		if p.resolutionLimited {
			limited++
		}
		if p.change > limit {
			over++
		}
		if !steady(p) {
			machine++
		}
		changes = append(changes, p.change)
		twinChanges = append(twinChanges, runs[p.i+1].twinNs/runs[p.i].twinNs-1)
		pairUnc = append(pairUnc, float64(p.uncertaintyNs))
	}
	var kindList []string
	for k, n := range kinds {
		kindList = append(kindList, fmt.Sprintf("%s (%d runs)", k, n))
	}
	sort.Strings(kindList)

	fmt.Printf("\n== 6. ulat compare on reruns of a function with a single-stepped entry ==\n\n")
	fmt.Printf("%d runs of `ulat run -f json --func spin -- ctarget spintwin %d %d`: spin (%s a call at the speed\n", len(runs), b.stepCalls, iters, b.stepBody)
	fmt.Printf("measured when the targets were built; its first instruction `%s`; probe kind %s)\n", first, strings.Join(kindList, ", "))
	fmt.Printf("and its untraced twin, the same loop under another name, called in turn; %.2f s a run (median), one after\n", median(walls))
	fmt.Printf("another; load average %s at the start.\n", strings.Join(load[:min(3, len(load))], " "))
	fmt.Printf("Each run compared with the next: `ulat compare PREV NEXT`, default thresholds (p50 +10%%).\n")
	fmt.Printf("spin untraced, CPU time a call (median of 3) when bound to each CPU: %s.\n", strings.Join(speeds, ", "))
	if b.stepCPU >= 0 {
		fmt.Printf("The target is bound to CPU %d (CTARGET_CPU); ulat is not, so its calibration runs on any CPU.\n\n", b.stepCPU)
	} else {
		fmt.Printf("Neither the target nor ulat is bound to a CPU (-stepped-cpu -1).\n\n")
	}
	lohi := func(xs []float64, f func(float64) string) string {
		lo, hi := minMax(xs)
		return f(lo) + " / " + f(median(xs)) + " / " + f(hi)
	}
	pct := func(x float64) string { return fmt.Sprintf("%+.1f%%", 100*x) }
	tw := newTable()
	tw.row("PER RUN", "MIN / MEDIAN / MAX")
	tw.row("calibrated stepped cost (subtracted)", lohi(costs, fmtNs))
	tw.row("its stated uncertainty", lohi(uncs, fmtNs))
	tw.row("spin p50, corrected", lohi(p50s, fmtNs))
	tw.row("spin p50 + cost (as measured)", lohi(raws, fmtNs))
	tw.row("untraced twin p50 (what spin took)", lohi(twins, fmtNs))
	tw.row("corrected p50 - twin p50", lohi(errs, fmtNs))
	tw.row("PER PAIR, NEXT VS PREVIOUS", "")
	tw.row("spin p50 change", lohi(changes, pct))
	tw.row("twin p50 change (the machine)", lohi(twinChanges, pct))
	tw.row("probe-cost uncertainty compare used", lohi(pairUnc, fmtNs))
	tw.flush()
	fmt.Println()
	tw = newTable()
	tw.row("PAIRS", "FALSE REGRESSIONS", "RATE", "IMPROVED", "P50 OVER +10%", "RESOLUTION-LIMITED", "MACHINE MOVED", "FALSE REGRESSIONS, MACHINE STEADY")
	tw.row(strconv.Itoa(len(pairs)), strconv.Itoa(regressed), fmt.Sprintf("%.1f%%", 100*float64(regressed)/float64(max(len(pairs), 1))),
		strconv.Itoa(improved), strconv.Itoa(over), strconv.Itoa(limited), strconv.Itoa(machine),
		fmt.Sprintf("%d of %d", steadyRegressed, len(pairs)-machine))
	tw.flush()
	fmt.Printf("P50 OVER +10%%: pairs whose p50 rose past the limit; compare flagged those whenever the plain bootstrap\n")
	fmt.Printf("interval excluded 0, before the interval carried the probe-cost uncertainty and the buckets' width\n")
	fmt.Printf("and had to clear the limit. MACHINE MOVED: pairs whose untraced twin moved by more than ±%.0f%%, where\n", 100*limit/2)
	fmt.Printf("a flag may be the machine's doing; the other pairs' false regressions are compare's.\n")
	var cpus []int
	for cpu := range byCPU {
		cpus = append(cpus, cpu)
	}
	sort.Ints(cpus)
	var parts []string
	for _, cpu := range cpus {
		parts = append(parts, fmt.Sprintf("CPU %d: %d runs, %s", cpu, len(byCPU[cpu]), fmtNs(median(byCPU[cpu]))))
	}
	if moved > 0 {
		parts = append(parts, fmt.Sprintf("%d runs moved between CPUs", moved))
	}
	fmt.Printf("untraced twin p50 (median) by the CPU the target ran on: %s\n", strings.Join(parts, "; "))
	for _, p := range pairs {
		if p.verdict == "regressed" || p.verdict == "improved" {
			a, c := runs[p.i], runs[p.i+1]
			fmt.Printf("runs %d → %d %s (cost %s → %s, twin %s): %s\n", p.i+1, p.i+2, p.verdict, fmtNs(a.costNs), fmtNs(c.costNs),
				pct(c.twinNs/a.twinNs-1), p.reason)
		}
	}
	b.addGoal("compare: false regressions, stepped-entry reruns, machine steady", fmt.Sprintf("%d/%d (all pairs: %d/%d)", steadyRegressed, len(pairs)-machine, regressed, len(pairs)),
		"0", steadyRegressed == 0)
	return nil
}

// comparePair runs `ulat compare -f json BASE NEW` and reads spin's verdict.
func (b *bench) comparePair(ctx context.Context, base, cur string) (stepPair, error) {
	argv := []string{b.ulat, "compare", "-f", "json", base, cur}
	var p stepPair
	var doc compare.JSONResult
	if _, err := b.runCompare(ctx, argv, &doc); err != nil {
		return p, err
	}
	for _, f := range doc.Functions {
		if f.Function != "spin" || len(f.Metrics) == 0 {
			continue
		}
		m := f.Metrics[0]
		p.verdict, p.reason, p.uncertaintyNs, p.resolutionLimited = string(f.Verdict), f.Reason, m.ProbeUncertaintyNs, m.ResolutionLimited
		for _, v := range []struct {
			dst *float64
			src *float64
		}{{&p.change, m.Change}, {&p.low, m.CILow}, {&p.high, m.CIHigh}} {
			if v.src != nil {
				*v.dst = *v.src
			}
		}
		return p, nil
	}
	return p, fmt.Errorf("%s: no verdict for spin", shellQuote(argv))
}
