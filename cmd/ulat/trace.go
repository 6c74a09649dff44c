package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/report"
	"github.com/ulat-dev/ulat/symbols"
)

func traceCommand() *cli.Command {
	return &cli.Command{
		Name:      "trace",
		Usage:     "time functions of BINARY, of libraries, or of --pid's executable",
		ArgsUsage: "BINARY PATTERN... | --pid PID PATTERN... | LIB:PATTERN...",
		Description: `PATTERN is a function name or a glob ('main.*', 'main.(*Server).*').
LIB:PATTERN looks in a shared library, named as the loader does (libc,
libz.so.1; with --pid, the one that process has mapped) or by path
(/lib/x86_64-linux-gnu/libz.so.1:deflate). With --pid and no BINARY, patterns
without LIB: are looked up in the process's own executable.
Flags go before BINARY. Ends on Ctrl-C or SIGTERM, after --duration, or when the
--pid process exits; then prints the report.`,
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "pid", Aliases: []string{"p"}, Usage: "trace only this process (tracing ends when it exits)"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long (e.g. 10s, 1m)"},
			&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Usage: "also print a report of each interval (e.g. 1s)"},
		}, tracingFlags("stdout")...),
		Action: runTrace,
	}
}

// tracingFlags are the flags of every command that traces; reportsTo names
// where the report goes without --output.
func tracingFlags(reportsTo string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "report format: table or json"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the report to this file instead of " + reportsTo},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show libbpf's log"},
		&cli.BoolFlag{Name: "raw", Usage: "report durations as measured, without subtracting the probes' own cost"},
		&cli.IntFlag{Name: "buffer", Value: 4096, Usage: "ring buffer size in KiB (a power of two); raise it if the report says events were dropped"},
		&cli.StringFlag{Name: "aggregate", Value: "auto", EnvVars: []string{"ULAT_AGGREGATE"}, Usage: "where calls are counted: kernel (per-CPU histograms in the kernel, nothing to drop), user (each call streamed to ulat through the ring buffer), or auto (kernel unless the histograms would take more than 64 MiB of kernel memory); both put percentiles within 0.55% of the exact ones"},
		&cli.StringFlag{Name: "attach", Value: "auto", EnvVars: []string{"ULAT_ATTACH"}, Usage: "how probes are attached: auto, multi (one uprobe_multi link per file, Linux >= 6.6) or perf (one perf-event link per probe, for older kernels)"},
	}
}

type traceConfig struct {
	pid      int
	duration time.Duration
	interval time.Duration
	format   string
	output   string
	verbose  bool
	attach   probes.AttachMode
	raw      bool
	buffer   int // bytes
	// aggregate is auto, kernel or user: see tracingFlags.
	aggregate string
	binary    string
	patterns  []string
}

// parseTracingFlags reads tracingFlags into cfg.
func parseTracingFlags(c *cli.Context, cfg *traceConfig) error {
	cfg.format = c.String("format")
	cfg.output = c.String("output")
	cfg.verbose = c.Bool("verbose")
	cfg.attach = probes.AttachMode(c.String("attach"))
	cfg.raw = c.Bool("raw")
	cfg.buffer = c.Int("buffer") * 1024
	cfg.aggregate = c.String("aggregate")
	switch cfg.aggregate {
	case "auto", "kernel", "user":
	default:
		return usagef("--aggregate %q: must be auto, kernel or user", cfg.aggregate)
	}
	if kib := c.Int("buffer"); kib < 4 || kib > 1<<20 || kib&(kib-1) != 0 {
		return usagef("--buffer %d: must be a power of two from 4 to 1048576 (KiB)", kib)
	}
	switch cfg.attach {
	case probes.AttachAuto, probes.AttachMulti, probes.AttachPerf:
	default:
		return usagef("--attach %q: must be auto, multi or perf", cfg.attach)
	}
	if cfg.format != "table" && cfg.format != "json" {
		return usagef("--format %q: must be table or json", cfg.format)
	}
	return nil
}

func parseTraceArgs(c *cli.Context) (traceConfig, error) {
	cfg := traceConfig{
		pid:      c.Int("pid"),
		duration: c.Duration("duration"),
		interval: c.Duration("interval"),
	}
	if err := parseTracingFlags(c, &cfg); err != nil {
		return cfg, err
	}
	args := c.Args().Slice()
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return cfg, usagef("flag %s must come before BINARY: ulat trace [flags] BINARY PATTERN...", a)
		}
	}
	if cfg.pid < 0 {
		return cfg, usagef("--pid %d: must be a process id", cfg.pid)
	}
	allLib := len(args) > 0
	for _, a := range args {
		if _, _, ok := symbols.SplitLibrary(a); !ok {
			allLib = false
		}
	}
	switch {
	case allLib:
		// ulat trace [--pid P] LIB:FUNC...
		cfg.patterns = args
	case cfg.pid > 0:
		// ulat trace --pid P [BINARY] PATTERN...: the first argument is
		// BINARY when it names a file and patterns follow.
		if len(args) >= 1 && isFileArg(args[0], cfg.pid) {
			if len(args) < 2 {
				return cfg, usagef("trace needs at least one PATTERN after %s: ulat trace --pid PID [BINARY] PATTERN...", args[0])
			}
			cfg.binary, cfg.patterns = args[0], args[1:]
		} else if len(args) == 0 {
			return cfg, usagef("trace needs at least one PATTERN: ulat trace --pid PID [BINARY] PATTERN...")
		} else {
			cfg.patterns = args
		}
	default:
		if len(args) < 2 {
			return cfg, usagef("trace needs BINARY and at least one PATTERN: ulat trace [flags] BINARY PATTERN... (or LIB:PATTERN..., or --pid PID PATTERN...)")
		}
		cfg.binary, cfg.patterns = args[0], args[1:]
	}
	if cfg.duration < 0 || cfg.interval < 0 {
		return cfg, usagef("--duration and --interval must be positive")
	}
	return cfg, nil
}

// isInputError tells errors about the user's input (exit status 2) from
// failures while tracing (exit status 1).
func isInputError(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, symbols.ErrNotELF) ||
		errors.Is(err, symbols.ErrUnsupported) || errors.Is(err, symbols.ErrNoSymbols) ||
		errors.Is(err, symbols.ErrNoMatch) || errors.Is(err, errNoProcess) ||
		errors.Is(err, symbols.ErrNoLibrary) || errors.Is(err, symbols.ErrNotMapped) ||
		errors.Is(err, symbols.ErrNoProcess) || errors.Is(err, symbols.ErrProcess)
}

var errNoProcess = errors.New("no such process")

func runTrace(c *cli.Context) error {
	cfg, err := parseTraceArgs(c)
	if err != nil {
		return err
	}
	var exited <-chan struct{}
	if cfg.pid > 0 {
		if exited, err = watchProcess(cfg.pid); err != nil {
			return err
		}
	}
	p, err := prepare(cfg, cfg.binary, cfg.pid, cfg.patterns)
	if err != nil {
		return err
	}
	defer p.close()
	out, closeOut, err := openOutput(cfg.output, c.App.Writer)
	if err != nil {
		return err
	}
	defer closeOut()

	tracer, err := p.open(cfg, probes.Options{Pid: cfg.pid})
	if err != nil {
		return err
	}
	defer tracer.Close()
	select {
	case <-exited:
		return fmt.Errorf("--pid %d exited while ulat was attaching: nothing was traced", cfg.pid)
	default:
	}

	// Stop on the first of: a signal, --duration, the --pid process exiting.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var deadline <-chan time.Time
	if cfg.duration > 0 {
		deadline = time.After(cfg.duration)
	}
	stop := make(chan time.Time, 1)
	go func() {
		select {
		case <-sigs:
		case <-deadline:
		case <-exited:
		}
		stop <- time.Now()
	}()

	// Taken now: the process may have exited by the end, and before the
	// "Tracing" line, which whoever started ulat may act on at once.
	exe, exeErr := symbols.ExecutableOf(cfg.pid)
	fmt.Fprintf(os.Stderr, "Tracing %d %s in %s... Hit Ctrl-C to end.\n", len(p.targets), plural(len(p.targets), "function", "functions"), describeGroups(p.groups))
	r, err := collect(tracer, p, cfg, stop, out)
	if err != nil {
		return err
	}
	if w := siblingsWarning(cfg.pid, exe, exeErr, r); w != "" {
		r.Warnings = append(r.Warnings, w)
	}
	return writeReport(out, cfg.format, r)
}

// siblingsWarning explains a --pid session without a single call when other
// processes run the same executable: a server's master process often only
// supervises the workers that do the work.
func siblingsWarning(pid int, exe symbols.ExecutableID, exeErr error, r *report.Report) string {
	if pid <= 0 || exeErr != nil {
		return ""
	}
	for _, f := range r.Functions {
		if f.Hist.Count() > 0 || f.DidNotReturn > 0 {
			return ""
		}
	}
	others := symbols.ProcessesRunning(exe, pid)
	if len(others) == 0 {
		return ""
	}
	shown := others
	more := ""
	if len(shown) > 8 {
		shown, more = shown[:8], fmt.Sprintf(" and %d more", len(others)-8)
	}
	ids := make([]string, len(shown))
	for i, o := range shown {
		ids[i] = strconv.Itoa(o)
	}
	return fmt.Sprintf("process %d made no calls, and %d other %s run the same executable (%s%s): if they do the work (a server's workers), trace one of them with --pid, or leave --pid out to trace every process",
		pid, len(others), plural(len(others), "process", "processes"), strings.Join(ids, ", "), more)
}

// prepared is what a tracing command knows before it attaches.
type prepared struct {
	targets  []target
	groups   []*group
	warnings []string
	costs    probes.Costs // empty when not measured
	// calibration measures the probe costs while tracing (nil when it
	// could not start); close stops it.
	calibration *probes.Calibration
	// inKernel: calls are counted in in-kernel histograms, which take the
	// probes' costs out themselves.
	inKernel bool
	// follower, when not nil, finds functions in the programs followed
	// processes exec (ulat run --follow-forks).
	follower *execFollower
}

// kernelHistogramBudget is the most kernel memory --aggregate auto lets
// in-kernel histograms take; past it (thousands of functions, or many
// CPUs), calls are streamed to user space instead.
const kernelHistogramBudget = 64 << 20

// open loads the tracer with the session's options on top of opts, and
// attaches the prepared functions. All or nothing.
func (p *prepared) open(cfg traceConfig, opts probes.Options) (*probes.Tracer, error) {
	switch {
	case p.follower != nil:
		// Functions are added while tracing, and the in-kernel
		// histograms are sized when the object loads.
		p.inKernel = false
		if cfg.aggregate == "kernel" {
			w := "--aggregate kernel: functions of programs the command runs are added while it runs, so every call is streamed to user space instead (--aggregate user)"
			fmt.Fprintf(os.Stderr, "warning: %s\n", w)
			p.warnings = append(p.warnings, w)
		}
	case cfg.aggregate == "kernel":
		p.inKernel = true
	case cfg.aggregate == "user":
		p.inKernel = false
	default:
		p.inKernel = probes.HistogramBytes(len(p.targets)) <= kernelHistogramBudget
	}
	opts.StopOnExec = p.follower != nil
	opts.Verbose, opts.Attach, opts.RingBuffer = cfg.verbose, cfg.attach, cfg.buffer
	opts.Aggregate, opts.Functions = p.inKernel, len(p.targets)
	opts.Raw = cfg.raw
	if !cfg.raw {
		opts.Costs = p.costs
	}
	tracer, inKernel, warning, err := probes.OpenCounting(opts, cfg.aggregate == "auto" && p.follower == nil)
	if err != nil {
		return nil, err
	}
	if warning != "" {
		fmt.Fprintf(os.Stderr, "warning: %s\n", warning)
		p.warnings = append(p.warnings, warning)
	}
	p.inKernel = inKernel
	fns := make([]probes.Function, len(p.targets))
	for i, t := range p.targets {
		fns[i] = t.probe
	}
	if len(fns) > 0 {
		if err := tracer.Attach(fns); err != nil {
			tracer.Close()
			return nil, err
		}
	}
	p.noteRefused(tracer)
	return tracer, nil
}

// noteRefused marks and warns about the functions the last attach left out.
func (p *prepared) noteRefused(tracer *probes.Tracer) {
	refused := tracer.Refused()
	if len(refused) == 0 {
		return
	}
	w := refusedWarning(refused)
	for _, r := range refused {
		p.targets[r.Index].refused = true
	}
	fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	p.warnings = append(p.warnings, w)
}

// add attaches targets found while tracing (in a program a followed process
// exec'd) after the ones there are.
func (p *prepared) add(tracer *probes.Tracer, ts []target) error {
	fns := make([]probes.Function, len(ts))
	for i, t := range ts {
		fns[i] = t.probe
	}
	base := len(p.targets)
	p.targets = append(p.targets, ts...)
	if err := tracer.Add(fns, base); err != nil {
		p.targets = p.targets[:base]
		return err
	}
	p.noteRefused(tracer)
	return nil
}

// refusedWarning says, in one line, which functions the kernel refused to
// probe: every name, since these are few and the user may want to know.
func refusedWarning(refused []probes.Refused) string {
	names := make([]string, len(refused))
	for i, r := range refused {
		names[i] = r.Name
	}
	return fmt.Sprintf("the kernel refused to probe %d %s (%v: an instruction its uprobes cannot handle), which %s not traced: %s",
		len(refused), plural(len(refused), "function", "functions"), refused[0].Err, plural(len(refused), "is", "are"), strings.Join(names, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// prepare resolves the patterns to functions, and meanwhile measures the
// probes' own cost on this host (in a child process), so that durations can
// be corrected for it. Functions that cannot be timed are warned about.
func prepare(cfg traceConfig, binary string, pid int, patterns []string) (*prepared, error) {
	type calibration struct {
		c   *probes.Calibration
		err error
	}
	calibrated := make(chan calibration, 1)
	go func() {
		c, err := probes.StartCalibration(probes.Options{Verbose: cfg.verbose, Attach: cfg.attach})
		calibrated <- calibration{c, err}
	}()
	// On an error below, the calibration is stopped once it has started.
	abandon := func() {
		go func() {
			if cal := <-calibrated; cal.c != nil {
				cal.c.Close()
			}
		}()
	}

	var (
		targets  []target
		groups   []*group
		warnings []string
		err      error
	)
	// No patterns: every one waits for a program the command execs
	// (ulat run --follow-forks).
	if len(patterns) > 0 {
		if targets, groups, warnings, err = resolveTargets(binary, pid, patterns); err != nil {
			abandon()
			return nil, err
		}
	}
	if cfg.format == "table" && len(groups) > 1 {
		labelLibraryFunctions(targets)
	}
	// Broad globs over a large binary can match thousands of functions
	// that cannot be timed; the report lists all of them.
	const shown = 20
	for i, w := range warnings {
		if i == shown {
			fmt.Fprintf(os.Stderr, "warning: ... and %d more (all are listed at the end of the report)\n", len(warnings)-shown)
			break
		}
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}

	// Waited for before attaching: once ulat attaches, nothing else of
	// ulat's is probing.
	cal := <-calibrated
	// Without privileges, BTF or uprobes, opening the tracer says so.
	if cal.err != nil && !errors.Is(cal.err, probes.ErrPermission) && !errors.Is(cal.err, probes.ErrNoBTF) && !errors.Is(cal.err, probes.ErrNoUprobes) && !errors.Is(cal.err, probes.ErrKernelTooOld) {
		fmt.Fprintf(os.Stderr, "warning: probe overhead not measured, durations include it: %v\n", cal.err)
	}
	p := &prepared{targets: targets, groups: groups, warnings: warnings, calibration: cal.c}
	if cal.c != nil {
		p.costs, _ = cal.c.Costs()
	}
	return p, nil
}

// close stops the calibration that goes on while tracing.
func (p *prepared) close() {
	if p.calibration != nil {
		p.calibration.Close()
	}
}

// refreshCosts takes the calibration's latest probe costs, for the calls
// that complete from now on: in the kernel's map (unless --raw) and in the
// aggregates'.
func (p *prepared) refreshCosts(tracer *probes.Tracer, raw bool, aggs ...*aggregate) error {
	if p.calibration == nil {
		return nil
	}
	costs, err := p.calibration.Costs()
	if err != nil || reflect.DeepEqual(costs, p.costs) {
		return nil // a failed round keeps the costs measured until then
	}
	if !raw {
		if err := tracer.SetCosts(costs); err != nil {
			return err
		}
	}
	p.costs = costs
	for _, a := range aggs {
		a.costs = costs
	}
	return nil
}

// openOutput opens --output, or returns def when it is empty.
func openOutput(path string, def io.Writer) (io.Writer, func(), error) {
	if path == "" {
		return def, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, usagef("--output: %w", err)
	}
	return f, func() { f.Close() }, nil
}

// collect reads calls until stop delivers the moment tracing should end
// (writing a report of each --interval to out meanwhile), then detaches and
// returns the report of the whole session. The report's elapsed time ends at
// that moment, not when the loop notices it (up to a poll later).
func collect(tracer *probes.Tracer, p *prepared, cfg traceConfig, stop <-chan time.Time, out io.Writer) (*report.Report, error) {
	var tick <-chan time.Time
	if cfg.interval > 0 {
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		tick = t.C
	}
	warnings := p.warnings
	total := newAggregate(p.targets, p.costs, !cfg.raw, p.inKernel)
	window := newAggregate(p.targets, p.costs, !cfg.raw, p.inKernel)
	var lastHists []probes.Histogram // in-kernel histograms at the last interval
	var execs []int                  // processes stopped at exec, to let go on
	record := func(e *probes.Event) {
		if e.Kind == probes.EventExec {
			execs = append(execs, int(e.Pid))
			return
		}
		total.record(e)
		if tick != nil {
			window.record(e)
		}
	}
	// Each stopped process gets the functions of its new program attached,
	// then goes on; it goes on whatever happens.
	followExecs := func() error {
		var errs []error
		for _, pid := range execs {
			var ts []target
			if p.follower != nil {
				ts = p.follower.resolve(pid)
			}
			if len(ts) > 0 {
				if err := p.add(tracer, ts); err != nil {
					errs = append(errs, err)
				} else {
					total.grow(p.targets)
					window.grow(p.targets)
					fmt.Fprintf(os.Stderr, "ulat: process %d runs %s: timing %d %s there\n", pid, ts[0].binary, len(ts), plural(len(ts), "function", "functions"))
				}
			}
			if err := tracer.Continue(pid); err != nil {
				errs = append(errs, err)
			}
		}
		execs = execs[:0]
		return errors.Join(errs...)
	}
	start := time.Now()
	windowStart := start
	var lostBefore probes.Lost
	replaced := watchReplaced(p.targets)
	lastCheck := start
	var stopAt time.Time
	for done := false; !done; {
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if err := p.refreshCosts(tracer, cfg.raw, total, window); err != nil {
				return nil, err
			}
			for _, w := range replaced.check() {
				fmt.Fprintf(os.Stderr, "warning: %s\n", w)
				warnings = append(warnings, w)
			}
		}
		select {
		case stopAt = <-stop:
			done = true
		case now := <-tick:
			tracer.Drain(record)
			lost, err := tracer.Lost()
			if err != nil {
				return nil, err
			}
			if p.inKernel {
				hs, err := tracer.Histograms()
				if err != nil {
					return nil, err
				}
				if err := tracer.NextInterval(); err != nil {
					return nil, err
				}
				window.setKernel(hs, lastHists)
				lastHists = hs
			}
			if err := writeReport(out, cfg.format, window.report(now.Sub(windowStart), lost.Minus(lostBefore), nil, warnings)); err != nil {
				return nil, err
			}
			window.reset()
			windowStart, lostBefore = now, lost
		default:
			// Events are submitted without wakeups; this timeout is how
			// often we drain, and bounds how late a stop is noticed.
			if _, err := tracer.Poll(50*time.Millisecond, record); err != nil {
				return nil, err
			}
			if err := followExecs(); err != nil {
				return nil, err
			}
		}
	}
	// Detach first so no call completes after the final drain.
	elapsed := stopAt.Sub(start)
	if err := tracer.Detach(); err != nil {
		return nil, fmt.Errorf("detach: %w", err)
	}
	tracer.Drain(record)
	for _, pid := range execs { // stopped as tracing ended: nothing to add
		tracer.Continue(pid)
	}
	lost, err := tracer.Lost()
	if err != nil {
		return nil, err
	}
	left, err := tracer.Leftovers()
	if err != nil {
		return nil, err
	}
	if p.inKernel {
		hs, err := tracer.Histograms()
		if err != nil {
			return nil, err
		}
		total.setKernel(hs, nil)
	}
	// The report states the costs and their spread over the whole session.
	if err := p.refreshCosts(tracer, true, total); err != nil {
		return nil, err
	}
	if cfg.interval > 0 && cfg.format == "table" {
		fmt.Fprintf(out, "\nTotal over %s:\n", elapsed.Round(time.Millisecond))
	}
	r := total.report(elapsed, lost, &left, warnings)
	r.Run = runFacts(p.groups)
	r.Run.Aggregation = "user"
	if p.inKernel {
		r.Run.Aggregation = "kernel"
	}
	return r, nil
}

func writeReport(w io.Writer, format string, r *report.Report) error {
	if format == "json" {
		return report.WriteJSON(w, r)
	}
	return report.WriteTable(w, r)
}

// watchProcess fails when pid does not exist, and otherwise returns a channel
// closed when it exits.
func watchProcess(pid int) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("--pid %d: %w", pid, errNoProcess)
		}
		return nil, fmt.Errorf("--pid %d: %w", pid, err)
	}
	ch := make(chan struct{})
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || err != unix.EINTR {
				break
			}
		}
		close(ch)
	}()
	return ch, nil
}
