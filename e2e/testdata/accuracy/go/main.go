// Go functions of known duration for the accuracy tests. Usage: accuracy N
// spin50 busy-waits 50 µs and sleep2 sleeps 2 ms, N times each. Each call
// also times itself from the inside, between where the probes fire, and the
// medians of those are printed: the truth ulat's corrected figures are
// checked against.
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"
)

var inner [2][]time.Duration

//go:noinline
func spin50() int {
	start := time.Now()
	n := 0
	for end := start.Add(50 * time.Microsecond); time.Now().Before(end); n++ {
	}
	inner[0] = append(inner[0], time.Since(start))
	return n
}

//go:noinline
func sleep2() int {
	start := time.Now()
	time.Sleep(2 * time.Millisecond)
	inner[1] = append(inner[1], time.Since(start))
	return 1
}

func median(d []time.Duration) int64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return int64(d[len(d)/2])
}

func main() {
	n, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if len(os.Args) != 2 || err != nil {
		fmt.Fprintln(os.Stderr, "usage: accuracy N")
		os.Exit(2)
	}
	total := 0
	for i := 0; i < n; i++ {
		if spin50() > 0 {
			total++
		}
	}
	for i := 0; i < n; i++ {
		total += sleep2()
	}
	fmt.Printf("total=%d spin50_p50=%d sleep2_p50=%d\n", total, median(inner[0]), median(inner[1]))
}
