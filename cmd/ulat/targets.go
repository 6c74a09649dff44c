package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/report"
	"github.com/ulat-dev/ulat/symbols"
)

// target is a function that will be probed.
type target struct {
	name   string
	binary string
	probe  probes.Function
}

// resolveTargets finds the functions matching patterns in binary and where
// to probe them. Functions that cannot be timed are returned as warnings;
// it is an error when none can.
func resolveTargets(binary string, patterns []string) ([]target, []string, error) {
	bin, err := symbols.Open(binary)
	if err != nil {
		return nil, nil, err
	}
	defer bin.Close()
	fns, err := bin.Match(patterns...)
	if err != nil {
		return nil, nil, err
	}
	var (
		targets  []target
		warnings []string
	)
	for i := range fns {
		f := &fns[i]
		p, err := bin.Probes(f)
		var cannot *symbols.ErrCannotProbe
		if errors.As(err, &cannot) {
			warnings = append(warnings, cannot.Error())
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if f.Inlined {
			warnings = append(warnings, fmt.Sprintf("%s is inlined into some callers; only calls to its out-of-line copy are timed", f.Name))
		}
		targets = append(targets, target{
			name:   f.Name,
			binary: bin.Path,
			probe: probes.Function{
				Name:   f.Name,
				Binary: bin.Path,
				Entry:  p.Entry,
				Exits:  p.Exits,
				Go:     f.Lang == symbols.Go,
			},
		})
	}
	if len(targets) == 0 {
		return nil, warnings, usagef("none of the %d matching functions can be timed (see the warnings above)", len(fns))
	}
	return targets, warnings, nil
}

// aggregate turns events into one histogram per target.
type aggregate struct {
	targets []target
	hists   []*report.Histogram
}

func newAggregate(targets []target) *aggregate {
	a := &aggregate{targets: targets, hists: make([]*report.Histogram, len(targets))}
	for i := range a.hists {
		a.hists[i] = report.NewHistogram()
	}
	return a
}

func (a *aggregate) record(e *probes.Event) {
	if int(e.Fn) < len(a.hists) {
		a.hists[e.Fn].Record(e.DurationNs)
	}
}

func (a *aggregate) reset() {
	for _, h := range a.hists {
		h.Reset()
	}
}

func (a *aggregate) report(elapsed time.Duration, lost probes.Lost, warnings []string) *report.Report {
	r := &report.Report{
		Elapsed:  elapsed,
		Lost:     report.Lost{DroppedEvents: lost.Dropped, UnpairedExits: lost.Unpaired},
		Warnings: warnings,
	}
	for i, t := range a.targets {
		r.Functions = append(r.Functions, report.FunctionStats{Function: t.name, Binary: t.binary, Hist: a.hists[i]})
	}
	return r
}
