package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

type table struct{ w *tabwriter.Writer }

func newTable() *table {
	return &table{tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)}
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.w, strings.Join(cells, "\t"))
}

func (t *table) flush() { t.w.Flush() }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minMax(xs []float64) (lo, hi float64) {
	for i, x := range xs {
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// fmtNs prints a per-call time: ns below a microsecond, µs above.
func fmtNs(ns float64) string {
	if ns > -1000 && ns < 1000 {
		return fmt.Sprintf("%.1f ns", ns)
	}
	return fmt.Sprintf("%.2f µs", ns/1000)
}

func fmtSec(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtMB(kb int64) string {
	return fmt.Sprintf("%.0f MB", float64(kb)/1024)
}

func medianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}
