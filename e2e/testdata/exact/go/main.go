// Go functions whose every call times itself, for the exact-percentile
// tests: the Go twin of ../exact.c (read its comment for the design).
// Usage: exact N [SCALE]
//
// Each function busy-waits on the monotonic clock (runtime.nanotime,
// CLOCK_MONOTONIC through the vDSO) for a duration drawn beforehand from a
// fixed-seed PRNG, and measures itself from the inside: the start time is
// its first act, the end time (the loop's last clock read) its last,
// followed only by a store and the return. Nothing is allocated during the
// calls, so the garbage collector has no reason to run among them.
//
//	narrow      1 ms ± 0.2% (uniform)
//	bimodal     70%: 200 µs ± 5%, 30%: 3 ms ± 5% (uniform within each mode)
//	loguniform  log-uniform between 100 µs and 5 ms
//	short       log-uniform between 4 µs and 9 µs
//
// SCALE (default 1) multiplies every duration.
//
// The calls are interleaved (narrow, bimodal, loguniform, short, narrow,
// ...) so that whatever disturbs the machine falls on every distribution
// alike, and every interval of `ulat trace --interval` holds calls of all
// four. Then one line per function:
//
//	name count=N p50=… p90=… p99=… min=… max=…
//
// with nearest-rank percentiles of the inner durations in ns: rank =
// ceil(p/100*N), value = sorted[rank-1]. With EXACT_DUMP=FILE in the
// environment, it also writes every inner duration to FILE, sorted, a line
// per function: `name d1 d2 ... dN`.
package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	_ "unsafe" // for go:linkname
)

// nanotime is the runtime's monotonic clock (CLOCK_MONOTONIC through the
// vDSO), which time.Now and time.Since read too. It is nosplit: calling it
// is no preemption point, so nothing the scheduler does can run between
// the entry probe and a function's first clock read. (A call to a helper
// that loops would be one: its stack check is where a goroutine that
// sysmon asked to yield yields, after the entry probe and before the
// clock read, and ulat then counts microseconds the function does not.)
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Each function is its own busy-wait, for that reason: the first clock
// read is its first act after the entry probe, the last read its last but
// a store and the return.

//go:noinline
func narrow(d int64, inner *int64) {
	start := nanotime()
	t := nanotime()
	for t-start < d {
		t = nanotime()
	}
	*inner = t - start
}

//go:noinline
func bimodal(d int64, inner *int64) {
	start := nanotime()
	t := nanotime()
	for t-start < d {
		t = nanotime()
	}
	*inner = t - start
}

//go:noinline
func loguniform(d int64, inner *int64) {
	start := nanotime()
	t := nanotime()
	for t-start < d {
		t = nanotime()
	}
	*inner = t - start
}

//go:noinline
func short(d int64, inner *int64) {
	start := nanotime()
	t := nanotime()
	for t-start < d {
		t = nanotime()
	}
	*inner = t - start
}

// rng is splitmix64 with a constant seed: the same durations on every run.
var rng uint64 = 0x5eed0f0e7ac7

func uniform() float64 {
	rng += 0x9e3779b97f4a7c15
	z := rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53) // [0, 1)
}

// stratified draws n quantiles, one in each of n equal slices of [0, 1),
// in random order, which each distribution maps through its inverse CDF:
// its sorted durations are spread evenly (see stratified in ../exact.c).
func stratified(n int) []float64 {
	q := make([]float64, n)
	for i := range q {
		q[i] = (float64(i) + uniform()) / float64(n)
	}
	for i := n - 1; i > 0; i-- {
		j := int(uniform() * float64(i+1))
		q[i], q[j] = q[j], q[i]
	}
	return q
}

// inverse are the distributions' inverse CDFs, in ns, of u in [0, 1).
var inverse = [4]func(u float64) float64{
	func(u float64) float64 { return 998e3 + 4e3*u }, // narrow
	func(u float64) float64 { // bimodal
		if u < 0.7 {
			return 190e3 + 20e3*(u/0.7)
		}
		return 2850e3 + 300e3*((u-0.7)/0.3)
	},
	func(u float64) float64 { return 100e3 * math.Exp(math.Log(50)*u) }, // loguniform
	func(u float64) float64 { return 4e3 * math.Exp(math.Log(2.25)*u) }, // short
}

// at is the nearest-rank percentile p (an integer) of sorted: rank
// ceil(p*n/100).
func at(sorted []int64, p int) int64 { return sorted[(p*len(sorted)+99)/100-1] }

func main() {
	n, scale, err := 0, int64(1), error(nil)
	if len(os.Args) >= 2 {
		n, err = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) == 3 && err == nil {
		scale, err = strconv.ParseInt(os.Args[2], 10, 64)
	}
	if len(os.Args) < 2 || len(os.Args) > 3 || err != nil || n < 1 || n > 1000000 || scale < 1 || scale > 1000 {
		fmt.Fprintln(os.Stderr, "usage: exact N (1..1000000) [SCALE (1..1000)]")
		os.Exit(2)
	}
	names := []string{"narrow", "bimodal", "loguniform", "short"}
	var want, inner [4][]int64
	for k := range want {
		want[k] = make([]int64, n)
		inner[k] = make([]int64, n)
		for i, u := range stratified(n) {
			want[k][i] = int64(float64(scale) * inverse[k](u))
		}
	}
	// Every page the calls write to is touched before the first call: a
	// page fault on the store after the last clock read would be counted
	// by ulat and not by the function.
	for k := range inner {
		for i := range inner[k] {
			inner[k][i] = -1
		}
	}
	for i := 0; i < n; i++ {
		narrow(want[0][i], &inner[0][i])
		bimodal(want[1][i], &inner[1][i])
		loguniform(want[2][i], &inner[2][i])
		short(want[3][i], &inner[3][i])
	}
	var dump strings.Builder
	for k, name := range names {
		s := inner[k]
		slices.Sort(s)
		fmt.Printf("%s count=%d p50=%d p90=%d p99=%d min=%d max=%d\n", name, n,
			at(s, 50), at(s, 90), at(s, 99), s[0], s[n-1])
		dump.WriteString(name)
		for _, d := range s {
			dump.WriteString(" " + strconv.FormatInt(d, 10))
		}
		dump.WriteString("\n")
	}
	if path := os.Getenv("EXACT_DUMP"); path != "" {
		if err := os.WriteFile(path, []byte(dump.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
