// Command gotarget is the Go benchmark target of `make bench`: it calls a
// function of known cost N times in a tight loop and prints the average time
// per call, timed by the target itself around the loop: wall time
// (ns_per_call) and the CPU time of the thread the loop runs on
// (cpu_ns_per_call, CLOCK_THREAD_CPUTIME_ID), which the kernel's uprobe
// handling is charged to and which time spent waiting for a CPU on a busy
// machine is not.
//
//	gotarget calibrate        print how many spin iterations take ~1 µs
//	gotarget empty N          call main.empty N times
//	gotarget spin N ITERS     call main.spin(ITERS) N times
//
// main.benchMarker0..7 are never called: bench/main.go repoints their ELF
// symbols at the probe sites ulat uses (the entry and each RET of
// main.empty and main.spin), so that bpftrace 0.17, which cannot place a
// uprobe at FUNC+OFFSET without its disassembler, can probe exactly there.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

//go:noinline
func empty(x int) int { return x + 1 }

//go:noinline
func spin(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i
	}
	return s
}

var markerSink int

//go:noinline
func benchMarker0() { markerSink++ }

//go:noinline
func benchMarker1() { markerSink++ }

//go:noinline
func benchMarker2() { markerSink++ }

//go:noinline
func benchMarker3() { markerSink++ }

//go:noinline
func benchMarker4() { markerSink++ }

//go:noinline
func benchMarker5() { markerSink++ }

//go:noinline
func benchMarker6() { markerSink++ }

//go:noinline
func benchMarker7() { markerSink++ }

// threadCPU is the calling thread's CPU time (the goroutine must be locked
// to its thread).
func threadCPU() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		fmt.Fprintln(os.Stderr, "clock_gettime:", e)
		os.Exit(1)
	}
	return time.Duration(ts.Nano())
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gotarget calibrate | empty N | spin N ITERS")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	if len(os.Args) > 1000 { // never: keeps the markers in the binary
		benchMarker0()
		benchMarker1()
		benchMarker2()
		benchMarker3()
		benchMarker4()
		benchMarker5()
		benchMarker6()
		benchMarker7()
	}
	if os.Args[1] == "calibrate" {
		// Best of several rounds of 2000 calls of 1000 iterations: calls
		// of about the size measured, call overhead included.
		const calls, iters = 2000, 1000
		var best time.Duration
		sink := 0
		for r := 0; r < 9; r++ {
			t0 := time.Now()
			for c := 0; c < calls; c++ {
				sink += spin(iters)
			}
			if t := time.Since(t0) / calls; best == 0 || t < best {
				best = t
			}
		}
		fmt.Printf("iters_per_us %d\n", int64(1000.0*iters/float64(best.Nanoseconds())+0.5))
		if sink == 42 {
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 3 {
		usage()
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		usage()
	}
	runtime.LockOSThread()
	acc := 0
	var t0 time.Time
	var c0 time.Duration
	switch {
	case os.Args[1] == "empty":
		c0 = threadCPU()
		t0 = time.Now()
		for i := 0; i < n; i++ {
			acc += empty(i)
		}
	case os.Args[1] == "spin" && len(os.Args) >= 4:
		iters, err := strconv.Atoi(os.Args[3])
		if err != nil {
			usage()
		}
		c0 = threadCPU()
		t0 = time.Now()
		for i := 0; i < n; i++ {
			acc += spin(iters)
		}
	default:
		usage()
	}
	t, c := time.Since(t0), threadCPU()-c0
	fmt.Printf("ns_per_call %.3f\ncpu_ns_per_call %.3f\ncalls %d\nchecksum %d\n",
		float64(t.Nanoseconds())/float64(n), float64(c.Nanoseconds())/float64(n), n, acc)
}
