// A Go target whose call counts and durations are known by construction.
// Usage: gotarget GOROUTINES CALLS SLEEP
// Each goroutine calls work CALLS times; work sleeps SLEEP and yields, so
// goroutines park and resume on other threads in the middle of calls. Then
// recurse(10) makes 11 nested calls, and grow makes one call during which
// the goroutine's stack is grown (and copied) several times.
// With TARGET_WAIT set in the environment it first waits for a line on stdin.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

//go:noinline
func work(d time.Duration, ch chan int) int {
	time.Sleep(d)
	runtime.Gosched()
	ch <- 1 // park on a channel too
	return <-ch
}

//go:noinline
func recurse(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + recurse(n-1)
}

//go:noinline
func deep(n int) int {
	var pad [1024]byte
	pad[n%1024] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%1024])
}

// tiny is small enough that the compiler inlines it into every caller:
// ulat must say it cannot be timed.
func tiny(x int) int { return x + 1 }

// grow is traced: its goroutine starts with a small stack, and deep forces
// the runtime to move the stack while grow's call is in flight.
//
//go:noinline
func grow() int {
	return deep(200)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gotarget GOROUTINES CALLS SLEEP")
		os.Exit(2)
	}
	gs, _ := strconv.Atoi(os.Args[1])
	calls, _ := strconv.Atoi(os.Args[2])
	d, err := time.ParseDuration(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if os.Getenv("TARGET_WAIT") != "" {
		// Lets a test attach to this pid before any traced call.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			os.Exit(3)
		}
	}
	var wg sync.WaitGroup
	sums := make([]int, gs)
	for g := 0; g < gs; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ch := make(chan int, 1)
			for i := 0; i < calls; i++ {
				sums[g] += work(d, ch)
			}
		}(g)
	}
	wg.Wait()
	total := 0
	for _, s := range sums {
		total += s
	}
	done := make(chan int)
	go func() { done <- grow() }()
	fmt.Printf("total=%d recurse=%d grow=%d tiny=%d\n", total, recurse(10), <-done, tiny(total))
}
