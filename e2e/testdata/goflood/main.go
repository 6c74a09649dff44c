// More calls in flight at once than ulat's map of entries holds (65536):
// N goroutines all enter block and wait there until every one has entered;
// then after is called 100 times. Usage: goflood N
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

//go:noinline
func block(entered *sync.WaitGroup, release chan struct{}) int {
	entered.Done()
	<-release
	return 1
}

//go:noinline
func after(i int) int { return i + 1 }

func main() {
	n, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if len(os.Args) != 2 || err != nil {
		fmt.Fprintln(os.Stderr, "usage: goflood N")
		os.Exit(2)
	}
	var entered, done sync.WaitGroup
	release := make(chan struct{})
	results := make([]int, n)
	entered.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) {
			defer done.Done()
			results[i] = block(&entered, release)
		}(i)
	}
	entered.Wait()
	close(release)
	done.Wait()
	total := 0
	for _, r := range results {
		total += r
	}
	for i := 0; i < 100; i++ {
		total += after(i)
	}
	fmt.Printf("total=%d\n", total)
}
