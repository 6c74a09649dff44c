package symbols

import (
	"debug/dwarf"
	"debug/gosym"
	"errors"
	"fmt"
	"io"
	"sort"
)

// checkDWARF reads every compile unit's line table with the standard
// library, which reports corrupt DWARF as an error. delve, given the same
// input, can panic in a goroutine of its own where no recover reaches (a
// bad DWARF 5 file-entry table; symbols/testdata/known-crashes), so ulat
// looks first. A binary without DWARF passes.
func checkDWARF(b *Binary) error {
	if b.file.Section(".debug_info") == nil && b.file.Section(".zdebug_info") == nil {
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

// pclntabFunctions lists a Go binary's functions from .gopclntab alone,
// with the standard library: what is left when its DWARF is corrupt. It
// knows nothing of inlining.
func pclntabFunctions(b *Binary) ([]Function, error) {
	sec := b.file.Section(".gopclntab")
	text := b.file.Section(".text")
	if sec == nil || text == nil {
		return nil, fmt.Errorf("%w: no .gopclntab to fall back on", ErrNoSymbols)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	var fns []Function
	for _, f := range tab.Funcs {
		if f.Entry == 0 || f.End <= f.Entry {
			continue
		}
		fns = append(fns, Function{Name: f.Name, Symbol: f.Name, Lang: Go, Addr: f.Entry, End: f.End})
	}
	sort.SliceStable(fns, func(i, j int) bool { return fns[i].Addr < fns[j].Addr })
	return fns, nil
}
