package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ulat-dev/ulat/report"
)

// The agent section's goals (issue #15): an idle agent with 50 traced
// processes and 1,000 functions takes under 0.5% of a CPU and under
// 100 MB; a scrape takes under 50 ms.
const (
	agentCPUGoal    = 0.5 // % of one CPU
	agentMemGoalKB  = 100 * 1024
	agentScrapeGoal = 50 * time.Millisecond
)

// The Accept headers of a text-format scraper and of Prometheus asking for
// native histograms.
const (
	acceptText  = "text/plain;version=0.0.4"
	acceptProto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)

// agentRest is what the agent section measured over its idle window.
type agentRest struct {
	window               time.Duration
	agentCPU, childCPU   time.Duration
	children             int
	wakeups              int64 // context switches of the agent's threads
	rss, pss             int64 // kB, the agent's, at the end of the window
	bpfRSS, bpfPSS       int64 // kB of rss and pss that are BPF maps mapped
	childPSS, childRSS   int64 // kB, its children's
	maps, progs          []bpfObject
	mapsShown            map[int]bpftoolMap // by id
	callsBefore, callsIn uint64
}

// bpftoolMap is what `bpftool map show` tells of a map.
type bpftoolMap struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// scrapeRun is one endpoint scraped n times in a row.
type scrapeRun struct {
	label    string
	path     string
	accept   string
	times    []time.Duration
	bytes    int
	cpu      time.Duration // the agent's, over all n
	contents string        // what one scrape held
}

var servingLine = regexp.MustCompile(`on http://(\S+?)"?$`)

// agentSection runs `ulat agent` on 50 idle processes of 5 executables
// (1,000 functions) and measures its CPU time, memory and BPF maps at
// rest, then how long scrapes take.
func (b *bench) agentSection(ctx context.Context) error {
	dir := filepath.Join(b.dir, "agent")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	progress("agent: building the idle target (%d functions)", b.agentFuncs)
	bins, err := b.buildIdleTarget(ctx, dir, b.agentFuncs, b.agentExes)
	if err != nil {
		return err
	}
	probesPerExe, err := b.countProbes(ctx, bins[0], []string{idleTargetFunc + "*"})
	if err != nil {
		return err
	}

	progress("agent: starting %d target processes", b.agentExes*b.agentProcs)
	var targets []*proc
	for _, bin := range bins {
		for i := range b.agentProcs {
			p, err := b.start(ctx, fmt.Sprintf("%s #%d", filepath.Base(bin), i), []string{bin}, readyOn{1, "ready"})
			if err != nil {
				return err
			}
			targets = append(targets, p)
		}
	}
	for _, p := range targets {
		if err := p.waitReady(ctx, time.Minute); err != nil {
			return err
		}
	}

	var cfg strings.Builder
	cfg.WriteString("listen: 127.0.0.1:0\ntargets:\n")
	for i, bin := range bins {
		fmt.Fprintf(&cfg, "  - name: idle%d\n    exe: %s\n    functions: [%q]\n", i, bin, idleTargetFunc+"*")
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return err
	}
	progress("agent: starting ulat agent, waiting for %d functions to be attached", b.agentExes*b.agentFuncs)
	// The agent's first log line says where it serves.
	agent, err := b.start(ctx, "ulat agent", []string{b.ulat, "agent", "--config", cfgPath}, readyOn{2, "time="})
	if err != nil {
		return err
	}
	if err := agent.waitReady(ctx, time.Minute); err != nil {
		return err
	}
	m := servingLine.FindStringSubmatch(agent.readyLn)
	if m == nil {
		return fmt.Errorf("ulat agent: first log line names no address: %s", agent.readyLn)
	}
	base := "http://" + m[1]
	client := &http.Client{Timeout: time.Minute}
	agentLog := func() string { return lastLines(agent.stderr.String(), 5) }

	wantFns := b.agentExes * b.agentFuncs
	var attachedAfter time.Duration
	if _, err := pollReport(ctx, client, base, agent, 2*time.Minute, func(r *report.JSONReport) bool {
		return len(r.Functions) >= wantFns
	}); err != nil {
		return fmt.Errorf("waiting for the agent to attach %d functions: %w: %s", wantFns, err, agentLog())
	}
	attachedAfter = time.Since(agent.started)

	// A few calls of each function, so that every series has buckets.
	progress("agent: each process calls each function %d times", len(idleTargetLoops))
	for _, p := range targets {
		if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	for _, p := range targets {
		if err := waitOutput(ctx, p, "called ", time.Minute); err != nil {
			return err
		}
	}
	wantPerFn := uint64(b.agentProcs * len(idleTargetLoops))
	exact := true
	r, err := pollReport(ctx, client, base, agent, 30*time.Second, func(r *report.JSONReport) bool {
		for _, f := range r.Functions {
			if f.Count != wantPerFn {
				return false
			}
		}
		return true
	})
	if errors.Is(err, errPollDeadline) {
		exact = false // reported below, with what was counted
	} else if err != nil {
		return err
	}

	progress("agent: measuring it at rest for %s", b.agentWindow)
	rest, err := b.measureRest(ctx, client, base, agent, r)
	if err != nil {
		return fmt.Errorf("%w: %s", err, agentLog())
	}

	progress("agent: %d scrapes of each endpoint", b.agentScrapes)
	runs := []*scrapeRun{
		{label: "/metrics, text", path: "/metrics", accept: acceptText},
		{label: "/metrics, protobuf", path: "/metrics", accept: acceptProto},
		{label: "/report.json", path: "/report.json"},
	}
	for _, s := range runs {
		if err := b.scrape(ctx, client, base, agent.cmd.Process.Pid, s); err != nil {
			return fmt.Errorf("%w: %s", err, agentLog())
		}
	}
	peak, err := statusKB(agent.cmd.Process.Pid, "status", "VmHWM", "VmRSS")
	if err != nil {
		return err
	}
	if err := agent.stop(); err != nil {
		return err
	}
	for _, p := range targets {
		if err := p.stop(); err != nil {
			return err
		}
	}

	b.printAgent(agentPrint{
		bins: bins, probesPerExe: probesPerExe, attachedAfter: attachedAfter,
		report: r, exact: exact, wantPerFn: wantPerFn,
		rest: rest, runs: runs, peakKB: peak["VmHWM"], afterKB: peak["VmRSS"],
	})
	return nil
}

// measureRest measures the agent's CPU time, wakeups, memory and BPF
// objects over -agent-window, while its targets call nothing.
func (b *bench) measureRest(ctx context.Context, client *http.Client, base string, agent *proc, before *report.JSONReport) (agentRest, error) {
	pid := agent.cmd.Process.Pid
	rest := agentRest{window: b.agentWindow, callsBefore: totalCalls(before)}
	kids := childrenOf(pid)
	rest.children = len(kids)
	// The first measurement of a second after the calls: nothing of
	// handling them is left to count.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return rest, ctx.Err()
	}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return rest, err
	}
	kid0 := map[int]time.Duration{}
	for _, k := range kids {
		kid0[k], _ = cpuTime(k)
	}
	sw0 := contextSwitches(pid)
	start := time.Now()
	select {
	case <-time.After(b.agentWindow):
	case <-agent.done:
		return rest, fmt.Errorf("ulat agent exited while measured: %v", agent.err)
	case <-ctx.Done():
		return rest, ctx.Err()
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return rest, err
	}
	rest.window = time.Since(start)
	rest.agentCPU = cpu1 - cpu0
	rest.wakeups = contextSwitches(pid) - sw0
	for _, k := range kids {
		c, err := cpuTime(k)
		if err != nil {
			return rest, fmt.Errorf("the agent's child %d exited while measured: %w", k, err)
		}
		rest.childCPU += c - kid0[k]
		if mem, err := statusKB(k, "smaps_rollup", "Rss", "Pss"); err == nil {
			rest.childPSS += mem["Pss"]
			rest.childRSS += mem["Rss"]
		}
	}
	mem, err := statusKB(pid, "smaps_rollup", "Rss", "Pss")
	if err != nil {
		return rest, err
	}
	rest.rss, rest.pss = mem["Rss"], mem["Pss"]
	if rest.bpfRSS, rest.bpfPSS, err = bpfMappedKB(pid); err != nil {
		return rest, err
	}
	if rest.maps, rest.progs, err = bpfObjects(pid); err != nil {
		return rest, err
	}
	var shown []bpftoolMap
	rest.mapsShown = map[int]bpftoolMap{}
	if err := b.bpftoolJSON(ctx, &shown, "map", "show"); err == nil {
		for _, s := range shown {
			rest.mapsShown[s.ID] = s
		}
	}
	after, err := getReport(ctx, client, base)
	if err != nil {
		return rest, err
	}
	rest.callsIn = totalCalls(after) - rest.callsBefore
	return rest, nil
}

// scrape GETs s.path b.agentScrapes times in a row, timing each from the
// request to the last byte of the answer.
func (b *bench) scrape(ctx context.Context, client *http.Client, base string, pid int, s *scrapeRun) error {
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	var body []byte
	var ctype string
	for range b.agentScrapes {
		req, err := http.NewRequestWithContext(ctx, "GET", base+s.path, nil)
		if err != nil {
			return err
		}
		if s.accept != "" {
			req.Header.Set("Accept", s.accept)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", s.path, err)
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		s.times = append(s.times, time.Since(start))
		if err != nil {
			return fmt.Errorf("GET %s: %w", s.path, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", s.path, resp.Status)
		}
		ctype = resp.Header.Get("Content-Type")
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	s.cpu, s.bytes = cpu1-cpu0, len(body)
	if s.path == "/report.json" {
		r, err := report.ReadJSON(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("/report.json: %w", err)
		}
		s.contents = fmt.Sprintf("%d functions", len(r.Functions))
		return nil
	}
	h := http.Header{}
	h.Set("Content-Type", ctype)
	format := expfmt.ResponseFormat(h)
	if want := map[string]expfmt.FormatType{acceptText: expfmt.TypeTextPlain, acceptProto: expfmt.TypeProtoDelim}[s.accept]; format.FormatType() != want {
		return fmt.Errorf("GET /metrics with Accept: %s answered %s", s.accept, ctype)
	}
	series, native := 0, 0
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("/metrics (%s): %w", ctype, err)
		}
		if mf.GetName() != "ulat_function_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			if len(m.GetHistogram().GetPositiveSpan()) > 0 {
				native++
			}
		}
	}
	s.contents = fmt.Sprintf("%d histograms", series)
	if native > 0 {
		s.contents += fmt.Sprintf(" (%d native)", native)
	}
	return nil
}

var errPollDeadline = errors.New("deadline passed")

// pollReport GETs /report.json every 200 ms until done says it holds
// what is waited for, and returns it; at the deadline it returns the last
// one with errPollDeadline.
func pollReport(ctx context.Context, client *http.Client, base string, agent *proc, deadline time.Duration, done func(*report.JSONReport) bool) (*report.JSONReport, error) {
	end := time.Now().Add(deadline)
	for {
		r, err := getReport(ctx, client, base)
		if err == nil && done(r) {
			return r, nil
		}
		if time.Now().After(end) {
			if err != nil {
				return nil, err
			}
			return r, fmt.Errorf("after %s: %w", deadline, errPollDeadline)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-agent.done:
			return nil, fmt.Errorf("ulat agent exited: %v", agent.err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func getReport(ctx context.Context, client *http.Client, base string) (*report.JSONReport, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/report.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /report.json: %s", resp.Status)
	}
	return report.ReadJSON(resp.Body)
}

func totalCalls(r *report.JSONReport) uint64 {
	var n uint64
	for _, f := range r.Functions {
		n += f.Count
	}
	return n
}

// waitOutput waits for a line of p's stdout starting with prefix.
func waitOutput(ctx context.Context, p *proc, prefix string, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(p.stdout.String(), "\n") {
			if strings.HasPrefix(line, prefix) {
				return nil
			}
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: no %q line after %s", p.name, prefix, timeout)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type agentPrint struct {
	bins          []string
	probesPerExe  int
	attachedAfter time.Duration
	report        *report.JSONReport
	exact         bool
	wantPerFn     uint64
	rest          agentRest
	runs          []*scrapeRun
	peakKB        int64 // the agent's VmHWM after the scrapes
	afterKB       int64 // its RSS after the scrapes
}

func (b *bench) printAgent(a agentPrint) {
	rest := a.rest
	fns := len(a.report.Functions)
	procs := b.agentExes * b.agentProcs
	fmt.Printf("\n== 7. The agent at rest, and its scrapes ==\n\n")
	fmt.Printf("`ulat agent`, one target per executable, each with functions [\"%s*\"]: %s\n", idleTargetFunc, count(b.agentExes, "executable"))
	fmt.Printf("(copies of one generated Go program of %d //go:noinline functions), %s of each\n", b.agentFuncs, count(b.agentProcs, "process"))
	fmt.Printf("(%d in all). Attached: %d functions (/report.json) in %s, a session each, with %d\n", procs, fns, count(len(a.bins), "file"), a.probesPerExe*len(a.bins))
	fmt.Printf("probes (an entry and each RET, ulat symbols), %.1f s after the agent started. Each process\n", a.attachedAfter.Seconds())
	loops := make([]string, len(idleTargetLoops))
	for i, n := range idleTargetLoops {
		loops[i] = fmt.Sprint(n)
	}
	fmt.Printf("then called each function %d times (loops of %s iterations): ", len(idleTargetLoops), strings.Join(loops, ", "))
	if a.exact {
		fmt.Printf("the\nagent counted exactly %d calls of each. ", a.wantPerFn)
	} else {
		fmt.Printf("the\nagent counted %d calls in all, NOT %d of each function. ", totalCalls(a.report), a.wantPerFn)
	}
	fmt.Printf("Then the processes sat blocked, %d calls in the window\n", rest.callsIn)
	fmt.Printf("of %.0f s over which the agent was measured at rest: its CPU time from /proc/PID/stat\n", rest.window.Seconds())
	fmt.Printf("(utime + stime, 10 ms ticks), memory from smaps, and its BPF maps and programs from the\n")
	fmt.Printf("memlock of its descriptors (fdinfo: kernel memory, charged to its memory cgroup too).\n")
	fmt.Printf("Its children are its probe-cost calibration processes, one per session. Then %d scrapes\n", b.agentScrapes)
	fmt.Printf("of each endpoint in a row, timed from the request to the last byte. bpftrace has nothing\n")
	fmt.Printf("like the agent (no exporter), so there is no ratio against it.\n\n")

	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / rest.window.Seconds() }
	var mapKB, progKB int64
	for _, m := range rest.maps {
		mapKB += m.memlock / 1024
	}
	for _, p := range rest.progs {
		progKB += p.memlock / 1024
	}
	tw := newTable()
	tw.row("AT REST", "MEASURED", "GOAL", "")
	tw.row("CPU, agent process", fmt.Sprintf("%.2f%% of a CPU (%d ms in %.0f s)", pct(rest.agentCPU), rest.agentCPU.Milliseconds(), rest.window.Seconds()), "", "")
	tw.row(fmt.Sprintf("CPU, its %s (calibration)", count(rest.children, "child")), fmt.Sprintf("%.2f%% (%d ms)", pct(rest.childCPU), rest.childCPU.Milliseconds()), "", "")
	total := pct(rest.agentCPU + rest.childCPU)
	tw.row("CPU, agent + children", fmt.Sprintf("%.2f%%", total), fmt.Sprintf("≤ %g%%", agentCPUGoal),
		b.addGoal(fmt.Sprintf("agent at rest (%d processes, %d functions): CPU", procs, fns), fmt.Sprintf("%.2f%% of a CPU", total), fmt.Sprintf("≤ %g%%", agentCPUGoal), total <= agentCPUGoal))
	tw.row("  agent's context switches", fmt.Sprintf("%.0f /s", float64(rest.wakeups)/rest.window.Seconds()), "", "")
	tw.row("memory, agent RSS", fmt.Sprintf("%s: %s of it BPF maps mapped", fmtMB(rest.rss), fmtMB(rest.bpfRSS)), "", "")
	ownPSS := rest.pss - rest.bpfPSS
	tw.row("  agent PSS, BPF maps left out", fmtMB(ownPSS), "", "")
	tw.row(fmt.Sprintf("memory, its %s, PSS (RSS)", count(rest.children, "child")), fmt.Sprintf("%s (%s)", fmtMB(rest.childPSS), fmtMB(rest.childRSS)), "", "")
	tw.row(fmt.Sprintf("kernel, %d BPF maps (memlock)", len(rest.maps)), fmtMB(mapKB), "", "")
	for _, g := range mapGroups(rest.maps, rest.mapsShown) {
		tw.row("  "+g.label, g.size, "", "")
	}
	tw.row(fmt.Sprintf("kernel, %d BPF programs", len(rest.progs)), fmtMB(progKB), "", "")
	atRest := ownPSS + rest.childPSS + mapKB + progKB
	tw.row("total at rest: PSS + children + BPF", fmtMB(atRest), "", "")
	growth := max(0, a.peakKB-rest.rss)
	tw.row("agent peak RSS (VmHWM, after scrapes)", fmt.Sprintf("%s: %s over at rest", fmtMB(a.peakKB), fmtMB(growth)), "", "")
	peak := atRest + growth
	tw.row("total at peak", fmtMB(peak), "≤ 100 MB",
		b.addGoal(fmt.Sprintf("agent at rest (%d processes, %d functions): memory, user + BPF, peak", procs, fns), fmtMB(peak), "≤ 100 MB", peak <= agentMemGoalKB))
	tw.flush()

	fmt.Println()
	tw = newTable()
	tw.row("SCRAPE", "SERVED", "SIZE", "MEDIAN", "MAX", "AGENT CPU EACH", "GOAL (MAX)", "")
	for _, s := range a.runs {
		xs := make([]float64, len(s.times))
		for i, t := range s.times {
			xs[i] = float64(t)
		}
		_, hi := minMax(xs)
		med, max := time.Duration(median(xs)), time.Duration(hi)
		goal := fmt.Sprintf("≤ %d ms", agentScrapeGoal.Milliseconds())
		v := b.addGoal(fmt.Sprintf("agent: GET %s (%s), max of %d", s.label, s.contents, len(s.times)), fmtMs(max), goal, max <= agentScrapeGoal)
		tw.row(s.label, s.contents, fmt.Sprintf("%.0f KB", float64(s.bytes)/1024), fmtMs(med), fmtMs(max),
			fmtMs(s.cpu/time.Duration(len(s.times))), goal, v)
	}
	tw.flush()
}

// count is n and the noun, in the plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	switch {
	case noun == "child":
		noun = "children"
	case strings.HasSuffix(noun, "s"):
		noun += "es"
	default:
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// mapGroup is the BPF maps of one name and type, summed.
type mapGroup struct {
	label string
	size  string
}

// mapGroups sums maps by bpftool's name and type of each (shown, by id),
// largest first; a map bpftool did not show is "?", with fdinfo's type
// number. The .rodata of each object is named after the object, so the
// name is taken from its last dot. Groups under 1 MB are summed in one.
func mapGroups(maps []bpfObject, shown map[int]bpftoolMap) []mapGroup {
	type key struct{ name, kind string }
	type sum struct {
		n        int
		total    int64
		min, max int64
	}
	sums := map[key]*sum{}
	for _, m := range maps {
		k := key{"?", "type " + m.kind}
		if s, ok := shown[m.id]; ok {
			k = key{s.Name, s.Type}
			if i := strings.LastIndexByte(k.name, '.'); i > 0 {
				k.name = k.name[i:]
			}
		}
		s := sums[k]
		if s == nil {
			s = &sum{min: m.memlock, max: m.memlock}
			sums[k] = s
		}
		s.n++
		s.total += m.memlock
		s.min, s.max = min(s.min, m.memlock), max(s.max, m.memlock)
	}
	keys := make([]key, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := sums[keys[i]], sums[keys[j]]
		if a.total != b.total {
			return a.total > b.total
		}
		return keys[i].name < keys[j].name
	})
	mb := func(bytes int64) string { return fmt.Sprintf("%.1f MB", float64(bytes)/(1<<20)) }
	var out []mapGroup
	var small sum
	for _, k := range keys {
		s := sums[k]
		if s.total < 1<<20 {
			small.n++
			small.total += s.total
			continue
		}
		each := mb(s.min) + " each"
		if s.min != s.max {
			each = mb(s.min) + " to " + mb(s.max)
		}
		out = append(out, mapGroup{fmt.Sprintf("%d × %s (%s)", s.n, k.name, k.kind), fmt.Sprintf("%s (%s)", fmtMB(s.total/1024), each)})
	}
	if small.n > 0 {
		out = append(out, mapGroup{fmt.Sprintf("%d other kinds", small.n), mb(small.total)})
	}
	return out
}
