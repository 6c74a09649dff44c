package symbols

// Fuzz targets for the code that reads untrusted input: ELF files (Open and
// everything a command does with the result) and machine code (the Go
// disassembly scanners). Run one with
//
//	go test -run='^$' -fuzz=FuzzOpen -fuzztime=60s ./symbols/
//
// Plain `go test` runs the seeds below and the files under
// testdata/fuzz/<FuzzName>/ as ordinary tests.
//
// testdata/fuzz/FuzzOpen holds small real ELF files, made from
//
//	int add(int a, int b) { return a + b; }
//	int mul(int a, int b) { return a * b; }
//	void _start(void) { for (;;) add(1, mul(2, 3)); }
//
// with gcc 12 (Debian 12) and binutils:
//
//	native-exec:    gcc -O1 -fno-inline -nostdlib -static -no-pie -Wl,-N -Wl,--build-id=none
//	                -fno-asynchronous-unwind-tables; strip --strip-debug -R .comment -R .note.gnu.property
//	native-shared:  the same with -shared -fPIC (so .dynsym and .dynamic)
//	native-stripped: native-exec with strip --strip-all and a .gnu_debuglink
//	                naming a file that does not exist
//	go-dwarf4, go-dwarf5: -g (DWARF 4 with -gdwarf-4, DWARF 5 by default),
//	                -fdebug-prefix-map=$PWD=., plus a 16-byte .go.buildinfo
//	                section (objcopy --add-section), which makes Open treat the
//	                file as Go, and the compile unit's DW_AT_language byte set
//	                to DW_LANG_Go (0x16): delve reads the DWARF, names the
//	                functions add, mul and _start, and Probes disassembles
//	                them as Go code
//	go-dwarf5-arm64: go-dwarf5 with e_machine patched to EM_AARCH64, which
//	                sends the same code through the arm64 scanner
//	go-pclntab:     native-exec with .go.buildinfo and a .gopclntab holding the
//	                first 512 bytes of a real Go 1.26 amd64 .gopclntab (delve's
//	                no-DWARF path)

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// elfHeaderAMD64 is the ELF header (the first 64 bytes) of native-exec, a
// static x86-64 executable: a real header with nothing after it.
var elfHeaderAMD64 = []byte{
	0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x3e, 0x00, 0x01, 0x00, 0x00, 0x00,
	0xba, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0xb0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x38, 0x00, 0x02, 0x00, 0x40, 0x00,
	0x05, 0x00, 0x04, 0x00,
}

// FuzzOpen feeds arbitrary files to Open. Errors are expected; a panic, or
// a Binary whose functions panic when listed, matched or probed, is a bug.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(elf.ELFMAG))
	f.Add(elfHeaderAMD64)
	// The same header claiming a 32-bit class, and arm64.
	h32 := append([]byte(nil), elfHeaderAMD64...)
	h32[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	f.Add(h32)
	hArm := append([]byte(nil), elfHeaderAMD64...)
	binary.LittleEndian.PutUint16(hArm[18:], uint16(elf.EM_AARCH64))
	f.Add(hArm)

	path := filepath.Join(f.TempDir(), "fuzz.elf")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := Open(path)
		if err != nil {
			if b != nil {
				t.Fatalf("Open returned a Binary and the error %v", err)
			}
			return
		}
		defer b.Close()
		if b.Arch != "amd64" && b.Arch != "arm64" {
			t.Errorf("Open accepted architecture %q", b.Arch)
		}
		fns := b.Functions()
		addressed := true
		for i := range fns {
			fn := &fns[i]
			if fn.Addr == 0 {
				addressed = false
			} else if !addressed {
				t.Errorf("%s at %#x comes after an inlined-only function", fn.Name, fn.Addr)
			}
			if fn.Lang != Go && fn.Lang != Native {
				t.Errorf("%s: language %q", fn.Name, fn.Lang)
			}
		}
		if len(fns) > 0 {
			all, err := b.Match("*")
			if err != nil {
				t.Errorf("Match(*) with %d functions: %v", len(fns), err)
			} else if len(all) != len(fns) {
				t.Errorf("Match(*) = %d functions, Functions() = %d", len(all), len(fns))
			}
		}
		for i := range fns {
			fn := &fns[i]
			p, err := b.Probes(fn)
			if err != nil {
				continue
			}
			if fn.Lang == Native && p.Exits != nil {
				t.Errorf("%s: native function with RET probes %v", fn.Name, p.Exits)
			}
			if fn.Lang == Go && len(p.Exits) == 0 {
				t.Errorf("%s: Go function probed without RET probes", fn.Name)
			}
		}
	})
}

// fuzzCodeAddr and fuzzCodeOff place the fuzzed code in a synthetic file.
const (
	fuzzCodeAddr = 0x401000
	fuzzCodeOff  = 0x1000
)

// codeBinary is a Binary with one executable segment that holds n bytes of
// code at fuzzCodeAddr, which is all goProbesAMD64 and goProbesARM64 need
// from the file besides the code they are given.
func codeBinary(arch string, n int) *Binary {
	seg := &elf.Prog{ProgHeader: elf.ProgHeader{
		Type: elf.PT_LOAD, Flags: elf.PF_R | elf.PF_X,
		Vaddr: fuzzCodeAddr, Off: fuzzCodeOff, Filesz: uint64(n), Memsz: uint64(n),
	}}
	return &Binary{Path: "/fuzz", Arch: arch, IsGo: true, file: &elf.File{Progs: []*elf.Prog{seg}}}
}

// scanSeed is a real function's code and what the scanner must make of
// it: the offset of the entry probe (-1: it cannot be probed) and the
// number of exits.
type scanSeed struct {
	name  string
	entry int
	exits int
	code  string
}

// Real Go 1.26 functions (symbols/testdata/goprog built for amd64 and
// arm64): with and without the stack check, the long check of a big frame,
// two RETs, a lone RET, and one that never returns.
var (
	goAMD64Seeds = []scanSeed{
		{"(*T).Inc", 0, 1,
			"H\x03\x18H\x89\x18H\x89\xd8\xc3"},
		{"work", 0, 1,
			"1\xc91\xd2\xeb\rH\x89\xcbH\x0f\xaf\xd9H\x01\xdaH\xff\xc1H9\xc8\x7f\xeeH\x89\xd0\xc3"},
		{"leaf (NOSPLIT)", 0, 1,
			"H\x0f\xaf\xc3H\xff\xc0\xc3"},
		{"empty: a lone RET", -1, 0,
			"\xc3"},
		{"twoWays: CMP 16(R14), JBE; two RETs", 10, 2,
			"I;f\x10\x0f\x86\xdd\x00\x00\x00UH\x89\xe5H\x83\xecxH\x83\xf8\n\x7f\x1cH\x8d\\$\x18D\x0f\x11;D\x0f\x11{\x10D\x0f\x11{ D\x0f\x11{01\xc9\xebbH\x8dL$XD\x0f\x119D\x0f\x11y\x10H\x8d\r7\xb1\x00\x00H\x89L$XH\x8d\r\x83\x0e\x03\x00H\x89L$`\xe8!\x99\xfd\xffH\x8d\rZ\xb3\x00\x00H\x89L$hH\x89D$pH\x8dD$X\xbb\x02\x00\x00\x00H\x89\xd9\x0f\x1f\x00\xe8\x9b\xad\xff\xffH\x83\xc4x]\xc3H\x8d\x14\x01\x88T\f\x18H\xff\xc1H\x83\xf9@|\xefH\x89\xc1H\xc1\xf8?H\x89\xc2H\xb8\xcd\xcc\xcc\xcc\xcc\xcc\xcc\xccH\x89\xd6H\xf7\xe9H\x01\xcaH\xc1\xfa\x02H)\xf2H\x8d\x14\x92H)\xd1H\x83\xf9@w\r1\xc0\xe8\fG\xfc\xffH\x83\xc4x]\xc3H\xc7\xc0@\x00\x00\x00\xe8\xba\x10\xfe\xff\x90H\x89D$\b\xe8\x8f\xf3\xfd\xffH\x8bD$\b\xe9\x05\xff\xff\xff"},
		{"bigFrame: underflow guard, then CMP 16(R14)", 18, 1,
			"I\x89\xe4I\x81\xec\xa8M\x00\x00rxM;f\x10vrUH\x89\xe5H\x81\xec N\x00\x00H\x8d<$\xb9\xe2\x04\x00\x00H\x89\xc21\xc0\xf3H\xab1\xc0\xeb\x0eH\x89\xc3H\x0f\xaf\xda\x88\x1c\x04H\xff\xc0\x90H=\x10'\x00\x00|\xeaH\x8d\xbc$\x10'\x00\x00H\x8d4$\xb9\xe2\x04\x00\x00\xf3H\xa51\xc01\xc9\xeb\x0e\x0f\xb6\x94\x04\x10'\x00\x00H\x01\xd1H\xff\xc0H=\x10'\x00\x00|\xeaH\x89\xc8H\x81\xc4 N\x00\x00]\xc3H\x89D$\b\xe8\xf2\xf2\xfd\xffH\x8bD$\b\xe9h\xff\xff\xff"},
		{"boom: calls panic, no RET", -1, 0,
			"I;f\x10v@UH\x89\xe5H\x83\xec(H\x89D$8\xb9\x06\x00\x00\x00H\x89\xc7H\x89\xde1\xc0H\x8d\x1d\xe7c\x02\x00\xe8\x94B\xfc\xff\xe8\xef\x97\xfd\xffH\x89\xc3H\x8d\x05e\xaf\x00\x00\x0f\x1fD\x00\x00\xe8\xfb\xa9\xfd\xff\x90H\x89D$\bH\x89\\$\x10\xe8K\xf2\xfd\xffH\x8bD$\bH\x8b\\$\x10\x90\xeb\x9e"},
	}
	goARM64Seeds = []scanSeed{
		{"(*T).Inc", 0, 1,
			"\x02\x00@\xf9A\x00\x01\x8b\x01\x00\x00\xf9\xe0\x03\x01\xaa\xc0\x03_\xd6\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"leaf (NOSPLIT)", 0, 1,
			"\x01|\x01\x9b \x04\x00\x91\xc0\x03_\xd6\x00\x00\x00\x00"},
		{"empty: a lone RET", -1, 0,
			"\xc0\x03_\xd6\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"twoWays: MOVD 16(R28), R16; SUB; CMP R16, R17; BLS; two RETs", 16, 2,
			"\x90\v@\xf9\xf1C\x00\xd1?\x02\x10\xeb\xe9\x06\x00T\xfe\x0f\x17\xf8\xfd\x83\x1f\xf8\xfd#\x00\xd1\x1f(\x00\xf1\f\x01\x00T\xe1\xa3\x00\x91?|\x00\xa9?|\x01\xa9?|\x02\xa9?|\x03\xa9\xe2\x03\x1f\xaa\x17\x00\x00\x14\xe1\xa3\x01\x91?|\x00\xa9?|\x01\xa9\xa1\x00\x00\x90!\x80\x15\x91\xc2\x01\x00\xd0B\xa0\a\x91\xe1\x8b\x06\xa9\xb0q\xff\x97\xa1\x00\x00\x90!\x80\x1e\x91\xe1\x83\a\xa9\xe0\xa3\x01\x91\xe1\x03\x7f\xb2\xe2\x03\x01\xaa\x89\xed\xff\x97\xfd\x83_\xf8\xfe\aI\xf8\xc0\x03_\xd6C\x00\x00\x8b#h\"8B\x04\x00\x91_\x00\x01\xf1\x8b\xff\xffT\xe3\xe7\x02\xb2\xa3\x99\x99\xf2\x03|C\x9bc\x00\x00\x8bc\xfcB\x93c\xfc\x80\xcbc\b\x03\x8b\x02\x00\x03\xcb_\x00\x01\xf1\xc8\x00\x00T\xe0\x03\x1f\xaaq\"\xff\x97\xfd\x83_\xf8\xfe\aI\xf8\xc0\x03_\xd6\xe0\x03z\xb2t\x8f\xff\x97\x1f \x03\xd5\xe0\a\x00\xf9\xe3\x03\x1e\xaa\xfc\x86\xff\x97\xe0\a@\xf9\xc2\xff\xff\x17\x00\x00\x00\x00"},
		{"bigFrame: underflow guard (SUBS, BCC) before CMP and BLS", 24, 1,
			"\x90\v@\xf9\x1b\xb6\x89\xd2\xf1c;\xeb\xc3\x06\x00T?\x02\x10\xeb\x89\x06\x00T\x1b\xc6\x89\xd2\xf4c;\xcb\x9d\xfa?\xa9\x9f\x02\x00\x91\xfd#\x00\xd1\xe1#\x00\x91\x82\x13\x80\xd2?|\x81\xa8?|\x81\xa8?|\x81\xa8?|\x81\xa8B\x04\x00\xd1b\xff\xff\xb5?|\x00\xa9\xe1\x03\x1f\xaa\x05\x00\x00\x14\"|\x00\x9b\xe3#\x00\x91bh!8!\x04\x00\x91\x02\xe2\x84\xd2?\x00\x02\xebK\xff\xffT\xe1\v@\x91!`\x1c\x91\xe3#\x00\x91\x98\x13\x80\xd2pD\xc1\xac0D\x81\xacpD\xc1\xac0D\x81\xac\x18\a\x00\xd1x\xff\xff\xb5p\x00\xc0=0\x00\x80=\xe0\x03\x1f\xaa\xe1\x03\x1f\xaa\x06\x00\x00\x14\xe3\v@\x91c`\x1c\x91dh`8\x81\x00\x01\x8b\x00\x04\x00\x91\x1f\x00\x02\xebK\xff\xffT\xe0\x03\x01\xaa\x1b\xc5\x89\xd2\xfdc;\x8b\x1b\xc6\x89\xd2\xffc;\x8b\xc0\x03_\xd6\xe0\a\x00\xf9\xe3\x03\x1e\xaa\xbd\x86\xff\x97\xe0\a@\xf9\xc3\xff\xff\x17\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"boom: CMP R16, RSP; BLS; no RET", -1, 0,
			"\x90\v@\xf9\xffc0\xebI\x02\x00T\xfe\x0f\x1c\xf8\xfd\x83\x1f\xf8\xfd#\x00\xd1\xe0'\x00\xf9\xe2\a\x7f\xb2\xe3\x03\x00\xaa\xe4\x03\x01\xaaa\x01\x00\xf0!l\"\x91\x87!\xff\x97Rq\xff\x97\xe1\x03\x00\xaa\xa0\x00\x00\x90\x00\x80\x15\x916v\xff\x97\x1f \x03\xd5\xe0\x87\x00\xa9\xe3\x03\x1e\xaa\x9a\x86\xff\x97\xe0\x87@\xa9\xe8\xff\xff\x17\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
	}
)

// TestGoProbeSeeds checks the fuzz seeds themselves, so that a seed that
// stopped being what its comment says is noticed.
func TestGoProbeSeeds(t *testing.T) {
	t.Parallel()
	for _, arch := range []string{"amd64", "arm64"} {
		seeds := goAMD64Seeds
		if arch == "arm64" {
			seeds = goARM64Seeds
		}
		for _, s := range seeds {
			b := codeBinary(arch, len(s.code))
			fn := &Function{Name: "fuzzed", Lang: Go, Addr: fuzzCodeAddr, End: fuzzCodeAddr + uint64(len(s.code))}
			var p Probes
			var err error
			if arch == "amd64" {
				p, err = b.goProbesAMD64(fn, []byte(s.code))
			} else {
				p, err = b.goProbesARM64(fn, []byte(s.code))
			}
			var cannot *ErrCannotProbe
			switch {
			case s.entry < 0 && !errors.As(err, &cannot):
				t.Errorf("%s %s: %v, %v; want ErrCannotProbe", arch, s.name, p, err)
			case s.entry >= 0 && err != nil:
				t.Errorf("%s %s: %v", arch, s.name, err)
			case s.entry >= 0 && (p.Entry != fuzzCodeOff+uint64(s.entry) || len(p.Exits) != s.exits):
				t.Errorf("%s %s: entry %#x with %d exits, want %#x with %d", arch, s.name, p.Entry, len(p.Exits), fuzzCodeOff+s.entry, s.exits)
			}
		}
	}
}

// checkScan checks what a scanner made of code: either an
// *ErrCannotProbe with a reason, or probes inside the code, with the entry
// and every exit at an instruction boundary, every exit on a RET (isRet),
// and exits in increasing order, none on the entry.
func checkScan(t *testing.T, code []byte, p Probes, err error, boundary func(off int) bool, isRet func(off int) bool) {
	t.Helper()
	if err != nil {
		var cannot *ErrCannotProbe
		if !errors.As(err, &cannot) || cannot.Function != "fuzzed" || cannot.Reason == "" {
			t.Fatalf("error %v (%T), want *ErrCannotProbe for fuzzed with a reason", err, err)
		}
		return
	}
	in := func(off uint64) (int, bool) {
		if off < fuzzCodeOff || off-fuzzCodeOff >= uint64(len(code)) {
			return 0, false
		}
		return int(off - fuzzCodeOff), true
	}
	entry, ok := in(p.Entry)
	if !ok || !boundary(entry) {
		t.Fatalf("entry offset %#x is not an instruction of the %d-byte function", p.Entry, len(code))
	}
	if len(p.Exits) == 0 {
		t.Fatalf("probes without exits")
	}
	prev := -1
	for _, e := range p.Exits {
		x, ok := in(e)
		if !ok || !boundary(x) || !isRet(x) {
			t.Fatalf("exit offset %#x is not a RET instruction of the function", e)
		}
		if x == entry {
			t.Fatalf("exit %#x is also the entry", e)
		}
		if x <= prev {
			t.Fatalf("exits %#x are not in increasing order", p.Exits)
		}
		prev = x
	}
}

// FuzzGoProbesAMD64 feeds arbitrary code to the amd64 Go scanner.
func FuzzGoProbesAMD64(f *testing.F) {
	for _, s := range goAMD64Seeds {
		f.Add([]byte(s.code))
	}
	f.Fuzz(func(t *testing.T, code []byte) {
		b := codeBinary("amd64", len(code))
		fn := &Function{Name: "fuzzed", Lang: Go, Addr: fuzzCodeAddr, End: fuzzCodeAddr + uint64(len(code))}
		p, err := b.goProbesAMD64(fn, code)
		if err != nil {
			checkScan(t, code, p, err, nil, nil)
			return
		}
		// Decode the whole function linearly, as the scanner must
		// have, to know where instructions start.
		starts := map[int]x86asm.Inst{}
		for pc := 0; pc < len(code); {
			inst, err := x86asm.Decode(code[pc:], 64)
			if err != nil {
				t.Fatalf("scanner accepted code that does not decode at %#x: %v", pc, err)
			}
			starts[pc] = inst
			pc += inst.Len
		}
		checkScan(t, code, p, nil,
			func(off int) bool { _, ok := starts[off]; return ok },
			func(off int) bool { return starts[off].Op == x86asm.RET })
	})
}

// FuzzGoProbesARM64 feeds arbitrary code to the arm64 Go scanner.
func FuzzGoProbesARM64(f *testing.F) {
	for _, s := range goARM64Seeds {
		f.Add([]byte(s.code))
	}
	f.Fuzz(func(t *testing.T, code []byte) {
		b := codeBinary("arm64", len(code))
		fn := &Function{Name: "fuzzed", Lang: Go, Addr: fuzzCodeAddr, End: fuzzCodeAddr + uint64(len(code))}
		p, err := b.goProbesARM64(fn, code)
		word := func(off int) uint32 { return binary.LittleEndian.Uint32(code[off:]) }
		checkScan(t, code, p, err,
			func(off int) bool { return off%4 == 0 && off+4 <= len(code) },
			func(off int) bool {
				inst, err := decodeARM64(code[off : off+4])
				return err == nil && inst.Op == arm64asm.RET
			})
		if err == nil && p.Entry != fuzzCodeOff {
			// An entry past the first instruction follows the
			// stack check's BLS.
			e := int(p.Entry - fuzzCodeOff)
			inst, derr := decodeARM64(code[e-4 : e])
			if derr != nil || !isBLS(inst) {
				t.Fatalf("entry %#x does not follow a BLS (word %#08x)", p.Entry, word(e-4))
			}
		}
	})
}
