package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A way of running a target: bare, or under one tracer.
type tracer struct {
	key   string
	label string
	start func(ctx context.Context, t *target, fn string) (*proc, error) // nil: bare
	check func(p *proc, t *target, fn string, calls int) string          // a note when the tracer's own count is off
}

// aggregations are ulat's two ways of counting calls (--aggregate), both
// measured by every section: in the kernel's per-CPU histograms, or
// streamed to ulat through the ring buffer.
var aggregations = []string{"kernel", "user"}

func (b *bench) tracersFor(t *target) []tracer {
	trs := []tracer{{key: "bare", label: "none (bare)"}}
	for _, mode := range aggregations {
		trs = append(trs, tracer{key: mode, label: "ulat --aggregate " + mode, start: b.startUlatOn(mode), check: checkUlatCount})
	}
	if t.lang == "C" {
		trs = append(trs, tracer{key: "bpftrace", label: "bpftrace hist script", start: b.startBpftraceHist, check: checkHistCount})
		trs = append(trs, tracer{key: "floor", label: "bpftrace, empty uprobe+uretprobe", start: b.startFloor})
	} else {
		trs = append(trs, tracer{key: "floor", label: "bpftrace, 2 empty uprobes", start: b.startFloor})
	}
	return trs
}

// startUlat starts `ulat trace args...` and waits for its "Tracing" line
// (printed once every probe is attached).
func (b *bench) startUlat(ctx context.Context, args ...string) (*proc, error) {
	p, err := b.start(ctx, "ulat", append([]string{b.ulat, "trace"}, args...), readyOn{stream: 2, prefix: "Tracing "})
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 2*time.Minute); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startUlatOn returns a tracer start function: ulat with --aggregate mode.
func (b *bench) startUlatOn(mode string) func(ctx context.Context, t *target, fn string) (*proc, error) {
	return func(ctx context.Context, t *target, fn string) (*proc, error) {
		return b.startUlat(ctx, "--aggregate", mode, t.bin, t.fn(fn))
	}
}

// startBpftrace runs a bpftrace script and waits until its probes are
// attached: its "Attaching N probes..." line comes before the attaching.
func (b *bench) startBpftrace(ctx context.Context, script string, probes int) (*proc, error) {
	p, err := b.start(ctx, "bpftrace", []string{"bpftrace", "-e", script}, readyOn{stream: 1, prefix: "Attaching "})
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 2*time.Minute); err != nil {
		p.stop()
		return nil, err
	}
	if err := b.waitProbes(ctx, p, probes); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (b *bench) startBpftraceHist(ctx context.Context, t *target, fn string) (*proc, error) {
	f := t.fn(fn)
	script := fmt.Sprintf("uprobe:%[1]s:%[2]s { @s[tid] = nsecs; } uretprobe:%[1]s:%[2]s /@s[tid]/ { @h = hist(nsecs - @s[tid]); delete(@s[tid]); }", t.bin, f)
	return b.startBpftrace(ctx, script, 2)
}

// startFloor attaches empty BPF programs where ulat attaches its own:
// what the kernel's uprobe machinery costs by itself.
func (b *bench) startFloor(ctx context.Context, t *target, fn string) (*proc, error) {
	if t.lang == "C" {
		f := t.fn(fn)
		return b.startBpftrace(ctx, fmt.Sprintf("uprobe:%[1]s:%[2]s {} uretprobe:%[1]s:%[2]s {}", t.bin, f), 2)
	}
	syms := t.goProbeSym[t.fn(fn)]
	var parts []string
	for _, s := range syms {
		parts = append(parts, fmt.Sprintf("uprobe:%s:%s {}", t.bin, s))
	}
	return b.startBpftrace(ctx, strings.Join(parts, " "), len(syms))
}

// checkUlatCount reads the COUNT column of ulat's table for fn.
func checkUlatCount(p *proc, t *target, fn string, calls int) string {
	re := regexp.MustCompile(`(?m)^\|\s*` + regexp.QuoteMeta(t.fn(fn)) + `\s*\|\s*(\d+)\s*\|`)
	m := re.FindStringSubmatch(p.stdout.String())
	if m == nil {
		return fmt.Sprintf("%s %s: no row for the function in ulat's report", t.lang, t.fn(fn))
	}
	if n, _ := strconv.Atoi(m[1]); n != calls {
		return fmt.Sprintf("%s %s: ulat counted %d of %d calls", t.lang, t.fn(fn), n, calls)
	}
	return ""
}

// A bucket: "[8K, 16K)    45210 |@@@...|" or "[0]    3 |...|".
var histLine = regexp.MustCompile(`(?m)^\[[^\]\)\n]*[\])][ \t]+(\d+)[ \t]+\|`)

// checkHistCount adds up bpftrace's histogram.
func checkHistCount(p *proc, t *target, fn string, calls int) string {
	n := 0
	for _, m := range histLine.FindAllStringSubmatch(p.stdout.String(), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	if n != calls {
		return fmt.Sprintf("%s %s: bpftrace's histogram holds %d of %d calls", t.lang, t.fn(fn), n, calls)
	}
	return ""
}

// measure runs the target once under tr and returns its ns per call.
func (b *bench) measure(ctx context.Context, tr tracer, t *target, fn string) (float64, string, error) {
	if tr.start == nil {
		ns, err := b.runTarget(ctx, t, fn, b.calls)
		return ns, "", err
	}
	p, err := tr.start(ctx, t, fn)
	if err != nil {
		return 0, "", err
	}
	ns, err := b.runTarget(ctx, t, fn, b.calls)
	if serr := p.stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return 0, "", err
	}
	note := ""
	if tr.check != nil {
		note = tr.check(p, t, fn, b.calls)
	}
	return ns, note, nil
}

func (b *bench) costSection(ctx context.Context, c, g *target) error {
	type key struct {
		t      *target
		fn, tr string
	}
	samples := map[key][]float64{}
	var notes []string
	seen := map[string]bool{}
	for _, t := range []*target{c, g} {
		for _, fn := range []string{"empty", "spin"} {
			trs := b.tracersFor(t)
			for rep := 0; rep < b.reps; rep++ {
				progress("cost: %s %s, round %d of %d (bare, ulat kernel and user, bpftrace)", t.lang, t.fn(fn), rep+1, b.reps)
				// Interleaved, so that drift on the machine hits all alike.
				for _, tr := range trs {
					ns, note, err := b.measure(ctx, tr, t, fn)
					if err != nil {
						return fmt.Errorf("%s %s under %s: %w", t.lang, t.fn(fn), tr.label, err)
					}
					k := key{t, fn, tr.key}
					samples[k] = append(samples[k], ns)
					if note != "" && !seen[note] {
						seen[note] = true
						notes = append(notes, tr.label+": "+note)
					}
				}
			}
		}
	}

	fmt.Printf("\n== 1. Cost per traced call ==\n\n")
	clock := "by the CPU time of its thread (-clock cpu: the uprobes'\nwork is charged to it, time spent waiting for a CPU on a busy machine is not)"
	if b.clock == "wall" {
		clock = "by wall time\n(-clock wall)"
	}
	fmt.Printf("Each target times %d calls in a tight loop and prints ns per call, %s;\nmedian of %d runs, interleaved.\n", b.calls, clock, b.reps)
	fmt.Printf("empty: an empty noinline function; spin: a busy loop of ~1 µs (%d iterations in C, %d in Go).\n", c.spinIters, g.spinIters)
	fmt.Printf("KERNEL, USER: ulat --aggregate kernel (in-kernel histograms) and --aggregate user (ring buffer).\n")
	fmt.Printf("BPFTRACE: the uprobe/uretprobe hist() one-liner keyed by tid (C only: bpftrace has no uretprobes for Go).\n")
	fmt.Printf("EMPTY: empty bpftrace programs where ulat probes (C: uprobe + uretprobe; Go: the entry and each RET).\n")
	fmt.Printf("Columns after BARE: ns each tracer adds per call (traced − bare). RATIO: ulat's added ÷ bpftrace's\n")
	fmt.Printf("for C, ÷ the empty programs' for Go. SPREAD: the widest (max − min) ÷ median of the row's traced runs.\n\n")
	tw := newTable()
	tw.row("TARGET", "FUNCTION", "BARE", "KERNEL", "USER", "BPFTRACE", "EMPTY", "RATIO KERNEL", "RATIO USER", "SPREAD")
	for _, t := range []*target{c, g} {
		for _, fn := range []string{"empty", "spin"} {
			bare := median(samples[key{t, fn, "bare"}])
			added := map[string]float64{}
			spread := 0.0
			for _, tr := range b.tracersFor(t) {
				s := samples[key{t, fn, tr.key}]
				med := median(s)
				added[tr.key] = med - bare
				if lo, hi := minMax(s); tr.key != "bare" && med > 0 {
					spread = max(spread, (hi-lo)/med)
				}
			}
			ref := "floor"
			bt := "-"
			if t.lang == "C" {
				ref = "bpftrace"
				bt = fmtNs(added["bpftrace"])
			}
			tw.row(t.lang, t.fn(fn), fmtNs(bare), fmtNs(added["kernel"]), fmtNs(added["user"]), bt, fmtNs(added["floor"]),
				fmt.Sprintf("%.2f", added["kernel"]/added[ref]), fmt.Sprintf("%.2f", added["user"]/added[ref]),
				fmt.Sprintf("%.0f%%", 100*spread))
		}
	}
	tw.flush()
	for _, n := range notes {
		fmt.Printf("note: %s\n", n)
	}
	for _, mode := range aggregations {
		var rs []string
		pass := true
		for _, fn := range []string{"empty", "spin"} {
			bare := median(samples[key{c, fn, "bare"}])
			r := (median(samples[key{c, fn, mode}]) - bare) / (median(samples[key{c, fn, "bpftrace"}]) - bare)
			rs = append(rs, fmt.Sprintf("%.2f", r))
			pass = pass && r <= 1
		}
		b.addGoal("C: ulat --aggregate "+mode+" ÷ bpftrace, added per call (empty, spin)", strings.Join(rs, ", "), "≤ 1.0", pass)
	}
	return nil
}
