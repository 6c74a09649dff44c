// For `ulat run` on Go: setup runs once from an init function, before
// main; step runs N times. Usage: gorun N [STATUS]
package main

import (
	"fmt"
	"os"
	"strconv"
)

var setupDone int

//go:noinline
func setup() int { return len(os.Args) }

func init() { setupDone = setup() }

//go:noinline
func step(i int) int { return i * 2 }

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	t := 0
	for i := 0; i < n; i++ {
		t += step(i)
	}
	fmt.Printf("gorun: %d steps, total %d\n", n, t)
	if len(os.Args) > 2 {
		code, _ := strconv.Atoi(os.Args[2])
		os.Exit(code)
	}
}
