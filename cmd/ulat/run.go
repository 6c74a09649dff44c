package main

import "github.com/urfave/cli/v2"

// Stub: replaced by the run implementation.
func runCommand() *cli.Command {
	return &cli.Command{Name: "run", Usage: "run a command and time its functions (not implemented yet)", Action: func(*cli.Context) error { return usagef("not implemented") }}
}
