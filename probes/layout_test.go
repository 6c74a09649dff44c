package probes

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"

	ulatbpf "github.com/ulat-dev/ulat/bpf"
	"github.com/ulat-dev/ulat/buckets"
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
	checkLayout(t, spec, "ulat_cost", reflect.TypeOf(cost{}))
	checkLayout(t, spec, "ulat_ctx_key", reflect.TypeOf(ctxKey{}))
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

// The in-kernel histogram's layout agrees with the object: struct
// ulat_hist member by member, and the bucket tables the program searches
// have the sizes of package buckets' (which tests their contents).
func TestHistLayout(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(ulatbpf.Object))
	if err != nil {
		t.Fatalf("read BTF of the bpf object: %v", err)
	}
	checkLayout(t, spec, "ulat_hist", reflect.TypeOf(kernelHist{}))
	for _, c := range []struct {
		name string
		want int
	}{{"hist_cells", buckets.Cells * 2}, {"hist_upper", buckets.Slots * 8}} {
		var v *btf.Var
		if err := spec.TypeByName(c.name, &v); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		size, err := btf.Sizeof(v.Type)
		if err != nil || size != c.want {
			t.Errorf("%s is %d bytes (%v), want %d", c.name, size, err, c.want)
		}
	}
}
