package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// What delve reports while it loads a binary, and does not stop for,
// reaches the caller as the Binary's Warning. A Go binary whose
// .debug_frame has another name has DWARF that reads well (so delve
// loads it) but no frame table, which delve reports and ulat does not need.
func TestDelveLoadErrorWarns(t *testing.T) {
	raw := mustRead(t, goNormal(t))
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if f.Section(".debug_frame") == nil || f.Section(".eh_frame") != nil {
		t.Skip("the test binary has no .debug_frame, or an .eh_frame delve would fall back on")
	}
	strtab := f.Sections[binary.LittleEndian.Uint16(raw[62:])] // e_shstrndx
	f.Close()
	names := raw[strtab.Offset : strtab.Offset+strtab.Size]
	i := bytes.Index(names, []byte(".debug_frame\x00"))
	if i < 0 {
		t.Fatal("no .debug_frame in the section names")
	}
	copy(names[i:], ".debug_frxme")
	bad := filepath.Join(t.TempDir(), "no-frame")
	if err := os.WriteFile(bad, raw, 0o755); err != nil {
		t.Fatal(err)
	}

	b, err := openSerial(bad)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	if !strings.Contains(b.Warning, "delve") || !strings.Contains(b.Warning, ".debug_frame") {
		t.Errorf("Warning %q does not pass on delve's complaint about .debug_frame", b.Warning)
	}
	if _, err := b.Match("main.work"); err != nil {
		t.Errorf("functions: %v", err)
	}
	if g := open(t, goNormal(t)); g.Warning != "" {
		t.Errorf("the intact binary has a warning: %q", g.Warning)
	}
}

// Opening Go binaries prints nothing on stderr: Open no longer silences
// delve by swapping os.Stderr, and must not need to. The binaries are
// opened in a child process, whose stderr is the file descriptor itself,
// where direct writes to fd 2 land too.
func TestDelveSilent(t *testing.T) {
	if paths := os.Getenv("ULAT_TEST_OPEN_QUIETLY"); paths != "" {
		for _, p := range filepath.SplitList(paths) {
			b, err := Open(p)
			if err != nil {
				t.Fatalf("Open(%s): %v", p, err)
			}
			b.Close()
		}
		return
	}
	// DWARF (delve), PIE, cgo with C DWARF (delve warns about gcc's
	// entries), stripped, stripped cgo (delve fails there).
	paths := []string{goNormal(t), goPIE(t), goCgoPIE(t), goStripped(t), stripped(t, goCgoPIE(t))}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDelveSilent$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ULAT_TEST_OPEN_QUIETLY="+strings.Join(paths, string(filepath.ListSeparator)))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("opening %v printed on stderr:\n%s", paths, stderr.String())
	}
}
