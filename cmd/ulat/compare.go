package main

import "github.com/urfave/cli/v2"

// Stub: replaced by the compare implementation.
func compareCommand() *cli.Command {
	return &cli.Command{Name: "compare", Usage: "compare reports (not implemented yet)", Action: func(*cli.Context) error { return usagef("not implemented") }}
}

func mergeCommand() *cli.Command {
	return &cli.Command{Name: "merge", Usage: "merge reports (not implemented yet)", Action: func(*cli.Context) error { return usagef("not implemented") }}
}
