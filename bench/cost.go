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

func (b *bench) tracersFor(t *target) []tracer {
	trs := []tracer{
		{key: "bare", label: "none (bare)"},
		{key: "ulat", label: ulatLabel(t), start: b.startUlatOn, check: checkUlatCount},
	}
	if t.lang == "C" {
		trs = append(trs, tracer{key: "bpftrace", label: "bpftrace hist script", start: b.startBpftraceHist, check: checkHistCount})
		trs = append(trs, tracer{key: "floor", label: "bpftrace, empty uprobe+uretprobe", start: b.startFloor})
	} else {
		trs = append(trs, tracer{key: "floor", label: "bpftrace, 2 empty uprobes", start: b.startFloor})
	}
	return trs
}

func ulatLabel(t *target) string {
	if t.lang == "C" {
		return "ulat (uprobe + uretprobe)"
	}
	return "ulat (uprobe at entry and RET)"
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

func (b *bench) startUlatOn(ctx context.Context, t *target, fn string) (*proc, error) {
	return b.startUlat(ctx, t.bin, t.fn(fn))
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
				progress("cost: %s %s, round %d of %d (bare, ulat, bpftrace)", t.lang, t.fn(fn), rep+1, b.reps)
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
						notes = append(notes, note)
					}
				}
			}
		}
	}

	fmt.Printf("\n== 1. Cost per traced call ==\n\n")
	fmt.Printf("Each target times %d calls in a tight loop and prints ns per call; median of %d runs.\n", b.calls, b.reps)
	fmt.Printf("empty: an empty noinline function; spin: a busy loop of ~1 µs (%d iterations in C, %d in Go).\n", c.spinIters, g.spinIters)
	fmt.Printf("ADDED = traced minus bare. ULAT ÷ THIS compares what ulat adds with what that tracer adds.\n")
	fmt.Printf("bpftrace cannot use uretprobes on Go, so for Go it gives the floor only: empty programs on\n")
	fmt.Printf("uprobes at exactly ulat's probe sites (entry and each RET).\n\n")
	tw := newTable()
	tw.row("TARGET", "FUNCTION", "TRACER", "NS/CALL", "RUNS (MIN–MAX)", "ADDED/CALL", "ULAT ÷ THIS")
	for _, t := range []*target{c, g} {
		for _, fn := range []string{"empty", "spin"} {
			bare := median(samples[key{t, fn, "bare"}])
			ulatAdded := median(samples[key{t, fn, "ulat"}]) - bare
			for _, tr := range b.tracersFor(t) {
				s := samples[key{t, fn, tr.key}]
				med := median(s)
				lo, hi := minMax(s)
				added, ratio := "-", ""
				if tr.key != "bare" {
					added = fmtNs(med - bare)
				}
				if tr.key == "bpftrace" || tr.key == "floor" {
					ratio = fmt.Sprintf("%.2f", ulatAdded/(med-bare))
				}
				tw.row(t.lang, t.fn(fn), tr.label, fmtNs(med), fmtNs(lo)+" – "+fmtNs(hi), added, ratio)
			}
		}
	}
	tw.flush()
	for _, n := range notes {
		fmt.Printf("note: %s\n", n)
	}
	return nil
}
