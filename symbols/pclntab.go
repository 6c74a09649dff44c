package symbols

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"fmt"
	"sort"
)

// pclntabFunctions lists a Go binary's functions from .gopclntab alone,
// with the standard library: what is left when delve cannot read the
// binary (corrupt DWARF, or a stripped binary linked by the system linker,
// as cgo programs are) . It knows nothing of inlining.
func pclntabFunctions(b *Binary) ([]Function, error) {
	sec := b.file.Section(".gopclntab")
	if sec == nil {
		return nil, fmt.Errorf("%w: no .gopclntab to fall back on", ErrNoSymbols)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	start, err := goTextStart(b, sec.Addr)
	if err != nil {
		return nil, err
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, start))
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	var fns []Function
	byName := map[string]int{}
	for _, f := range tab.Funcs {
		if f.Entry == 0 || f.End <= f.Entry {
			continue
		}
		fn := Function{Name: f.Name, Symbol: f.Name, Lang: Go, Addr: f.Entry, End: f.End}
		// A function and its ABI wrapper share a name; keep the
		// larger, as delveFunctions does, by the size without padding.
		if i, ok := byName[fn.Name]; ok {
			if b.codeSize(fn) > b.codeSize(fns[i]) {
				fns[i] = fn
			}
			continue
		}
		byName[fn.Name] = len(fns)
		fns = append(fns, fn)
	}
	sort.SliceStable(fns, func(i, j int) bool { return fns[i].Addr < fns[j].Addr })
	return fns, nil
}

// goTextStart finds the address of runtime.text, the base that Go 1.18+
// function entries in .gopclntab are offsets from. It is the start of
// .text only when the Go linker laid the binary out: the system linker (cgo
// programs) puts the C runtime's code first, and the table's own copy of
// the base is written as 0 then. Without the symbol table (stripped), the
// runtime's module data still holds it: the first word of
// runtime.firstmoduledata points at .gopclntab, and its `text` field is
// runtime.text (the layout has kept these offsets since Go 1.16).
func goTextStart(b *Binary, pclntab uint64) (uint64, error) {
	text := b.file.Section(".text")
	if text == nil {
		return 0, fmt.Errorf("%w: no .text section", ErrNoSymbols)
	}
	if syms, err := b.file.Symbols(); err == nil {
		for _, s := range syms {
			if s.Name == "runtime.text" {
				return s.Value, nil
			}
		}
	}
	inText := func(a uint64) bool { return a >= text.Addr && a < text.Addr+text.Size }
	if a, ok := moduleDataText(b.file, pclntab, inText); ok {
		return a, nil
	}
	return text.Addr, nil
}

// Offsets in runtime.moduledata (64-bit): pcHeader, five slices, ftab,
// findfunctab, minpc, maxpc, then text.
const (
	moduleDataMinPC   = 8 + 6*24 + 8
	moduleDataTextOff = moduleDataMinPC + 16
)

// moduleDataText reads runtime.firstmoduledata.text. In a position-
// dependent binary the pointers are in the file; in a PIE one they are
// zero there and the dynamic relocations (R_*_RELATIVE) carry them.
func moduleDataText(f *elf.File, pclntab uint64, inText func(uint64) bool) (uint64, bool) {
	relative := relativeRelocations(f)
	word := func(addr uint64) (uint64, bool) {
		if v, ok := relative[addr]; ok {
			return v, true
		}
		for _, s := range f.Sections {
			if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || addr < s.Addr || addr+8 > s.Addr+s.Size {
				continue
			}
			var buf [8]byte
			if _, err := s.ReadAt(buf[:], int64(addr-s.Addr)); err != nil {
				return 0, false
			}
			return binary.LittleEndian.Uint64(buf[:]), true
		}
		return 0, false
	}
	check := func(md uint64) (uint64, bool) {
		text, ok1 := word(md + moduleDataTextOff)
		minpc, ok2 := word(md + moduleDataMinPC)
		if ok1 && ok2 && inText(text) && minpc >= text && inText(minpc) {
			return text, true
		}
		return 0, false
	}
	for addr, v := range relative {
		if v == pclntab {
			if t, ok := check(addr); ok {
				return t, true
			}
		}
	}
	var want [8]byte
	binary.LittleEndian.PutUint64(want[:], pclntab)
	for _, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_WRITE == 0 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for off := 0; ; off += 8 {
			i := bytes.Index(data[off:], want[:])
			if i < 0 {
				break
			}
			off += i
			if off%8 != 0 {
				off -= off % 8 // realign; the loop steps past this word
				continue
			}
			if t, ok := check(s.Addr + uint64(off)); ok {
				return t, true
			}
		}
	}
	return 0, false
}

// relativeRelocations maps the address of each R_X86_64_RELATIVE or
// R_AARCH64_RELATIVE relocation to its addend: the pointer value a PIE
// binary's loader writes there.
func relativeRelocations(f *elf.File) map[uint64]uint64 {
	var relType uint32
	switch f.Machine {
	case elf.EM_X86_64:
		relType = uint32(elf.R_X86_64_RELATIVE)
	case elf.EM_AARCH64:
		relType = uint32(elf.R_AARCH64_RELATIVE)
	default:
		return nil
	}
	out := map[uint64]uint64{}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for ; len(data) >= 24; data = data[24:] { // Elf64_Rela
			if uint32(elf.R_TYPE64(binary.LittleEndian.Uint64(data[8:]))) == relType {
				out[binary.LittleEndian.Uint64(data)] = binary.LittleEndian.Uint64(data[16:])
			}
		}
	}
	return out
}

// codeSize is f's size without the alignment padding that .gopclntab's
// end includes (INT3 on x86-64, zero words on arm64), as DWARF and the
// symbol table would give it.
func (b *Binary) codeSize(f Function) uint64 {
	code, err := b.code(f.Addr, f.End)
	if err != nil {
		return f.End - f.Addr
	}
	pad := byte(0)
	if b.Arch == "amd64" {
		pad = 0xcc
	}
	n := len(code)
	for n > 0 && code[n-1] == pad {
		n--
	}
	return uint64(n)
}
