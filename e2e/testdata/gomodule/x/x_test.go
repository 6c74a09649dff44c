package x

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestWork calls Work WORK_CALLS times (default 20), and prints how many
// times it did: the count ulat's is checked against.
func TestWork(t *testing.T) {
	n := 20
	if v, err := strconv.Atoi(os.Getenv("WORK_CALLS")); err == nil {
		n = v
	}
	calls := 0
	for i := 0; i < n; i++ {
		if Work(time.Millisecond) != int(time.Millisecond) {
			t.Fatal("Work returned the wrong value")
		}
		calls++
	}
	fmt.Printf("TestWork: %d calls\n", calls)
}

func BenchmarkSpin(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Spin(200000)
	}
}
