package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stepRun is one `ulat run` of the C target's spin, whose entry probe is
// single-stepped.
type stepRun struct {
	path                  string
	kind                  string  // probe_kind
	costNs, uncertaintyNs float64 // probe_overhead_ns (the calibrated cost subtracted), probe_uncertainty_ns
	p50Ns                 float64 // corrected
	targetCPUNs           float64 // the target's own CPU time per call: spin and the probes
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

// The parts of `ulat compare -f json` this section reads.
type stepCmpJSON struct {
	Verdict   string `json:"verdict"`
	Functions []struct {
		Function string `json:"function"`
		Verdict  string `json:"verdict"`
		Reason   string `json:"reason"`
		Metrics  []struct {
			Metric             string   `json:"metric"`
			Change             *float64 `json:"change"`
			CILow              *float64 `json:"ci_low"`
			CIHigh             *float64 `json:"ci_high"`
			ProbeUncertaintyNs uint64   `json:"probe_uncertainty_ns"`
			ResolutionLimited  bool     `json:"resolution_limited"`
			Verdict            string   `json:"verdict"`
		} `json:"metrics"`
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
// The target is bound to one CPU (-stepped-cpu; ulat is not, so its
// calibration runs on any): on a VM whose virtual CPUs share physical ones
// unevenly, spin itself runs at different speeds on different CPUs, a
// change no comparison of two runs can tell from one of the code. The
// section measures that first, untraced.
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
		progress("stepped: run %d of %d (ctarget spin %d %d)", i+1, len(runs), b.stepCalls, iters)
		r := &stepRun{path: filepath.Join(dir, fmt.Sprintf("run-%02d.json", i+1))}
		argv := []string{b.ulat, "run", "-f", "json", "-o", r.path, "--func", "spin", "--", c.bin, "spin", strconv.Itoa(b.stepCalls), strconv.Itoa(iters)}
		t0 := time.Now()
		out, err := b.output(ctx, argv, env...)
		if err != nil {
			return err
		}
		r.wall = time.Since(t0)
		cs, err1 := field(out, "cpu_start")
		ce, err2 := field(out, "cpu_end")
		cpu, err3 := field(out, "cpu_ns_per_call")
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("ctarget spin: %w", err)
		}
		r.cpuStart, r.cpuEnd, r.targetCPUNs = int(cs), int(ce), cpu
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

	var costs, uncs, p50s, raws, walls, changes []float64
	kinds := map[string]int{}
	byCPU := map[int][]float64{}
	moved := 0
	for _, r := range runs {
		kinds[r.kind]++
		costs = append(costs, r.costNs)
		uncs = append(uncs, r.uncertaintyNs)
		p50s = append(p50s, r.p50Ns)
		raws = append(raws, r.p50Ns+r.costNs)
		walls = append(walls, r.wall.Seconds())
		if r.cpuStart == r.cpuEnd {
			byCPU[r.cpuEnd] = append(byCPU[r.cpuEnd], r.p50Ns+r.costNs)
		} else {
			moved++
		}
	}
	regressed, improved, limited, pastLimit := 0, 0, 0, 0 // pastLimit: p50 over +10%
	var pairUnc []float64
	for _, p := range pairs {
		switch p.verdict {
		case "regressed":
			regressed++
		case "improved":
			improved++
		}
		if p.resolutionLimited {
			limited++
		}
		if p.change > 0.10 {
			pastLimit++
		}
		changes = append(changes, p.change)
		pairUnc = append(pairUnc, float64(p.uncertaintyNs))
	}
	var kindList []string
	for k, n := range kinds {
		kindList = append(kindList, fmt.Sprintf("%s (%d runs)", k, n))
	}
	sort.Strings(kindList)

	fmt.Printf("\n== 6. ulat compare on reruns of a function with a single-stepped entry ==\n\n")
	fmt.Printf("%d runs of `ulat run -f json --func spin -- ctarget spin %d %d` (spin: ~%s of CPU a call, its first\n", len(runs), b.stepCalls, iters, b.stepBody)
	fmt.Printf("instruction `%s`; probe kind %s), one after another, %.2f s each (median);\n", first, strings.Join(kindList, ", "), median(walls))
	fmt.Printf("load average %s at the start. Each run compared with the next: `ulat compare PREV NEXT`, default thresholds.\n",
		strings.Join(load[:min(3, len(load))], " "))
	fmt.Printf("spin untraced, CPU time a call (median of 3) when bound to each CPU: %s.\n", strings.Join(speeds, ", "))
	if b.stepCPU >= 0 {
		fmt.Printf("The target is bound to CPU %d (CTARGET_CPU), so that its own speed is the same in every run; ulat is not,\n", b.stepCPU)
		fmt.Printf("so its calibration runs on any CPU (-stepped-cpu -1: the target unbound too).\n\n")
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
	tw.row("target's CPU time per call (spin + probes)", lohi(func() []float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, r.targetCPUNs)
		}
		return xs
	}(), fmtNs))
	tw.row("PER PAIR", "")
	tw.row("p50 change, next vs previous", lohi(changes, pct))
	tw.row("probe-cost uncertainty compare used", lohi(pairUnc, fmtNs))
	tw.flush()
	fmt.Println()
	tw = newTable()
	tw.row("PAIRS", "FALSE REGRESSIONS", "RATE", "IMPROVED", "P50 OVER +10%", "RESOLUTION-LIMITED")
	tw.row(strconv.Itoa(len(pairs)), strconv.Itoa(regressed), fmt.Sprintf("%.1f%%", 100*float64(regressed)/float64(max(len(pairs), 1))),
		strconv.Itoa(improved), strconv.Itoa(pastLimit), strconv.Itoa(limited))
	tw.flush()
	fmt.Printf("(P50 OVER +10%%: pairs whose p50 rose past the default limit: compare flagged those as regressions\n")
	fmt.Printf("whenever their plain bootstrap interval excluded 0, before the interval carried the probe-cost\n")
	fmt.Printf("uncertainty and the buckets' width and had to clear the limit.)\n")
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
	fmt.Printf("spin p50 + cost (median) by the CPU the target ran on: %s\n", strings.Join(parts, "; "))
	for _, p := range pairs {
		if p.verdict == "regressed" || p.verdict == "improved" {
			a, c := runs[p.i], runs[p.i+1]
			fmt.Printf("runs %d → %d %s (cost %s → %s, CPU %d → %d): %s\n", p.i+1, p.i+2, p.verdict, fmtNs(a.costNs), fmtNs(c.costNs), a.cpuEnd, c.cpuEnd, p.reason)
		}
	}
	b.addGoal("compare: false regressions, reruns with a single-stepped entry", fmt.Sprintf("%d/%d", regressed, len(pairs)), "0", regressed == 0)
	return nil
}

// comparePair runs `ulat compare -f json BASE NEW` and reads spin's verdict.
func (b *bench) comparePair(ctx context.Context, base, cur string) (stepPair, error) {
	argv := []string{b.ulat, "compare", "-f", "json", base, cur}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if b.verbose {
		progress("+ %s", shellQuote(argv))
	}
	out, err := cmd.Output()
	var p stepPair
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 1: // regressed
	case ctx.Err() != nil:
		return p, ctx.Err()
	default:
		return p, fmt.Errorf("%s: %w: %s", shellQuote(argv), err, lastLines(stderr.String(), 5))
	}
	var doc stepCmpJSON
	if err := json.Unmarshal(out, &doc); err != nil {
		return p, fmt.Errorf("%s: its JSON: %w", shellQuote(argv), err)
	}
	for _, f := range doc.Functions {
		if f.Function != "spin" || len(f.Metrics) == 0 {
			continue
		}
		m := f.Metrics[0]
		p.verdict, p.reason, p.uncertaintyNs, p.resolutionLimited = f.Verdict, f.Reason, m.ProbeUncertaintyNs, m.ResolutionLimited
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
