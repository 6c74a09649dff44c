package report

import (
	"math"
	"testing"
)

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		ns   uint64
		want string
	}{
		{0, "0ns"},
		{850, "850ns"},
		{999, "999ns"},
		{1000, "1.00µs"},
		{1005, "1.01µs"}, // rounds half up
		{9995, "10.0µs"}, // rounding carries into a fourth digit
		{12345, "12.3µs"},
		{123456, "123µs"},
		{999_499, "999µs"},
		{999_500, "1.00ms"}, // carries into the next unit
		{2_050_000, "2.05ms"},
		{1_200_000_000, "1.20s"},
		{90e9, "90.0s"},
		{3600e9, "3600s"},
		{math.MaxUint64, "18446744074s"},
	} {
		if got := FormatDuration(tc.ns); got != tc.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", tc.ns, got, tc.want)
		}
	}
}
