package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/compare"
	"github.com/ulat-dev/ulat/report"
)

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "judge whether functions got slower: compare JSON reports against a baseline",
		ArgsUsage: "BASELINE.json... -- CURRENT.json... | BASE.json NEW.json",
		Description: `Reports are JSON written by ulat run or ulat trace (--format json); several
on one side are merged (as ulat merge does). Functions pair by file name and
function name. A metric regresses when its change exceeds its threshold AND
its bootstrap confidence interval lies above 0; functions with fewer than
--min-count calls on a side are not judged.

--threshold METRIC=+N% applies to every function (when none is given,
p50=+10% alone: tails are judged only when asked for); FUNCTION:METRIC=+N%
to the functions it names (a name, a glob, or FILE:NAME) and overrides the
other for that metric. METRIC is p50,
p90, p99, p99.9 (any pN) or mean. Repeat the flag for several.

Exit status: 0 nothing regressed, 1 something did, 2 bad input. Flags go
before the files.`,
		Flags: []cli.Flag{
			&cli.GenericFlag{Name: "threshold", Aliases: []string{"t"}, Value: &stringList{}, Usage: "METRIC=+N% or FUNCTION:METRIC=+N%, e.g. p99=+10% or 'main.parse:p99=+20%' (repeatable; default p50=+10%)"},
			&cli.IntFlag{Name: "min-count", Value: compare.DefaultMinCount, Usage: "judge only functions with at least this many calls on each side"},
			&cli.Float64Flag{Name: "confidence", Value: compare.DefaultConfidence, Usage: "confidence of the intervals, between 0 and 1"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table, markdown (for pull requests and job summaries) or json"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the comparison to this file instead of stdout"},
		},
		Action: compareAction,
	}
}

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "merge JSON reports of several runs into one, such as a steadier baseline",
		ArgsUsage: "FILE...",
		Description: `Adds up each function's calls (paired by file name and function name) over
all the reports, and writes one JSON report that ulat compare reads. Flags go
before the files.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the merged report to this file instead of stdout"},
		},
		Action: mergeAction,
	}
}

// stringList is a repeatable string flag that, unlike cli.StringSliceFlag,
// does not split values at commas: function names can hold them.
type stringList struct{ values []string }

// urfave/cli copies a flag's value to its other names (--threshold to -t)
// by Set(Serialize()) on the same value; that must replace, not append.
const stringListPrefix = "\x00stringList:"

func (l *stringList) Set(v string) error {
	if whole, ok := strings.CutPrefix(v, stringListPrefix); ok {
		return json.Unmarshal([]byte(whole), &l.values)
	}
	l.values = append(l.values, v)
	return nil
}

func (l *stringList) String() string { return strings.Join(l.values, " ") }

func (l *stringList) Serialize() string {
	b, _ := json.Marshal(l.values)
	return stringListPrefix + string(b)
}

func compareAction(c *cli.Context) error {
	format := c.String("format")
	switch format {
	case "table", "markdown", "json":
	default:
		return usagef("--format %q: must be table, markdown or json", format)
	}
	opts := compare.Options{Confidence: c.Float64("confidence")}
	if !(opts.Confidence > 0 && opts.Confidence < 1) {
		return usagef("--confidence %v: must be between 0 and 1, such as 0.99", opts.Confidence)
	}
	n := c.Int("min-count")
	if n < 1 {
		return usagef("--min-count %d: must be at least 1", n)
	}
	opts.MinCount = uint64(n)
	for _, s := range c.Generic("threshold").(*stringList).values {
		t, err := compare.ParseThreshold(s)
		if err != nil {
			return usagef("--threshold: %w", err)
		}
		opts.Thresholds = append(opts.Thresholds, t)
	}

	basePaths, curPaths, err := compareArgs(c.Args().Slice())
	if err != nil {
		return err
	}
	base, err := readReports(basePaths)
	if err != nil {
		return err
	}
	cur, err := readReports(curPaths)
	if err != nil {
		return err
	}
	res, err := compare.Compare(base, cur, opts)
	if err != nil {
		return usagef("%s and %s: %w", describePaths(basePaths), describePaths(curPaths), err)
	}

	write := compare.WriteTable
	switch format {
	case "markdown":
		write = compare.WriteMarkdown
	case "json":
		write = compare.WriteJSON
	}
	if err := writeOutput(c.App.Writer, c.String("output"), func(w io.Writer) error { return write(w, res) }); err != nil {
		return err
	}
	if res.Verdict == compare.Regressed {
		return exitStatus{1}
	}
	return nil
}

// compareArgs splits "BASE... -- CURRENT..." or "BASE NEW". A "--" before
// the first file is taken by flag parsing; one after a file reaches us.
func compareArgs(args []string) (base, cur []string, err error) {
	const synopsis = "ulat compare [flags] BASE.json NEW.json, or ulat compare [flags] BASELINE.json... -- CURRENT.json..."
	for _, a := range args {
		if strings.HasPrefix(a, "-") && a != "--" {
			return nil, nil, usagef("flag %s must come before the files: %s", a, synopsis)
		}
	}
	sep := slices.Index(args, "--")
	switch {
	case sep < 0 && len(args) == 2:
		return args[:1], args[1:], nil
	case sep < 0:
		return nil, nil, usagef("compare needs two files, or files on each side of --, and got %d: %s", len(args), synopsis)
	case slices.Contains(args[sep+1:], "--"):
		return nil, nil, usagef("compare takes one --, between the baseline and the current files: %s", synopsis)
	case sep == 0 || sep == len(args)-1:
		return nil, nil, usagef("compare needs at least one file on each side of --: %s", synopsis)
	}
	return args[:sep], args[sep+1:], nil
}

func describePaths(paths []string) string {
	if len(paths) == 1 {
		return paths[0]
	}
	return fmt.Sprintf("%s (and %d more)", paths[0], len(paths)-1)
}

// readReports reads and merges JSON reports; what is wrong with a file is
// the user's to fix.
func readReports(paths []string) (*report.Report, error) {
	r, err := report.ReadFiles(paths)
	if errors.Is(err, report.ErrInvalid) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil, usagef("%w", err)
	}
	return r, err
}

// writeOutput writes with write to stdout, or to path when given, created
// only now so that bad input never leaves an empty file behind.
func writeOutput(stdout io.Writer, path string, write func(io.Writer) error) error {
	if path == "" {
		return write(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return usagef("--output: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

func mergeAction(c *cli.Context) error {
	paths := c.Args().Slice()
	for _, a := range paths {
		if strings.HasPrefix(a, "-") {
			return usagef("flag %s must come before the files: ulat merge [--output FILE] FILE...", a)
		}
	}
	if len(paths) == 0 {
		return usagef("merge needs at least one FILE: ulat merge [--output FILE] FILE...")
	}
	r, err := readReports(paths)
	if err != nil {
		return err
	}
	return writeOutput(c.App.Writer, c.String("output"), func(w io.Writer) error { return report.WriteJSON(w, r) })
}
