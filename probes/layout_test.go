package probes

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"

	ulatbpf "github.com/ulat-dev/ulat/bpf"
)

// The Go mirrors of struct ulat_event and ulat_call_key must match the
// compiled object's BTF member by member, or every event would be misread.
func TestLayoutMatchesBTF(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(ulatbpf.Object))
	if err != nil {
		t.Fatalf("read BTF of the bpf object: %v", err)
	}
	checkLayout(t, spec, "ulat_event", reflect.TypeOf(Event{}))
	checkLayout(t, spec, "ulat_call_key", reflect.TypeOf(callKey{}))
	checkLayout(t, spec, "ulat_call", reflect.TypeOf(call{}))
	if eventSize != reflect.TypeOf(Event{}).Size() {
		t.Errorf("eventSize %d, Event is %d bytes", eventSize, reflect.TypeOf(Event{}).Size())
	}
}

func checkLayout(t *testing.T, spec *btf.Spec, name string, goType reflect.Type) {
	t.Helper()
	var st *btf.Struct
	if err := spec.TypeByName(name, &st); err != nil {
		t.Fatalf("struct %s: %v", name, err)
	}
	if st.Size != uint32(goType.Size()) {
		t.Fatalf("struct %s is %d bytes, Go %s %d", name, st.Size, goType.Name(), goType.Size())
	}
	if len(st.Members) != goType.NumField() {
		t.Fatalf("struct %s has %d members, Go %s %d fields", name, len(st.Members), goType.Name(), goType.NumField())
	}
	for i, m := range st.Members {
		f := goType.Field(i)
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatal(err)
		}
		if uint32(m.Offset.Bytes()) != uint32(f.Offset) || uintptr(size) != f.Type.Size() {
			t.Errorf("member %s at %d (%d bytes), Go field %s at %d (%d bytes)",
				m.Name, m.Offset.Bytes(), size, f.Name, f.Offset, f.Type.Size())
		}
	}
}

// Probes are grouped into one link per binary and kind, exits before
// entries (then by binary), with the function index and the Go flag in the cookie.
func TestPlan(t *testing.T) {
	sets := plan([]Function{
		{Name: "main.a", Binary: "/x", Entry: 0x10, Exits: []uint64{0x20, 0x30}, Go: true},
		{Name: "c_b", Binary: "/x", Entry: 0x40},
		{Name: "c_c", Binary: "/lib.so", Entry: 0x50},
	}, []int{0, 1, 2})
	type row struct {
		kind, bin string
		ret       bool
		offs      []uint64
		cookies   []uint64
	}
	var got []row
	for _, s := range sets {
		got = append(got, row{s.kind, s.binary, s.ret, s.offsets, s.cookies})
	}
	want := []row{
		{"return", "/lib.so", true, []uint64{0x50}, []uint64{2}},
		{"exit", "/x", false, []uint64{0x20, 0x30}, []uint64{cookieGo, cookieGo}},
		{"return", "/x", true, []uint64{0x40}, []uint64{1}},
		{"entry", "/lib.so", false, []uint64{0x50}, []uint64{2}},
		{"entry", "/x", false, []uint64{0x10, 0x40}, []uint64{cookieGo, 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n got %+v\nwant %+v", got, want)
	}
}

// The in-kernel histogram's layout and bucket bounds agree with the
// object: struct ulat_hist member by member, and every value falls in the
// bucket whose bounds hold it, each bucket within 1/16 of its low edge.
func TestHistLayout(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(ulatbpf.Object))
	if err != nil {
		t.Fatalf("read BTF of the bpf object: %v", err)
	}
	checkLayout(t, spec, "ulat_hist", reflect.TypeOf(kernelHist{}))
	prevHi := uint64(0)
	for i := 0; i < HistSlots; i++ {
		lo, hi := SlotBounds(i)
		if lo != prevHi {
			t.Fatalf("bucket %d starts at %d, the previous ended at %d", i, lo, prevHi)
		}
		if i >= 16 && i < HistSlots-1 && (hi-lo)*16 > lo {
			t.Errorf("bucket %d [%d, %d) is wider than 1/16 of its low edge", i, lo, hi)
		}
		for _, v := range []uint64{lo, lo + (hi-lo)/2, hi - 1} {
			if got := slotOf(v); got != i {
				t.Fatalf("value %d is in bucket %d, want %d [%d, %d)", v, got, i, lo, hi)
			}
		}
		prevHi = hi
	}
	if prevHi != ^uint64(0) {
		t.Errorf("the last bucket ends at %d", prevHi)
	}
}
