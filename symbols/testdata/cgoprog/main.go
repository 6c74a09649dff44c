// cgo target for the symbols tests: C functions inside a Go binary are
// native (uretprobe), the Go ones are probed at their RETs.
package main

/*
__attribute__((noinline)) int cexported(int a) { return a * 5 + 2; }
*/
import "C"

import "fmt"

//go:noinline
func work(n int) int { return int(C.cexported(C.int(n))) }

func main() { fmt.Println(work(3)) }
