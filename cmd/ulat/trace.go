package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/report"
	"github.com/ulat-dev/ulat/session"
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
		Action: traceAction,
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

// traceConfig is what the tracing flags ask of a session, and how to
// print its reports.
type traceConfig struct {
	pid      int
	duration time.Duration
	interval time.Duration
	format   string
	output   string
	session  session.Options
	binary   string
	patterns []string
}

// parseTracingFlags reads tracingFlags into cfg.
func parseTracingFlags(c *cli.Context, cfg *traceConfig) error {
	cfg.format = c.String("format")
	cfg.output = c.String("output")
	agg := session.Aggregation(c.String("aggregate"))
	switch agg {
	case session.AggregateAuto, session.AggregateKernel, session.AggregateUser:
	default:
		return usagef("--aggregate %q: must be auto, kernel or user", agg)
	}
	kib := c.Int("buffer")
	if kib < 4 || kib > 1<<20 || kib&(kib-1) != 0 {
		return usagef("--buffer %d: must be a power of two from 4 to 1048576 (KiB)", kib)
	}
	attach := session.AttachMode(c.String("attach"))
	switch attach {
	case session.AttachAuto, session.AttachMulti, session.AttachPerf:
	default:
		return usagef("--attach %q: must be auto, multi or perf", attach)
	}
	if cfg.format != "table" && cfg.format != "json" {
		return usagef("--format %q: must be table or json", cfg.format)
	}
	cfg.session = session.Options{
		Log:            slog.New(lineHandler{w: c.App.ErrWriter}),
		Attach:         attach,
		Aggregate:      agg,
		RingBuffer:     kib * 1024,
		Raw:            c.Bool("raw"),
		LabelLibraries: cfg.format == "table",
		Version:        version,
	}
	if c.Bool("verbose") {
		cfg.session.LibbpfLog = c.App.ErrWriter
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
		if len(args) >= 1 && session.NamesFile(args[0], cfg.pid) {
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

func traceAction(c *cli.Context) error {
	cfg, err := parseTraceArgs(c)
	if err != nil {
		return err
	}
	cfg.session.Intervals = cfg.interval > 0
	s := session.New(cfg.session)
	defer s.Close()
	plan, err := session.Resolve(session.Spec{Binary: cfg.binary, Pid: cfg.pid, Patterns: cfg.patterns}, cfg.session.Log)
	if err != nil {
		return err
	}
	out, closeOut, err := openOutput(cfg.output, c.App.Writer)
	if err != nil {
		return err
	}
	defer closeOut()
	if err := s.Start(plan, session.Process{Pid: cfg.pid}); err != nil {
		return err
	}

	// Ends on the first of: a signal, --duration, the --pid process
	// exiting (which Run watches).
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if cfg.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	fmt.Fprintf(c.App.ErrWriter, "Tracing %d %s in %s... Hit Ctrl-C to end.\n", plan.Functions(), plural(plan.Functions(), "function", "functions"), plan.Files())
	intervalsDone := writeIntervals(s, cfg, out, cancel)
	r, err := s.Run(ctx)
	if ierr := intervalsDone(); err == nil {
		err = ierr
	}
	if err != nil {
		return err
	}
	if cfg.interval > 0 && cfg.format == "table" {
		fmt.Fprintf(out, "\nTotal over %s:\n", r.Elapsed.Round(time.Millisecond))
	}
	return writeReport(out, cfg.format, r)
}

// writeIntervals writes a report of each --interval while the session
// runs, and ends it (cancel) when a write fails; the function it returns
// stops that, once Run has returned, and says whether a write failed.
func writeIntervals(s *session.Session, cfg traceConfig, out io.Writer, cancel func()) func() error {
	if cfg.interval <= 0 {
		return func() error { return nil }
	}
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-t.C:
				r, err := s.Interval()
				if errors.Is(err, session.ErrEnded) {
					continue // the stop is on its way
				}
				if err == nil {
					err = writeReport(out, cfg.format, r)
				}
				if err != nil {
					cancel()
					<-stop
					done <- err
					return
				}
			}
		}
	}()
	return func() error {
		close(stop)
		return <-done
	}
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

func writeReport(w io.Writer, format string, r *report.Report) error {
	if format == "json" {
		return report.WriteJSON(w, r)
	}
	return report.WriteTable(w, r)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// lineHandler prints the session's log as ulat's lines on stderr:
// "warning: ..." for warnings, "ulat: ..." for notices.
type lineHandler struct{ w io.Writer }

func (h lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h lineHandler) Handle(_ context.Context, r slog.Record) error {
	prefix := "ulat: "
	if r.Level >= slog.LevelWarn {
		prefix = "warning: "
	}
	_, err := fmt.Fprintf(h.w, "%s%s\n", prefix, r.Message)
	return err
}

func (h lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineHandler) WithGroup(string) slog.Handler      { return h }
