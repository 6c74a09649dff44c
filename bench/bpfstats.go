package main

import (
	"context"
	"fmt"
	"strings"
)

// progCost is the kernel's account of BPF programs of one kind.
type progCost struct {
	names     []string
	runs      uint64
	runTimeNs uint64
}

func (c *progCost) add(p progEntry) {
	c.names = append(c.names, p.Name)
	c.runs += p.RunCnt
	c.runTimeNs += p.RunTimeNs
}

func (c progCost) perRun() float64 {
	if c.runs == 0 {
		return 0
	}
	return float64(c.runTimeNs) / float64(c.runs)
}

// bpfSection reads run_time_ns and run_cnt of the tracers' programs, with
// kernel.bpf_stats_enabled on, while the empty function is called.
func (b *bench) bpfSection(ctx context.Context, c, g *target) error {
	restore, err := b.enableStats()
	if err != nil {
		return err
	}
	defer restore()

	type row struct {
		t           *target
		tracer      string
		entry, exit progCost
		goal        bool
	}
	var rows []row

	// --raw takes no probe costs out, so its programs leave out the
	// per-thread sums of nested probe costs: the difference is what
	// that correction costs per call.
	type config struct{ mode, raw string }
	var configs []config
	for _, mode := range aggregations {
		configs = append(configs, config{mode, ""})
	}
	configs = append(configs, config{"kernel", "--raw"})
	for _, t := range []*target{c, g} {
		for _, cf := range configs {
			name := strings.TrimSpace("ulat --aggregate " + cf.mode + " " + cf.raw)
			progress("bpf_stats: %s %s under %s", t.lang, t.fn("empty"), name)
			args := []string{"--aggregate", cf.mode, t.bin, t.fn("empty")}
			if cf.raw != "" {
				args = append([]string{cf.raw}, args...)
			}
			p, err := b.startUlat(ctx, args...)
			if err != nil {
				return err
			}
			r := row{t: t, tracer: name, goal: cf.raw == ""}
			err = b.statsWhileRunning(ctx, p, t, func(progs []progEntry, _ map[int]string) {
				for _, pr := range progs {
					if strings.Contains(pr.Name, "entry") {
						r.entry.add(pr)
					} else {
						r.exit.add(pr)
					}
				}
			})
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	}

	progress("bpf_stats: C empty under the bpftrace hist script")
	p, err := b.startBpftraceHist(ctx, c, "empty")
	if err != nil {
		return err
	}
	r := row{t: c, tracer: "bpftrace hist script (reference)"}
	err = b.statsWhileRunning(ctx, p, c, func(progs []progEntry, kind map[int]string) {
		for _, pr := range progs {
			if kind[pr.ID] == "uprobe" {
				r.entry.add(pr)
			} else {
				r.exit.add(pr)
			}
		}
	})
	if err != nil {
		return err
	}
	rows = append(rows, r)

	progress("bpf_stats: C empty under empty bpftrace programs")
	p, err = b.startFloor(ctx, c, "empty")
	if err != nil {
		return err
	}
	r = row{t: c, tracer: "bpftrace, empty programs (floor)"}
	err = b.statsWhileRunning(ctx, p, c, func(progs []progEntry, kind map[int]string) {
		for _, pr := range progs {
			if kind[pr.ID] == "uprobe" {
				r.entry.add(pr)
			} else {
				r.exit.add(pr)
			}
		}
	})
	if err != nil {
		return err
	}
	rows = append(rows, r)
	restore()

	fmt.Printf("\n== 2. BPF program run time per call (kernel.bpf_stats_enabled) ==\n\n")
	fmt.Printf("run_time_ns / run_cnt of each program while the target called the empty function %d times.\n", b.calls)
	fmt.Printf("This is the programs' own run time; the trap into the kernel (section 1, floor) is not in it.\n")
	fmt.Printf("The floor row is what the kernel's accounting reports for programs that do nothing.\n\n")
	tw := newTable()
	tw.row("TARGET", "TRACER", "PROGRAMS", "RUNS (ENTRY/EXIT)", "ENTRY", "EXIT", "PER CALL", "GOAL", "")
	for _, r := range rows {
		pair := r.entry.perRun() + r.exit.perRun()
		goal, v := "-", ""
		if r.goal {
			goal = "≤ 100 ns"
			v = b.addGoal(fmt.Sprintf("BPF run time per call, %s, %s (entry + exit)", r.t.lang, r.tracer), fmtNs(pair), goal, pair <= 100)
		}
		names := strings.Join(append(append([]string(nil), r.entry.names...), r.exit.names...), " + ")
		tw.row(r.t.lang, r.tracer, names, fmt.Sprintf("%d/%d", r.entry.runs, r.exit.runs),
			fmtNs(r.entry.perRun()), fmtNs(r.exit.perRun()), fmtNs(pair), goal, v)
	}
	tw.flush()
	for _, r := range rows {
		if r.entry.runs != uint64(b.calls) || r.exit.runs != uint64(b.calls) {
			fmt.Printf("note: %s under %s: programs ran %d/%d times for %d calls\n", r.t.lang, r.tracer, r.entry.runs, r.exit.runs, b.calls)
		}
	}
	return nil
}

// statsWhileRunning runs the empty function under the already started
// tracer p, reads its programs' statistics before stopping it, and hands
// them to use with the perf-event kind (uprobe, uretprobe) of each program
// attached that way.
func (b *bench) statsWhileRunning(ctx context.Context, p *proc, t *target, use func([]progEntry, map[int]string)) error {
	defer p.stop()
	if _, err := b.runTarget(ctx, t, "empty", b.calls); err != nil {
		return err
	}
	pid := p.cmd.Process.Pid
	ids, err := b.progsOn(ctx, t.bin, pid)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fmt.Errorf("no BPF program of %s found on %s", p.name, t.bin)
	}
	progs, err := b.progStats(ctx, ids)
	if err != nil {
		return err
	}
	perf, err := b.perfProbes(ctx, pid)
	if err != nil {
		return err
	}
	kind := map[int]string{}
	for _, e := range perf {
		kind[e.ProgID] = e.FdType
	}
	use(progs, kind)
	return p.stop()
}
