package session

import (
	"maps"
	"math/bits"
	"slices"
	"time"

	"github.com/ulat-dev/ulat/probes"
	"github.com/ulat-dev/ulat/report"
)

// tally turns events into one histogram per target, and counts the
// calls that never returned. With costs, each call's probe costs (its own,
// and those of the traced calls made inside it) are taken out of its
// duration.
type tally struct {
	targets  []target
	hists    []*report.Histogram
	noReturn []uint64
	nested   []uint64     // per target: the nested probe costs taken out, summed
	costs    probes.Costs // empty when not measured
	correct  bool         // take the costs out of each event's duration
	// inKernel: completed calls are counted in the kernel, which takes
	// the costs out itself; events are only calls that never returned.
	inKernel bool
	// cgroups, when not nil, counts each cgroup's calls in a tally of its
	// own (Options.ByCgroup), and this one counts none; past maxCgroups,
	// the calls of new cgroups are counted as cgroup 0's.
	cgroups    map[uint64]*tally
	maxCgroups int
}

func newTally(targets []target, costs probes.Costs, correct, inKernel bool) *tally {
	a := &tally{costs: costs, correct: correct && len(costs.Kinds) > 0, inKernel: inKernel}
	a.grow(targets)
	return a
}

// newCgroupTally is a tally of each cgroup's calls.
func newCgroupTally(targets []target, costs probes.Costs, correct bool, maxCgroups int) *tally {
	a := newTally(targets, costs, correct, false)
	a.cgroups, a.maxCgroups = map[uint64]*tally{}, maxCgroups
	return a
}

// grow takes targets, which extends the ones it has, as its own: functions
// attached while tracing.
func (a *tally) grow(targets []target) {
	for i := len(a.hists); i < len(targets); i++ {
		a.hists = append(a.hists, report.NewHistogram())
		a.noReturn = append(a.noReturn, 0)
		a.nested = append(a.nested, 0)
	}
	a.targets = targets
	for _, c := range a.cgroups {
		c.grow(targets)
	}
}

func (a *tally) record(e *probes.Event) {
	if int(e.Fn) >= len(a.hists) {
		return
	}
	if a.cgroups != nil {
		id := e.Cgroup
		c := a.cgroups[id]
		if c == nil && a.maxCgroups > 0 && len(a.cgroups) >= a.maxCgroups {
			id, c = 0, a.cgroups[0]
		}
		if c == nil {
			c = newTally(a.targets, a.costs, a.correct, false)
			a.cgroups[id] = c
		}
		c.record(e)
		return
	}
	if e.Kind == probes.EventNoReturn {
		a.noReturn[e.Fn]++
		return
	}
	d := e.DurationNs
	if a.correct {
		d -= min(d, e.InnerNs+e.NestedNs)
		a.nested[e.Fn] += e.NestedNs
	}
	a.hists[e.Fn].Record(d)
}

// setKernel takes the functions' histograms from in-kernel ones: hs as read
// now, minus prev as read at the start of the window (nil: since
// attaching), with the window's exact extremes.
func (a *tally) setKernel(hs, prev []*probes.Histogram) {
	var window []uint64 // one for every function: HistogramFromSlots keeps none of it
	for i := range a.hists {
		if i >= len(hs) {
			break
		}
		h := hs[i]
		slots := h.Slots[:]
		minNs, maxNs, sumHi, sumLo := h.Min, h.Max, h.SumHi, h.SumLo
		if prev != nil {
			if window == nil {
				window = make([]uint64, len(slots))
			}
			for s, c := range slots {
				window[s] = c - prev[i].Slots[s]
			}
			slots = window
			minNs, maxNs = h.IntervalMin, h.IntervalMax
			var borrow uint64
			sumLo, borrow = bits.Sub64(h.SumLo, prev[i].SumLo, 0)
			sumHi, _ = bits.Sub64(h.SumHi, prev[i].SumHi, borrow)
		}
		a.hists[i] = report.HistogramFromSlots(slots, minNs, maxNs, sumHi, sumLo)
		a.nested[i] = h.NestedNs
		if prev != nil {
			a.nested[i] -= prev[i].NestedNs
		}
	}
}

// kernelTotals are the functions' in-kernel histograms since attaching,
// as report histograms, kept from one read to the next: a function not
// called since (its count the same) is not read again, and its histogram
// is the one made then. They are shared by the reports made of them.
type kernelTotals struct {
	counts []uint64
	hists  []*report.Histogram
	nested []uint64
}

// known says whether the totals have function fn's count calls.
func (k *kernelTotals) known(fn int, count uint64) bool {
	return fn < len(k.hists) && k.hists[fn] != nil && k.counts[fn] == count
}

// update takes hs, read with known: nil for the functions it has.
func (k *kernelTotals) update(hs []*probes.Histogram) {
	if len(k.hists) < len(hs) {
		k.counts = append(k.counts, make([]uint64, len(hs)-len(k.counts))...)
		k.hists = append(k.hists, make([]*report.Histogram, len(hs)-len(k.hists))...)
		k.nested = append(k.nested, make([]uint64, len(hs)-len(k.nested))...)
	}
	for i, h := range hs {
		if h == nil {
			continue
		}
		k.counts[i] = h.Count
		k.hists[i] = report.HistogramFromSlots(h.Slots[:], h.Min, h.Max, h.SumHi, h.SumLo)
		k.nested[i] = h.NestedNs
	}
}

// setKernelTotals takes the functions' histograms from the in-kernel
// totals.
func (a *tally) setKernelTotals(k *kernelTotals) {
	for i := range a.hists {
		if i >= len(k.hists) {
			break
		}
		a.hists[i], a.nested[i] = k.hists[i], k.nested[i]
	}
}

// setCosts takes the calibration's latest costs, which reports state, for
// each cgroup's tally too.
func (a *tally) setCosts(costs probes.Costs) {
	a.costs = costs
	for _, c := range a.cgroups {
		c.setCosts(costs)
	}
}

// reset starts the tally anew, with histograms of its own: the reports
// made before keep theirs.
func (a *tally) reset() {
	if a.cgroups != nil {
		a.cgroups = map[uint64]*tally{}
	}
	for i := range a.hists {
		a.hists[i] = report.NewHistogram()
		a.noReturn[i] = 0
		a.nested[i] = 0
	}
}

// clone is a copy that counting in a does not change.
func (a *tally) clone() *tally {
	c := *a
	c.hists = make([]*report.Histogram, len(a.hists))
	for i, h := range a.hists {
		c.hists[i] = h.Clone() // a few hundred bytes for most functions, not 18 KB
	}
	c.noReturn = append([]uint64(nil), a.noReturn...)
	c.nested = append([]uint64(nil), a.nested...)
	c.targets = append([]target(nil), a.targets...)
	if a.cgroups != nil {
		c.cgroups = make(map[uint64]*tally, len(a.cgroups))
		for id, t := range a.cgroups {
			c.cgroups[id] = t.clone()
		}
	}
	return &c
}

// report builds the report; left, when not nil, adds the calls still
// recorded as in flight when tracing ended.
func (a *tally) report(elapsed time.Duration, lost probes.Counters, left *probes.Unfinished, warnings []string) *report.Report {
	r := &report.Report{
		Elapsed:           elapsed,
		Lost:              report.Lost{DroppedEvents: lost.Dropped, UnpairedExits: lost.Unpaired},
		Warnings:          warnings,
		OverheadCorrected: a.correct,
	}
	if left != nil {
		r.Lost.InFlight = left.InFlight
	}
	if a.cgroups != nil {
		// Calls in flight at the end are known per function only: they
		// are in Lost.InFlight, not in any cgroup's DidNotReturn.
		ids := slices.Sorted(maps.Keys(a.cgroups))
		for _, id := range ids {
			for _, fs := range a.cgroups[id].report(elapsed, lost, nil, nil).Functions {
				if fs.Hist.Count() == 0 && fs.DidNotReturn == 0 {
					continue // not called in that cgroup
				}
				fs.Cgroup = id
				r.Functions = append(r.Functions, fs)
			}
		}
		return r
	}
	for i, t := range a.targets {
		if t.refused {
			continue
		}
		fs := report.FunctionStats{Function: t.name, Binary: t.binary, Hist: a.hists[i], DidNotReturn: a.noReturn[i]}
		if left != nil {
			fs.DidNotReturn += left.NoReturn[uint32(i)]
		}
		if len(a.costs.Kinds) > 0 {
			fs.ProbeOverheadNs, fs.ProbeKind = a.costs.Kinds[t.overhead].Inner, t.overhead.String()
			if n := a.hists[i].Count(); n > 0 {
				fs.NestedOverheadNs = a.nested[i] / n
			}
			fs.UncertaintyNs = a.costs.Uncertainty(t.overhead, fs.NestedOverheadNs)
		}
		r.Functions = append(r.Functions, fs)
	}
	return r
}
