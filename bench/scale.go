package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/report"
)

type scaleCase struct {
	label    string
	bin      string
	patterns []string
	perf     bool          // --attach perf: the path for kernels before 6.6
	once     bool          // run once, not -reps times
	goal     time.Duration // for attach, and attach + detach; 0: none
	demo     bool          // the goal is on attach only
}

type scaleRun struct {
	funcs  int
	attach time.Duration // start to "Tracing"
	wall   time.Duration // start to exit
	rssKB  int64
}

const traceFor = time.Second

var tracingLine = regexp.MustCompile(`^Tracing (\d+) functions?`)

// scaleOnce runs `ulat trace --duration 1s` and times it.
func (b *bench) scaleOnce(ctx context.Context, c scaleCase) (scaleRun, error) {
	args := []string{"--duration", traceFor.String()}
	if c.perf {
		args = append(args, "--attach", "perf")
	}
	args = append(append(args, c.bin), c.patterns...)
	p, err := b.startUlat(ctx, args...)
	if err != nil {
		return scaleRun{}, err
	}
	if err := p.wait(ctx, 5*time.Minute); err != nil {
		return scaleRun{}, err
	}
	r := scaleRun{attach: p.readyAt, wall: p.exitAt}
	if m := tracingLine.FindStringSubmatch(p.readyLn); m != nil {
		r.funcs, _ = strconv.Atoi(m[1])
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rssKB = ru.Maxrss // kilobytes on Linux
	}
	return r, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (b *bench) scaleSection(ctx context.Context) error {
	// Copies: probes attach to a file's inode, and another user's build
	// running the real compiler (or demo) must not hit thousands of them.
	demo := filepath.Join(b.dir, "ulat-demo")
	compile := filepath.Join(b.dir, "compile")
	if err := copyFile(b.demo, demo); err != nil {
		return err
	}
	if err := copyFile(b.compile, compile); err != nil {
		return err
	}
	p1k := []string{"cmd/compile/internal/types2.*", "cmd/compile/internal/typecheck.*"}
	p10k := []string{"cmd/compile/internal/ss*", "cmd/compile/internal/ir.*", "cmd/compile/internal/types2.*"}
	cases := []scaleCase{
		{label: "bin/ulat-demo", bin: demo, patterns: []string{"main.(*Server).handle*"}, goal: time.Second, demo: true},
		{label: "compile, ~1,000 functions", bin: compile, patterns: p1k, goal: time.Second},
		{label: "compile, ~10,000 functions", bin: compile, patterns: p10k, goal: 5 * time.Second},
		// One perf-event link per probe: closing each one waits for the
		// kernel, so this case is kept small and run once.
		{label: "compile, --attach perf", bin: compile, patterns: []string{"cmd/compile/internal/typecheck.tc*"}, perf: true, once: true},
	}
	results := make([][]scaleRun, len(cases))
	failed := make([]error, len(cases))
	for rep := 0; rep < b.reps; rep++ {
		for i, c := range cases {
			if c.once && rep > 0 {
				continue
			}
			progress("scale: %s, run %d of %d", c.label, rep+1, b.reps)
			r, err := b.scaleOnce(ctx, c)
			if err != nil && c.perf && ctx.Err() == nil {
				// The extra case must not sink the others.
				failed[i] = err
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: %w", c.label, err)
			}
			results[i] = append(results[i], r)
		}
	}

	fmt.Printf("\n== 3. Attach, detach and memory ==\n\n")
	fmt.Printf("`ulat trace --duration %s BINARY PATTERN...`, median of %d runs. Attach is from starting ulat to its\n", traceFor, b.reps)
	fmt.Printf("\"Tracing\" line (symbol resolution, disassembly, BPF load and attach); attach + detach is\n")
	fmt.Printf("the wall time minus the %s traced. compile is a copy of %s.\n", traceFor, b.compile)
	fmt.Printf("--attach perf (one perf-event link per probe) is the path of kernels before 6.6; run once, no goal.\n")
	cpus := probes.HistogramBytes(1) / probes.KernelHistogramBytes
	fmt.Printf("Histogram memory per function: in the kernel %d B per CPU (%d CPUs here: %s for 1,000 functions,\n",
		probes.KernelHistogramBytes, cpus, fmtMB(int64(probes.HistogramBytes(1000)/1024)))
	fmt.Printf("%s for 10,000, past the 64 MiB that --aggregate auto allows, so it streams instead); in ulat,\n",
		fmtMB(int64(probes.HistogramBytes(10000)/1024)))
	fmt.Printf("in either mode, %d B per function whose calls fall in 5 slots, up to %d B once they fill more\n",
		fewSlotsHistogram().Bytes(), report.HistogramDenseBytes+report.NewHistogram().Bytes())
	fmt.Printf("than %d (dense).\n\n", report.SparseCells)
	tw := newTable()
	tw.row("CASE", "FUNCTIONS", "METRIC", "MEASURED", "GOAL", "")
	const rssGoalKB = 100 * 1024
	for i, c := range cases {
		rs := results[i]
		if failed[i] != nil {
			tw.row(c.label, "-", "failed", "-", "", "")
			defer fmt.Printf("note: %s: %v\n", c.label, failed[i])
			continue
		}
		var attach, wall []time.Duration
		var rss []float64
		funcs := rs[0].funcs
		for _, r := range rs {
			attach = append(attach, r.attach)
			wall = append(wall, r.wall-traceFor)
			rss = append(rss, float64(r.rssKB))
		}
		a, w, m := medianDur(attach), medianDur(wall), int64(median(rss))
		goal, va, vw, vm := "-", "", "", ""
		if c.goal > 0 {
			goal = fmt.Sprintf("≤ %s", fmtGoal(c.goal))
			va = b.addGoal(fmt.Sprintf("%s (%d): attach", c.label, funcs), fmtSec(a), goal, a <= c.goal)
			if !c.demo {
				vw = b.addGoal(fmt.Sprintf("%s (%d): attach + detach", c.label, funcs), fmtSec(w), goal, w <= c.goal)
			}
		}
		rssGoal := "≤ 100 MB"
		if c.perf {
			rssGoal = "-"
		} else {
			vm = b.addGoal(fmt.Sprintf("%s (%d): peak RSS", c.label, funcs), fmtMB(m), rssGoal, m <= rssGoalKB)
		}
		wallGoal := goal
		if c.demo {
			wallGoal = "-"
		}
		tw.row(c.label, strconv.Itoa(funcs), "attach (start → \"Tracing\")", fmtSec(a), goal, va)
		tw.row("", "", "detach + report", fmtSec(w-a), "", "")
		if c.perf {
			if n, err := b.countProbes(ctx, c.bin, c.patterns); err == nil && n > 0 {
				tw.row("", "", fmt.Sprintf("  per probe (%d probes)", n), fmt.Sprintf("%.0f ms", float64((w-a).Milliseconds())/float64(n)), "", "")
			}
		}
		tw.row("", "", "attach + detach (wall − "+traceFor.String()+")", fmtSec(w), wallGoal, vw)
		tw.row("", "", "peak RSS", fmtMB(m), rssGoal, vm)
	}
	tw.flush()
	return nil
}

// countProbes counts the probes ulat attaches for patterns: an entry and
// one per RET, or an entry and a uretprobe.
func (b *bench) countProbes(ctx context.Context, bin string, patterns []string) (int, error) {
	out, err := b.output(ctx, append([]string{b.ulat, "symbols", bin}, patterns...))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		m := symRow.FindStringSubmatch(line)
		if m == nil || m[1] == "-" {
			continue
		}
		if m[2] == "uretprobe" {
			n += 2
		} else {
			e, _ := strconv.Atoi(m[2])
			n += 1 + e
		}
	}
	return n, nil
}

func fmtGoal(d time.Duration) string {
	return fmt.Sprintf("%g s", d.Seconds())
}

// fewSlotsHistogram is the histogram of a function whose calls fall in 5
// slots, as most traced functions' do.
func fewSlotsHistogram() *report.Histogram {
	h := report.NewHistogram()
	for _, ns := range []uint64{1_000, 2_000, 5_000, 10_000, 50_000} {
		h.Record(ns)
	}
	return h
}
