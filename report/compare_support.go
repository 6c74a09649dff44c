package report

// BinRange is one non-empty HDR bin with its whole range of equivalent
// values, [LoNs, HiNs] (both inclusive).
type BinRange struct{ LoNs, HiNs, Count uint64 }

// BinRanges returns the non-empty HDR bins in increasing order with both
// edges. Percentile(p) is the HiNs of the bin that holds the call of rank
// p/100*Count (rounded to nearest, at least 1), clamped into [Min, Max]; so
// a comparison can recompute percentiles of resampled bin counts exactly as
// Percentile would.
func (h *Histogram) BinRanges() []BinRange {
	if h.Count() == 0 {
		return nil
	}
	var out []BinRange
	for _, b := range h.data.hdr.Distribution() {
		if b.Count > 0 {
			out = append(out, BinRange{LoNs: uint64(b.From), HiNs: uint64(b.To), Count: uint64(b.Count)})
		}
	}
	return out
}
