package report

import (
	"fmt"
	"math/bits"
	"strconv"
)

var durationUnits = []struct {
	div  uint64
	name string
}{{1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}}

// FormatDuration renders ns with three significant digits in the largest unit
// that keeps at least one integer digit: "850ns", "12.3µs", "2.05ms", "1.20s".
// Seconds are the largest unit, so long durations read "90.0s" or "3600s".
func FormatDuration(ns uint64) string {
	if ns < 1000 {
		return strconv.FormatUint(ns, 10) + "ns"
	}
	for i, u := range durationUnits {
		last := i == len(durationUnits)-1
		for decimals, scale := 2, uint64(100); decimals >= 0; decimals, scale = decimals-1, scale/10 {
			// Integer rounding, split so that nothing overflows even for MaxUint64.
			q := ns/u.div*scale + (ns%u.div*scale+u.div/2)/u.div
			// Rounding can carry into a fourth digit (9995ns -> 10.00µs); then
			// drop a decimal or move to the next unit.
			if q >= 1000 && !(last && decimals == 0) {
				continue
			}
			if decimals == 0 {
				return strconv.FormatUint(q, 10) + u.name
			}
			return fmt.Sprintf("%d.%0*d%s", q/scale, decimals, q%scale, u.name)
		}
	}
	panic("unreachable")
}

// bucketLabel renders a power-of-two bucket the way bpftrace's hist() does.
func bucketLabel(b log2Bucket) string {
	switch b.LoNs {
	case 0:
		return "[0]"
	case 1:
		return "[1]"
	}
	k := bits.Len64(b.LoNs) - 1
	return "[" + pow2Label(k) + ", " + pow2Label(k+1) + ")"
}

// pow2Label renders 2^k with bpftrace's binary suffixes: 512, 1K, 2M, 16E.
func pow2Label(k int) string {
	return strconv.Itoa(1<<(k%10)) + []string{"", "K", "M", "G", "T", "P", "E"}[k/10]
}
