package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"

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
			t := newSymbolsTable(c.App.Writer, fns, bin.Size)
			for i := range fns {
				f := &fns[i]
				row := symbolsRow{function: f.Name, lang: string(f.Lang), entry: "-", exits: "-", inlined: "no"}
				p, err := bin.Probes(f)
				var cannot *symbols.ErrCannotProbe
				switch {
				case errors.As(err, &cannot):
					row.note = cannot.Reason
				case err != nil:
					// The rows so far stand: show them before the error.
					t.flush()
					return err
				default:
					row.entry = fmt.Sprintf("%#x", p.Entry)
					row.exits = "uretprobe"
					if p.Exits != nil {
						row.exits = strconv.Itoa(len(p.Exits))
					}
				}
				switch {
				case f.InlinedOnly():
					row.inlined = "only"
				case f.Inlined:
					row.inlined = "partly"
				}
				if err := t.write(row); err != nil {
					return err
				}
			}
			return t.flush()
		},
	}
}

// symbolsRow is one function in `ulat symbols`' listing.
type symbolsRow struct {
	function, lang, entry, exits, inlined, note string
}

// symbolsTable writes the listing as plain columns with FUNCTION last.
// Go generic instantiations have names hundreds of characters long, and a
// table that aligns any column after the names pads every row to the
// longest of them: terraform's listing was 111k rows padded to a name of
// 1,000 characters, 125 MB, which the table renderer built in memory and
// took half the run time to lay out. Last, a name pads nothing; the
// note, long but for few functions, follows it. The other columns are
// short and their widths are known before any function is disassembled,
// so rows stream out as they are worked out.
type symbolsTable struct {
	w                  *bufio.Writer
	lang, entry, exits int
}

// newSymbolsTable sizes the columns for fns of a file of size bytes and
// writes the header.
func newSymbolsTable(w io.Writer, fns []symbols.Function, size int64) *symbolsTable {
	t := &symbolsTable{w: bufio.NewWriter(w), lang: len("LANG"), entry: len("ENTRY"), exits: len("EXITS")}
	// Entries are file offsets, so none is wider than the file's size.
	t.entry = max(t.entry, len(fmt.Sprintf("%#x", size)))
	for i := range fns {
		t.lang = max(t.lang, len(fns[i].Lang))
		if fns[i].Lang == symbols.Native {
			t.exits = max(t.exits, len("uretprobe"))
		}
	}
	// An error here comes back from the first row or from flush.
	_ = t.write(symbolsRow{function: "FUNCTION", lang: "LANG", entry: "ENTRY", exits: "EXITS", inlined: "INLINED"})
	return t
}

// write adds a row. It returns the error of any failed write so far (the
// bufio.Writer keeps it): on a closed pipe the caller stops instead of
// disassembling the rest for nobody.
func (t *symbolsTable) write(r symbolsRow) error {
	fmt.Fprintf(t.w, "%-*s  %*s  %*s  %-*s  %s", t.lang, r.lang, t.entry, r.entry, t.exits, r.exits, len("INLINED"), r.inlined, r.function)
	if r.note != "" {
		fmt.Fprintf(t.w, "  (%s)", r.note)
	}
	return t.w.WriteByte('\n')
}

func (t *symbolsTable) flush() error { return t.w.Flush() }

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
