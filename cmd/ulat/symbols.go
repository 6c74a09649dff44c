package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/olekukonko/tablewriter/tw"
	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/report"
	"github.com/ulat-dev/ulat/symbols"
)

func symbolsCommand() *cli.Command {
	return &cli.Command{
		Name:      "symbols",
		Usage:     "list the functions of BINARY that ulat can trace, and how",
		ArgsUsage: "BINARY [PATTERN...]",
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) < 1 {
				return usagef("symbols needs BINARY: ulat symbols BINARY [PATTERN...]")
			}
			bin, err := symbols.Open(args[0])
			if err != nil {
				return err
			}
			defer bin.Close()
			fns := bin.Functions()
			if len(args) > 1 {
				if fns, err = bin.Match(args[1:]...); err != nil {
					return err
				}
			}
			l, r := tw.AlignLeft, tw.AlignRight
			t := report.NewTable(c.App.Writer, l, l, r, r, l, l)
			t.Header("FUNCTION", "LANG", "ENTRY", "EXITS", "INLINED", "NOTE")
			for i := range fns {
				f := &fns[i]
				entry, exits, note := "-", "-", ""
				p, err := bin.Probes(f)
				var cannot *symbols.ErrCannotProbe
				switch {
				case errors.As(err, &cannot):
					note = cannot.Reason
				case err != nil:
					return err
				default:
					entry = fmt.Sprintf("%#x", p.Entry)
					exits = "uretprobe"
					if p.Exits != nil {
						exits = strconv.Itoa(len(p.Exits))
					}
				}
				inlined := "no"
				switch {
				case f.InlinedOnly():
					inlined = "only"
				case f.Inlined:
					inlined = "partly"
				}
				if err := t.Append(f.Name, string(f.Lang), entry, exits, inlined, note); err != nil {
					return err
				}
			}
			return t.Render()
		},
	}
}
