package symbols

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// WriteListing writes how each of fns, functions of b, can be traced: its
// language, entry probe's file offset, exits (the number of RET probes, or
// uretprobe), whether it is inlined, and why it cannot be probed when it
// cannot. Rows stream out as each function is disassembled.
func (b *Binary) WriteListing(w io.Writer, fns []Function) error {
	t := newListingTable(w, fns, b.Size)
	for i := range fns {
		f := &fns[i]
		row := listingRow{function: f.Name, lang: string(f.Lang), entry: "-", exits: "-", inlined: "no"}
		p, err := b.Probes(f)
		var cannot *ErrCannotProbe
		switch {
		case errors.As(err, &cannot):
			row.note = cannot.Reason
		case err != nil:
			// The rows so far stand: show them before the error.
			t.flush()
			return err
		default:
			row.entry = fmt.Sprintf("%#x", p.Entry)
			row.exits = "uretprobe"
			if p.Exits != nil {
				row.exits = strconv.Itoa(len(p.Exits))
			}
		}
		switch {
		case f.InlinedOnly():
			row.inlined = "only"
		case f.Inlined:
			row.inlined = "partly"
		}
		if err := t.write(row); err != nil {
			return err
		}
	}
	return t.flush()
}

// listingRow is one function in a listing (ulat symbols).
type listingRow struct {
	function, lang, entry, exits, inlined, note string
}

// listingTable writes the listing as plain columns with FUNCTION last.
// Go generic instantiations have names hundreds of characters long, and a
// table that aligns any column after the names pads every row to the
// longest of them: terraform's listing was 111k rows padded to a name of
// 1,000 characters, 125 MB, which the table renderer built in memory and
// took half the run time to lay out. Last, a name pads nothing; the
// note, long but for few functions, follows it. The other columns are
// short and their widths are known before any function is disassembled,
// so rows stream out as they are worked out.
type listingTable struct {
	w                  *bufio.Writer
	lang, entry, exits int
}

// newListingTable sizes the columns for fns of a file of size bytes and
// writes the header.
func newListingTable(w io.Writer, fns []Function, size int64) *listingTable {
	t := &listingTable{w: bufio.NewWriter(w), lang: len("LANG"), entry: len("ENTRY"), exits: len("EXITS")}
	// Entries are file offsets, so none is wider than the file's size.
	t.entry = max(t.entry, len(fmt.Sprintf("%#x", size)))
	for i := range fns {
		t.lang = max(t.lang, len(fns[i].Lang))
		if fns[i].Lang == Native {
			t.exits = max(t.exits, len("uretprobe"))
		}
	}
	// An error here comes back from the first row or from flush.
	_ = t.write(listingRow{function: "FUNCTION", lang: "LANG", entry: "ENTRY", exits: "EXITS", inlined: "INLINED"})
	return t
}

// write adds a row. It returns the error of any failed write so far (the
// bufio.Writer keeps it): on a closed pipe the caller stops instead of
// disassembling the rest for nobody.
func (t *listingTable) write(r listingRow) error {
	fmt.Fprintf(t.w, "%-*s  %*s  %*s  %-*s  %s", t.lang, r.lang, t.entry, r.entry, t.exits, r.exits, len("INLINED"), r.inlined, r.function)
	if r.note != "" {
		fmt.Fprintf(t.w, "  (%s)", r.note)
	}
	return t.w.WriteByte('\n')
}

func (t *listingTable) flush() error { return t.w.Flush() }
