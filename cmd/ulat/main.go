// Command ulat measures how long functions in user-space programs take, with
// eBPF uprobes. This package parses flags and wires symbols, probes and
// report together; it computes nothing itself.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/probes"
)

// Set at build time (see the Makefile).
var (
	version       = "dev"
	libbpfVersion = "unknown"
)

// Exit statuses, documented in the README.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: could not load, attach, read
	exitUsage   = 2 // bad flags or arguments, bad input files, no match
)

// usageError marks an error as the user's to fix (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

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
			doctorCommand(),
			versionCommand(),
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err}
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
	// ulat starts itself again to measure its probes' own cost.
	probes.RunCalibrationChild()
	// ulat runs beside the programs it measures, on every node of a
	// fleet: its peak memory is mostly garbage from reading a large
	// binary's tables, which a soft limit has the collector return before
	// the heap doubles (terraform, 15k functions: 90 MB instead of 115).
	// GOMEMLIMIT, when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	errUnknownCommand = nil
	app.CommandNotFound = func(c *cli.Context, name string) {
		errUnknownCommand = usagef("unknown command %q: the commands are trace, run, compare, merge, symbols, doctor and version (see ulat --help)", name)
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
	fmt.Fprintf(os.Stderr, "ulat: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isInputError(err) {
		return exitUsage
	}
	return exitFailure
}
