package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
	after                time.Duration // from the agent's start to the window's
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
	bytes    int           // of the last scrape's body
	gzipped  int           // bytes of it sent
	cpu      time.Duration // the agent's, over all n
	contents string        // what one scrape held
}

// servingLine is the agent's log line that says where it serves.
var servingLine = regexp.MustCompile(`msg="serving /metrics.* on http://(\S+?)"`)

// agentConfig is one way of configuring the agent the section measures.
type agentConfig struct {
	key   string // for -agent-configs
	yaml  string // the config's lines besides listen and targets
	label string
}

var agentConfigs = []agentConfig{
	{"labels", "container_labels: true", "container_labels: true (the default): every call streamed to the agent, counted per container"},
	{"kernel", "container_labels: false", "container_labels: false: calls counted in the kernel, per function"},
}

// agentSection runs `ulat agent` on 50 idle processes of 5 executables
// (1,000 functions) in each -agent-configs config and measures its CPU
// time, memory and BPF maps at rest, then how long scrapes take.
func (b *bench) agentSection(ctx context.Context) error {
	var configs []agentConfig
	for _, k := range strings.Split(b.agentConfigs, ",") {
		i := slices.IndexFunc(agentConfigs, func(c agentConfig) bool { return c.key == strings.TrimSpace(k) })
		if i < 0 {
			return fmt.Errorf("-agent-configs: unknown config %q (labels, kernel)", k)
		}
		configs = append(configs, agentConfigs[i])
	}
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
	var results []agentPrint
	for i, c := range configs {
		r, err := b.agentRun(ctx, dir, c, bins, targets, i+1)
		if err != nil {
			return fmt.Errorf("agent, %s: %w", c.yaml, err)
		}
		r.probes = probesPerExe * len(bins)
		results = append(results, r)
	}
	for _, p := range targets {
		if err := p.stop(); err != nil {
			return err
		}
	}
	b.printAgent(results)
	return nil
}

// agentRun starts the agent with config c on the targets, waits for it to
// attach, has every target call each function (for the round-th time),
// measures the agent at rest, then times scrapes, and stops it.
func (b *bench) agentRun(ctx context.Context, dir string, c agentConfig, bins []string, targets []*proc, round int) (agentPrint, error) {
	res := agentPrint{config: c}
	var cfg strings.Builder
	cfg.WriteString("listen: 127.0.0.1:0\n" + c.yaml + "\ntargets:\n")
	for i, bin := range bins {
		fmt.Fprintf(&cfg, "  - name: idle%d\n    exe: %s\n    functions: [%q]\n", i, bin, idleTargetFunc+"*")
	}
	cfgPath := filepath.Join(dir, "agent-"+c.key+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return res, err
	}
	wantFns := b.agentExes * b.agentFuncs
	progress("agent (%s): starting ulat agent, waiting for %d functions to be attached", c.yaml, wantFns)
	agent, err := b.start(ctx, "ulat agent", []string{b.ulat, "agent", "--config", cfgPath}, readyOn{2, "time="})
	if err != nil {
		return res, err
	}
	defer agent.stop()
	m, err := waitLine(ctx, agent, &agent.stderr, servingLine, 1, time.Minute)
	if err != nil {
		return res, err
	}
	base := "http://" + m[1]
	client := &http.Client{Timeout: time.Minute}
	agentLog := func() string { return lastLines(agent.stderr.String(), 5) }

	// With container labels, /report.json lists only the functions called
	// since: the log tells what each session attached.
	if err := waitAttached(ctx, agent, bins, wantFns, 2*time.Minute); err != nil {
		return res, err
	}
	res.attachedAfter = time.Since(agent.started)

	// A few calls of each function, so that every series has buckets.
	progress("agent (%s): each process calls each function %d times", c.yaml, len(idleTargetLoops))
	for _, p := range targets {
		if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return res, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	for _, p := range targets {
		if _, err := waitLine(ctx, p, &p.stdout, calledLine, round, time.Minute); err != nil {
			return res, err
		}
	}
	res.wantPerFn = uint64(b.agentProcs * len(idleTargetLoops))
	res.exact = true
	res.report, err = pollReport(ctx, client, base, agent, 30*time.Second, func(r *report.JSONReport) bool {
		if len(r.Functions) != wantFns {
			return false
		}
		for _, f := range r.Functions {
			if f.Count != res.wantPerFn {
				return false
			}
		}
		return true
	})
	if errors.Is(err, errPollDeadline) {
		res.exact = false // printed, with what was counted
	} else if err != nil {
		return res, err
	}

	if res.rest, err = b.measureRest(ctx, client, base, agent, res.report); err != nil {
		return res, fmt.Errorf("%w: %s", err, agentLog())
	}

	progress("agent (%s): %d scrapes of each endpoint", c.yaml, b.agentScrapes)
	res.runs = []*scrapeRun{
		{label: "/metrics, text", path: "/metrics", accept: acceptText},
		{label: "/metrics, protobuf", path: "/metrics", accept: acceptProto},
		{label: "/report.json", path: "/report.json"},
	}
	for _, s := range res.runs {
		if err := b.scrape(ctx, client, base, agent.cmd.Process.Pid, s); err != nil {
			return res, fmt.Errorf("%w: %s", err, agentLog())
		}
	}
	peak, err := statusKB(agent.cmd.Process.Pid, "status", "VmHWM", "VmRSS")
	if err != nil {
		return res, err
	}
	res.peakKB, res.afterKB = peak["VmHWM"], peak["VmRSS"]
	return res, agent.stop()
}

// measureRest measures the agent's CPU time, wakeups, memory and BPF
// objects over -agent-window, while its targets call nothing.
func (b *bench) measureRest(ctx context.Context, client *http.Client, base string, agent *proc, before *report.JSONReport) (agentRest, error) {
	pid := agent.cmd.Process.Pid
	rest := agentRest{window: b.agentWindow, callsBefore: totalCalls(before)}
	kids := childrenOf(pid)
	rest.children = len(kids)
	// The window starts a second after the calls at the earliest, so
	// that nothing of handling them is left to count, and -agent-settle
	// after the agent started: its probe-cost calibration measures every
	// 2 s for its first minute, and every minute from then on, for as long
	// as the agent runs.
	wait := max(time.Second, b.agentSettle-time.Since(agent.started))
	progress("agent: measuring it at rest for %s, from %s after it started", b.agentWindow, (time.Since(agent.started) + wait).Round(time.Second))
	select {
	case <-time.After(wait):
	case <-agent.done:
		return rest, fmt.Errorf("ulat agent exited: %v", agent.err)
	case <-ctx.Done():
		return rest, ctx.Err()
	}
	rest.after = time.Since(agent.started)
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
// request to the last byte of the answer as sent (gzipped).
func (b *bench) scrape(ctx context.Context, client *http.Client, base string, pid int, s *scrapeRun) error {
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	var ctype, encoding string
	for i := range b.agentScrapes {
		req, err := http.NewRequestWithContext(ctx, "GET", base+s.path, nil)
		if err != nil {
			return err
		}
		if s.accept != "" {
			req.Header.Set("Accept", s.accept)
		}
		// Read as a scraper reads, into a buffer it reuses (the last
		// scrape's body is kept, to check), compressed as it comes: the
		// bench's own decompression of 4 MB bodies, and the garbage
		// collections that made it stall for up to 190 ms on this 2-CPU
		// machine where the agent runs too, are not timed.
		req.Header.Set("Accept-Encoding", "gzip")
		body.Reset()
		var sink io.Writer = io.Discard
		if i == b.agentScrapes-1 {
			sink = &body
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", s.path, err)
		}
		_, err = io.Copy(sink, resp.Body)
		resp.Body.Close()
		s.times = append(s.times, time.Since(start))
		if err != nil {
			return fmt.Errorf("GET %s: %w", s.path, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", s.path, resp.Status)
		}
		ctype, encoding = resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding")
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	s.cpu, s.gzipped = cpu1-cpu0, body.Len()
	if encoding != "gzip" {
		return fmt.Errorf("GET %s: Content-Encoding %q, want gzip", s.path, encoding)
	}
	zr, err := gzip.NewReader(&body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", s.path, err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("GET %s: %w", s.path, err)
	}
	s.bytes = len(plain)
	body = *bytes.NewBuffer(plain)
	if s.path == "/report.json" {
		r, err := report.ReadJSON(bytes.NewReader(body.Bytes()))
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
	dec := expfmt.NewDecoder(bytes.NewReader(body.Bytes()), format)
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

// timingLine is the agent's log line that says a session has attached:
// submatches 1 the number of functions, 2 the file.
var timingLine = regexp.MustCompile(`msg="target \S+: timing (\d+) functions in (\S+)"`)

// waitAttached waits for the agent to log that it times want functions in
// all of bins together.
func waitAttached(ctx context.Context, agent *proc, bins []string, want int, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for {
		attached := map[string]int{}
		for _, line := range strings.Split(agent.stderr.String(), "\n") {
			if m := timingLine.FindStringSubmatch(line); m != nil {
				attached[m[2]], _ = strconv.Atoi(m[1])
			}
		}
		sum := 0
		for _, bin := range bins {
			sum += attached[bin]
		}
		if sum == want {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("ulat agent attached %d of %d functions in %s: %s", sum, want, timeout, lastLines(agent.stderr.String(), 5))
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-agent.done:
			return fmt.Errorf("ulat agent exited: %v: %s", agent.err, lastLines(agent.stderr.String(), 5))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var calledLine = regexp.MustCompile(`^called \d+`)

// waitLine waits for the n-th line of out, p's stdout or stderr, that re
// matches, and returns its submatches.
func waitLine(ctx context.Context, p *proc, out *lineWriter, re *regexp.Regexp, n int, timeout time.Duration) ([]string, error) {
	end := time.Now().Add(timeout)
	for {
		seen := 0
		for _, line := range strings.Split(out.String(), "\n") {
			if m := re.FindStringSubmatch(line); m != nil {
				if seen++; seen == n {
					return m, nil
				}
			}
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("%s: %d of %d lines matching %s after %s: %s", p.name, seen, n, re, timeout, lastLines(p.stderr.String(), 5))
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-p.done:
			return nil, fmt.Errorf("%s exited: %v: %s", p.name, p.err, lastLines(p.stderr.String(), 5))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// agentPrint is what one run of the agent measured.
type agentPrint struct {
	config        agentConfig
	probes        int
	attachedAfter time.Duration
	report        *report.JSONReport
	exact         bool
	wantPerFn     uint64
	rest          agentRest
	runs          []*scrapeRun
	peakKB        int64 // the agent's VmHWM after the scrapes
	afterKB       int64 // its RSS after the scrapes
}

func (b *bench) printAgent(results []agentPrint) {
	fns := b.agentExes * b.agentFuncs // attached, as waitAttached found
	procs := b.agentExes * b.agentProcs
	loops := make([]string, len(idleTargetLoops))
	for i, n := range idleTargetLoops {
		loops[i] = fmt.Sprint(n)
	}
	fmt.Printf("\n== 7. The agent at rest, and its scrapes ==\n\n")
	fmt.Printf("`ulat agent`, one target per executable, each with functions [\"%s*\"]: %s\n", idleTargetFunc, count(b.agentExes, "executable"))
	fmt.Printf("(copies of one generated Go program of %d //go:noinline functions), %s of each\n", b.agentFuncs, count(b.agentProcs, "process"))
	fmt.Printf("(%d in all): %d functions, %d probes (an entry and each RET, as ulat symbols lists them).\n", procs, fns, results[0].probes)
	fmt.Printf("Once the agent has attached (its log says so), each process calls each function %d times\n", len(idleTargetLoops))
	fmt.Printf("(loops of %s iterations), then sits blocked. The agent is measured at rest\n", strings.Join(loops, ", "))
	fmt.Printf("for %.0f s, from %.0f s after it started at the earliest (its child, the probe-cost calibration\n", b.agentWindow.Seconds(), b.agentSettle.Seconds())
	fmt.Printf("process, measures every 2 s in the agent's first minute, then every minute): its CPU time\n")
	fmt.Printf("from /proc/PID/stat (utime + stime, 10 ms ticks), memory from smaps, its BPF maps and\n")
	fmt.Printf("programs from the memlock of its descriptors (fdinfo: kernel memory, charged to its memory\n")
	fmt.Printf("cgroup too). Then %d scrapes of each endpoint in a row, gzipped as Prometheus asks, timed\n", b.agentScrapes)
	fmt.Printf("from the request to the last byte, not decompressed (this client shares the CPUs). bpftrace\n")
	fmt.Printf("has nothing like the agent (no exporter), so there is no ratio against it.\n")
	for _, r := range results {
		b.printAgentRun(r, fns, procs)
	}
}

func (b *bench) printAgentRun(a agentPrint, fns, procs int) {
	rest := a.rest
	fmt.Printf("\n%s\n", a.config.label)
	fmt.Printf("attached %.1f s after the agent started; ", a.attachedAfter.Seconds())
	if a.exact {
		fmt.Printf("counted exactly %d calls of each function;\n", a.wantPerFn)
	} else {
		fmt.Printf("counted %d calls of %d functions, NOT %d of each;\n", totalCalls(a.report), len(a.report.Functions), a.wantPerFn)
	}
	fmt.Printf("%d calls in the %.0f s window, from %.0f s after the agent started\n\n", rest.callsIn, rest.window.Seconds(), rest.after.Seconds())
	what := func(s string) string { return fmt.Sprintf("agent, %s, at rest: %s", a.config.yaml, s) }

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
		b.addGoal(what(fmt.Sprintf("CPU (%d processes, %d functions)", procs, fns)), fmt.Sprintf("%.2f%% of a CPU", total), fmt.Sprintf("≤ %g%%", agentCPUGoal), total <= agentCPUGoal))
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
		b.addGoal(what("memory, user + BPF, peak"), fmtMB(peak), "≤ 100 MB", peak <= agentMemGoalKB))
	tw.flush()

	fmt.Println()
	tw = newTable()
	tw.row("SCRAPE", "SERVED", "SIZE (GZIPPED)", "FIRST", "MEDIAN", "MAX", "AGENT CPU EACH", "GOAL (MAX)", "")
	for _, s := range a.runs {
		xs := make([]float64, len(s.times))
		for i, t := range s.times {
			xs[i] = float64(t)
		}
		_, hi := minMax(xs)
		med, max := time.Duration(median(xs)), time.Duration(hi)
		goal := fmt.Sprintf("≤ %d ms", agentScrapeGoal.Milliseconds())
		v := b.addGoal(fmt.Sprintf("agent, %s: GET %s, max of %d", a.config.yaml, s.label, len(s.times)), fmtMs(max), goal, max <= agentScrapeGoal)
		tw.row(s.label, s.contents, fmt.Sprintf("%.0f KB (%.0f KB)", float64(s.bytes)/1024, float64(s.gzipped)/1024), fmtMs(s.times[0]), fmtMs(med), fmtMs(max),
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
