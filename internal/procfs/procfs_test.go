package procfs

import (
	"os"
	"slices"
	"strconv"
	"testing"
)

func TestOwnProcess(t *testing.T) {
	pids, err := Pids()
	if err != nil || !slices.Contains(pids, os.Getpid()) {
		t.Fatalf("Pids: %v, %v: the test's own pid %d is missing", len(pids), err, os.Getpid())
	}
	f, err := StatFields(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if f[0] != "R" && f[0] != "S" {
		t.Errorf("state %q, want R or S", f[0])
	}
	if f[1] != strconv.Itoa(os.Getppid()) {
		t.Errorf("parent %s, want %d", f[1], os.Getppid())
	}
	if _, err := StatFields(1 << 30); err == nil {
		t.Error("a pid that cannot exist has a stat file")
	}
}
