// Command bench is ulat's benchmark harness (`make bench`). It measures, in
// one run and on targets it builds itself:
//
//  1. the cost per traced call of ulat in both aggregation modes
//     (--aggregate kernel and user), of bpftrace and of bare uprobes, as
//     seen by a target timing a tight loop of calls of a function of known
//     cost (C and Go; an empty function and a ~1 µs busy loop);
//  2. the run time of ulat's BPF programs per call in both modes, and of
//     bpftrace's, from the kernel's bpf_stats;
//  3. how long ulat takes to attach to and detach from 1,000 and 10,000
//     functions, and to a typical Go binary, and its peak memory;
//  4. the highest call rate uprobes deliver (a C target calling a cheap
//     function from one thread per CPU for a fixed time), bare, under ulat
//     in both modes and under empty bpftrace probes, whether ulat counts
//     exactly the target's own number of calls and drops none, and that
//     with a 4 KiB ring buffer every call is counted or counted as dropped;
//  5. ulat compare's false-positive rate over identical `ulat run`s of the
//     demo's batch job (every pair, and against three runs merged), and how
//     often it detects a function made 30% and 40% slower, with compare's
//     default thresholds and with others (-compare-also);
//  6. ulat compare's false regressions on reruns of one build whose traced
//     function has a single-stepped entry probe (a C function whose first
//     instruction is a test), each run compared with the next: the probes'
//     calibrated cost varies from run to run, and compare must not take
//     that for a change of the code (an untraced twin of the function,
//     called in turn with it, tells the machine's own changes apart);
//  7. what `ulat agent` costs at rest: its CPU time, memory and BPF maps
//     while it traces 1,000 functions of 50 processes that call nothing
//     (5 executables of 200 functions, 10 processes each), and how long a
//     scrape of /metrics (text and protobuf) and of /report.json takes;
//
// and prints them as tables, with the project's goals beside the figures.
// It is informational: a missed goal does not make it fail. It needs root.
// Run it from the repository root after `make build`:
//
//	go run ./bench [-calls 50000] [-reps 3] [-clock cpu] [-only cost,bpf,scale,rate,compare,stepped,agent]
//	               [-rate-time 2s] [-compare-runs 10] [-compare-slower-runs 5]
//	               [-compare-records 2000] [-compare-aggregate auto]
//	               [-compare-also p50=+10%,p99=+20%]
//	               [-stepped-runs 46] [-stepped-calls 10000] [-stepped-body 30us]
//	               [-stepped-cpu 0] [-agent-exes 5] [-agent-procs 10]
//	               [-agent-funcs 200] [-agent-window 1m] [-agent-settle 75s]
//	               [-agent-scrapes 20] [-agent-configs labels,kernel]
//	               [-v] [-keep]
//
// make bench passes BENCH_FLAGS on: make bench BENCH_FLAGS='-only stepped'.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type bench struct {
	ulat    string // path of bin/ulat
	demo    string // path of bin/ulat-demo
	compile string // the large Go binary of the scale test
	goCmd   string
	calls   int
	reps    int
	clock   string // cost: "cpu" or "wall"

	rateTime time.Duration // section 4: how long the rate target calls

	cmpRuns      int // section 5: identical baseline runs
	cmpSlow      int // runs with each -slower setting
	cmpRecords   int // ulat-demo work -n
	cmpAggregate string
	cmpAlso      string // thresholds every comparison is also judged by

	stepRuns  int           // section 6: reruns, each compared with the next
	stepCalls int           // calls of spin per run
	stepBody  time.Duration // CPU time of one spin call
	stepCPU   int           // the CPU the target is bound to; -1 none

	agentExes    int           // section 7: executables the agent traces
	agentProcs   int           // processes of each
	agentFuncs   int           // functions of each executable
	agentWindow  time.Duration // how long the agent is measured at rest
	agentSettle  time.Duration // from its start to the window's, at the least
	agentScrapes int           // scrapes of each endpoint
	agentConfigs string        // which configs: labels, kernel

	verbose bool
	dir     string // temporary directory for targets and copies

	mu       sync.Mutex
	procs    []*proc
	restores []func()

	goals []goal
}

// goal is one of the project's stated goals with what was measured.
type goal struct {
	what     string
	measured string
	target   string
	pass     bool
}

func (b *bench) addGoal(what, measured, target string, pass bool) string {
	b.goals = append(b.goals, goal{what, measured, target, pass})
	return verdict(pass)
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "MISS"
}

func main() {
	os.Exit(run())
}

func run() int {
	b := &bench{}
	var only string
	var keep bool
	flag.StringVar(&b.ulat, "ulat", "bin/ulat", "the ulat binary to measure")
	flag.StringVar(&b.demo, "demo", "bin/ulat-demo", "the demo binary (a typical Go program) for the time-to-attach test")
	flag.StringVar(&b.compile, "big", "", "a large Go binary for the 1,000 and 10,000 function tests, traced through a copy (default: the Go distribution's compile)")
	flag.IntVar(&b.calls, "calls", 50000, "calls per target run (one traced run should take about a second)")
	flag.IntVar(&b.reps, "reps", 3, "runs per measurement; the median is shown")
	flag.StringVar(&b.clock, "clock", "cpu", "cost: time the targets' loops by their thread's CPU time (cpu: the uprobes' work is charged to it, waiting for a CPU is not) or by wall time (wall)")
	flag.StringVar(&only, "only", "cost,bpf,scale,rate,compare,stepped,agent", "sections to run: cost, bpf, scale, rate, compare, stepped, agent")
	flag.DurationVar(&b.rateTime, "rate-time", 2*time.Second, "rate: how long the target calls in each run")
	flag.IntVar(&b.cmpRuns, "compare-runs", 10, "compare: identical baseline runs (every pair is compared)")
	flag.IntVar(&b.cmpSlow, "compare-slower-runs", 5, "compare: runs with -slower 30, and with -slower 40")
	flag.IntVar(&b.cmpRecords, "compare-records", 2000, "compare: records per run (ulat-demo work -n)")
	flag.StringVar(&b.cmpAggregate, "compare-aggregate", "auto", "compare: ulat run --aggregate")
	flag.StringVar(&b.cmpAlso, "compare-also", "p50=+10%,p99=+20%", "compare: also judge every comparison by these thresholds, comma-separated (empty: only by compare's defaults)")
	flag.IntVar(&b.stepRuns, "stepped-runs", 46, "stepped: reruns of the single-stepped target, each compared with the next")
	flag.IntVar(&b.stepCalls, "stepped-calls", 10000, "stepped: calls of spin (and of its twin) per run")
	flag.DurationVar(&b.stepBody, "stepped-body", 30*time.Microsecond, "stepped: CPU time of one spin call")
	flag.IntVar(&b.stepCPU, "stepped-cpu", 0, "stepped: bind the target (not ulat) to this CPU, so that the machine's own speed is the same in every run; -1: leave it unbound")
	flag.IntVar(&b.agentExes, "agent-exes", 5, "agent: executables traced (copies of one generated program)")
	flag.IntVar(&b.agentProcs, "agent-procs", 10, "agent: processes of each executable")
	flag.IntVar(&b.agentFuncs, "agent-funcs", 200, "agent: functions of each executable, all traced")
	flag.DurationVar(&b.agentWindow, "agent-window", time.Minute, "agent: how long the agent is measured at rest (a multiple of 30 s holds as many calibration rounds each time)")
	flag.DurationVar(&b.agentSettle, "agent-settle", 75*time.Second, "agent: the least time from its start to the window's (its calibration measures every 2 s for a minute, then every minute)")
	flag.IntVar(&b.agentScrapes, "agent-scrapes", 20, "agent: scrapes of each endpoint")
	flag.StringVar(&b.agentConfigs, "agent-configs", "labels,kernel", "agent: the configs measured, one after the other: labels (container_labels: true, the default), kernel (container_labels: false)")
	flag.BoolVar(&b.verbose, "v", false, "show every command run")
	flag.BoolVar(&keep, "keep", false, "keep the temporary directory with the targets")
	flag.Parse()
	if b.calls < 1 || b.reps < 1 || b.rateTime < time.Millisecond || b.cmpRuns < 4 || b.cmpSlow < 1 || b.cmpRecords < 1 || b.stepRuns < 2 || b.stepCalls < 1 || b.stepBody < time.Microsecond || b.stepCPU < -1 || b.stepCPU >= runtime.NumCPU() ||
		b.agentExes < 1 || b.agentProcs < 1 || b.agentFuncs < 1 || b.agentWindow < time.Second || b.agentSettle < 0 || b.agentScrapes < 1 || (b.clock != "cpu" && b.clock != "wall") || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: must run as root: it loads BPF programs (ulat, bpftrace) and sets kernel.bpf_stats_enabled; try: sudo make bench")
		return 1
	}
	if err := b.checkTools(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		b.cleanup()
		for _, r := range b.restores {
			r()
		}
	}()

	dir, err := os.MkdirTemp("", "ulat-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	b.dir = dir
	if keep {
		fmt.Fprintf(os.Stderr, "bench: keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	err = b.runAll(ctx, only)
	b.cleanup()
	if n, lerr := b.leftoverProbes(context.Background(), dir); lerr == nil && n > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d probes are still attached to files in %s\n", n, dir)
		if err == nil {
			err = errors.New("probes left attached")
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted; every process it started has exited")
			return 130
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func (b *bench) checkTools() error {
	if _, err := os.Stat("bench/targets/c/target.c"); err != nil {
		return fmt.Errorf("run from the repository root (make bench): %w", err)
	}
	for _, p := range []*string{&b.ulat, &b.demo} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%s: %w (run make build, and make bin/ulat-demo)", *p, err)
		}
		*p = abs
	}
	var err error
	if b.goCmd, err = exec.LookPath("go"); err != nil {
		return errors.New("go not found in PATH")
	}
	if b.compile == "" {
		out, err := exec.Command(b.goCmd, "env", "GOROOT", "GOHOSTOS", "GOHOSTARCH").Output()
		f := strings.Fields(string(out))
		if err != nil || len(f) != 3 {
			return fmt.Errorf("go env GOROOT: %v", err)
		}
		b.compile = filepath.Join(f[0], "pkg", "tool", f[1]+"_"+f[2], "compile")
	}
	if _, err := os.Stat(b.compile); err != nil {
		return fmt.Errorf("large Go binary for the scale test: %w (give one with -big)", err)
	}
	for _, tool := range []string{"gcc", "bpftrace", "bpftool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found in PATH: run make deps", tool)
		}
	}
	return nil
}

func (b *bench) runAll(ctx context.Context, only string) error {
	sections := map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		switch s = strings.TrimSpace(s); s {
		case "cost", "bpf", "scale", "rate", "compare", "stepped", "agent":
			sections[s] = true
		case "":
		default:
			return fmt.Errorf("-only: unknown section %q (cost, bpf, scale, rate, compare, stepped, agent)", s)
		}
	}
	start := time.Now()
	b.header(ctx)

	progress("building the targets")
	c, g, err := b.buildTargets(ctx, b.dir)
	if err != nil {
		return err
	}
	if sections["cost"] {
		if err := b.costSection(ctx, c, g); err != nil {
			return err
		}
	}
	if sections["bpf"] {
		if err := b.bpfSection(ctx, c, g); err != nil {
			return err
		}
	}
	if sections["scale"] {
		if err := b.scaleSection(ctx); err != nil {
			return err
		}
	}
	if sections["rate"] {
		if err := b.rateSection(ctx); err != nil {
			return err
		}
	}
	if sections["compare"] {
		if err := b.compareSection(ctx); err != nil {
			return err
		}
	}
	if sections["stepped"] {
		if err := b.steppedSection(ctx, c); err != nil {
			return err
		}
	}
	if sections["agent"] {
		if err := b.agentSection(ctx); err != nil {
			return err
		}
	}
	pass, miss := 0, 0
	for _, gl := range b.goals {
		if gl.pass {
			pass++
		} else {
			miss++
		}
	}
	fmt.Printf("\n== Summary ==\n\n")
	tw := newTable()
	tw.row("GOAL", "MEASURED", "TARGET", "")
	for _, gl := range b.goals {
		tw.row(gl.what, gl.measured, gl.target, verdict(gl.pass))
	}
	tw.flush()
	fmt.Printf("\n%d PASS, %d MISS (informational: make bench does not fail on a MISS). Took %s.\n",
		pass, miss, time.Since(start).Round(time.Second))
	return nil
}

// header says what the figures were measured on.
func (b *bench) header(ctx context.Context) {
	fmt.Println("ulat benchmark (make bench)")
	fmt.Println()
	kernel := readTrim("/proc/sys/kernel/osrelease")
	cpu, virt := cpuInfo()
	fmt.Printf("host:     Linux %s, %s, %d CPUs%s\n", kernel, cpu, runtime.NumCPU(), virt)
	v, _ := b.output(ctx, []string{b.ulat, "version"})
	fmt.Printf("ulat:     %s\n", strings.Join(strings.Fields(firstLine(v)), " "))
	bt, _ := b.output(ctx, []string{"bpftrace", "--version"})
	gcc, _ := b.output(ctx, []string{"gcc", "-dumpfullversion"})
	fmt.Printf("compared: %s; targets built with gcc %s -O2 and %s\n", strings.TrimSpace(bt), strings.TrimSpace(gcc), runtime.Version())
	load := strings.Fields(readTrim("/proc/loadavg"))
	if len(load) < 3 {
		load = []string{"?", "?", "?"}
	}
	fmt.Printf("date:     %s, load average %s\n", time.Now().Format("2006-01-02 15:04 MST"), strings.Join(load[:3], " "))
	if l, err := strconv.ParseFloat(load[0], 64); err == nil && l > 1 {
		fmt.Printf("warning:  the machine is busy (load %.2f): figures will be noisy; run again when it is idle\n", l)
	}
}

func cpuInfo() (model, virt string) {
	data, _ := os.ReadFile("/proc/cpuinfo")
	model = "unknown CPU"
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "model name" && model == "unknown CPU" {
			model = v
		}
		if k == "flags" && strings.Contains(" "+v+" ", " hypervisor ") {
			virt = ", virtual machine"
		}
	}
	return model, virt
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// progress reports what is running, on stderr so that stdout is the report.
func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
}
