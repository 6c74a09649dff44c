package report

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// ErrMerge is returned (wrapped) by Merge for documents that cannot be
// merged into one report.
var ErrMerge = errors.New("cannot merge reports")

// FunctionKey names a function across runs: by its name and its file's base
// name, since checkouts (and so absolute paths) differ from run to run.
func FunctionKey(function, binary string) string {
	return filepath.Base(binary) + ":" + function
}

// Merge adds up several runs' documents into one report: per function (by
// FunctionKey) the histograms and did-not-return counts, and the loss
// counters and wall time of every run. Functions keep the order of their
// first appearance. The runs must agree on whether the probe overhead was
// subtracted; the merged overhead of a function is the mean of its runs'.
// Its uncertainty is the largest run's, or, when the runs' calibrations of
// its probes differ by more, half their range: the merged durations were
// corrected by costs that far apart.
func Merge(docs []*JSONReport) (*Report, error) {
	if len(docs) == 0 {
		return nil, fmt.Errorf("no reports: %w", ErrMerge)
	}
	out := &Report{OverheadCorrected: docs[0].OverheadCorrected}
	index := map[string]int{}
	overheadSum := map[string]uint64{}
	overheadRuns := map[string]uint64{}
	overheadMin, overheadMax := map[string]uint64{}, map[string]uint64{}
	nestedSum := map[string]uint64{}
	binaries := map[Binary]bool{}
	for n, d := range docs {
		if d.OverheadCorrected != out.OverheadCorrected {
			return nil, fmt.Errorf("report %d has overhead_corrected %v, report 1 %v (one was recorded raw): %w",
				n+1, d.OverheadCorrected, out.OverheadCorrected, ErrMerge)
		}
		out.Elapsed += time.Duration(d.ElapsedNs)
		out.Lost.DroppedEvents += d.Lost.DroppedEvents
		out.Lost.UnpairedExits += d.Lost.UnpairedExits
		out.Lost.InFlight += d.Lost.InFlight
		out.Facts.Runs += max(d.Runs, 1)
		out.Warnings = append(out.Warnings, d.Warnings...)
		for _, b := range d.Binaries {
			if !binaries[Binary(b)] {
				binaries[Binary(b)] = true
				out.Facts.Binaries = append(out.Facts.Binaries, Binary(b))
			}
		}
		for i := range d.Functions {
			f := &d.Functions[i]
			h, err := f.Histogram()
			if err != nil {
				return nil, fmt.Errorf("report %d: %w", n+1, err)
			}
			key := FunctionKey(f.Function, f.Binary)
			j, ok := index[key]
			if !ok {
				j = len(out.Functions)
				index[key] = j
				out.Functions = append(out.Functions, FunctionStats{Function: f.Function, Binary: f.Binary, Hist: NewHistogram(), ProbeKind: f.ProbeKind})
			}
			out.Functions[j].Hist.Merge(h)
			out.Functions[j].DidNotReturn += f.DidNotReturn
			// The merged figures are as uncertain as the most uncertain
			// run's; the nested cost is weighted by calls.
			out.Functions[j].UncertaintyNs = max(out.Functions[j].UncertaintyNs, f.ProbeUncertaintyNs)
			nestedSum[key] += f.NestedProbeOverheadNs * f.Count
			if f.ProbeOverheadNs != 0 {
				overheadSum[key] += f.ProbeOverheadNs
				overheadRuns[key]++
				if lo, ok := overheadMin[key]; !ok || f.ProbeOverheadNs < lo {
					overheadMin[key] = f.ProbeOverheadNs
				}
				overheadMax[key] = max(overheadMax[key], f.ProbeOverheadNs)
			}
		}
	}
	for key, j := range index {
		if overheadRuns[key] > 0 {
			out.Functions[j].ProbeOverheadNs = overheadSum[key] / overheadRuns[key]
			if out.OverheadCorrected {
				spread := (overheadMax[key] - overheadMin[key] + 1) / 2
				out.Functions[j].UncertaintyNs = max(out.Functions[j].UncertaintyNs, spread)
			}
		}
		if n := out.Functions[j].Hist.Count(); n > 0 {
			out.Functions[j].NestedOverheadNs = nestedSum[key] / n
		}
	}
	// Facts that hold for every run are kept; ones that differ are not
	// made up.
	first := docs[0]
	out.Facts.UlatVersion, out.Facts.Kernel, out.Facts.Command = first.UlatVersion, first.Kernel, first.Command
	out.Facts.Aggregation = first.Aggregation
	for _, d := range docs[1:] {
		if d.Aggregation != out.Facts.Aggregation {
			out.Facts.Aggregation = ""
		}
		if d.UlatVersion != out.Facts.UlatVersion {
			out.Facts.UlatVersion = ""
		}
		if d.Kernel != out.Facts.Kernel {
			out.Facts.Kernel = ""
		}
		if fmt.Sprint(d.Command) != fmt.Sprint(out.Facts.Command) {
			out.Facts.Command = nil
		}
	}
	return out, nil
}
