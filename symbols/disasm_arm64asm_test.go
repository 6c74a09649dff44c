package symbols

// arm64 Go probes, checked against go tool objdump of cross-built binaries.
// (The file is not named *_arm64_test.go: that suffix is a GOARCH build
// constraint and would run these tests on arm64 hosts only.)

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"
)

func goARM64Stripped(t *testing.T) string {
	return buildGo(t, "go-arm64-stripped", "arm64", "-ldflags=-s -w")
}

// arm64ExtraSrc adds what testdata/goprog lacks on arm64: a function with
// the small-frame check (CMP against RSP directly) that returns, and leaf
// functions whose first instructions include ARMv8.1 atomics, which
// golang.org/x/arch cannot decode.
const arm64ExtraSrc = `package main

import "sync/atomic"

type C struct{ n int64 }

//go:noinline
func (c *C) Inc() int64 { return atomic.AddInt64(&c.n, 1) }

//go:noinline
func (c *C) Swap(v int64) int64 { return atomic.SwapInt64(&c.n, v) }

//go:noinline
func callee(x int) int { return x + 1 }

// small has a frame of at most 128 bytes: CMP R16, RSP.
//
//go:noinline
func small(x int) int { return callee(x) * 2 }

// checkedAtomic has a stack check and an atomic after it.
//
//go:noinline
func checkedAtomic(c *C, x int) int64 { return c.Inc() + int64(callee(x)) }

func main() {
	c := &C{}
	println(c.Inc(), c.Swap(3), small(2), checkedAtomic(c, 1))
}
`

// arm64ExtraTargets: name, has a stack check, RET count (0: whatever
// objdump shows).
var arm64ExtraTargets = []struct {
	name      string
	check     bool
	wantExits int
}{
	{"main.(*C).Inc", false, 1},
	{"main.(*C).Swap", false, 1},
	{"main.callee", false, 1},
	{"main.small", true, 1},
	{"main.checkedAtomic", true, 1},
}

func goARM64Extra(t *testing.T) string {
	t.Helper()
	return artifact(t, "go-arm64-extra", func(out string) error {
		dir := out + ".src"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(arm64ExtraSrc), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/extra\n\ngo 1.22\n"), 0o644); err != nil {
			return err
		}
		_, err := run(dir, goTool(), goEnv("arm64"), "build", "-o", out, ".")
		return err
	})
}

// a64Insn is one line of go tool objdump for an arm64 binary. objdump
// prints the instruction word as a number, not in memory order.
type a64Insn struct {
	addr uint64
	word uint32
	asm  string
}

// a64Oracle is what go tool objdump says about one arm64 function.
type a64Oracle struct {
	name       string
	insns      []a64Insn
	start, end uint64
	rets       []uint64
	bls        int // index of the stack check's BLS, -1 if none
}

var (
	a64TextRE = regexp.MustCompile(`^TEXT (.+)\(SB\) `)
	a64LineRE = regexp.MustCompile(`^\s+\S+\s+0x([0-9a-f]+)\s+([0-9a-f]{8})\s+(.*?)\s*$`)
)

// arm64Objdump runs go tool objdump on an arm64 binary (all of it when
// fn is empty) and returns its functions by start address.
func arm64Objdump(t *testing.T, path, fn string) map[uint64]*a64Oracle {
	t.Helper()
	args := []string{"tool", "objdump"}
	if fn != "" {
		args = append(args, "-s", "^"+regexp.QuoteMeta(fn)+"$")
	}
	out, err := run("", goTool(), goEnv("amd64"), append(args, path)...)
	if err != nil {
		t.Fatal(err)
	}
	fns := map[uint64]*a64Oracle{}
	var cur *a64Oracle
	flush := func() {
		if cur != nil && len(cur.insns) > 0 {
			cur.start = cur.insns[0].addr
			cur.end = cur.insns[len(cur.insns)-1].addr + 4
			cur.bls = a64StackCheck(cur.insns)
			fns[cur.start] = cur
		}
		cur = nil
	}
	for _, line := range strings.Split(out, "\n") {
		if m := a64TextRE.FindStringSubmatch(line); m != nil {
			flush()
			cur = &a64Oracle{name: m[1]}
			continue
		}
		m := a64LineRE.FindStringSubmatch(line)
		if m == nil || cur == nil {
			continue
		}
		w, err := strconv.ParseUint(m[2], 16, 32)
		if err != nil {
			t.Fatalf("go tool objdump line %q: %v", line, err)
		}
		in := a64Insn{addr: parseHex(t, m[1]), word: uint32(w), asm: m[3]}
		if in.asm == "RET" || strings.HasPrefix(in.asm, "RET ") {
			cur.rets = append(cur.rets, in.addr)
		}
		cur.insns = append(cur.insns, in)
	}
	flush()
	if len(fns) == 0 {
		t.Fatalf("go tool objdump shows no function %q in %s:\n%.2000s", fn, path, out)
	}
	return fns
}

func arm64OracleFor(t *testing.T, path, fn string) *a64Oracle {
	t.Helper()
	for _, o := range arm64Objdump(t, path, fn) {
		return o
	}
	return nil
}

var a64GuardLoadRE = regexp.MustCompile(`^MOVD (?:16|24)\(R28\), (R\d+)$`)

// a64StackCheck finds the stack-bound check in objdump's text: a load of
// g.stackguard0 (or 1) from R28 into some register, then a CMP naming that
// register directly followed by BLS, within the first 8 instructions. It
// returns the BLS's index, or -1.
func a64StackCheck(insns []a64Insn) int {
	reg := ""
	for i := 0; i < len(insns) && i < 8; i++ {
		if m := a64GuardLoadRE.FindStringSubmatch(insns[i].asm); m != nil {
			reg = m[1]
			continue
		}
		if reg == "" || i == 0 || !strings.HasPrefix(insns[i].asm, "BLS ") {
			continue
		}
		prev := insns[i-1].asm
		if !strings.HasPrefix(prev, "CMP ") {
			continue
		}
		for _, op := range strings.Split(strings.TrimPrefix(prev, "CMP "), ",") {
			if strings.TrimSpace(op) == reg {
				return i
			}
		}
	}
	return -1
}

func (o *a64Oracle) insnAt(addr uint64) *a64Insn {
	for i := range o.insns {
		if o.insns[i].addr == addr {
			return &o.insns[i]
		}
	}
	return nil
}

// wordAt reads the little-endian instruction word at a file offset.
func wordAt(t *testing.T, path string, off uint64) uint32 {
	t.Helper()
	return binary.LittleEndian.Uint32(readAt(t, path, off, 4))
}

func isRetWord(w uint32) bool {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], w)
	inst, err := decodeARM64(b[:])
	return err == nil && inst.Op == arm64asm.RET
}

// checkARM64Probes compares Probes for name in the binary at path (which has
// a symbol table) with go tool objdump.
func checkARM64Probes(t *testing.T, path string, b *Binary, segs []segment, name string, check bool, wantExits int) {
	t.Helper()
	o := arm64OracleFor(t, path, name)
	f := lookup(t, b, name)
	if f.Lang != Go {
		t.Errorf("%s: Lang = %q, want %q", name, f.Lang, Go)
	}
	if f.Addr != o.start || f.End > o.end || f.End <= f.Addr {
		t.Errorf("%s: [Addr, End) = [%#x, %#x), objdump says [%#x, %#x)", name, f.Addr, f.End, o.start, o.end)
	}
	if (o.bls >= 0) != check {
		t.Fatalf("%s: fixture assumption broken: stack check present = %v, want %v", name, o.bls >= 0, check)
	}
	if wantExits != 0 && len(o.rets) != wantExits {
		t.Fatalf("%s: fixture assumption broken: objdump shows %d RETs, want %d", name, len(o.rets), wantExits)
	}
	p, err := b.Probes(&f)
	if err != nil {
		t.Errorf("%s: Probes: %v", name, err)
		return
	}

	// Exits: one per RET, each exactly on a RET.
	if len(p.Exits) != len(o.rets) {
		t.Errorf("%s: %d exits, objdump shows %d RETs", name, len(p.Exits), len(o.rets))
	}
	isRet := map[uint64]bool{}
	for _, r := range o.rets {
		isRet[r] = true
	}
	seen := map[uint64]bool{}
	for _, off := range p.Exits {
		a := offToVaddr(t, segs, off)
		if vaddrToOff(t, segs, a) != off {
			t.Fatalf("%s: offset/address round trip broken for %#x", name, off)
		}
		if !isRet[a] {
			t.Errorf("%s: exit at offset %#x (address %#x) is not a RET; RETs at %#x", name, off, a, o.rets)
		}
		if seen[a] {
			t.Errorf("%s: exit %#x listed twice", name, a)
		}
		seen[a] = true
		if w := wordAt(t, path, off); !isRetWord(w) {
			t.Errorf("%s: word at exit offset %#x is %08x, which is not a RET", name, off, w)
		}
	}

	// Entry: on an instruction, past the stack check.
	entry := offToVaddr(t, segs, p.Entry)
	if vaddrToOff(t, segs, entry) != p.Entry {
		t.Fatalf("%s: offset/address round trip broken", name)
	}
	if entry%4 != 0 || entry < f.Addr || entry >= f.End {
		t.Errorf("%s: Entry %#x not a 4-byte aligned address in [%#x, %#x)", name, entry, f.Addr, f.End)
	}
	at := o.insnAt(entry)
	switch {
	case at == nil:
		t.Errorf("%s: Entry %#x (offset %#x) is not an instruction objdump shows", name, entry, p.Entry)
	case at.word == 0:
		t.Errorf("%s: Entry %#x is on padding", name, entry)
	case wordAt(t, path, p.Entry) != at.word:
		t.Errorf("%s: word at Entry offset %#x = %08x, objdump shows %08x", name, p.Entry, wordAt(t, path, p.Entry), at.word)
	}
	if o.bls >= 0 {
		bls := o.insns[o.bls]
		if entry <= bls.addr || entry >= o.end {
			t.Errorf("%s: Entry %#x not after the stack check's BLS at %#x and inside [%#x, %#x)", name, entry, bls.addr, o.start, o.end)
		}
		// The instruction right after the BLS, where SP is still the
		// caller's (as at the RET).
		if want := bls.addr + 4; entry != want {
			t.Errorf("%s: Entry %#x, want %#x (the instruction after the BLS)", name, entry, want)
		}
	} else if entry != o.start {
		t.Errorf("%s: no stack check, Entry %#x, want the first instruction %#x", name, entry, o.start)
	}
	t.Logf("%s: entry +%#x (%s) exits %d", name, entry-o.start, at.asm, len(p.Exits))
}

// TestGoARM64Extra covers the small-frame check and undecodable (ARMv8.1
// atomic) instructions in the first words of a function.
func TestGoARM64Extra(t *testing.T) {
	t.Parallel()
	path := goARM64Extra(t)
	b := open(t, path)
	segs := loadSegments(t, path)
	for _, tc := range arm64ExtraTargets {
		checkARM64Probes(t, path, b, segs, tc.name, tc.check, tc.wantExits)
	}
	// The fixture must really contain what it is for.
	undecodable := 0
	for _, name := range []string{"main.(*C).Inc", "main.(*C).Swap"} {
		for _, in := range arm64OracleFor(t, path, name).insns {
			if in.word != 0 && in.asm == "?" {
				undecodable++
			}
		}
	}
	if undecodable == 0 {
		t.Errorf("fixture assumption broken: no undecodable instruction in main.(*C).Inc and Swap")
	}
	if o := arm64OracleFor(t, path, "main.small"); !strings.Contains(o.insns[o.bls-1].asm, "RSP") {
		t.Errorf("fixture assumption broken: main.small's check is %q, want a CMP against RSP", o.insns[o.bls-1].asm)
	}
}

// TestGoARM64Stripped checks a -s -w arm64 build (no symbol table, no
// DWARF) against the normal build's objdump, by position relative to the
// function start.
func TestGoARM64Stripped(t *testing.T) {
	t.Parallel()
	path := goARM64Stripped(t)
	normal := goARM64(t)
	b := open(t, path)
	if !b.IsGo || b.Arch != "arm64" {
		t.Errorf("IsGo=%v Arch=%q", b.IsGo, b.Arch)
	}
	segs := loadSegments(t, path)
	for _, tc := range goProbeTargets {
		o := arm64OracleFor(t, normal, tc.name)
		f := lookup(t, b, tc.name)
		if f.Lang != Go {
			t.Errorf("%s: Lang = %q", tc.name, f.Lang)
		}
		// Without sizes, End is the next function's start: the code
		// and then zero padding.
		var code uint64 // size without the trailing zero words
		for _, in := range o.insns {
			if in.word != 0 {
				code = in.addr + 4 - o.start
			}
		}
		if f.End-f.Addr < code {
			t.Errorf("%s: size %d, the normal build's code is %d bytes", tc.name, f.End-f.Addr, code)
		} else if pad := readAt(t, path, vaddrToOff(t, segs, f.Addr+code), int(f.End-f.Addr-code)); strings.Trim(string(pad), "\x00") != "" {
			t.Errorf("%s: bytes past the normal build's code are not zero padding: % x", tc.name, pad)
		}
		p, err := b.Probes(&f)
		if err != nil {
			t.Errorf("%s: Probes: %v", tc.name, err)
			continue
		}
		var want, got []uint64
		for _, r := range o.rets {
			want = append(want, r-o.start)
		}
		for _, off := range p.Exits {
			got = append(got, offToVaddr(t, segs, off)-f.Addr)
			if w := wordAt(t, path, off); !isRetWord(w) {
				t.Errorf("%s: word at exit offset %#x is %08x, not a RET", tc.name, off, w)
			}
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		if !equalU64(got, want) {
			t.Errorf("%s: exits at +%#x, the normal build's RETs at +%#x", tc.name, got, want)
		}
		rel := offToVaddr(t, segs, p.Entry) - f.Addr
		wantRel := uint64(0)
		if o.bls >= 0 {
			// Without DWARF the entry is the instruction after the BLS,
			// and the check's words are the same as the normal build's.
			wantRel = o.insns[o.bls].addr + 4 - o.start
			for _, in := range o.insns[:o.bls+1] {
				if w := wordAt(t, path, vaddrToOff(t, segs, f.Addr+in.addr-o.start)); w != in.word {
					t.Errorf("%s: stack check word %08x, normal build has %08x (%s)", tc.name, w, in.word, in.asm)
				}
			}
		}
		if rel != wantRel {
			t.Errorf("%s: Entry at +%#x, want +%#x", tc.name, rel, wantRel)
		}
	}
}

// TestGoARM64ExitsAgree: the normal and stripped arm64 builds give each
// function the same, non-zero number of exits.
func TestGoARM64ExitsAgree(t *testing.T) {
	t.Parallel()
	bins := []*Binary{open(t, goARM64(t)), open(t, goARM64Stripped(t))}
	for _, tc := range goProbeTargets {
		var counts []int
		for _, b := range bins {
			f := lookup(t, b, tc.name)
			p, err := b.Probes(&f)
			if err != nil {
				t.Fatalf("%s in %s: %v", tc.name, b.Path, err)
			}
			counts = append(counts, len(p.Exits))
		}
		if counts[0] == 0 || counts[0] != counts[1] {
			t.Errorf("%s: exits normal/stripped = %v, want equal and non-zero", tc.name, counts)
		}
		if tc.wantExits != 0 && counts[0] != tc.wantExits {
			t.Errorf("%s: %d exits, want %d", tc.name, counts[0], tc.wantExits)
		}
	}
}

// TestGoARM64AllFunctions checks every Go function of the arm64 binary,
// runtime included, against objdump: exits exactly on its RETs, entry past
// its stack check or at its start, and a refusal only for a reason objdump
// confirms.
func TestGoARM64AllFunctions(t *testing.T) {
	t.Parallel()
	path := goARM64(t)
	b := open(t, path)
	segs := loadSegments(t, path)
	oracle := arm64Objdump(t, path, "")
	var probed, checked, noRet, singleRet, withUndecodable int
	for _, f := range b.Functions() {
		if f.Lang != Go || f.Addr == 0 {
			continue
		}
		o := oracle[f.Addr]
		if o == nil {
			t.Errorf("%s at %#x: objdump has no function there", f.Name, f.Addr)
			continue
		}
		var rets []uint64 // objdump's RETs inside [Addr, End)
		for _, r := range o.rets {
			if r < f.End {
				rets = append(rets, r)
			}
		}
		p, err := b.Probes(&f)
		if err != nil {
			var cp *ErrCannotProbe
			switch {
			case !errors.As(err, &cp):
				t.Errorf("%s: Probes: %v", f.Name, err)
			case strings.Contains(cp.Reason, "no RET") && len(rets) == 0:
				noRet++
			case strings.Contains(cp.Reason, "single RET") && o.bls < 0 && len(rets) > 0 && rets[0] == f.Addr:
				singleRet++
			default:
				t.Errorf("%s: %v (objdump: %d RETs, stack check %v)", f.Name, err, len(rets), o.bls >= 0)
			}
			continue
		}
		probed++
		for _, in := range o.insns {
			if in.word != 0 && in.asm == "?" && in.addr < f.End {
				withUndecodable++
				break
			}
		}
		var got []uint64
		for _, off := range p.Exits {
			got = append(got, offToVaddr(t, segs, off))
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		if !equalU64(got, rets) {
			t.Errorf("%s: exits at %#x, objdump's RETs at %#x", f.Name, got, rets)
		}
		entry := offToVaddr(t, segs, p.Entry)
		if in := o.insnAt(entry); in == nil || in.word == 0 || entry >= f.End {
			t.Errorf("%s: Entry %#x is not an instruction of [%#x, %#x)", f.Name, entry, f.Addr, f.End)
		}
		if o.bls >= 0 {
			checked++
			afterBLS := o.insns[o.bls].addr + 4
			if entry != afterBLS {
				t.Errorf("%s: Entry %#x, want %#x (the instruction after the BLS)", f.Name, entry, afterBLS)
			}
		} else if entry != f.Addr {
			t.Errorf("%s: no stack check, Entry %#x, want %#x", f.Name, entry, f.Addr)
		}
	}
	t.Logf("%d Go functions probed (%d past a stack check; %d containing words the decoder does not know); refused: %d without RET, %d single RET",
		probed, checked, withUndecodable, noRet, singleRet)
	if probed < 1000 || checked < probed/2 || withUndecodable == 0 {
		t.Errorf("sweep covered too little: %d probed, %d with a check, %d with undecodable words", probed, checked, withUndecodable)
	}
}

// le assembles instruction words into little-endian code.
func le(words ...uint32) []byte {
	out := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(out[4*i:], w)
	}
	return out
}

// Encodings taken from go tool objdump of Go 1.26 arm64 binaries.
const (
	wLoadSG0     = 0xf9400b90 // MOVD 16(R28), R16
	wLoadSG1     = 0xf9400f90 // MOVD 24(R28), R16
	wLoadGM      = 0xf9401b90 // MOVD 48(R28), R16 (g.m, not a stack guard)
	wCmpRSP      = 0xeb3063ff // CMP R16, RSP
	wSubR17      = 0xd10043f1 // SUB $16, RSP, R17
	wCmpR17      = 0xeb10023f // CMP R16, R17
	wMovR27      = 0xd289b61b // MOVD $19888, R27
	wSubsR17     = 0xeb3b63f1 // SUBS R27, RSP, R17
	wBCC         = 0x540006c3 // BCC 54(PC)
	wBLS         = 0x54000249 // BLS 18(PC)
	wBGT         = 0x5400010c // BGT 8(PC)
	wCmpR0Imm    = 0xf100281f // CMP $10, R0
	wFrame       = 0xf81c0ffe // MOVD.W R30, -64(RSP)
	wMov         = 0xaa0103e0 // MOVD R1, R0
	wRet         = 0xd65f03c0 // RET
	wRetR27      = 0xd65f0360 // RET R27
	wLDADDAL     = 0xf8e10002 // LDADDALD R1, (R0), R2 (ARMv8.1, undecodable)
	wCAS         = 0x88fbfc41 // CASALW (ARMv8.1, undecodable)
	wNop         = 0xd503201f // NOOP
	testFuncAddr = 0x10000
)

func TestScanGoARM64(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		code       []byte
		addr       uint64
		afterCheck int   // word index after the BLS, -1: no check
		rets       []int // word indexes
		reason     string
	}{
		{"small frame", le(wLoadSG0, wCmpRSP, wBLS, wFrame, wMov, wRet, 0, 0), testFuncAddr, 3, []int{5}, ""},
		{"medium frame", le(wLoadSG0, wSubR17, wCmpR17, wBLS, wFrame, wRet), testFuncAddr, 4, []int{5}, ""},
		{"big frame", le(wLoadSG0, wMovR27, wSubsR17, wBCC, wCmpR17, wBLS, wMov, wRet), testFuncAddr, 6, []int{7}, ""},
		{"stackguard1", le(wLoadSG1, wCmpRSP, wBLS, wFrame, wRet), testFuncAddr, 3, []int{4}, ""},
		{"several RETs", le(wLoadSG0, wCmpRSP, wBLS, wCmpR0Imm, wBGT, wRet, wMov, wRetR27), testFuncAddr, 3, []int{5, 7}, ""},
		{"nosplit leaf", le(wMov, wRet, 0, 0), testFuncAddr, -1, []int{1}, ""},
		{"lone RET", le(wRet, 0, 0, 0), testFuncAddr, -1, []int{0}, ""},
		{"no RET", le(wLoadSG0, wCmpRSP, wBLS, wFrame, wMov, wNop), testFuncAddr, 3, nil, ""},
		{"not g.stackguard", le(wLoadGM, wCmpRSP, wBLS, wMov, wRet), testFuncAddr, -1, []int{4}, ""},
		{"BLS after another compare", le(wLoadSG0, wCmpR0Imm, wBLS, wMov, wRet), testFuncAddr, -1, []int{4}, ""},
		{"check too late", le(wNop, wNop, wNop, wNop, wNop, wNop, wLoadSG0, wCmpRSP, wBLS, wRet), testFuncAddr, -1, []int{9}, ""},
		{"atomic first", le(wLDADDAL, wMov, wRet, 0), testFuncAddr, -1, []int{2}, ""},
		{"atomic after check", le(wLoadSG0, wCmpRSP, wBLS, wCAS, wRet), testFuncAddr, 3, []int{4}, ""},
		{"undecodable inside check", le(wLoadSG0, wCAS, wCmpRSP, wBLS, wRet), testFuncAddr, 0, nil, "cannot disassemble the instruction at 0x10004"},
		{"misaligned", le(wMov, wRet), testFuncAddr + 2, 0, nil, "not a multiple of 4"},
		{"trailing partial word", append(le(wMov, wRet), 0xc0, 0x03), testFuncAddr, -1, []int{1}, ""},
	} {
		after, rets, reason := scanGoARM64(tc.code, tc.addr)
		if tc.reason != "" {
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("%s: reason %q, want it to contain %q", tc.name, reason, tc.reason)
			}
			continue
		}
		if reason != "" {
			t.Errorf("%s: unexpected reason %q", tc.name, reason)
			continue
		}
		wantAfter := uint64(0)
		if tc.afterCheck >= 0 {
			wantAfter = tc.addr + 4*uint64(tc.afterCheck)
		}
		var wantRets []uint64
		for _, i := range tc.rets {
			wantRets = append(wantRets, tc.addr+4*uint64(i))
		}
		if after != wantAfter || !equalU64(rets, wantRets) {
			t.Errorf("%s: afterCheck %#x rets %#x, want %#x and %#x", tc.name, after, rets, wantAfter, wantRets)
		}
	}
}
