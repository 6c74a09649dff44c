// Target for the symbols tests. Copied into a temporary directory and built
// there; it is not part of the ulat module.
package main

import (
	"fmt"
	"os"
)

type T struct{ n int }

//go:noinline
func (t *T) Inc(d int) int { t.n += d; return t.n }

//go:noinline
func (t *T) Get() int { return t.n }

//go:noinline
func work(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i
	}
	return s
}

// twoWays returns on two paths, each with its own RET.
//
//go:noinline
func twoWays(n int) string {
	if n > 10 {
		return fmt.Sprint("big", n)
	}
	var buf [64]byte
	for i := range buf {
		buf[i] = byte(n + i)
	}
	return string(buf[:n%5])
}

// bigFrame has a frame larger than the runtime's StackBig, so its stack
// check is the long form (underflow guard, then CMPQ against R14).
//
//go:noinline
func bigFrame(n int) int {
	var buf [10000]byte
	for i := range buf {
		buf[i] = byte(i * n)
	}
	s := 0
	for _, c := range buf {
		s += int(c)
	}
	return s
}

// leaf has no stack check.
//
//go:noinline
//go:nosplit
func leaf(a, b int) int { return a*b + 1 }

// empty compiles to a lone RET.
//
//go:noinline
func empty() {}

// boom never returns normally.
//
//go:noinline
func boom(s string) { panic("boom: " + s) }

// tiny is inlined into its only caller and has no out-of-line copy.
func tiny(x int) int { return x*3 + 1 }

func main() {
	t := &T{}
	t.Inc(len(os.Args))
	empty()
	if len(os.Args) > 5 {
		boom(os.Args[1])
	}
	fmt.Println(work(len(os.Args)), twoWays(len(os.Args)), bigFrame(len(os.Args)),
		leaf(3, len(os.Args)), t.Get(), tiny(len(os.Args)))
}
