package main

import (
	"testing"

	"github.com/ulat-dev/ulat/probes"
)

// In-kernel histograms become the report's: over the whole session with
// the exact min, max and sum; over an interval, minus the previous reading.
func TestAggregateSetKernel(t *testing.T) {
	slot := func(ns uint64) int {
		for i := 0; i < probes.HistSlots; i++ {
			if lo, hi := probes.SlotBounds(i); lo <= ns && ns < hi {
				return i
			}
		}
		t.Fatalf("no bucket holds %d", ns)
		return -1
	}
	var before, now probes.Histogram
	before.Count, before.SumLo, before.Min, before.Max = 2, 2_000, 1_000, 1_000
	before.Slots[slot(1_000)] = 2
	now = before
	now.Count, now.SumLo, now.Max = 5, 2_000+3*50_000, 50_000
	now.Slots[slot(50_000)] = 3

	a := newAggregate([]target{{name: "f"}}, nil, false, true)
	a.setKernel([]probes.Histogram{now}, nil)
	h := a.hists[0]
	if h.Count() != 5 || h.Min() != 1_000 || h.Max() != 50_000 || h.Mean() != (2_000+150_000)/5 {
		t.Errorf("session: count/min/max/mean = %d/%d/%d/%d", h.Count(), h.Min(), h.Max(), h.Mean())
	}
	if p := h.Percentile(90); p < 48_500 || p > 51_500 {
		t.Errorf("session p90 = %d, want 50000 within 3%%", p)
	}

	a.setKernel([]probes.Histogram{now}, []probes.Histogram{before})
	h = a.hists[0]
	if h.Count() != 3 || h.Mean() != 50_000 {
		t.Errorf("window: count/mean = %d/%d, want 3/50000", h.Count(), h.Mean())
	}
	// The bucket's edges, the max no higher than the session's.
	if lo, _ := probes.SlotBounds(slot(50_000)); h.Min() != lo || h.Max() != 50_000 {
		t.Errorf("window: min/max = %d/%d, want %d/50000", h.Min(), h.Max(), lo)
	}
}
