package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
)

// debugDirs are where separate debug files are looked for, as gdb and the
// distributions' -dbg/-dbgsym packages lay them out.
var debugDirs = []string{"/usr/lib/debug"}

// separateDebugSymbols returns the .symtab of the binary's separate debug
// file, found by build ID (DIR/.build-id/xx/yyyy.debug) or by its
// .gnu_debuglink (next to the binary, in .debug/ beside it, or under
// DIR/<the binary's directory>), and the file's path. The debug file keeps
// the binary's addresses, so offsets are still computed from the binary.
func separateDebugSymbols(b *Binary) ([]elf.Symbol, string, error) {
	for _, path := range debugFileCandidates(b) {
		f, err := elf.Open(path)
		if err != nil {
			continue
		}
		syms, err := f.Symbols()
		f.Close()
		if err == nil && len(syms) > 0 {
			return syms, path, nil
		}
	}
	return nil, "", errNoDebugFile
}

var errNoDebugFile = errors.New("no separate debug file")

func debugFileCandidates(b *Binary) []string {
	var out []string
	if id := buildID(b.file); len(id) >= 2 {
		h := hex.EncodeToString(id)
		for _, dir := range debugDirs {
			out = append(out, filepath.Join(dir, ".build-id", h[:2], h[2:]+".debug"))
		}
	}
	// The link is a file name; one with a directory in it (say
	// ../../dev/zero) is not followed.
	if name, crc, ok := debugLink(b.file); ok && !strings.ContainsRune(name, '/') {
		dir := filepath.Dir(b.Path)
		cands := []string{filepath.Join(dir, name), filepath.Join(dir, ".debug", name)}
		for _, d := range debugDirs {
			cands = append(cands, filepath.Join(d, dir, name))
		}
		for _, c := range cands {
			// The link names a file and its CRC; a stale file with
			// the same name would give wrong addresses.
			if c != b.Path && fileCRC(c) == crc {
				out = append(out, c)
			}
		}
	}
	return out
}

// buildID reads the GNU build ID note.
func buildID(f *elf.File) []byte {
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		return nil
	}
	data, err := s.Data()
	if err != nil || len(data) < 16 {
		return nil
	}
	order := f.ByteOrder
	namesz, descsz := order.Uint32(data[0:4]), order.Uint32(data[4:8])
	start := 12 + (namesz+3)&^3
	if order.Uint32(data[8:12]) != 3 || uint64(start)+uint64(descsz) > uint64(len(data)) { // NT_GNU_BUILD_ID
		return nil
	}
	return data[start : start+descsz]
}

// debugLink reads .gnu_debuglink: a file name, padding, and a CRC32.
func debugLink(f *elf.File) (string, uint32, bool) {
	s := f.Section(".gnu_debuglink")
	if s == nil {
		return "", 0, false
	}
	data, err := s.Data()
	if err != nil {
		return "", 0, false
	}
	end := bytes.IndexByte(data, 0)
	if end <= 0 {
		return "", 0, false
	}
	off := (end + 4) &^ 3
	if off+4 > len(data) {
		return "", 0, false
	}
	return string(data[:end]), binary.LittleEndian.Uint32(data[off:]), true
}

// maxDebugFile bounds what fileCRC reads: debug files are large, but not
// this large.
const maxDebugFile = 4 << 30

func fileCRC(path string) uint32 {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() > maxDebugFile {
		return 0
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return crc32.ChecksumIEEE(data)
}

// noSymbolsError explains a binary that has no functions to offer.
// The functions of the shared libraries it uses can be traced all the
// same, and the message says how, with its own libraries' names.
func noSymbolsError(b *Binary) error {
	libs := ""
	if needed, err := b.file.ImportedLibraries(); err == nil && len(needed) > 0 {
		first := strings.SplitN(needed[0], ".so", 2)[0]
		libs = fmt.Sprintf("; the functions of the libraries it uses (%s) can still be traced in its processes, as LIB:FUNC ('%s:FUNC')", strings.Join(needed, ", "), first)
	}
	return fmt.Errorf("%w: the binary is stripped and exports no functions, and no separate debug file was found (looked for its build ID under %v and its .gnu_debuglink); rebuild it without -s, or install its debug symbols (the -dbgsym or -dbg package)%s", ErrNoSymbols, debugDirs, libs)
}

// BuildID returns the build ID of the ELF file at path, as hex: the GNU
// build ID note, or for Go binaries linked without one, "go:" and the Go
// build ID. It is "" when the file has neither.
func BuildID(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("build id of %s: %w", path, err)
	}
	defer f.Close()
	if id := buildID(f); len(id) > 0 {
		return hex.EncodeToString(id), nil
	}
	if s := f.Section(".note.go.buildid"); s != nil {
		data, err := s.Data()
		// One note: namesz, descsz, type 4, "Go\0\0", then the ID.
		if err == nil && len(data) > 16 && f.ByteOrder.Uint32(data[8:12]) == 4 {
			descsz := f.ByteOrder.Uint32(data[4:8])
			if uint64(16)+uint64(descsz) <= uint64(len(data)) {
				return "go:" + string(data[16:16+descsz]), nil
			}
		}
	}
	return "", nil
}
