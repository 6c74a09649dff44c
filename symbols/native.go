package symbols

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
)

// nativeFunctions lists the defined functions of a non-Go binary from its
// symbol table, or from the dynamic symbol table when it is stripped.
func nativeFunctions(b *Binary) ([]Function, error) {
	syms, err := b.file.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("read .symtab: %w", err)
	}
	dyn, err := b.file.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("read .dynsym: %w", err)
	}
	seen := map[string]bool{}
	var fns []Function
	for _, s := range append(syms, dyn...) {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF || s.Value == 0 {
			continue
		}
		// Versioned dynamic symbols repeat .symtab's names.
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		end := s.Value + s.Size
		if s.Size == 0 {
			end = s.Value + 1
		}
		fns = append(fns, Function{Name: s.Name, Lang: Native, Addr: s.Value, End: end})
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("%w: the binary is stripped and exports no functions; rebuild it without -s, or install its debug symbols", ErrNoSymbols)
	}
	sort.SliceStable(fns, func(i, j int) bool { return fns[i].Addr < fns[j].Addr })
	return fns, nil
}
