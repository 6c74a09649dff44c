package symbols

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"
)

// checkNativeProbes checks Probes for each name against readelf (symbol
// value and PT_LOAD mapping) and objdump (the bytes of the first
// instruction).
func checkNativeProbes(t *testing.T, path string, wantPIE bool, fnames ...string) {
	t.Helper()
	b := open(t, path)
	if b.IsGo {
		t.Errorf("IsGo = true for a C binary")
	}
	if b.Arch != "amd64" {
		t.Errorf("Arch = %q, want amd64", b.Arch)
	}
	if b.PIE != wantPIE {
		t.Errorf("PIE = %v, want %v", b.PIE, wantPIE)
	}
	syms := elfFuncSymbols(t, path)
	segs := loadSegments(t, path)
	for _, name := range fnames {
		t.Run(name, func(t *testing.T) {
			val, ok := syms[name]
			if !ok {
				t.Fatalf("readelf lists no FUNC symbol %s", name)
			}
			f := lookup(t, b, name)
			if f.Lang != Native {
				t.Errorf("Lang = %q, want %q", f.Lang, Native)
			}
			if f.Addr != val {
				t.Errorf("Addr = %#x, readelf says %#x", f.Addr, val)
			}
			if f.End <= f.Addr {
				t.Errorf("End %#x is not past Addr %#x", f.End, f.Addr)
			}
			if f.InlinedOnly() {
				t.Errorf("InlinedOnly() = true")
			}
			p, err := b.Probes(&f)
			if err != nil {
				t.Fatalf("Probes: %v", err)
			}
			if want := vaddrToOff(t, segs, val); p.Entry != want {
				t.Errorf("Entry = %#x, want %#x (symbol %#x mapped through PT_LOAD)", p.Entry, want, val)
			}
			if p.Exits != nil {
				t.Errorf("Exits = %#x, want nil (native exits use a uretprobe)", p.Exits)
			}
			insn := objdumpFirstInsn(t, path, val)
			if got := readAt(t, path, p.Entry, len(insn)); !bytes.Equal(got, insn) {
				t.Errorf("bytes at Entry %#x = % x, objdump shows % x at %#x", p.Entry, got, insn, val)
			}
		})
	}
}

func TestNativePIE(t *testing.T) {
	t.Parallel()
	checkNativeProbes(t, cPIE(t), true, "add3", "choose", "greet", "main")
}

func TestNativeNonPIE(t *testing.T) {
	t.Parallel()
	path := cNoPIE(t)
	// The oracle only means something if virtual addresses and file
	// offsets differ, which they do in a non-PIE executable.
	segs := loadSegments(t, path)
	differ := false
	for _, s := range segs {
		differ = differ || s.vaddr != s.off
	}
	if !differ {
		t.Fatalf("non-PIE build has vaddr == offset in every segment; the test proves nothing")
	}
	checkNativeProbes(t, path, false, "add3", "choose", "greet", "main")
}

func TestNativeSharedLibStripped(t *testing.T) {
	t.Parallel()
	path := cSharedLib(t)
	checkNativeProbes(t, path, true, "lib_add", "lib_mul", "lib_call")
	b := open(t, path)
	for _, f := range b.Functions() {
		if f.Name == "lib_hidden" {
			t.Errorf("static lib_hidden listed in a stripped library: %+v", f)
		}
	}
}

func TestNativeFunctionsSortedAndUnique(t *testing.T) {
	t.Parallel()
	for _, path := range []string{cPIE(t), cNoPIE(t), cSharedLib(t)} {
		b := open(t, path)
		fns := b.Functions()
		if len(fns) == 0 {
			t.Fatalf("%s: no functions", path)
		}
		if !sort.SliceIsSorted(fns, func(i, j int) bool { return fns[i].Addr < fns[j].Addr }) {
			t.Errorf("%s: Functions() not in address order: %v", path, names(fns))
		}
		seen := map[string]bool{}
		for _, f := range fns {
			if seen[f.Name] {
				t.Errorf("%s: %s listed twice", path, f.Name)
			}
			seen[f.Name] = true
			if f.Addr == 0 || f.Lang != Native {
				t.Errorf("%s: bad function %+v", path, f)
			}
		}
	}
}

func TestNativeStripped(t *testing.T) {
	t.Parallel()
	b, err := openSerial(cStripped(t))
	if err == nil {
		b.Close()
		t.Fatal("Open of a stripped executable succeeded, want ErrNoSymbols")
	}
	if !errors.Is(err, ErrNoSymbols) {
		t.Errorf("err = %v, want one wrapping ErrNoSymbols", err)
	}
	if !strings.Contains(err.Error(), "stripped") {
		t.Errorf("err = %q, want it to say the binary is stripped", err)
	}
}

// The entry probe's instruction is classified as the kernel treats it:
// push of a register and a one-byte nop are emulated, others single-stepped.
func TestEntryEmulated(t *testing.T) {
	bin := buildC(t, "c-entries", "entries.c", "-O2")
	b := open(t, bin)
	for name, want := range map[string]bool{"f_push": true, "f_nop": true, "f_jmp": true, "f_lea": false, "f_endbr": false, "f_pushmem": false} {
		f := lookup(t, b, name)
		p, err := b.Probes(&f)
		if err != nil {
			t.Fatal(err)
		}
		if p.EntryEmulated != want {
			t.Errorf("%s: EntryEmulated %v, want %v", name, p.EntryEmulated, want)
		}
	}
}

// TestRefusedInstructions: a function whose first instruction the kernel
// refuses to probe (LOCK or segment-override prefix, HLT, INT3) cannot be
// probed, and says why; REX and FS prefixes are fine.
func TestRefusedInstructions(t *testing.T) {
	t.Parallel()
	b := open(t, buildC(t, "c-refused", "refused.c", "-O2"))
	for name, want := range map[string]string{
		"locked":             "(a LOCK prefix)",
		"cs_prefixed":        "(a segment-override prefix (0x2e))",
		"halts":              "(hlt, which uprobes cannot single-step)",
		"traps":              "(int3, which uprobes cannot single-step)",
		"rex_then_lock_free": "",
		"fs_prefixed":        "",
	} {
		f := lookup(t, b, name)
		_, err := b.Probes(&f)
		var cannot *ErrCannotProbe
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want probes", name, err)
		case want != "" && (!errors.As(err, &cannot) || !strings.Contains(cannot.Reason, want)):
			t.Errorf("%s: error %v, want a reason with %q", name, err, want)
		}
	}
}

// TestNoReturnProbeOnEntryPoint: _start is entered with argc where a return
// address would be, so a return probe there would change the program.
func TestNoReturnProbeOnEntryPoint(t *testing.T) {
	t.Parallel()
	for _, path := range []string{cPIE(t), cNoPIE(t)} {
		b := open(t, path)
		f := lookup(t, b, "_start")
		_, err := b.Probes(&f)
		var cannot *ErrCannotProbe
		if !errors.As(err, &cannot) || !strings.Contains(cannot.Reason, "entry point") {
			t.Errorf("%s: Probes(_start) = %v, want ErrCannotProbe for the entry point", path, err)
		}
	}
}
