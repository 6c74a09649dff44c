package agent

import (
	"cmp"
	"slices"
	"time"

	"github.com/ulat-dev/ulat/report"
)

// series is one function's histogram series: the calls of a target's
// function in one place (container), all of the files the target traces
// at one path (a file replaced by an upgrade, and the new one) together.
type series struct {
	target      Target
	binary      string
	function    string
	where       where
	hist        *report.Histogram
	merged      bool // hist is the series' own, not a snapshot's
	notReturned uint64
	// started is when the earliest of its sessions started: its counts
	// are cumulative from then. When that session ends (its file replaced
	// and its processes gone), the counts drop and started moves on.
	started time.Time
}

// overLimit labels the calls of a file's containers past the bound on
// them (max_series over its functions), counted together.
var overLimit = where{container: "_over_limit"}

// fileTotals are what a target's file counts besides calls.
type fileTotals struct {
	target    Target
	binary    string
	dropped   uint64
	unpaired  uint64
	processes int
	started   time.Time // as series'
}

// seriesOf merges snapshots into series and totals, in a stable order.
func (a *Agent) seriesOf(snaps []snapshot) ([]*series, []*fileTotals) {
	type seriesKey struct {
		target, binary, function string
		where                    where
	}
	type fileKey struct{ target, binary string }
	a.mu.Lock()
	containers := a.cfg.Containers()
	a.mu.Unlock()
	byKey := map[seriesKey]*series{}
	totals := map[fileKey]*fileTotals{}
	var out []*series
	var files []*fileTotals
	for _, sn := range snaps {
		fk := fileKey{sn.target.Name, sn.exe}
		ft := totals[fk]
		if ft == nil {
			ft = &fileTotals{target: sn.target, binary: sn.exe, started: sn.started}
			totals[fk] = ft
			files = append(files, ft)
		}
		ft.started = earliest(ft.started, sn.started)
		ft.dropped += sn.r.Lost.DroppedEvents
		ft.unpaired += sn.r.Lost.UnpairedExits
		ft.processes += sn.processes
		for _, f := range sn.r.Functions {
			var w where
			switch {
			case f.Cgroup != 0:
				w = a.places.of(f.Cgroup)
			case containers:
				w = overLimit // the calls of containers past the session's bound
			}
			k := seriesKey{sn.target.Name, sn.exe, f.Function, w}
			se := byKey[k]
			if se == nil {
				// The snapshot's own histogram, copied only when another
				// is merged into it.
				se = &series{target: sn.target, binary: sn.exe, function: f.Function, where: w, hist: f.Hist, started: sn.started}
				byKey[k] = se
				out = append(out, se)
			} else {
				if !se.merged {
					se.hist, se.merged = se.hist.Clone(), true
				}
				se.hist.Merge(f.Hist)
			}
			se.started = earliest(se.started, sn.started)
			se.notReturned += f.DidNotReturn
		}
	}
	slices.SortStableFunc(out, func(x, y *series) int {
		return cmp.Or(cmp.Compare(x.target.Name, y.target.Name), cmp.Compare(x.binary, y.binary), cmp.Compare(x.function, y.function),
			cmp.Compare(x.where.namespace, y.where.namespace), cmp.Compare(x.where.pod, y.where.pod), cmp.Compare(x.where.container, y.where.container))
	})
	return out, files
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// exported are the series of snaps the agent exports, to Prometheus and over OTLP
// alike: those within max_series, the totals of every file, and how many
// series max_series left out.
func (a *Agent) exported(snaps []snapshot) (served []*series, files []*fileTotals, over int) {
	a.mu.Lock()
	limit := a.cfg.MaxSeries
	a.mu.Unlock()
	all, files := a.seriesOf(snaps)
	if len(all) > limit {
		served, over = all[:limit], len(all)-limit
	} else {
		served = all
	}
	return served, files, over
}
