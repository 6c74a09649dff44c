// Package x has the functions the module's program, tests and benchmarks
// call: their names have slashes in them (example.com/m/x.Work), as
// functions of every Go package outside main do.
package x

import "time"

// Work sleeps d: a call whose duration is known.
//
//go:noinline
func Work(d time.Duration) int {
	time.Sleep(d)
	return int(d)
}

// Spin computes for a while: a benchmark's body.
//
//go:noinline
func Spin(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i
	}
	return s
}
