// A Go target whose traced functions do not always return.
// Usage: gounwind N
//
// panicky is called N times; every odd call panics and is recovered by its
// caller, so N/2 calls return and N/2 do not. goexiter is called by N
// goroutines and ends each of them with runtime.Goexit, so none returns.
// recurse(5) then panics at the bottom of 6 nested calls, unwinding all of
// them, and works (called N times afterwards) must still pair correctly.
// With TARGET_WAIT set in the environment it first waits for a line on stdin.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
)

//go:noinline
func panicky(i int) int {
	if i%2 == 1 {
		panic(i)
	}
	return i
}

func callPanicky(i int) (r int) {
	defer func() {
		if v := recover(); v != nil {
			r = -1
		}
	}()
	return panicky(i)
}

//go:noinline
func goexiter(wg *sync.WaitGroup) {
	wg.Done()
	runtime.Goexit()
}

//go:noinline
func recurse(n int) int {
	if n == 0 {
		panic("bottom")
	}
	return recurse(n-1) + 1
}

//go:noinline
func works(i int) int { return i * 2 }

func main() {
	n, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if len(os.Args) != 2 || err != nil {
		fmt.Fprintln(os.Stderr, "usage: gounwind N")
		os.Exit(2)
	}
	if os.Getenv("TARGET_WAIT") != "" {
		// Lets a test attach to this pid before any traced call.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			os.Exit(3)
		}
	}
	sum := 0
	for i := 0; i < n; i++ {
		sum += callPanicky(i)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go goexiter(&wg)
	}
	wg.Wait()
	func() {
		defer func() { recover() }()
		recurse(5)
	}()
	for i := 0; i < n; i++ {
		sum += works(i)
	}
	fmt.Printf("sum=%d\n", sum)
}
