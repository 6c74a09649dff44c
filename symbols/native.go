package symbols

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
)

// nativeFunctions lists the defined functions of a non-Go binary from its
// symbol table, or from the dynamic symbol table when it is stripped, with
// C++ and Rust names demangled.
func nativeFunctions(b *Binary) ([]Function, error) {
	syms, err := b.file.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("read .symtab: %w", err)
	}
	if len(syms) == 0 {
		// Stripped: the symbol table may be in a separate debug file.
		if dsyms, path, err := separateDebugSymbols(b); err == nil {
			syms = dsyms
			b.DebugFile = path
		}
	}
	dyn, err := b.file.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("read .dynsym: %w", err)
	}
	byName := map[string]int{}
	hidden := map[string]bool{} // the kept symbol is a non-default version
	var fns []Function
	for _, s := range append(syms, dyn...) {
		typ := elf.ST_TYPE(s.Info)
		if (typ != elf.STT_FUNC && typ != elf.STT_GNU_IFUNC) || s.Section == elf.SHN_UNDEF || s.Value == 0 {
			continue
		}
		end := s.Value + s.Size
		if s.Size == 0 {
			end = s.Value + 1
		}
		f := Function{Name: s.Name, Symbol: s.Name, Lang: Native, Addr: s.Value, End: end}
		if typ == elf.STT_GNU_IFUNC {
			f.problem = "it is an IFUNC: the symbol is a resolver that picks the implementation at load time; trace the implementation instead (e.g. '" + s.Name + "*' or '__" + s.Name + "_*')"
		}
		isHidden := s.HasVersion && s.VersionIndex.IsHidden()
		// A name can repeat: .dynsym repeats .symtab, and a versioned
		// symbol has old versions (name@VER) beside its default
		// (name@@VER), which is the one programs call.
		if i, ok := byName[s.Name]; ok {
			if hidden[s.Name] && !isHidden {
				fns[i] = f
				hidden[s.Name] = false
			}
			continue
		}
		byName[s.Name] = len(fns)
		hidden[s.Name] = isHidden
		fns = append(fns, f)
	}
	if len(fns) == 0 {
		return nil, noSymbolsError(b)
	}
	demangleAll(fns)
	sort.SliceStable(fns, func(i, j int) bool { return fns[i].Addr < fns[j].Addr })
	return disambiguate(fns), nil
}
