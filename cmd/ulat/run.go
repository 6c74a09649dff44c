package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/launch"
	"github.com/ulat-dev/ulat/session"
	"github.com/ulat-dev/ulat/symbols"
)

// Exit statuses of `ulat run` when the command cannot be run, as env(1),
// timeout(1) and shells use them.
const (
	exitCannotExecute = 126
	exitNotFound      = 127
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run COMMAND and time its functions from its first instruction to its exit",
		ArgsUsage: "--func PATTERN... [flags] -- COMMAND [ARGS...]",
		Description: `Starts COMMAND stopped, attaches probes to the functions --func names
(patterns as for trace: 'main.*', LIB:PATTERN, /path/to/lib.so:PATTERN; plain
patterns are looked up in COMMAND's executable), lets it run, and writes the
report when it exits: to --output, or to stderr. ulat then exits with
COMMAND's exit status (128+N when signal N ended it; 127 when COMMAND is not
found, 126 when it cannot be executed), so it can wrap a test or benchmark
step unchanged. Ctrl-C reaches COMMAND from the terminal; SIGTERM and SIGHUP
sent to ulat are passed on to it.`,
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "func", Aliases: []string{"F"}, Usage: "time the functions matching `PATTERN` (repeatable)"},
			&cli.BoolFlag{Name: "follow-forks", Usage: "also time the processes COMMAND starts, and theirs"},
		}, tracingFlags("stderr")...),
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	var cfg traceConfig
	if err := parseTracingFlags(c, &cfg); err != nil {
		return err
	}
	patterns := c.StringSlice("func")
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return usagef("run needs a command: ulat run --func PATTERN [flags] -- COMMAND [ARGS...]")
	}
	if len(patterns) == 0 {
		return usagef("run needs at least one --func PATTERN naming the functions to time (e.g. --func 'main.*')")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := exitNotFound
		if errors.Is(err, os.ErrPermission) {
			code = exitCannotExecute
		}
		fmt.Fprintf(c.App.ErrWriter, "ulat: run: %v\n", err)
		return exitStatus{code}
	}
	// Patterns without LIB: are the command's own functions; with
	// --follow-forks, those it does not have are looked for in the
	// programs it runs, as they start.
	follow := c.Bool("follow-forks")
	s := session.New(cfg.session)
	defer s.Close()
	plan, err := session.Resolve(session.Spec{Binary: path, Patterns: patterns, FollowExecs: follow}, cfg.session.Log)
	if errors.Is(err, symbols.ErrNoMatch) && !follow {
		return fmt.Errorf("%w; if COMMAND runs the code in another program (go test runs a test binary it builds), add --follow-forks", err)
	}
	if err != nil {
		return err
	}
	out, closeOut, err := openOutput(cfg.output, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer closeOut()

	// Signals that should reach the command rather than end ulat: caught
	// from now on, passed on once it runs.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	proc, err := launch.Start(path, argv, os.Environ())
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "ulat: run: %v\n", err)
		return exitStatus{exitCannotExecute}
	}
	if err := s.Start(plan, session.Process{Pid: proc.Pid, FollowForks: follow, Launched: true}); err != nil {
		proc.Kill()
		return err
	}
	if err := proc.Resume(); err != nil {
		proc.Kill()
		return err
	}
	go func() {
		for sig := range sigs {
			// A terminal's Ctrl-C and Ctrl-\ already reached the
			// command, which shares ulat's process group.
			if sig == syscall.SIGTERM || sig == syscall.SIGHUP {
				_ = proc.Signal(sig)
			}
		}
	}()
	// Run ends when the command exits: its elapsed time is the command's
	// run time, from its first instruction to its exit.
	r, err := s.Run(context.Background())
	if err != nil {
		proc.Kill()
		return err
	}
	code, err := proc.Wait()
	if err != nil {
		return err
	}
	r.Facts.Command = argv
	r.Facts.ExitStatus = &code
	if err := writeReport(out, cfg.format, r); err != nil {
		return err
	}
	return exitStatus{code}
}
