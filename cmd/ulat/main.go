// Command ulat measures how long functions in user-space programs take, with
// eBPF uprobes. This package parses flags, calls the engine (package
// session), prints its reports and maps errors to exit statuses; it
// computes nothing itself.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/session"
)

// Set at build time (see the Makefile).
var (
	version       = "dev"
	libbpfVersion = "unknown"
)

// Exit statuses, documented in docs/usage.md.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: could not load, attach, read
	exitUsage   = 2 // bad flags or arguments, bad input files, no match
)

// usagef makes an error that is the user's to fix (exit status 2): the
// engine's kind, which its own errors about the input have too.
var usagef = session.Inputf

// exitStatus ends ulat with code and no message: the status of the command
// `ulat run` ran, or compare's verdict.
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newApp() *cli.App {
	return &cli.App{
		Name:    "ulat",
		Usage:   "measure how long functions in running programs take (eBPF uprobes)",
		Version: version,
		// Flags must come before arguments (urfave/cli v2); trace checks
		// for stray flags among the arguments and says so.
		Commands: []*cli.Command{
			traceCommand(),
			runCommand(),
			compareCommand(),
			mergeCommand(),
			symbolsCommand(),
			agentCommand(),
			doctorCommand(),
			versionCommand(),
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usagef("%w", err)
		},
		// Errors are printed once, by main, with the right exit status.
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
		Suggest:         true,
	}
}

// errUnknownCommand is set by the app's CommandNotFound hook, which cannot
// return an error itself.
var errUnknownCommand error

// softMemoryLimit is the Go heap size past which the collector works
// harder; not a cap (a larger live heap still works, with more GC).
const softMemoryLimit = 64 << 20

func main() {
	// ulat runs beside the programs it measures, on every node of a
	// fleet: its peak memory is mostly garbage from reading a large
	// binary's tables, which a soft limit has the collector return before
	// the heap doubles (terraform, 15k functions: 90 MB instead of 115).
	// GOMEMLIMIT, when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
	servePprof()
	os.Exit(runApp(os.Args))
}

// runApp runs the command args name and returns ulat's exit status.
func runApp(args []string) int {
	app := newApp()
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	errUnknownCommand = nil
	app.CommandNotFound = func(c *cli.Context, name string) {
		errUnknownCommand = usagef("unknown command %q: the commands are trace, run, compare, merge, symbols, agent, doctor and version (see ulat --help)", name)
	}
	err := app.Run(args)
	if err == nil {
		err = errUnknownCommand
	}
	if err == nil {
		return exitOK
	}
	var es exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	fmt.Fprintf(os.Stderr, "ulat: %v%s\n", err, hint(err))
	if errors.Is(session.AsInput(err), session.ErrInput) {
		return exitUsage
	}
	return exitFailure
}

// hint names the flag that helps with err, which the engine, knowing no
// flags, cannot.
func hint(err error) string {
	switch {
	case errors.Is(err, session.ErrRejected):
		return "; --verbose shows the verifier's whole log"
	case errors.Is(err, session.ErrProbeKind):
		return "; try --attach perf"
	}
	return ""
}
