package symbols

import (
	"debug/elf"
	"debug/gosym"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
)

// goProbeTargets are the Go functions whose probes are checked against
// go tool objdump, with what the fixture guarantees about them.
var goProbeTargets = []struct {
	name      string
	check     bool // has the stack-bound check (false: leaf without one)
	wantExits int  // 0: whatever objdump shows
}{
	{"main.work", false, 0},
	{"main.twoWays", true, 2},
	{"main.bigFrame", true, 0},
	{"main.(*T).Inc", false, 0},
	{"main.(*T).Get", false, 0},
	{"main.leaf", false, 1},
}

// stackCheck finds the stack-bound check at the start of a Go function:
// a CMPQ against an R14-based operand (g.stackguard0) directly followed by
// JBE. It returns the JBE's index, or -1.
func stackCheck(insns []goInsn) int {
	for i := 0; i+1 < len(insns) && i < 8; i++ {
		if strings.HasPrefix(insns[i].asm, "CMPQ ") && strings.Contains(insns[i].asm, "(R14)") &&
			strings.HasPrefix(insns[i+1].asm, "JBE ") {
			return i + 1
		}
	}
	return -1
}

func insnEnd(in goInsn) uint64 { return in.addr + uint64(len(in.code)) }

// goOracle is what go tool objdump says about one function.
type goOracle struct {
	insns []goInsn
	start uint64
	end   uint64
	rets  []uint64 // addresses of RET instructions
	jbe   int      // index of the stack check's JBE, -1 if none
}

func oracleFor(t *testing.T, path, name string) goOracle {
	t.Helper()
	o := goOracle{insns: goObjdump(t, path, name)}
	o.start = o.insns[0].addr
	o.end = insnEnd(o.insns[len(o.insns)-1])
	for _, in := range o.insns {
		if in.asm == "RET" {
			o.rets = append(o.rets, in.addr)
		}
	}
	o.jbe = stackCheck(o.insns)
	return o
}

// checkGoProbes compares Probes with go tool objdump for a binary that has
// a symbol table.
func checkGoProbes(t *testing.T, path string, wantPIE bool) {
	t.Helper()
	b := open(t, path)
	if !b.IsGo || b.Arch != "amd64" || b.PIE != wantPIE {
		t.Errorf("IsGo=%v Arch=%q PIE=%v, want true amd64 %v", b.IsGo, b.Arch, b.PIE, wantPIE)
	}
	segs := loadSegments(t, path)
	for _, tc := range goProbeTargets {
		o := oracleFor(t, path, tc.name)
		f := lookup(t, b, tc.name)
		if f.Lang != Go {
			t.Errorf("%s: Lang = %q, want %q", tc.name, f.Lang, Go)
		}
		if f.Addr != o.start || f.End != o.end {
			t.Errorf("%s: [Addr, End) = [%#x, %#x), objdump says [%#x, %#x)", tc.name, f.Addr, f.End, o.start, o.end)
		}
		if (o.jbe >= 0) != tc.check {
			t.Fatalf("%s: fixture assumption broken: stack check present = %v, want %v", tc.name, o.jbe >= 0, tc.check)
		}
		if tc.wantExits != 0 && len(o.rets) != tc.wantExits {
			t.Fatalf("%s: fixture assumption broken: objdump shows %d RETs, want %d", tc.name, len(o.rets), tc.wantExits)
		}
		p, err := b.Probes(&f)
		if err != nil {
			t.Errorf("%s: Probes: %v", tc.name, err)
			continue
		}

		// Exits: one per RET, each exactly on a RET.
		if len(p.Exits) != len(o.rets) {
			t.Errorf("%s: %d exits, objdump shows %d RETs", tc.name, len(p.Exits), len(o.rets))
		}
		isRet := map[uint64]bool{}
		for _, r := range o.rets {
			isRet[r] = true
		}
		seen := map[uint64]bool{}
		for _, off := range p.Exits {
			a := offToVaddr(t, segs, off)
			if !isRet[a] {
				t.Errorf("%s: exit at offset %#x (address %#x) is not a RET; RETs at %#x", tc.name, off, a, o.rets)
			}
			if seen[a] {
				t.Errorf("%s: exit %#x listed twice", tc.name, a)
			}
			seen[a] = true
			if c := readAt(t, path, off, 1); c[0] != 0xc3 {
				t.Errorf("%s: byte at exit offset %#x is %#x, want 0xc3", tc.name, off, c[0])
			}
		}

		// Entry: past the stack check, on an instruction boundary.
		entry := offToVaddr(t, segs, p.Entry)
		if vaddrToOff(t, segs, entry) != p.Entry {
			t.Fatalf("%s: offset/address round trip broken", tc.name)
		}
		var at *goInsn
		for i := range o.insns {
			if o.insns[i].addr == entry {
				at = &o.insns[i]
			}
		}
		if at == nil {
			t.Errorf("%s: Entry %#x (offset %#x) is not an instruction boundary", tc.name, entry, p.Entry)
		} else if got := readAt(t, path, p.Entry, len(at.code)); string(got) != string(at.code) {
			t.Errorf("%s: bytes at Entry offset %#x = % x, objdump shows % x", tc.name, p.Entry, got, at.code)
		}
		if o.jbe >= 0 {
			jbe := o.insns[o.jbe]
			if entry < insnEnd(jbe) || entry >= o.end {
				t.Errorf("%s: Entry %#x not after the stack check's JBE at %#x and inside [%#x, %#x)", tc.name, entry, jbe.addr, o.start, o.end)
			}
		} else if entry != o.start {
			t.Errorf("%s: no stack check, Entry %#x, want the first instruction %#x", tc.name, entry, o.start)
		}
		t.Logf("%s: entry +%#x exits %d", tc.name, entry-o.start, len(p.Exits))
	}
}

func TestGoNormal(t *testing.T) {
	t.Parallel()
	checkGoProbes(t, goNormal(t), false)
}

func TestGoPIE(t *testing.T) {
	t.Parallel()
	checkGoProbes(t, goPIE(t), true)
}

// TestGoStripped checks a -s -w build, which has no symbol table and no
// DWARF: functions come from .gopclntab. go tool objdump cannot read it,
// so the oracle is the normal build of the same source, compared by
// position relative to the function start.
func TestGoStripped(t *testing.T) {
	t.Parallel()
	path := goStripped(t)
	normal := goNormal(t)
	b := open(t, path)
	if !b.IsGo || b.Arch != "amd64" {
		t.Errorf("IsGo=%v Arch=%q", b.IsGo, b.Arch)
	}
	segs := loadSegments(t, path)
	for _, tc := range goProbeTargets {
		o := oracleFor(t, normal, tc.name)
		f := lookup(t, b, tc.name)
		if f.Lang != Go {
			t.Errorf("%s: Lang = %q", tc.name, f.Lang)
		}
		// .gopclntab has no function sizes: End is the next function's
		// start, so it may include the INT3 padding after the code.
		size := o.end - o.start
		if f.End-f.Addr < size {
			t.Errorf("%s: size %d, the normal build's is %d", tc.name, f.End-f.Addr, size)
		} else {
			pad := readAt(t, path, vaddrToOff(t, segs, f.Addr+size), int(f.End-f.Addr-size))
			if strings.Trim(string(pad), "\xcc") != "" {
				t.Errorf("%s: bytes past the normal build's size are not INT3 padding: % x", tc.name, pad)
			}
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
			if c := readAt(t, path, off, 1); c[0] != 0xc3 {
				t.Errorf("%s: byte at exit offset %#x is %#x, want 0xc3", tc.name, off, c[0])
			}
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		if !equalU64(got, want) {
			t.Errorf("%s: exits at +%#x, the normal build's RETs at +%#x", tc.name, got, want)
		}
		rel := offToVaddr(t, segs, p.Entry) - f.Addr
		wantRel := uint64(0)
		if o.jbe >= 0 {
			// Without DWARF the entry is the instruction after the JBE.
			wantRel = insnEnd(o.insns[o.jbe]) - o.start
			// The check itself has no relocations: same bytes.
			ck := o.insns[o.jbe-1]
			if c := readAt(t, path, vaddrToOff(t, segs, f.Addr+ck.addr-o.start), len(ck.code)); string(c) != string(ck.code) {
				t.Errorf("%s: stack check bytes % x, normal build has % x", tc.name, c, ck.code)
			}
		}
		if rel != wantRel {
			t.Errorf("%s: Entry at +%#x, want +%#x", tc.name, rel, wantRel)
		}
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGoExitsAgree checks that the three amd64 builds give each function
// the same number of exits.
func TestGoExitsAgree(t *testing.T) {
	t.Parallel()
	paths := []string{goNormal(t), goPIE(t), goStripped(t)}
	var bins []*Binary
	for _, p := range paths {
		bins = append(bins, open(t, p))
	}
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
		if counts[0] == 0 || counts[0] != counts[1] || counts[0] != counts[2] {
			t.Errorf("%s: exits normal/pie/stripped = %v, want equal and non-zero", tc.name, counts)
		}
		if tc.wantExits != 0 && counts[0] != tc.wantExits {
			t.Errorf("%s: %d exits, want %d", tc.name, counts[0], tc.wantExits)
		}
	}
}

func TestGoFunctionsList(t *testing.T) {
	t.Parallel()
	for _, path := range []string{goNormal(t), goPIE(t), goStripped(t)} {
		b := open(t, path)
		fns := b.Functions()
		sawInlinedOnly, misordered := false, false
		for i, f := range fns {
			if f.Addr == 0 {
				if sawInlinedOnly && fns[i-1].Name >= f.Name && !misordered {
					misordered = true
					t.Errorf("%s: inlined-only %s after %s: want them by name, so that listings are repeatable", path, f.Name, fns[i-1].Name)
				}
				sawInlinedOnly = true
				continue
			}
			if sawInlinedOnly {
				t.Errorf("%s: %s (addr %#x) listed after an inlined-only function", path, f.Name, f.Addr)
			}
			if i > 0 && fns[i-1].Addr > f.Addr {
				t.Errorf("%s: %s before %s breaks address order", path, fns[i-1].Name, f.Name)
			}
			if f.End <= f.Addr {
				t.Errorf("%s: %s has End %#x <= Addr %#x", path, f.Name, f.End, f.Addr)
			}
		}
		for _, name := range []string{"main.main", "runtime.morestack", "fmt.Sprint"} {
			lookup(t, b, name)
		}
	}
}

// TestGoCannotProbe: a lone RET and a function without RET are refused
// with the reason, on amd64 and on arm64 (normal and stripped).
func TestGoCannotProbe(t *testing.T) {
	t.Parallel()
	for _, path := range []string{goNormal(t), goARM64(t), goARM64Stripped(t)} {
		b := open(t, path)
		for _, tc := range []struct{ name, reason string }{
			{"main.empty", "single RET"},
			{"main.boom", "no RET"},
		} {
			f := lookup(t, b, tc.name)
			_, err := b.Probes(&f)
			var cp *ErrCannotProbe
			if !errors.As(err, &cp) {
				t.Errorf("%s in %s: Probes err = %v, want *ErrCannotProbe", tc.name, path, err)
				continue
			}
			if cp.Function != tc.name || !strings.Contains(cp.Reason, tc.reason) {
				t.Errorf("%s in %s: %v, want it about %s saying %q", tc.name, path, err, tc.name, tc.reason)
			}
		}
	}
}

// TestGoInlinedOnly: main.tiny is inlined into main.main and has no
// out-of-line copy; DWARF lists it with its inlined calls.
func TestGoInlinedOnly(t *testing.T) {
	t.Parallel()
	b := open(t, goNormal(t))
	f := lookup(t, b, "main.tiny")
	if !f.InlinedOnly() || !f.Inlined || f.Addr != 0 {
		t.Errorf("main.tiny = %+v, want inlined-only", f)
	}
	_, err := b.Probes(&f)
	var cp *ErrCannotProbe
	if !errors.As(err, &cp) || !strings.Contains(cp.Reason, "inlined") {
		t.Errorf("Probes(main.tiny) err = %v, want *ErrCannotProbe about inlining", err)
	}
}

// TestGoARM64: an arm64 Go binary opens and lists its functions, and its
// probes match go tool objdump (see disasm_arm64asm_test.go for the oracle
// and the other arm64 tests).
func TestGoARM64(t *testing.T) {
	t.Parallel()
	path := goARM64(t)
	b := open(t, path)
	if b.Arch != "arm64" || !b.IsGo || b.PIE {
		t.Errorf("Arch=%q IsGo=%v PIE=%v, want arm64 true false", b.Arch, b.IsGo, b.PIE)
	}
	ms, err := b.Match("main.*")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range ms {
		got[f.Name] = true
	}
	for _, name := range []string{"main.main", "main.work", "main.twoWays", "main.(*T).Inc"} {
		if !got[name] {
			t.Errorf("arm64: %s missing from Match(main.*) = %v", name, names(ms))
		}
	}
	segs := loadSegments(t, path)
	for _, tc := range goProbeTargets {
		checkARM64Probes(t, path, b, segs, tc.name, tc.check, tc.wantExits)
	}
	// The fixture has all three forms of the check: small frame (CMP
	// against RSP) in main.boom, SUB then CMP in main.twoWays, and the
	// underflow guard (SUBS, BCC) before the CMP in main.bigFrame.
	for name, want := range map[string]string{"main.boom": "RSP", "main.twoWays": "SUB ", "main.bigFrame": "BCC "} {
		o := arm64OracleFor(t, path, name)
		if o.bls < 0 {
			t.Errorf("fixture assumption broken: %s has no stack check", name)
			continue
		}
		var asm []string
		for _, in := range o.insns[:o.bls] {
			asm = append(asm, in.asm)
		}
		if !strings.Contains(strings.Join(asm, "; "), want) {
			t.Errorf("fixture assumption broken: %s's check %q lacks %q", name, asm, want)
		}
	}
}

// TestCgo: C functions in a Go binary are named C.name and probed like
// native code; Go functions of the same binary still get RET exits.
func TestCgo(t *testing.T) {
	t.Parallel()
	t.Run("C DWARF", func(t *testing.T) { checkCgo(t, goCgo(t)) })
	t.Run("no C DWARF", func(t *testing.T) { checkCgo(t, goCgoNoCDWARF(t)) })
}

func checkCgo(t *testing.T, path string) {
	b := open(t, path)
	if !b.IsGo {
		t.Fatalf("IsGo = false for a cgo binary")
	}
	syms := elfFuncSymbols(t, path)
	segs := loadSegments(t, path)

	c := lookup(t, b, "C.cexported")
	if c.Lang != Native {
		t.Errorf("C.cexported: Lang = %q, want %q", c.Lang, Native)
	}
	if c.Addr != syms["cexported"] {
		t.Errorf("C.cexported: Addr = %#x, readelf says %#x", c.Addr, syms["cexported"])
	}
	p, err := b.Probes(&c)
	if err != nil {
		t.Fatalf("Probes(C.cexported): %v", err)
	}
	if p.Entry != vaddrToOff(t, segs, c.Addr) || p.Exits != nil {
		t.Errorf("Probes(C.cexported) = %+v, want Entry %#x and no exits", p, vaddrToOff(t, segs, c.Addr))
	}

	o := oracleFor(t, path, "main.work")
	g := lookup(t, b, "main.work")
	if g.Lang != Go {
		t.Errorf("main.work: Lang = %q", g.Lang)
	}
	p, err = b.Probes(&g)
	if err != nil {
		t.Fatalf("Probes(main.work): %v", err)
	}
	if len(p.Exits) != len(o.rets) || len(o.rets) == 0 {
		t.Errorf("main.work: %d exits, objdump shows RETs at %#x", len(p.Exits), o.rets)
	}
	if o.jbe >= 0 {
		if e := offToVaddr(t, segs, p.Entry); e < insnEnd(o.insns[o.jbe]) || e >= o.end {
			t.Errorf("main.work: Entry %#x not past the stack check", e)
		}
	}
}

// TestCgoStripped: a cgo binary stripped after linking (how distributions
// ship Go servers) has neither DWARF nor a symbol table, and the system
// linker laid it out, so .gopclntab's function offsets are not relative to
// .text. Every Go function the unstripped binary has must be found at the
// same address, with the same probes.
func TestCgoStripped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		build func(*testing.T) string
	}{{"exec", goCgo}, {"pie", goCgoPIE}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			full := tc.build(t)
			bare := stripped(t, full)
			if out := tool(t, "readelf", "-SW", bare); strings.Contains(out, ".symtab") || strings.Contains(out, ".debug_info") {
				t.Fatalf("strip left a symbol table or DWARF:\n%s", out)
			}
			want, got := open(t, full), open(t, bare)
			byName := map[string]Function{}
			for _, f := range got.Functions() {
				byName[f.Name] = f
			}
			checked := 0
			for _, w := range want.Functions() {
				if w.Lang != Go || w.InlinedOnly() {
					continue
				}
				g, ok := byName[w.Name]
				if !ok {
					t.Errorf("%s: missing from the stripped binary", w.Name)
					continue
				}
				// .gopclntab's end is the next function's entry: it
				// includes the alignment padding that DWARF leaves out.
				if g.Addr != w.Addr || g.End < w.End || g.End-w.End >= 64 {
					t.Errorf("%s: [%#x, %#x) stripped, [%#x, %#x) with symbols", w.Name, g.Addr, g.End, w.Addr, w.End)
					continue
				}
				wp, werr := want.Probes(&w)
				gp, gerr := got.Probes(&g)
				if (werr == nil) != (gerr == nil) || wp.Entry != gp.Entry || !slices.Equal(wp.Exits, gp.Exits) {
					t.Errorf("%s: probes %+v (%v) stripped, %+v (%v) with symbols", w.Name, gp, gerr, wp, werr)
				}
				checked++
			}
			if checked < 1000 {
				t.Errorf("compared %d Go functions; a cgo binary has thousands", checked)
			}
			work := lookup(t, got, "main.work")
			if p, err := got.Probes(&work); err != nil || len(p.Exits) == 0 {
				t.Errorf("main.work in the stripped binary: probes %+v, %v", p, err)
			}
		})
	}
}

// TestPclntabFuncsMatchesGosym: ulat's lean reader of .gopclntab lists the
// same functions, at the same addresses, as the standard library's.
func TestPclntabFuncsMatchesGosym(t *testing.T) {
	t.Parallel()
	for _, path := range []string{goNormal(t), goStripped(t), goPIE(t), stripped(t, goCgo(t))} {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sec := f.Section(".gopclntab")
		data, err := sec.Data()
		if err != nil {
			t.Fatal(err)
		}
		b := &Binary{Path: path, file: f}
		start, _, err := goTableBases(b, sec.Addr, true)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, start))
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := pclntabFuncs(sec, start, f, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(got) != len(tab.Funcs) {
			t.Fatalf("%s: %d functions, debug/gosym has %d", path, len(got), len(tab.Funcs))
		}
		for i, w := range tab.Funcs {
			if g := got[i]; g.name != w.Name || g.entry != w.Entry || g.end != w.End {
				t.Errorf("%s: function %d is %s [%#x, %#x), debug/gosym says %s [%#x, %#x)", path, i, g.name, g.entry, g.end, w.Name, w.Entry, w.End)
			}
		}
	}
}

// TestPclntabMatchesDelve: for a Go binary without DWARF, ulat's own
// reading of .gopclntab (and of the symbol table for C functions) lists
// exactly the functions delve does: names, addresses, language, and what
// is inlined (from the inline trees). With the symbol table kept (-w), an
// ABI wrapper's symbol must not be taken for a C function: a uretprobe on
// runtime assembly crashed gofmt.
func TestPclntabMatchesDelve(t *testing.T) {
	t.Parallel()
	cgoNoDWARF := func(t *testing.T) string {
		env := append(goEnv("amd64"), "CGO_ENABLED=1", "CGO_CFLAGS=-O2 -g")
		return buildGoFrom(t, "cgoprog", "go-cgo-w", env, "-ldflags=-w")
	}
	// delve cannot read this one (external linking, no DWARF): its C
	// functions come from the symbol table, and no Go symbol among them.
	cgo := open(t, cgoNoDWARF(t))
	var cnames []string
	for _, f := range cgo.Functions() {
		if strings.HasPrefix(f.Name, "C.") {
			cnames = append(cnames, f.Name)
			if strings.HasSuffix(f.Name, ".abi0") || strings.Contains(f.Name, "runtime.") {
				t.Errorf("%s: a Go function taken for C", f.Name)
			}
		}
	}
	if !slices.Contains(cnames, "C.cexported") {
		t.Errorf("C.cexported missing from %v", cnames)
	}
	for _, path := range []string{
		goStripped(t),
		buildGo(t, "go-stripped-pie", "amd64", "-buildmode=pie", "-ldflags=-s -w"),
		buildGo(t, "go-w", "amd64", "-ldflags=-w"),
	} {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := &Binary{Path: path, file: f, Arch: "amd64"}
		// delve prints "no debug info found" on stderr here, as
		// Open never has it do (TestDelveSilent).
		want, err := delveFunctions(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := goTableFunctions(b)
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			addr     uint64
			lang     Language
			inlined  bool
			lastOnly bool
		}
		index := func(fns []Function) map[string]key {
			m := map[string]key{}
			for _, f := range fns {
				m[f.Name] = key{f.Addr, f.Lang, f.Inlined, f.InlinedOnly()}
			}
			return m
		}
		w, g := index(want), index(got)
		if len(w) < 1000 {
			t.Fatalf("%s: delve lists %d functions", path, len(w))
		}
		for name, k := range w {
			if gk, ok := g[name]; !ok || gk != k {
				t.Errorf("%s: %s is %+v by delve, %+v (listed %v) from .gopclntab", path, name, k, gk, ok)
			}
		}
		for name, k := range g {
			if _, ok := w[name]; !ok {
				t.Errorf("%s: %s (%+v) from .gopclntab, not listed by delve", path, name, k)
			}
		}
	}
}
