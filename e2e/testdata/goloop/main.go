// A Go target that calls work in a loop on several goroutines until its
// stdin closes, checks every result, and prints "calls N ok" (or what
// was wrong): what a tracer coming and going under load must leave alone.
// Usage: goloop GOROUTINES
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

//go:noinline
func work(i int) int {
	if i%64 == 0 {
		runtime.Gosched() // resume on another thread mid-call, now and then
	}
	return square(i) + 1
}

//go:noinline
func square(i int) int { return i * i }

func main() {
	n, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if len(os.Args) != 2 || err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: goloop GOROUTINES")
		os.Exit(2)
	}
	var stop atomic.Bool
	var calls, wrong atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if work(i) != i*i+1 {
					wrong.Add(1)
				}
				calls.Add(1)
			}
		}()
	}
	fmt.Println("running")
	io.Copy(io.Discard, os.Stdin)
	stop.Store(true)
	wg.Wait()
	if w := wrong.Load(); w != 0 {
		fmt.Printf("calls %d: %d WRONG results\n", calls.Load(), w)
		os.Exit(1)
	}
	fmt.Printf("calls %d ok\n", calls.Load())
}
