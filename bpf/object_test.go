package bpf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// objects are the committed objects, with the pt_regs offset of the
// register Go keeps g in for their architecture.
var objects = []struct {
	file, goarch string
	gOffset      int16
}{
	{"ulat_x86.bpf.o", "amd64", 8},        // struct pt_regs: r15 at 0, r14 at 8
	{"ulat_arm64.bpf.o", "arm64", 28 * 8}, // struct user_pt_regs: regs[28]
}

// Each architecture's object has every program and map, reads g from the
// right register, and the one for this architecture is embedded.
func TestObjects(t *testing.T) {
	for _, o := range objects {
		t.Run(o.goarch, func(t *testing.T) {
			obj, err := os.ReadFile(o.file)
			if err != nil {
				t.Fatalf("read the %s object: %v", o.goarch, err)
			}
			checkObject(t, obj, o.gOffset)
			if o.goarch == runtime.GOARCH && !bytes.Equal(obj, Object) {
				t.Errorf("Object is not %s", o.file)
			}
		})
	}
}

// The committed objects are those of the committed sources: objects.sha256,
// which `make bpf` writes, must match every source and object. Comparing
// the objects with a fresh build would not do: another clang version
// builds other bytes from the same source.
func TestObjectsUpToDate(t *testing.T) {
	data, err := os.ReadFile("objects.sha256")
	if err != nil {
		t.Fatalf("%v: make bpf writes it", err)
	}
	listed := map[string]bool{}
	var stale []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("objects.sha256: line %q is not sha256sum's \"SUM  PATH\"", line)
		}
		sum, path := f[0], f[1]
		listed[path] = true
		b, err := os.ReadFile(filepath.Join("..", path))
		if err != nil {
			t.Errorf("objects.sha256 lists %s: %v", path, err)
			continue
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
			stale = append(stale, path)
		}
	}
	if len(stale) > 0 {
		t.Errorf("%s changed since `make bpf` last built the objects: run make bpf and commit bpf/", strings.Join(stale, ", "))
	}
	// A source left out of the Makefile's BPF_SRC would go unchecked.
	want := []string{"libbpf/VERSION"}
	for _, pattern := range []string{"*.c", "*.h", "*.bpf.o"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			want = append(want, "bpf/"+p)
		}
	}
	for _, p := range want {
		if !listed[p] {
			t.Errorf("objects.sha256 does not list %s: add it to the Makefile's BPF_SRC or BPF_OBJS and run make bpf", p)
		}
	}
}
