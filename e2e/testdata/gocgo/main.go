// A cgo target: callC calls the C function cwork through cgo, N times, from
// several goroutines. Usage: gocgo N
package main

/*
__attribute__((noinline)) long cwork(long x) {
	__asm__ volatile("" ::: "memory");
	return x * 2 + 1;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

//go:noinline
func callC(i int) int { return int(C.cwork(C.long(i))) }

func main() {
	n, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if len(os.Args) != 2 || err != nil {
		fmt.Fprintln(os.Stderr, "usage: gocgo N")
		os.Exit(2)
	}
	var wg sync.WaitGroup
	sums := make([]int, 4)
	for g := range sums {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				sums[g] += callC(i)
			}
		}(g)
	}
	wg.Wait()
	fmt.Println("sum", sums[0]+sums[1]+sums[2]+sums[3])
}
