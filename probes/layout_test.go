package probes

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"

	ulatbpf "github.com/ulat-dev/ulat/bpf"
)

// The Go mirror of struct ulat_event must match the compiled object's BTF
// member by member, or every event would be misread.
func TestEventLayoutMatchesBTF(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(ulatbpf.Object))
	if err != nil {
		t.Fatalf("read BTF of the bpf object: %v", err)
	}
	var st *btf.Struct
	if err := spec.TypeByName("ulat_event", &st); err != nil {
		t.Fatalf("struct ulat_event: %v", err)
	}
	goType := reflect.TypeOf(Event{})
	if st.Size != uint32(goType.Size()) || st.Size != eventSize {
		t.Fatalf("struct ulat_event is %d bytes, Go Event %d, eventSize %d", st.Size, goType.Size(), eventSize)
	}
	if len(st.Members) != goType.NumField() {
		t.Fatalf("struct ulat_event has %d members, Go Event %d fields", len(st.Members), goType.NumField())
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
	})
	type row struct {
		prog, bin string
		ret       bool
		offs      []uint64
		cookies   []uint64
	}
	var got []row
	for _, s := range sets {
		got = append(got, row{s.prog, s.binary, s.ret, s.offsets, s.cookies})
	}
	want := []row{
		{"ulat_return", "/lib.so", true, []uint64{0x50}, []uint64{2}},
		{"ulat_exit", "/x", false, []uint64{0x20, 0x30}, []uint64{cookieGo, cookieGo}},
		{"ulat_return", "/x", true, []uint64{0x40}, []uint64{1}},
		{"ulat_entry", "/lib.so", false, []uint64{0x50}, []uint64{2}},
		{"ulat_entry", "/x", false, []uint64{0x10, 0x40}, []uint64{cookieGo, 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n got %+v\nwant %+v", got, want)
	}
}
