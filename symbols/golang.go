package symbols

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/go-delve/delve/pkg/logflags"
	"github.com/go-delve/delve/pkg/proc"
)

// goFunctions lists a Go binary's functions with delve, which reads DWARF
// when the binary has it and .gopclntab when it was stripped (-s -w). When
// delve cannot read the binary, the standard library's .gopclntab reader
// takes over: delve looks for runtime's module data by its .rodata member,
// which a stripped binary linked by the system linker (cgo programs, as
// distributions build them) no longer lets it find.
func goFunctions(b *Binary) ([]Function, error) {
	if err := checkDWARF(b); err != nil {
		b.Warning = fmt.Sprintf("%s has corrupt DWARF (%v): its functions come from .gopclntab alone", b.Path, err)
		return goTableFunctions(b)
	}
	if !hasDWARF(b) {
		// Stripped (-s -w, as distributions ship Go programs): the
		// same functions and inlining delve would read from
		// .gopclntab, in a third of its memory (terraform: 65 MB
		// against 201 MB).
		fns, err := goTableFunctions(b)
		if err != nil {
			return nil, fmt.Errorf("%w: its Go function table is unreadable: %v", ErrNoSymbols, err)
		}
		return fns, nil
	}
	fns, err := delveFunctions(b)
	if err != nil {
		var perr error
		if fns, perr = goTableFunctions(b); perr != nil {
			return nil, fmt.Errorf("%w: its Go function tables are unreadable (delve: %v; .gopclntab: %v)", ErrNoSymbols, err, perr)
		}
		return fns, nil
	}
	return fns, nil
}

// delveFunctions reads the functions with delve, including those only
// inlined, and the C functions of cgo binaries.
func delveFunctions(b *Binary) ([]Function, error) {
	delveMu.Lock()
	defer delveMu.Unlock()
	bi := proc.NewBinaryInfo("linux", b.Arch, false)
	// For PIE binaries delve needs the ELF entry point to compute the static
	// base; passing it for every binary makes that base 0, so addresses stay
	// link-time virtual addresses.
	//
	// delve prints "no debug info found" straight to os.Stderr when the
	// binary's DWARF is unreadable; goFunctions asks delve only after
	// checkDWARF has read the same DWARF through the same debug/elf call.
	if err := bi.LoadBinaryInfo(b.Path, b.file.Entry, nil); err != nil {
		return nil, err
	}
	defer bi.Close()
	// Errors delve met on the way that did not stop it (a table it could
	// not parse, DWARF entries it could not read past); it keeps the last.
	if err := bi.Images[0].LoadError(); err != nil {
		b.Warning = fmt.Sprintf("delve found a defect in %s's debug information (%v): its functions are those delve could read", b.Path, err)
	}

	byName := map[string]int{}
	var fns []Function
	var inlinedOnly []Function
	for i := range bi.Functions {
		df := &bi.Functions[i]
		if df.Entry == 0 {
			if len(df.InlinedCalls) > 0 {
				inlinedOnly = append(inlinedOnly, Function{Name: df.Name, Lang: Go, Inlined: true})
			}
			continue
		}
		lang := Go
		if strings.HasPrefix(df.Name, "C.") {
			// cgo's C code (delve names it C.name) runs on the
			// system stack, where uretprobes are safe.
			lang = Native
		}
		f := Function{Name: df.Name, Symbol: df.Name, Lang: lang, Addr: df.Entry, End: df.End, Inlined: len(df.InlinedCalls) > 0}
		// A function written in assembly (ABI0) and its register-ABI
		// wrapper share a name, and the wrapper only calls the body:
		// keep the larger one so that a call is timed once, not twice.
		if i, ok := byName[f.Name]; ok {
			if f.End-f.Addr > fns[i].End-fns[i].Addr {
				fns[i] = f
			}
			continue
		}
		byName[f.Name] = len(fns)
		fns = append(fns, f)
	}
	known := map[uint64]bool{}
	for i := range bi.Functions {
		known[bi.Functions[i].Entry] = true // including duplicates dropped above
	}
	fns = withCFunctions(b, fns, known)
	for i := range fns {
		byName[fns[i].Name] = i
	}
	// .gopclntab lists an inlined function even when it also has an
	// out-of-line copy: then it is partly inlined, not inlined-only.
	for _, f := range inlinedOnly {
		if i, ok := byName[f.Name]; ok {
			fns[i].Inlined = true
			continue
		}
		byName[f.Name] = len(fns)
		fns = append(fns, f)
	}
	sort.SliceStable(fns, func(i, j int) bool {
		if (fns[i].Addr == 0) != (fns[j].Addr == 0) {
			return fns[j].Addr == 0
		}
		if fns[i].Addr == 0 {
			// delve's order of inlined-only functions changes from one
			// run to the next; by name, listings are repeatable.
			return fns[i].Name < fns[j].Name
		}
		return fns[i].Addr < fns[j].Addr
	})
	return fns, nil
}

// withCFunctions adds the C functions of a cgo binary that the Go tables
// do not name. delve lists C code only when it was compiled with DWARF
// (-g), and .gopclntab never does; the rest come from the ELF symbol table.
// Every Go function is in .gopclntab, so a symbol at an address the Go
// side does not know (known, or the addresses in fns when nil) is C.
func withCFunctions(b *Binary, fns []Function, known map[uint64]bool) []Function {
	if known == nil {
		known = make(map[uint64]bool, len(fns))
		for _, f := range fns {
			known[f.Addr] = true
		}
	}
	names := make(map[string]bool, len(fns))
	for _, f := range fns {
		names[f.Name] = true
	}
	cfns, err := nativeFunctions(b)
	if err != nil {
		return fns
	}
	added := false
	for _, f := range cfns {
		// The Go linker's own markers (runtime.text, go:textfipsstart)
		// are functions of size 0.
		if !known[f.Addr] && !names["C."+f.Name] && f.End-f.Addr > 1 {
			f.Name = "C." + f.Name
			names[f.Name] = true
			fns = append(fns, f)
			added = true
		}
	}
	if added {
		sort.SliceStable(fns, func(i, j int) bool { return fns[i].Addr < fns[j].Addr })
	}
	return fns
}

// delveMu lets one binary at a time load into delve, whose tables for a
// large binary take hundreds of megabytes: a session that opens several
// binaries at once (a traced program's libraries, the programs a followed
// command executes) holds one such set, not several.
var delveMu sync.Mutex

func init() {
	// delve makes each of its loggers from the os.Stderr of the moment
	// unless given a factory: reading the global races with any code
	// that swaps os.Stderr (a test capturing it, a program embedding
	// this package). Its loggers print only when logflags.Setup turned
	// logging on, which ulat never does, so giving them nowhere to write
	// loses nothing: what delve logs at error level while loading, it
	// also keeps in Image.LoadError, which delveFunctions reports. The
	// factory is process-wide; setting it here, once, before any
	// goroutine of ours can run, is race-free.
	logflags.SetLoggerFactory(func(bool, logflags.Fields, io.Writer) logflags.Logger { return discard{} })
}

// discard is a delve logger that drops everything. Besides the errors kept
// in Image.LoadError, delve logs warnings about the DWARF entries it skips,
// 65 of them on a small cgo binary ("concrete subprogram without address
// range": gcc's declarations of the C functions a compile unit calls and
// another defines, abort or clearenv; nothing to probe there), and debug
// chatter.
type discard struct{}

func (discard) Debugf(string, ...any) {}
func (discard) Infof(string, ...any)  {}
func (discard) Warnf(string, ...any)  {}
func (discard) Errorf(string, ...any) {}
func (discard) Debug(...any)          {}
func (discard) Info(...any)           {}
func (discard) Warn(...any)           {}
func (discard) Error(...any)          {}

func hasDWARF(b *Binary) bool {
	return b.file.Section(".debug_info") != nil || b.file.Section(".zdebug_info") != nil
}
