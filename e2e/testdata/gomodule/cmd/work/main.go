// Calls example.com/m/x.Work CALLS times (and x.Spin as many), after a
// line on stdin when TARGET_WAIT is set.
// Usage: work CALLS
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"time"

	"example.com/m/x"
)

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage: work CALLS")
		os.Exit(2)
	}
	if os.Getenv("TARGET_WAIT") != "" {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			os.Exit(3)
		}
	}
	sum := 0
	for i := 0; i < n; i++ {
		sum += x.Work(time.Millisecond) + x.Spin(100)
	}
	fmt.Println(sum)
}
