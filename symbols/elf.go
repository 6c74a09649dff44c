// Package symbols finds functions in executables and shared libraries and
// works out where to put probes on them: the file offset of a safe entry
// point and, for Go, the file offset of every RET instruction. It needs no
// privileges and never runs the binary.
package symbols

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Sentinel errors a caller can act on.
var (
	ErrNotELF      = errors.New("not an ELF file")
	ErrUnsupported = errors.New("unsupported binary")
	ErrNoSymbols   = errors.New("no symbols")
	ErrNoMatch     = errors.New("no function matches")
)

// Binary is an opened executable or shared library.
type Binary struct {
	Path string // absolute path
	Arch string // "amd64" or "arm64"
	IsGo bool
	PIE  bool // ET_DYN: executable or shared library loaded at any address
	// Size is the file's size in bytes when it was opened: every file
	// offset is smaller.
	Size int64
	// DebugFile is the separate debug file the symbols came from, if any.
	DebugFile string
	// Warning says what is wrong with the binary that ulat worked
	// around, for the user to know ("" when nothing).
	Warning string
	file    *elf.File
	osf     *os.File
	funcs   []Function
}

// Open reads path's ELF headers and function list. The returned Binary must
// be closed.
func Open(path string) (*Binary, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("open %s: is a directory, %w", path, ErrNotELF)
	}
	osf, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	magic := make([]byte, len(elf.ELFMAG))
	if _, err := osf.ReadAt(magic, 0); err != nil || string(magic) != elf.ELFMAG {
		osf.Close()
		return nil, fmt.Errorf("open %s: %w (it does not start with the ELF magic bytes)", path, ErrNotELF)
	}
	ef, err := elf.NewFile(osf)
	if err != nil {
		osf.Close()
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("open %s: %w (truncated or corrupted: %v)", path, ErrNotELF, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Stat the opened file once here rather than on every code read:
	// listing a large binary reads the code of ~100k functions.
	ost, err := osf.Stat()
	if err != nil {
		osf.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b := &Binary{Path: abs, file: ef, osf: osf, Size: ost.Size(), PIE: ef.Type == elf.ET_DYN}
	if err := b.check(); err != nil {
		b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b.IsGo = isGo(ef)
	if b.IsGo {
		b.funcs, err = goFunctions(b)
	} else {
		b.funcs, err = nativeFunctions(b)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("read functions of %s: %w", path, err)
	}
	return b, nil
}

func (b *Binary) check() error {
	f := b.file
	if f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("%w: %s ELF; ulat traces 64-bit programs only", ErrUnsupported, f.Class)
	}
	switch f.Machine {
	case elf.EM_X86_64:
		b.Arch = "amd64"
	case elf.EM_AARCH64:
		b.Arch = "arm64"
	default:
		return fmt.Errorf("%w: built for %s; ulat supports x86-64 and arm64", ErrUnsupported, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%w: %s is not an executable or shared library", ErrUnsupported, f.Type)
	}
	return nil
}

func isGo(f *elf.File) bool {
	return f.Section(".go.buildinfo") != nil || f.Section(".gopclntab") != nil
}

// Close releases the file.
func (b *Binary) Close() error {
	if b.osf == nil {
		return nil
	}
	err := b.osf.Close()
	b.osf = nil
	return err
}

// Functions returns every function found, in address order (inlined-only
// functions, which have no address, last, by name).
func (b *Binary) Functions() []Function { return b.funcs }

// fileOffset maps a virtual address to its offset in the file, which is what
// uprobes are attached by.
func (b *Binary) fileOffset(addr uint64) (uint64, error) {
	for _, p := range b.file.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is in no executable segment", addr)
}

// code reads the bytes of [addr, end) from the file. The range comes from
// the binary's own tables, which a corrupt file can make absurd: it must
// lie inside one executable segment and inside the file.
func (b *Binary) code(addr, end uint64) ([]byte, error) {
	if end <= addr {
		return nil, fmt.Errorf("function [%#x, %#x) is empty", addr, end)
	}
	off, err := b.fileOffset(addr)
	if err != nil {
		return nil, err
	}
	endOff, err := b.fileOffset(end - 1)
	if err != nil || endOff-off != end-1-addr {
		return nil, fmt.Errorf("function [%#x, %#x) is not inside one executable segment", addr, end)
	}
	if endOff >= uint64(b.Size) {
		return nil, fmt.Errorf("function [%#x, %#x) ends past the end of the file", addr, end)
	}
	buf := make([]byte, end-addr)
	if _, err := b.osf.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("read code at %#x: %w", addr, err)
	}
	return buf, nil
}
