package symbols

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// listing renders rows for fns the way `ulat symbols` does, for a file of
// size bytes.
func listing(t *testing.T, fns []Function, size int64, rows []listingRow) string {
	t.Helper()
	var buf bytes.Buffer
	tb := newListingTable(&buf, fns, size)
	for _, r := range rows {
		if err := tb.write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func goRow(name string) listingRow {
	return listingRow{function: name, lang: "go", entry: "0x26936a", exits: "1", inlined: "no"}
}

// A Go generic instantiation can have a name of hundreds of characters.
// It must make its own row long and no other: the old table padded every
// row to it.
func TestSymbolsLongNamePadsNothing(t *testing.T) {
	short := []string{"main.spin", "main.(*Server).handleFast", "main.main"}
	long := "main.Map[" + strings.Repeat("go.shape.struct { A int; B string },", 17) + "]"
	if len(long) < 600 {
		t.Fatalf("long name is %d characters, want 600+", len(long))
	}
	var fns []Function
	var rows []listingRow
	for _, n := range short {
		fns = append(fns, Function{Name: n, Lang: Go})
		rows = append(rows, goRow(n))
	}
	without := listing(t, fns, 3<<20, rows)
	with := listing(t, append(fns, Function{Name: long, Lang: Go}), 3<<20, append(rows, goRow(long)))

	if !strings.HasPrefix(with, without) {
		t.Errorf("a long name changed the other rows:\n%s\nwant them as without it:\n%s", with, without)
	}
	lines := strings.Split(strings.TrimSuffix(with, "\n"), "\n")
	if len(lines) != 1+len(short)+1 {
		t.Fatalf("%d lines, want a header and %d rows:\n%s", len(lines), len(short)+1, with)
	}
	// Every line is the same prefix of short columns, then the name.
	prefix := strings.Index(lines[0], "FUNCTION")
	for i, n := range append([]string{"FUNCTION"}, append(short, long)...) {
		if got, want := len(lines[i]), prefix+len(n); got != want {
			t.Errorf("line %d is %d bytes, want %d (the short columns and %q, unpadded):\n%s", i, got, want, n, lines[i])
		}
		if !strings.HasSuffix(lines[i], "  "+n) {
			t.Errorf("line %d does not end with its name %q:\n%s", i, n, lines[i])
		}
	}
	if extra := len(with) - len(without); extra != prefix+len(long)+1 {
		t.Errorf("the long name added %d bytes, want its own row only (%d)", extra, prefix+len(long)+1)
	}
}

// What a small listing looks like: right-aligned numbers, a uretprobe
// column as wide as it needs when there is native code, and a note after
// the name of a function that cannot be timed.
func TestSymbolsLayout(t *testing.T) {
	fns := []Function{{Name: "main.spin", Lang: Go}, {Name: "C.malloc", Lang: Native}, {Name: "main.isSpace", Lang: Go}}
	got := listing(t, fns, 0x269686+100, []listingRow{
		goRow("main.spin"),
		{function: "C.malloc", lang: "native", entry: "0x94850", exits: "uretprobe", inlined: "no"},
		{function: "main.isSpace", lang: "go", entry: "-", exits: "-", inlined: "only", note: "it is inlined into every caller and has no out-of-line copy"},
	})
	want := `LANG       ENTRY      EXITS  INLINED  FUNCTION
go      0x26936a          1  no       main.spin
native   0x94850  uretprobe  no       C.malloc
go             -          -  only     main.isSpace  (it is inlined into every caller and has no out-of-line copy)
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	// Go only: the columns are as narrow as their headers allow.
	got = listing(t, fns[:1], 0x269686+100, []listingRow{goRow("main.spin")})
	want = `LANG     ENTRY  EXITS  INLINED  FUNCTION
go    0x26936a      1  no       main.spin
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

type brokenPipe struct{}

func (brokenPipe) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// When the reader has gone (ulat symbols BIG | head), the listing stops
// instead of disassembling the rest of the binary for nobody.
func TestSymbolsStopsOnWriteError(t *testing.T) {
	tb := newListingTable(brokenPipe{}, nil, 1<<20)
	for i := 0; i < 1000; i++ {
		if err := tb.write(goRow("main.spin")); err != nil {
			if !strings.Contains(err.Error(), "broken pipe") {
				t.Errorf("error = %v, want the writer's", err)
			}
			return
		}
	}
	t.Error("1000 rows written to a writer that fails, and no error")
}
