package symbols

import (
	"debug/dwarf"
	"errors"
	"io"
)

// checkDWARF reads every compile unit's line table with the standard
// library, which reports corrupt DWARF as an error. delve, given the same
// input, can panic in a goroutine of its own where no recover reaches (a
// bad DWARF 5 file-entry table; symbols/testdata/known-crashes), so ulat
// looks first. A binary without DWARF passes.
func checkDWARF(b *Binary) error {
	if !hasDWARF(b) {
		return nil
	}
	d, err := b.file.DWARF()
	if err != nil {
		return err
	}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		if e.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
			continue
		}
		lr, err := d.LineReader(e)
		if err != nil {
			return err
		}
		if lr != nil {
			var le dwarf.LineEntry
			for {
				if err := lr.Next(&le); err != nil {
					if !errors.Is(err, io.EOF) {
						return err
					}
					break
				}
			}
		}
		r.SkipChildren()
	}
}
