package symbols

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// goTableFunctions lists a Go binary's functions from .gopclntab, and the
// C functions of a cgo binary from its symbol table.
func goTableFunctions(b *Binary) ([]Function, error) {
	fns, entries, err := pclntabFunctions(b)
	if err != nil {
		return nil, err
	}
	return withCFunctions(b, fns, entries), nil
}

// pclntabFunctions lists a Go binary's functions from .gopclntab alone:
// for a binary without DWARF, and what is left when delve cannot read one
// (corrupt DWARF, or a stripped binary linked by the system linker, as cgo
// programs are). Inlining comes from the inline trees (Go 1.18+), and
// tables of older Go are read with debug/gosym, without it.
//
// entries holds every function entry the table has, the ABI wrappers whose
// names it lists once included, so that C functions can be told from them.
func pclntabFunctions(b *Binary) (fns []Function, entries map[uint64]bool, err error) {
	sec := b.file.Section(".gopclntab")
	if sec == nil {
		return nil, nil, fmt.Errorf("%w: no .gopclntab to fall back on", ErrNoSymbols)
	}
	var magic [4]byte
	if _, err := sec.ReadAt(magic[:], 0); err != nil {
		return nil, nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	start, gofunc, err := goTableBases(b, sec.Addr, binary.LittleEndian.Uint32(magic[:]) == go120Magic)
	if err != nil {
		return nil, nil, err
	}
	funcs, inlined, err := pclntabFuncs(sec, start, b.file, gofunc)
	if errors.Is(err, errOldPclntab) {
		data, err := sec.Data()
		if err != nil {
			return nil, nil, fmt.Errorf("read .gopclntab: %w", err)
		}
		tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, start))
		if err != nil {
			return nil, nil, fmt.Errorf("read .gopclntab: %w", err)
		}
		funcs = funcs[:0]
		for _, f := range tab.Funcs {
			funcs = append(funcs, pclnFunc{f.Name, f.Entry, f.End})
		}
	} else if err != nil {
		return nil, nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	byName := map[string]int{}
	entries = make(map[uint64]bool, len(funcs))
	for _, f := range funcs {
		entries[f.entry] = true
		if f.entry == 0 || f.end <= f.entry {
			continue
		}
		fn := Function{Name: f.name, Symbol: f.name, Lang: Go, Addr: f.entry, End: f.end, Inlined: inlined[f.name]}
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
	// Functions inlined into every caller have no entry of their own, but
	// the inline trees name them, so that asking for one says why it
	// cannot be timed (after the others, by name, as delveFunctions).
	var only []string
	for name := range inlined {
		if _, ok := byName[name]; !ok {
			only = append(only, name)
		}
	}
	sort.Strings(only)
	for _, name := range only {
		fns = append(fns, Function{Name: name, Lang: Go, Inlined: true})
	}
	return fns, entries, nil
}

// goTableBases finds the two bases .gopclntab's offsets count from:
// runtime.text for function entries (Go 1.18+), and go:func.* for funcdata
// (moduledata.gofunc, 0 when not found). runtime.text is the start of
// .text only when the Go linker laid the binary out: the system linker
// (cgo programs) puts the C runtime's code first, and the table's own copy
// of the base is written as 0 then. Without the symbol table (stripped),
// the runtime's module data still holds both: the first word of
// runtime.firstmoduledata points at .gopclntab, and its `text` and
// `gofunc` fields are the bases. The symbol table is read once, and the
// module data looked for only when a base is missing from it.
func goTableBases(b *Binary, pclntab uint64, go120 bool) (textStart, gofunc uint64, err error) {
	text := b.file.Section(".text")
	if text == nil {
		return 0, 0, fmt.Errorf("%w: no .text section", ErrNoSymbols)
	}
	if syms, err := b.file.Symbols(); err == nil {
		for _, s := range syms {
			switch s.Name {
			case "runtime.text":
				textStart = s.Value
			case "go:func.*", "go.func.*":
				gofunc = s.Value
			}
		}
	}
	if textStart != 0 && gofunc != 0 {
		return textStart, gofunc, nil
	}
	inText := func(a uint64) bool { return a >= text.Addr && a < text.Addr+text.Size }
	md, ok := findModuleData(b.file, pclntab, inText)
	if !ok {
		if textStart == 0 {
			textStart = text.Addr
		}
		return textStart, gofunc, nil
	}
	if textStart == 0 {
		textStart, _ = md.word(md.addr + moduleDataTextOff)
	}
	if gofunc == 0 {
		off := uint64(moduleDataGoFunc118)
		if go120 {
			off = moduleDataGoFunc120
		}
		gofunc, _ = md.word(md.addr + off)
	}
	return textStart, gofunc, nil
}

// Offsets in runtime.moduledata (64-bit): pcHeader, five slices, ftab,
// findfunctab, minpc, maxpc, then text.
const (
	moduleDataMinPC   = 8 + 6*24 + 8
	moduleDataTextOff = moduleDataMinPC + 16
	// gofunc follows text, etext, noptrdata...enoptrbss, covctrs and
	// ecovctrs (Go 1.20+), end, gcdata, gcbss, types, etypes, rodata.
	moduleDataGoFunc120 = moduleDataTextOff + 18*8
	moduleDataGoFunc118 = moduleDataGoFunc120 - 2*8
)

// moduleData is runtime.firstmoduledata, found in the file.
type moduleData struct {
	addr uint64
	word func(addr uint64) (uint64, bool) // reads a pointer the loader would see
}

// findModuleData finds runtime.firstmoduledata by its pointer to
// .gopclntab, checking its text and minpc fields. In a position-dependent
// binary the pointers are in the file; in a PIE one they are zero there and
// the dynamic relocations (R_*_RELATIVE) carry them.
func findModuleData(f *elf.File, pclntab uint64, inText func(uint64) bool) (*moduleData, bool) {
	relative := relativeRelocations(f)
	word := func(addr uint64) (uint64, bool) {
		if v, ok := relative[addr]; ok {
			return v, true
		}
		var buf [8]byte
		if !readVirtual(f, addr, buf[:]) {
			return 0, false
		}
		return binary.LittleEndian.Uint64(buf[:]), true
	}
	check := func(md uint64) bool {
		text, ok1 := word(md + moduleDataTextOff)
		minpc, ok2 := word(md + moduleDataMinPC)
		return ok1 && ok2 && inText(text) && minpc >= text && inText(minpc)
	}
	for addr, v := range relative {
		if v == pclntab && check(addr) {
			return &moduleData{addr, word}, true
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
			if check(s.Addr + uint64(off)) {
				return &moduleData{s.Addr + uint64(off), word}, true
			}
		}
	}
	return nil, false
}

// readVirtual reads len(buf) bytes at virtual address addr from the
// file's allocated sections.
func readVirtual(f *elf.File, addr uint64, buf []byte) bool {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || addr < s.Addr || addr+uint64(len(buf)) > s.Addr+s.Size {
			continue
		}
		_, err := s.ReadAt(buf, int64(addr-s.Addr))
		return err == nil
	}
	return false
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

// pclnFunc is one function of .gopclntab: its name and [entry, end).
type pclnFunc struct {
	name       string
	entry, end uint64
}

// The magic numbers of the .gopclntab layouts ulat reads itself.
const (
	go118Magic = 0xfffffff0
	go120Magic = 0xfffffff1
)

// errOldPclntab: a table of Go before 1.18, for debug/gosym.
var errOldPclntab = errors.New("a .gopclntab of Go before 1.18")

// pclntabFuncs lists the functions of a Go 1.18+ .gopclntab, reading only
// the function table, the functions' headers and their names: debug/gosym
// reads the whole table and keeps a line table per function, which took
// 139 MB for a 90 MB program (terraform), most of ulat's peak memory.
// Layout (runtime/symtab.go, pcHeader and _func): after the magic and
// four bytes, nfunc, nfiles, textStart and the offsets of funcnametab,
// cutab, filetab, pctab and pclntable; pclntable starts with nfunc+1
// (entryOff, funcOff) pairs of uint32, and each _func starts with its
// entryOff and nameOff.
//
// With gofunc (go:func.*, 0 when unknown) it also reads each function's
// inline tree (FUNCDATA_InlTree, as long as the largest index its
// PCDATA_InlTreeIndex table holds) for the names of the functions inlined
// into it, which delve takes from there too.
func pclntabFuncs(sec *elf.Section, textStart uint64, f *elf.File, gofunc uint64) ([]pclnFunc, map[string]bool, error) {
	var hdr [72]byte
	if _, err := sec.ReadAt(hdr[:], 0); err != nil {
		return nil, nil, err
	}
	le := binary.LittleEndian
	var funcHdr, inlSize, inlName int // _func header size, inlinedCall size, nameOff in it
	switch le.Uint32(hdr[:]) {
	case go118Magic: // Go 1.18, 1.19
		funcHdr, inlSize, inlName = 40, 20, 12
	case go120Magic: // Go 1.20+: _func.startLine, a smaller inlinedCall
		funcHdr, inlSize, inlName = 44, 16, 4
	default:
		return nil, nil, errOldPclntab
	}
	if hdr[7] != 8 {
		return nil, nil, errOldPclntab // 32-bit
	}
	word := func(i int) uint64 { return le.Uint64(hdr[8+8*i:]) }
	nfunc, nameOff, cuOff, pctabOff, pclnOff := word(0), word(3), word(4), word(6), word(7)
	if nameOff > cuOff || cuOff > sec.Size || pctabOff > pclnOff || pclnOff > sec.Size || nfunc > sec.Size/8 {
		return nil, nil, errors.New("its header is corrupt")
	}
	names := make([]byte, cuOff-nameOff)
	if _, err := sec.ReadAt(names, int64(nameOff)); err != nil {
		return nil, nil, err
	}
	nameAt := func(off uint32) (string, bool) {
		if uint64(off) >= uint64(len(names)) {
			return "", false
		}
		name := names[off:]
		if n := bytes.IndexByte(name, 0); n >= 0 {
			name = name[:n]
		}
		return string(name), true
	}
	pcln := make([]byte, sec.Size-pclnOff)
	if _, err := sec.ReadAt(pcln, int64(pclnOff)); err != nil {
		return nil, nil, err
	}
	if uint64(len(pcln)) < (nfunc+1)*8 {
		return nil, nil, errors.New("its function table is truncated")
	}
	pctab := io.NewSectionReader(sec, int64(pctabOff), int64(pclnOff-pctabOff))
	out := make([]pclnFunc, 0, nfunc)
	inlined := map[string]bool{}
	for i := uint64(0); i < nfunc; i++ {
		entry, funcOff := le.Uint32(pcln[i*8:]), le.Uint32(pcln[i*8+4:])
		next := le.Uint32(pcln[(i+1)*8:])
		if uint64(funcOff)+uint64(funcHdr) > uint64(len(pcln)) {
			continue
		}
		fn := pcln[funcOff:]
		name, ok := nameAt(le.Uint32(fn[4:])) // _func.nameOff
		if !ok {
			continue
		}
		out = append(out, pclnFunc{name, textStart + uint64(entry), textStart + uint64(next)})
		if gofunc == 0 {
			continue
		}
		npcdata, nfuncdata := uint64(le.Uint32(fn[28:])), uint64(fn[funcHdr-1])
		const pcdataInlTreeIndex, funcdataInlTree = 2, 3
		tables := uint64(funcHdr) + (npcdata+nfuncdata)*4
		if npcdata <= pcdataInlTreeIndex || nfuncdata <= funcdataInlTree || uint64(funcOff)+tables > uint64(len(pcln)) {
			continue
		}
		tree := le.Uint32(fn[uint64(funcHdr)+(npcdata+funcdataInlTree)*4:])
		index := le.Uint32(fn[uint64(funcHdr)+pcdataInlTreeIndex*4:])
		if tree == ^uint32(0) || index == 0 {
			continue
		}
		n := maxPCValue(pctab, int64(index)) + 1
		if n <= 0 || n > 1<<16 {
			continue
		}
		calls := make([]byte, n*inlSize)
		if !readVirtual(f, gofunc+uint64(tree), calls) {
			continue
		}
		for c := 0; c < n; c++ {
			if name, ok := nameAt(le.Uint32(calls[c*inlSize+inlName:])); ok {
				inlined[name] = true
			}
		}
	}
	return out, inlined, nil
}

// maxPCValue is the largest value of the pc-value table at off (the
// runtime's encoding: from -1, zig-zag varint value deltas, each followed
// by a pc delta, until a zero value delta after the first).
func maxPCValue(r io.ReaderAt, off int64) int {
	buf := make([]byte, 256)
	n, _ := r.ReadAt(buf, off)
	buf = buf[:n]
	val, best := int32(-1), int32(-1)
	for first := true; ; first = false {
		if len(buf) < 20 && n == 256 { // refill: varints are at most 5 bytes
			off += int64(n - len(buf))
			buf = make([]byte, 256)
			n, _ = r.ReadAt(buf, off)
			buf = buf[:n]
		}
		uv, k := binary.Uvarint(buf)
		if k <= 0 || uv == 0 && !first {
			return int(best)
		}
		buf = buf[k:]
		d := uint32(uv)
		val += int32(-(d & 1) ^ (d >> 1))
		best = max(best, val)
		if _, k = binary.Uvarint(buf); k <= 0 {
			return int(best)
		}
		buf = buf[k:]
	}
}
