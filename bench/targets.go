package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// target is one benchmark target binary built into the temporary directory.
type target struct {
	lang       string              // "C" or "Go"
	bin        string              // absolute path
	fnPrefix   string              // "" for C, "main." for Go
	spinIters  int                 // spin iterations that take ~1 µs
	goProbeSym map[string][]string // Go: function -> marker symbols at ulat's entry and RETs
}

func (t *target) fn(name string) string { return t.fnPrefix + name }

// buildTargets compiles the C and Go targets into dir and calibrates their
// spin functions.
func (b *bench) buildTargets(ctx context.Context, dir string) (c, g *target, err error) {
	c = &target{lang: "C", bin: filepath.Join(dir, "ctarget")}
	if _, err := b.output(ctx, []string{"gcc", "-O2", "-Wall", "-o", c.bin, "bench/targets/c/target.c"}); err != nil {
		return nil, nil, fmt.Errorf("build the C target: %w", err)
	}
	g = &target{lang: "Go", bin: filepath.Join(dir, "gotarget"), fnPrefix: "main."}
	// The target needs no cgo; make exports CGO_ENABLED=1 for ulat itself.
	if _, err := b.output(ctx, []string{b.goCmd, "build", "-o", g.bin, "./bench/targets/go"}, "CGO_ENABLED=0"); err != nil {
		return nil, nil, fmt.Errorf("build the Go target: %w", err)
	}
	if err := b.markGoProbeSites(ctx, g); err != nil {
		return nil, nil, err
	}
	for _, t := range []*target{c, g} {
		out, err := b.output(ctx, []string{t.bin, "calibrate"})
		if err != nil {
			return nil, nil, err
		}
		v, err := field(out, "iters_per_us")
		if err != nil {
			return nil, nil, fmt.Errorf("%s target calibrate: %w", t.lang, err)
		}
		t.spinIters = int(v)
	}
	return c, g, nil
}

// runTarget runs a target to completion and returns the ns per call it
// measured, by the clock -clock chose: its thread's CPU time, or wall time.
func (b *bench) runTarget(ctx context.Context, t *target, fn string, calls int) (float64, error) {
	argv := []string{t.bin, fn, strconv.Itoa(calls)}
	if fn == "spin" {
		argv = append(argv, strconv.Itoa(t.spinIters))
	}
	out, err := b.output(ctx, argv)
	if err != nil {
		return 0, err
	}
	if b.clock == "wall" {
		return field(out, "ns_per_call")
	}
	return field(out, "cpu_ns_per_call")
}

// field reads "name value" from a target's output.
func field(out, name string) (float64, error) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("no %q in output %q", name, out)
}

// probeSite is how ulat probes a function, from `ulat symbols`.
type probeSite struct {
	entry uint64 // file offset
	exits int    // number of RET probes; -1: a uretprobe
}

// symRow matches a row of `ulat symbols`: LANG, ENTRY, EXITS, INLINED,
// then FUNCTION, which runs to the end of the line (names can hold
// spaces) unless the function cannot be timed and a note follows it.
// Submatches: 1 entry, 2 exits, 3 function.
var symRow = regexp.MustCompile(`^(?:go|native)\s+(0x[0-9a-f]+|-)\s+(\d+|uretprobe|-)\s+(?:no|only|partly)\s+(\S.*)$`)

// ulatSymbols asks `ulat symbols` where ulat puts its probes.
func (b *bench) ulatSymbols(ctx context.Context, bin string, fns ...string) (map[string]probeSite, error) {
	out, err := b.output(ctx, append([]string{b.ulat, "symbols", bin}, fns...))
	if err != nil {
		return nil, err
	}
	sites := map[string]probeSite{}
	for _, line := range strings.Split(out, "\n") {
		m := symRow.FindStringSubmatch(line)
		if m == nil || m[1] == "-" {
			continue
		}
		entry, err := strconv.ParseUint(strings.TrimPrefix(m[1], "0x"), 16, 64)
		if err != nil {
			return nil, err
		}
		s := probeSite{entry: entry, exits: -1}
		if m[2] != "uretprobe" {
			s.exits, _ = strconv.Atoi(m[2])
		}
		sites[m[3]] = s
	}
	for _, fn := range fns {
		if _, ok := sites[fn]; !ok {
			return nil, fmt.Errorf("ulat symbols %s: no probe site for %s:\n%s", bin, fn, out)
		}
	}
	return sites, nil
}

var objdumpRet = regexp.MustCompile(`^\s+\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+RET\b`)

// markGoProbeSites points the Go target's unused main.benchMarkerN ELF
// symbols at the places where ulat probes main.empty and main.spin (the
// entry after any stack check, and every RET), one byte long each.
// bpftrace 0.17 as packaged has no disassembler, so it refuses FUNC+OFFSET;
// a symbol of its own at each site lets it probe exactly there. The symbol
// table is rewritten in place: no code or data moves.
func (b *bench) markGoProbeSites(ctx context.Context, g *target) error {
	fns := []string{"main.empty", "main.spin"}
	sites, err := b.ulatSymbols(ctx, g.bin, fns...)
	if err != nil {
		return err
	}
	f, err := elf.Open(g.bin)
	if err != nil {
		return err
	}
	defer f.Close()
	want := map[string]uint64{} // marker -> virtual address
	g.goProbeSym = map[string][]string{}
	next := 0
	mark := func(fn string, vaddr uint64) {
		name := fmt.Sprintf("main.benchMarker%d", next)
		next++
		want[name] = vaddr
		g.goProbeSym[fn] = append(g.goProbeSym[fn], name)
	}
	for _, fn := range fns {
		s := sites[fn]
		entry, err := vaddrOf(f, s.entry)
		if err != nil {
			return fmt.Errorf("%s entry: %w", fn, err)
		}
		mark(fn, entry)
		out, err := b.output(ctx, []string{b.goCmd, "tool", "objdump", "-s", "^" + regexp.QuoteMeta(fn) + "$", g.bin})
		if err != nil {
			return err
		}
		rets := 0
		for _, line := range strings.Split(out, "\n") {
			if m := objdumpRet.FindStringSubmatch(line); m != nil {
				addr, _ := strconv.ParseUint(m[1], 16, 64)
				mark(fn, addr)
				rets++
			}
		}
		if rets != s.exits {
			return fmt.Errorf("%s: go tool objdump shows %d RET instructions, ulat probes %d exits", fn, rets, s.exits)
		}
	}
	if next > 8 {
		return fmt.Errorf("the Go target has 8 marker functions, %d probe sites need one", next)
	}
	f.Close()
	return patchSymbols(g.bin, want)
}

// vaddrOf converts a file offset in an executable segment to its address.
func vaddrOf(f *elf.File, off uint64) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && off >= p.Off && off < p.Off+p.Filesz {
			return off - p.Off + p.Vaddr, nil
		}
	}
	return 0, fmt.Errorf("file offset %#x is in no executable segment", off)
}

// patchSymbols sets the value of each named symbol of path's .symtab to the
// given address, with size 1, as a function in .text.
func patchSymbols(path string, want map[string]uint64) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	symtab := f.Section(".symtab")
	text := f.Section(".text")
	if symtab == nil || text == nil || int(symtab.Link) >= len(f.Sections) || f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("%s: no 64-bit .symtab and .text", path)
	}
	textIdx := -1
	for i, s := range f.Sections {
		if s == text {
			textIdx = i
		}
	}
	syms, err := symtab.Data()
	if err != nil {
		return err
	}
	strs, err := f.Sections[symtab.Link].Data()
	if err != nil {
		return err
	}
	w, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer w.Close()
	bo := f.ByteOrder
	const size = 24 // Elf64_Sym
	found := 0
	for i := size; i+size <= len(syms); i += size {
		nameOff := bo.Uint32(syms[i:])
		if int(nameOff) >= len(strs) {
			continue
		}
		name := strs[nameOff:]
		if n := strings.IndexByte(string(name), 0); n >= 0 {
			name = name[:n]
		}
		addr, ok := want[string(name)]
		if !ok {
			continue
		}
		rec := make([]byte, size)
		copy(rec, syms[i:i+size])
		// Keep the binding: locals must stay before globals.
		rec[4] = rec[4]&0xf0 | byte(elf.STT_FUNC)
		rec[5] = 0
		bo.PutUint16(rec[6:], uint16(textIdx))
		bo.PutUint64(rec[8:], addr)
		bo.PutUint64(rec[16:], 1)
		if _, err := w.WriteAt(rec, int64(symtab.Offset)+int64(i)); err != nil {
			return err
		}
		found++
	}
	if found != len(want) {
		return fmt.Errorf("%s: found %d of the %d marker symbols", path, found, len(want))
	}
	return w.Close()
}
