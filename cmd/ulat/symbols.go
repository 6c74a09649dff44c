package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/session"
	"github.com/ulat-dev/ulat/symbols"
)

func symbolsCommand() *cli.Command {
	return &cli.Command{
		Name:      "symbols",
		Usage:     "list the functions of BINARY, LIB or --pid's executable that ulat can trace, and how",
		ArgsUsage: "BINARY|LIB [PATTERN...] | --pid PID [PATTERN...]",
		Description: `LIB is a shared library named as the loader does (libc, libz.so.1) or by
path; with --pid, it is the one that process has mapped. With --pid and no
BINARY or LIB, lists the functions of the process's own executable.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "pid", Aliases: []string{"p"}, Usage: "look in this process's executable, or the library it has mapped"},
		},
		Action: func(c *cli.Context) error {
			pid := c.Int("pid")
			if pid < 0 {
				return usagef("--pid %d: must be a process id", pid)
			}
			loc, patterns, err := symbolsTarget(c.Args().Slice(), pid)
			if err != nil {
				return err
			}
			bin, err := symbols.Open(loc.Path)
			if err != nil {
				return err
			}
			defer bin.Close()
			if bin.Warning != "" {
				fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", bin.Warning)
			}
			if loc.Path != loc.Name || loc.Deleted {
				fmt.Fprintf(c.App.ErrWriter, "%s\n", loc)
			}
			fns := bin.Functions()
			if len(patterns) > 0 {
				if fns, err = bin.Match(patterns...); err != nil {
					return err
				}
			}
			return bin.WriteListing(c.App.Writer, fns)
		},
	}
}

// symbolsTarget works out which file `ulat symbols` lists and the patterns
// to look for: BINARY or LIB first (LIB resolved through --pid when
// given), or LIB:PATTERN, or with --pid only patterns, for the process's
// executable.
func symbolsTarget(args []string, pid int) (symbols.Location, []string, error) {
	if len(args) > 0 {
		if lib, fn, ok := symbols.SplitLibrary(args[0]); ok {
			loc, err := symbols.LocateLibrary(lib, pid)
			return loc, append([]string{fn}, args[1:]...), err
		}
	}
	switch {
	case len(args) > 0 && (pid == 0 || session.NamesFile(args[0], pid)):
		loc, err := session.Locate(args[0], pid)
		return loc, args[1:], err
	case pid > 0:
		loc, err := symbols.ProcessExecutable(pid)
		if errors.Is(err, symbols.ErrNoProcess) {
			err = fmt.Errorf("--pid %d: %w", pid, symbols.ErrNoProcess)
		}
		return loc, args, err
	}
	return symbols.Location{}, nil, usagef("symbols needs BINARY: ulat symbols BINARY|LIB [PATTERN...], or ulat symbols --pid PID [PATTERN...]")
}
