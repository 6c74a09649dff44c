package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openNoPanic calls Open and turns a panic into a test failure.
func openNoPanic(t *testing.T, path string) (b *Binary, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Open(%s) panicked: %v", path, r)
		}
	}()
	b, err = openSerial(path)
	if b != nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, err
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestOpenMissing(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "no-such-binary")
	b, err := openNoPanic(t, p)
	if b != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v, %v; want fs.ErrNotExist", b, err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Errorf("error %q does not name the path", err)
	}
}

func TestOpenDirectory(t *testing.T) {
	t.Parallel()
	b, err := openNoPanic(t, t.TempDir())
	if b != nil || err == nil {
		t.Fatalf("Open(directory) = %v, %v; want an error", b, err)
	}
	if !strings.Contains(err.Error(), "directory") {
		t.Errorf("error %q does not say it is a directory", err)
	}
}

func TestOpenNotELF(t *testing.T) {
	t.Parallel()
	real := mustRead(t, cPIE(t))
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text", []byte("#!/bin/sh\necho hello, this is not a binary\n")},
		{"short-magic", []byte("\x7fEL")},
		{"magic-only", []byte("\x7fELF")},
		{"truncated-100", real[:100]},
		{"truncated-header", real[:40]},
		{"truncated-half", real[:len(real)/2]},
		{"truncated-end", real[:len(real)-1]},
		{"garbage-after-magic", append([]byte("\x7fELF"), bytes.Repeat([]byte{0xff}, 200)...)},
	} {
		b, err := openNoPanic(t, writeFile(t, tc.name, tc.data))
		if b != nil || !errors.Is(err, ErrNotELF) {
			t.Errorf("%s: Open = %v, %v; want ErrNotELF", tc.name, b, err)
		}
	}
}

// Truncated Go binaries must fail cleanly too (delve is not reached, but
// make sure nothing panics on the way).
func TestOpenTruncatedGo(t *testing.T) {
	t.Parallel()
	real := mustRead(t, goStripped(t))
	for _, n := range []int{100, 4096, len(real) / 2, len(real) - 1} {
		b, err := openNoPanic(t, writeFile(t, "go-trunc", real[:n]))
		if b != nil || err == nil {
			t.Errorf("Open(first %d bytes of a Go binary) succeeded", n)
		}
	}
}

// elf32Header is a minimal valid ELF32 (i386 executable) header with no
// program or section headers.
func elf32Header() []byte {
	var buf bytes.Buffer
	buf.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS32), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	buf.Write(make([]byte, 9)) // rest of e_ident
	h := struct {
		Type, Machine                                   uint16
		Version, Entry, Phoff, Shoff, Flags             uint32
		Ehsize, Phentsize, Phnum, Shentsize, Shnum, Str uint16
	}{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_386), Version: uint32(elf.EV_CURRENT),
		Entry: 0x8048000, Ehsize: 52, Phentsize: 32, Shentsize: 40,
	}
	binary.Write(&buf, binary.LittleEndian, h)
	return buf.Bytes()
}

func TestOpen32Bit(t *testing.T) {
	t.Parallel()
	hdr := elf32Header()
	if len(hdr) != 52 {
		t.Fatalf("ELF32 header is %d bytes, want 52", len(hdr))
	}
	p := writeFile(t, "elf32", hdr)
	// The fixture must be an ELF the standard library accepts, or the
	// test would only exercise the ErrNotELF path.
	if ef, err := elf.Open(p); err != nil {
		t.Fatalf("hand-made ELF32 is invalid: %v", err)
	} else {
		ef.Close()
	}
	b, err := openNoPanic(t, p)
	if b != nil || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Open(ELF32) = %v, %v; want ErrUnsupported", b, err)
	}
	if !strings.Contains(err.Error(), "32") {
		t.Errorf("error %q does not mention 32-bit", err)
	}
}

func TestOpenOtherArch(t *testing.T) {
	t.Parallel()
	for _, src := range []struct {
		name string
		path string
	}{{"c", cPIE(t)}, {"go", goStripped(t)}} {
		data := mustRead(t, src.path)
		// e_machine is the 16-bit field at offset 18.
		binary.LittleEndian.PutUint16(data[18:], uint16(elf.EM_RISCV))
		b, err := openNoPanic(t, writeFile(t, src.name+"-riscv", data))
		if b != nil || !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: Open(EM_RISCV) = %v, %v; want ErrUnsupported", src.name, b, err)
			continue
		}
		if !strings.Contains(err.Error(), "RISCV") {
			t.Errorf("%s: error %q does not name the architecture", src.name, err)
		}
	}
}

// An object file (ET_REL) is neither an executable nor a shared library.
func TestOpenRelocatable(t *testing.T) {
	t.Parallel()
	obj := buildC(t, "native.o", "native.c", "-O2", "-c")
	b, err := openNoPanic(t, obj)
	if b != nil || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Open(.o) = %v, %v; want ErrUnsupported", b, err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	b, err := openSerial(cPIE(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The function list stays readable after Close.
	if len(b.Functions()) == 0 {
		t.Errorf("no functions after Close")
	}
}

// Path is made absolute.
func TestOpenRelativePath(t *testing.T) {
	t.Parallel()
	abs := cPIE(t)
	rel, err := filepath.Rel(mustGetwd(t), abs)
	if err != nil {
		t.Skipf("no relative path to %s: %v", abs, err)
	}
	b := open(t, rel)
	if b.Path != abs {
		t.Errorf("Path = %q, want %q", b.Path, abs)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
