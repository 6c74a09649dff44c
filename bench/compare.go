package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ulat-dev/ulat/compare"
)

// cmpRun is one recorded run of the demo's batch job.
type cmpRun struct {
	slower int // 0: a baseline, identical to the others
	path   string
	wall   time.Duration
}

// cmpResult is what one `ulat compare` said.
type cmpResult struct {
	regressed bool     // exit status 1
	flagged   []string // "function metric" of each regressed metric
	changes   map[string]float64
	// what compare says it judged by
	thresholds string
	confidence float64
}

// compareOnce runs `ulat compare -f json FLAGS... BASE... -- NEW` and reads its
// verdict from its exit status: 0 nothing regressed, 1 something did; 2 (bad
// input) is an error.
func (b *bench) compareOnce(ctx context.Context, flags, base []string, cur string) (cmpResult, error) {
	argv := append(append([]string{b.ulat, "compare", "-f", "json"}, flags...), base...)
	argv = append(argv, "--", cur)
	res := cmpResult{changes: map[string]float64{}}
	var rep compare.JSONResult
	regressed, err := b.runCompare(ctx, argv, &rep)
	if err != nil {
		return res, err
	}
	res.regressed = regressed
	var ths []string
	for _, t := range rep.Thresholds {
		ths = append(ths, fmt.Sprintf("%s %+.0f%%", t.Metric, 100*t.Limit))
	}
	res.thresholds, res.confidence = strings.Join(ths, ", "), rep.Confidence
	for _, f := range rep.Functions {
		for _, m := range f.Metrics {
			var change float64 // 0 where compare has none (a zero baseline)
			if m.Change != nil {
				change = *m.Change
			}
			res.changes[f.Function+" "+m.Metric] = change
			if m.Verdict == "regressed" {
				res.flagged = append(res.flagged, f.Function+" "+m.Metric)
			}
		}
	}
	return res, nil
}

// runCompare runs a `ulat compare -f json` command line, reads its JSON
// (compare.JSONResult) into doc, and tells whether it found a regression (exit status 1); any
// other failure is an error.
func (b *bench) runCompare(ctx context.Context, argv []string, doc *compare.JSONResult) (regressed bool, err error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if b.verbose {
		progress("+ %s", shellQuote(argv))
	}
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		regressed = true
	case ctx.Err() != nil:
		return false, ctx.Err()
	default:
		return false, fmt.Errorf("%s: %w: %s", shellQuote(argv), err, lastLines(stderr.String(), 5))
	}
	if err := json.Unmarshal(out, doc); err != nil {
		return false, fmt.Errorf("%s: its JSON: %w", shellQuote(argv), err)
	}
	return regressed, nil
}

// cmpTally counts the comparisons of one kind.
type cmpTally struct {
	n, flagged int
	byMetric   map[string]int // "function metric" -> comparisons it regressed in
	parse      int            // flagged with main.parseRecord among the regressed (the slowed function)
}

func (t *cmpTally) add(r cmpResult) {
	t.n++
	if !r.regressed {
		return
	}
	t.flagged++
	if t.byMetric == nil {
		t.byMetric = map[string]int{}
	}
	parse := false
	for _, f := range r.flagged {
		t.byMetric[f]++
		parse = parse || strings.HasPrefix(f, "main.parseRecord ")
	}
	if parse {
		t.parse++
	}
}

func (t *cmpTally) rate() string {
	if t.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(t.flagged)/float64(t.n))
}

func (t *cmpTally) metrics() string {
	var ks []string
	for k := range t.byMetric {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, t.byMetric[k]))
	}
	return strings.Join(parts, ", ")
}

// compareSection measures `ulat compare`'s false-positive rate on identical
// runs of the demo's batch job, and how often it detects a function made
// 30% and 40% slower.
func (b *bench) compareSection(ctx context.Context) error {
	dir := filepath.Join(b.dir, "compare")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	load := strings.Fields(readTrim("/proc/loadavg"))
	var base, slow30, slow40 []*cmpRun
	var all []*cmpRun
	for i := 0; i < b.cmpRuns; i++ {
		base = append(base, &cmpRun{path: filepath.Join(dir, fmt.Sprintf("base-%02d.json", i+1))})
	}
	for i := 0; i < b.cmpSlow; i++ {
		slow30 = append(slow30, &cmpRun{slower: 30, path: filepath.Join(dir, fmt.Sprintf("slower30-%02d.json", i+1))})
		slow40 = append(slow40, &cmpRun{slower: 40, path: filepath.Join(dir, fmt.Sprintf("slower40-%02d.json", i+1))})
	}
	// Interleaved: each kind spread evenly over the whole sequence, so that
	// drift on the machine hits baselines and slower runs alike.
	type slot struct {
		at float64
		r  *cmpRun
	}
	var order []slot
	for _, rs := range [][]*cmpRun{base, slow30, slow40} {
		for i, r := range rs {
			order = append(order, slot{(float64(i) + 0.5) / float64(len(rs)), r})
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].at < order[j].at })
	for i, s := range order {
		all = append(all, s.r)
		progress("compare: run %d of %d (ulat-demo work -n %d -slower %d)", i+1, len(order), b.cmpRecords, s.r.slower)
		argv := []string{b.ulat, "run", "--aggregate", b.cmpAggregate, "-f", "json", "-o", s.r.path, "--func", "main.*Record", "--",
			b.demo, "work", "-n", strconv.Itoa(b.cmpRecords)}
		if s.r.slower > 0 {
			argv = append(argv, "-slower", strconv.Itoa(s.r.slower))
		}
		t0 := time.Now()
		if _, err := b.output(ctx, argv); err != nil {
			return err
		}
		s.r.wall = time.Since(t0)
	}

	// Every comparison is made with compare's default thresholds and
	// again with the -compare-also ones (also), if any.
	var also []string
	for _, t := range strings.Split(b.cmpAlso, ",") {
		if t = strings.TrimSpace(t); t != "" {
			also = append(also, "--threshold", t)
		}
	}
	var alsoFP1, alsoFP3 cmpTally
	alsoDet := map[string]*cmpTally{}
	var defaults cmpResult // what the default thresholds are

	// 1 vs 1, identical: every pair, the earlier run as the baseline.
	var fp1, fp3 cmpTally
	changes := map[string][]float64{}
	for i := range base {
		for j := i + 1; j < len(base); j++ {
			r, err := b.compareOnce(ctx, nil, []string{base[i].path}, base[j].path)
			if err != nil {
				return err
			}
			fp1.add(r)
			defaults = r
			for k, v := range r.changes {
				changes[k] = append(changes[k], v)
			}
			if also == nil {
				continue
			}
			if r, err = b.compareOnce(ctx, also, []string{base[i].path}, base[j].path); err != nil {
				return err
			}
			alsoFP1.add(r)
			for k, v := range r.changes {
				if _, ok := defaults.changes[k]; !ok {
					changes[k] = append(changes[k], v)
				}
			}
		}
	}
	// 3 merged vs 1, identical: for each run, the others in turn, in
	// disjoint groups of three.
	triple := func(start int) []string {
		var ps []string
		for k := 0; k < 3; k++ {
			ps = append(ps, base[(start+k)%len(base)].path)
		}
		return ps
	}
	for k := range base {
		for g := 0; g+3 <= len(base)-1; g += 3 {
			r, err := b.compareOnce(ctx, nil, triple(k+1+g), base[k].path)
			if err != nil {
				return err
			}
			fp3.add(r)
			if also == nil {
				continue
			}
			if r, err = b.compareOnce(ctx, also, triple(k+1+g), base[k].path); err != nil {
				return err
			}
			alsoFP3.add(r)
		}
	}
	// Detection: every baseline, alone and in disjoint groups of three,
	// against every slower run.
	det := map[string]*cmpTally{}
	detect := func(baseline []string, s *cmpRun, n int) error {
		r, err := b.compareOnce(ctx, nil, baseline, s.path)
		if err != nil {
			return err
		}
		tallyOf(det, fmt.Sprintf("%d %d", n, s.slower)).add(r)
		if also == nil {
			return nil
		}
		if r, err = b.compareOnce(ctx, also, baseline, s.path); err != nil {
			return err
		}
		tallyOf(alsoDet, fmt.Sprintf("%d %d", n, s.slower)).add(r)
		return nil
	}
	for _, rs := range [][]*cmpRun{slow30, slow40} {
		for _, s := range rs {
			for _, bl := range base {
				if err := detect([]string{bl.path}, s, 1); err != nil {
					return err
				}
			}
			for g := 0; g+3 <= len(base); g += 3 {
				if err := detect(triple(g), s, 3); err != nil {
					return err
				}
			}
		}
	}

	var walls []time.Duration
	for _, r := range all {
		walls = append(walls, r.wall)
	}
	fmt.Printf("\n== 5. ulat compare: false positives and detection ==\n\n")
	fmt.Printf("%d identical runs of `ulat run --aggregate %s -f json --func 'main.*Record' -- ulat-demo work -n %d`\n", len(base), b.cmpAggregate, b.cmpRecords)
	fmt.Printf("(main.parseRecord ~100 µs of CPU, main.renderRecord ~50 µs, %d calls each), and %d each with\n", b.cmpRecords, b.cmpSlow)
	fmt.Printf("-slower 30 and -slower 40 (parseRecord 30%% and 40%% slower), interleaved; a run took %s (median);\n", fmtSec(medianDur(walls)))
	fmt.Printf("load average %s at the start. `ulat compare BASE... -- NEW` with its default thresholds\n", strings.Join(load[:min(3, len(load))], " "))
	fmt.Printf("(%s, each also needing all of its %.0f%% bootstrap interval, widened by the probe-cost uncertainty and\n", defaults.thresholds, 100*defaults.confidence)
	fmt.Printf("the buckets' width, beyond it). FLAGGED: exit status 1.\n")
	fmt.Printf("3 merged: three other identical runs given together as the baseline (disjoint groups of three).\n")
	alsoCol := ""
	if also != nil {
		alsoCol = "WITH " + strings.ToUpper(strings.ReplaceAll(b.cmpAlso, ",", ", "))
		fmt.Printf("%s: the same comparisons judged by --threshold %s instead (-compare-also).\n", alsoCol, strings.Join(strings.Split(b.cmpAlso, ","), " --threshold "))
	}
	fmt.Println()
	tw := newTable()
	tw.row("BASELINE", "NEW RUN", "COMPARISONS", "FLAGGED", "RATE", alsoCol, "")
	frac := func(t *cmpTally) string {
		if also == nil {
			return ""
		}
		return fmt.Sprintf("%d (%s)", t.flagged, t.rate())
	}
	tw.row("1 run", "identical", strconv.Itoa(fp1.n), strconv.Itoa(fp1.flagged), fp1.rate(), frac(&alsoFP1), "false positives")
	tw.row("3 merged", "identical", strconv.Itoa(fp3.n), strconv.Itoa(fp3.flagged), fp3.rate(), frac(&alsoFP3), "false positives")
	for _, k := range []string{"1 30", "1 40", "3 30", "3 40"} {
		t := tallyOf(det, k)
		bl := "1 run"
		if k[0] == '3' {
			bl = "3 merged"
		}
		tw.row(bl, "-slower "+k[2:], strconv.Itoa(t.n), strconv.Itoa(t.flagged), t.rate(), frac(tallyOf(alsoDet, k)), "detected")
	}
	tw.flush()
	fmt.Println()
	for _, v := range []struct {
		what string
		t    *cmpTally
	}{
		{"1 run", &fp1}, {"3 merged", &fp3}, {"1 run, " + b.cmpAlso, &alsoFP1}, {"3 merged, " + b.cmpAlso, &alsoFP3},
	} {
		if v.t.flagged > 0 {
			fmt.Printf("false positives (%s), by metric: %s\n", v.what, v.t.metrics())
		}
	}
	for _, k := range []string{"1 30", "1 40", "3 30", "3 40"} {
		if t := tallyOf(det, k); t.flagged != t.parse {
			fmt.Printf("note: -slower %s, baseline %s run(s): %d of the %d flagged did not name main.parseRecord (%s)\n", k[2:], k[:1], t.flagged-t.parse, t.flagged, t.metrics())
		}
	}
	var keys []string
	for k := range changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("change between identical runs (1 vs 1), min / median / max:")
	for _, k := range keys {
		lo, hi := minMax(changes[k])
		fmt.Printf("\n  %-22s %+.1f%% / %+.1f%% / %+.1f%%", k, 100*lo, 100*median(changes[k]), 100*hi)
	}
	fmt.Println()

	b.addGoal("compare: false positives, identical runs, 1 run as baseline", fmt.Sprintf("%d/%d", fp1.flagged, fp1.n), "≤ 5%", fp1.flagged*20 <= fp1.n)
	b.addGoal("compare: false positives, identical runs, 3 merged", fmt.Sprintf("%d/%d", fp3.flagged, fp3.n), "≤ 5%", fp3.flagged*20 <= fp3.n)
	for _, k := range []string{"30", "40"} {
		t1, t3 := tallyOf(det, "1 "+k), tallyOf(det, "3 "+k)
		b.addGoal("compare: -slower "+k+" detected (1 run, 3 merged)", fmt.Sprintf("%d/%d, %d/%d", t1.parse, t1.n, t3.parse, t3.n), "all",
			t1.parse == t1.n && t3.parse == t3.n)
	}
	return nil
}

func tallyOf(m map[string]*cmpTally, k string) *cmpTally {
	if m[k] == nil {
		m[k] = &cmpTally{}
	}
	return m[k]
}
