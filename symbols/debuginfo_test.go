package symbols

import (
	"debug/elf"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A stripped binary's functions come from its separate debug file, found by
// .gnu_debuglink or by build ID, with the addresses of the unstripped build.
// Not parallel: it sets DebugDirs.
func TestSeparateDebugFile(t *testing.T) {
	full := cPIE(t)
	want := elfFuncSymbols(t, full)
	dir := t.TempDir()

	check := func(t *testing.T, bin, debugFile string) {
		t.Helper()
		b, err := Open(bin)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer b.Close()
		if b.DebugFile != debugFile {
			t.Errorf("DebugFile %q, want %q", b.DebugFile, debugFile)
		}
		fns, err := b.Match("choose")
		if err != nil {
			t.Fatal(err)
		}
		if fns[0].Addr != want["choose"] {
			t.Errorf("choose at %#x, the unstripped binary has it at %#x", fns[0].Addr, want["choose"])
		}
	}
	debug := filepath.Join(dir, "prog.debug")
	tool(t, "objcopy", "--only-keep-debug", full, debug)

	t.Run("debuglink", func(t *testing.T) {
		bin := filepath.Join(dir, "prog")
		tool(t, "objcopy", "--strip-all", "--add-gnu-debuglink="+debug, full, bin)
		check(t, bin, debug)
	})
	t.Run("stale debuglink", func(t *testing.T) {
		bin := filepath.Join(dir, "stale", "prog")
		other := filepath.Join(dir, "stale", "prog.debug")
		os.MkdirAll(filepath.Dir(other), 0o755)
		tool(t, "objcopy", "--only-keep-debug", full, other)
		tool(t, "objcopy", "--strip-all", "--add-gnu-debuglink="+other, full, bin)
		// The linked file changed since: the CRC in the link does not
		// match, so it must not be used.
		if err := os.WriteFile(other, []byte("not the debug file"), 0o644); err != nil {
			t.Fatal(err)
		}
		saved := debugDirs
		debugDirs = []string{filepath.Join(dir, "nothing-here")}
		defer func() { debugDirs = saved }()
		_, err := Open(bin)
		if !errors.Is(err, ErrNoSymbols) || !strings.Contains(err.Error(), "no separate debug file was found") {
			t.Errorf("Open with a stale debug file: %v, want ErrNoSymbols saying no debug file was found", err)
		}
	})
	t.Run("build-id", func(t *testing.T) {
		bin := filepath.Join(dir, "prog-buildid")
		tool(t, "objcopy", "--strip-all", full, bin)
		b, err := Open(full)
		if err != nil {
			t.Fatal(err)
		}
		id := hex.EncodeToString(buildID(b.file))
		b.Close()
		if len(id) < 4 {
			t.Fatalf("the test binary has no build ID")
		}
		root := filepath.Join(dir, "debugroot")
		path := filepath.Join(root, ".build-id", id[:2], id[2:]+".debug")
		os.MkdirAll(filepath.Dir(path), 0o755)
		data, err := os.ReadFile(debug)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, data, 0o644)
		saved := debugDirs
		debugDirs = []string{root}
		defer func() { debugDirs = saved }()
		check(t, bin, path)
	})
}

// A .gnu_debuglink is a file name: one that climbs out of the directory
// (here to /dev/zero, which would be read forever) is not followed.
func TestDebuglinkOutsideIgnored(t *testing.T) {
	dir := t.TempDir()
	link := []byte("../../../../../../../../../../dev/zero\x00")
	for len(link)%4 != 0 {
		link = append(link, 0)
	}
	link = append(link, 0, 0, 0, 0) // CRC of an empty file
	section := filepath.Join(dir, "link")
	if err := os.WriteFile(section, link, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	tool(t, "objcopy", "--strip-all", "--add-section", ".gnu_debuglink="+section, cStripped(t), bin)
	_, err := Open(bin)
	if !errors.Is(err, ErrNoSymbols) {
		t.Errorf("Open with a debuglink to ../dev/zero: %v, want ErrNoSymbols", err)
	}
}

// A Go binary whose DWARF is corrupt is read from .gopclntab instead (delve
// would panic on some such DWARF), and says so.
func TestCorruptGoDWARFFallsBackToPclntab(t *testing.T) {
	raw, err := os.ReadFile(goNormal(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(goNormal(t))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range b.Functions() {
		if f.Addr != 0 && f.Lang == Go {
			want = append(want, f.Name)
		}
	}
	line := b.file.Section(".debug_line")
	if line == nil || line.Type == elf.SHT_NOBITS {
		t.Skip("no .debug_line in the test binary")
	}
	off := line.Offset
	b.Close()
	// Garbage where the first line table's header is.
	for i := uint64(4); i < 64; i++ {
		raw[off+i] = 0xff
	}
	bad := filepath.Join(t.TempDir(), "bad-dwarf")
	if err := os.WriteFile(bad, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := Open(bad)
	if err != nil {
		t.Fatalf("Open with corrupt DWARF: %v", err)
	}
	defer c.Close()
	if !strings.Contains(c.Warning, "has corrupt DWARF") {
		t.Errorf("Warning %q does not say the DWARF is corrupt", c.Warning)
	}
	fns, err := c.Match("main.work")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Probes(&fns[0]); err != nil {
		t.Errorf("Probes from .gopclntab alone: %v", err)
	}
	// Every Go function the DWARF has out of line is there too.
	have := map[string]bool{}
	for _, f := range c.Functions() {
		have[f.Name] = f.Addr != 0
	}
	for _, name := range want {
		if !have[name] {
			t.Errorf("%s: with DWARF, missing from .gopclntab", name)
		}
	}
}
