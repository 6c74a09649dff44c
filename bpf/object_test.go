package bpf

import (
	"bytes"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

var wantPrograms = []string{"ulat_entry", "ulat_exit", "ulat_return", "ulat_entry_pe", "ulat_exit_pe", "ulat_return_pe"}

func checkObject(t *testing.T, obj []byte, gOffset int16) {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatalf("parse object: %v", err)
	}
	for _, name := range wantPrograms {
		p := spec.Programs[name]
		if p == nil {
			t.Errorf("program %s is missing", name)
			continue
		}
		// The goroutine pointer is read from the register Go keeps g
		// in: R14 on amd64, X28 on arm64, at these pt_regs offsets.
		found := false
		for _, ins := range p.Instructions {
			if ins.OpCode.Class() == asm.LdXClass && ins.OpCode.Size() == asm.DWord && ins.Offset == gOffset {
				found = true
			}
		}
		if !found {
			t.Errorf("program %s never loads the g register at pt_regs offset %d", name, gOffset)
		}
	}
	for _, m := range []string{"events", "starts", "counters"} {
		if spec.Maps[m] == nil {
			t.Errorf("map %s is missing", m)
		}
	}
}

// The embedded object (this host's architecture, x86-64 here).
func TestEmbeddedObject(t *testing.T) {
	checkObject(t, Object, 8) // struct pt_regs: r15 at 0, r14 at 8
}

// The arm64 object builds from the same source (make builds it and sets
// ULAT_BPF_ARM64) and reads g from X28.
func TestARM64Object(t *testing.T) {
	path := os.Getenv("ULAT_BPF_ARM64")
	if path == "" {
		t.Skip("SKIPPED: ULAT_BPF_ARM64 is set by `make test`, which builds the arm64 object")
	}
	obj, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the arm64 object: %v", err)
	}
	checkObject(t, obj, 28*8) // struct user_pt_regs: regs[28]
}
