package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rateRun is one run of the rate target, bare or under one tracer.
type rateRun struct {
	calls   uint64        // counted by the target itself
	seconds float64       // the target's own wall time of the calling phase
	cpu     time.Duration // the target's CPU time, user + sys (uprobe handling included)
	threads int
	// ulat's report; counted < 0 when the tracer is not ulat
	counted, dropped int64
}

// rateTracer is one way of running the rate target.
type rateTracer struct {
	key, label string
	ulatArgs   []string // ulat trace flags; nil: not ulat
	floor      bool     // empty bpftrace programs
	lossy      bool     // expected to drop: a check that drops are counted
}

func (b *bench) rateTracers() []rateTracer {
	trs := []rateTracer{{key: "bare", label: "none (bare)"}}
	for _, mode := range aggregations {
		trs = append(trs, rateTracer{key: mode, label: "ulat --aggregate " + mode, ulatArgs: []string{"--aggregate", mode}})
	}
	trs = append(trs,
		rateTracer{key: "floor", label: "bpftrace, empty uprobe+uretprobe", floor: true},
		rateTracer{key: "small", label: "ulat --aggregate user --buffer 4", ulatArgs: []string{"--aggregate", "user", "--buffer", "4"}, lossy: true})
	return trs
}

// runRate runs the rate target once and reads its output and CPU time.
func (b *bench) runRate(ctx context.Context, bin string) (rateRun, error) {
	argv := []string{bin, strconv.FormatInt(b.rateTime.Milliseconds(), 10)}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	if b.verbose {
		progress("+ %s", shellQuote(argv))
	}
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return rateRun{}, ctx.Err()
		}
		return rateRun{}, fmt.Errorf("%s: %w", shellQuote(argv), err)
	}
	var r rateRun
	calls, err := field(string(out), "calls")
	if err != nil {
		return r, err
	}
	r.calls = uint64(calls)
	if r.seconds, err = field(string(out), "seconds"); err != nil {
		return r, err
	}
	threads, err := field(string(out), "threads")
	if err != nil {
		return r, err
	}
	r.threads = int(threads)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	r.counted, r.dropped = -1, -1
	return r, nil
}

// ulatCounts reads the count of the one traced function and the dropped
// events from ulat's JSON report.
func ulatCounts(out string) (counted, dropped int64, err error) {
	var rep struct {
		Functions []struct {
			Count int64 `json:"count"`
		} `json:"functions"`
		Lost struct {
			DroppedEvents int64 `json:"dropped_events"`
		} `json:"lost"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return 0, 0, fmt.Errorf("ulat's JSON report: %w", err)
	}
	for _, f := range rep.Functions {
		counted += f.Count
	}
	return counted, rep.Lost.DroppedEvents, nil
}

func (b *bench) measureRate(ctx context.Context, tr rateTracer, bin string) (rateRun, error) {
	var p *proc
	var err error
	switch {
	case tr.ulatArgs != nil:
		p, err = b.startUlat(ctx, append(append([]string{"-f", "json"}, tr.ulatArgs...), bin, "hit")...)
	case tr.floor:
		p, err = b.startBpftrace(ctx, fmt.Sprintf("uprobe:%[1]s:hit {} uretprobe:%[1]s:hit {}", bin), 2)
	}
	if err != nil {
		return rateRun{}, err
	}
	r, err := b.runRate(ctx, bin)
	if p == nil {
		return r, err
	}
	if serr := p.stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return r, err
	}
	if tr.ulatArgs != nil {
		r.counted, r.dropped, err = ulatCounts(p.stdout.String())
	}
	return r, err
}

// rateSection: how many calls per second the kernel delivers to ulat, and
// whether ulat keeps every one of them.
func (b *bench) rateSection(ctx context.Context) error {
	bin := filepath.Join(b.dir, "crate")
	if _, err := b.output(ctx, []string{"gcc", "-O2", "-Wall", "-pthread", "-o", bin, "bench/targets/c/rate.c"}); err != nil {
		return fmt.Errorf("build the rate target: %w", err)
	}
	trs := b.rateTracers()
	runs := map[string][]rateRun{}
	load := strings.Fields(readTrim("/proc/loadavg"))
	for rep := 0; rep < b.reps; rep++ {
		progress("rate: round %d of %d (bare, ulat kernel and user, bpftrace, ulat with a 4 KiB buffer), %s each", rep+1, b.reps, b.rateTime)
		for _, tr := range trs {
			r, err := b.measureRate(ctx, tr, bin)
			if err != nil {
				return fmt.Errorf("rate target under %s: %w", tr.label, err)
			}
			runs[tr.key] = append(runs[tr.key], r)
		}
	}
	threads := runs["bare"][0].threads

	fmt.Printf("\n== 4. Highest sustainable call rate ==\n\n")
	fmt.Printf("bench/targets/c/rate.c: %d threads (one per CPU) call hit() as fast as they can for %s and count\n", threads, b.rateTime)
	fmt.Printf("their calls. hit() starts with push %%rbp, which the kernel emulates under a uprobe: the cheapest\n")
	fmt.Printf("probed function, so the highest rate uprobes deliver. %d runs each, interleaved; medians shown.\n", b.reps)
	fmt.Printf("CALLS/S: the target's calls ÷ its wall time; PER CPU-S: ÷ its own CPU time (user + sys, where the\n")
	fmt.Printf("uprobes run), which depends much less on what else the machine is running (load average %s\n", strings.Join(load[:min(3, len(load))], " "))
	fmt.Printf("at the start). COUNTED: ulat's count of hit() equals the target's own count, in how many runs.\n")
	fmt.Printf("DROPPED: lost.dropped_events in ulat's report, all runs together, and as a share of the calls.\n\n")
	tw := newTable()
	tw.row("TRACER", "CALLS/S", "PER CPU-S", "÷ EMPTY PROBES", "COUNTED", "DROPPED")
	rate := func(rs []rateRun) (wall, perCPU float64) {
		var w, c []float64
		for _, r := range rs {
			w = append(w, float64(r.calls)/r.seconds)
			if r.cpu > 0 {
				c = append(c, float64(r.calls)/r.cpu.Seconds())
			}
		}
		return median(w), median(c)
	}
	_, floorCPU := rate(runs["floor"])
	for _, tr := range trs {
		rs := runs[tr.key]
		wall, perCPU := rate(rs)
		ratio := "-"
		if tr.key != "bare" && tr.key != "floor" {
			ratio = fmt.Sprintf("%.2f", perCPU/floorCPU)
		}
		counted, dropped := "-", "-"
		if tr.ulatArgs != nil {
			exact, sumCalls, sumDropped := 0, uint64(0), int64(0)
			for _, r := range rs {
				// A lossy run is exact when every call was either counted
				// or counted as dropped.
				if uint64(r.counted) == r.calls || tr.lossy && uint64(r.counted+r.dropped) == r.calls {
					exact++
				}
				sumCalls += r.calls
				sumDropped += r.dropped
			}
			if tr.lossy {
				counted = fmt.Sprintf("counted + dropped = target's (%d/%d)", exact, len(rs))
			} else {
				counted = fmt.Sprintf("exact (%d/%d)", exact, len(rs))
				if exact < len(rs) {
					counted = fmt.Sprintf("OFF (exact in %d/%d)", exact, len(rs))
				}
				b.addGoal("highest rate, "+tr.label+": every call counted, none dropped",
					fmt.Sprintf("%d/%d exact, %d dropped", exact, len(rs), sumDropped), "all, 0", exact == len(rs) && sumDropped == 0)
			}
			dropped = fmt.Sprintf("%d (%.1f%%)", sumDropped, 100*float64(sumDropped)/float64(sumCalls))
		}
		tw.row(tr.label, fmtRate(wall), fmtRate(perCPU), ratio, counted, dropped)
	}
	tw.flush()
	for _, tr := range trs {
		for i, r := range runs[tr.key] {
			if tr.ulatArgs != nil && uint64(r.counted) != r.calls && !(tr.lossy && uint64(r.counted+r.dropped) == r.calls) {
				fmt.Printf("note: %s, run %d: the target made %d calls, ulat counted %d and %d dropped\n", tr.label, i+1, r.calls, r.counted, r.dropped)
			}
		}
	}
	return nil
}

// fmtRate prints calls per second with a k/M suffix.
func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.1f M", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1f k", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
