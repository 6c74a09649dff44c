package symbols

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ianlancetaylor/demangle"
)

// C++ and Rust functions have mangled symbol names (_ZN6Server6handleEi,
// _ZN5myapp5parse17h0123456789abcdefE, _RNvCs1a2b_5myapp5parse). A native
// function's Name is the demangled name:
//
//   - C++: with its parameter list, so that overloads stay apart in
//     reports, exactly as c++filt prints it ("[clone .cold]" suffixes
//     included): "Server::handle(int)", "Server::handle(std::__cxx11::
//     basic_string<char, std::char_traits<char>, std::allocator<char> >
//     const&)";
//   - Rust: the path, without the legacy "::h<16 hex digits>" hash:
//     "myapp::parse".
//
// Patterns match Name, the name without parameters ("Server::handle"; for
// Rust v0, without generic arguments: "myapp::ident" for
// "myapp::ident::<u32>"), and the symbol names themselves.
//
// Two functions can demangle to one name: C++ constructor and destructor
// variants (C1/C2, D0/D1/D2), instances of one Rust generic function under
// legacy mangling, two versions of one crate. Variants at one address are one
// function (all their symbol names match it); at different addresses each
// keeps the name with its hash ("myapp::ident::h0123456789abcdef") or, when
// that is not enough, its symbol in brackets
// ("Server::~Server() [_ZN6ServerD0Ev]"), so that every function of a binary
// has its own Name.

// demangleLimit caps a demangled name at 64 KiB: some template-heavy symbols
// expand enormously. A name that reaches it is kept mangled.
const demangleLimit = 16

// demangled returns the display name of sym and its form without parameter
// list, or ok false when sym is not a mangled C++ or Rust name the
// demangler understands.
func demangled(sym string) (name, short string, ok bool) {
	if !strings.HasPrefix(sym, "_Z") && !strings.HasPrefix(sym, "_R") {
		return "", "", false
	}
	name, ok = demangleString(sym)
	if !ok {
		return "", "", false
	}
	if rustLegacyHash(sym) != "" {
		// Rust paths have no parameter list; the demangler drops the
		// legacy hash and LLVM's ".llvm.N" suffixes itself.
		return name, name, true
	}
	if strings.HasPrefix(sym, "_R") {
		// v0 names the instances of a generic function
		// ("myapp::ident::<u32>"); legacy mangling cannot, so
		// "myapp::ident" names them all there. It does here too.
		if short, ok := demangleString(sym, demangle.NoTemplateParams); ok {
			// The demangler leaves the brackets: "myapp::ident::<>".
			short = strings.ReplaceAll(strings.ReplaceAll(short, "::<>", ""), "<>", "")
			return name, short, true
		}
		return name, name, true
	}
	// C++: without the parameter list. A ".cold" or ".part.N" suffix is
	// kept in the short form, so that "Server::handle" names the function
	// and not also its cold or split-off part, which the function itself
	// jumps to or calls. ".isra.N" and ".constprop.N" clones are whole
	// copies of the function with a changed signature, and often the only
	// copy: the short form names them without the suffix.
	base, clone := sym, ""
	if i := strings.IndexByte(sym, '.'); i > 0 {
		base = sym[:i]
		if full, ok := demangleString(base); ok && strings.HasPrefix(name, full) {
			clone = name[len(full):]
		}
	}
	short, ok = demangleString(base, demangle.NoParams)
	if !ok {
		return name, name, true
	}
	if _, whole := wholeClone(sym); whole {
		clone = ""
	}
	return name, short + clone, true
}

// wholeClone reports whether sym is a GCC clone that is a whole copy of a
// function ("f.isra.0", "f.constprop.0.isra.0"), and returns f.
func wholeClone(sym string) (string, bool) {
	i := strings.IndexByte(sym, '.')
	if i <= 0 {
		return sym, false
	}
	parts := strings.Split(sym[i+1:], ".")
	for j := 0; j < len(parts); j += 2 {
		if (parts[j] != "isra" && parts[j] != "constprop") || j+1 >= len(parts) || strings.Trim(parts[j+1], "0123456789") != "" {
			return sym, false
		}
	}
	return sym[:i], true
}

// demangleString runs the demangler, which must never take Open down with
// it: a panic or a result at the length limit counts as a failure.
func demangleString(sym string, opts ...demangle.Option) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	s, err := demangle.ToString(sym, append(opts, demangle.MaxLength(demangleLimit))...)
	if err != nil || s == "" || len(s) >= 1<<demangleLimit {
		return "", false
	}
	return s, true
}

// rustLegacyHash returns the "h<16 hex digits>" hash of a legacy-mangled
// Rust symbol (_ZN...17h<hash>E, optionally followed by a ".suffix"), or "".
func rustLegacyHash(sym string) string {
	if !strings.HasPrefix(sym, "_ZN") {
		return ""
	}
	if i := strings.LastIndex(sym, "E."); i > 0 {
		sym = sym[:i+1]
	}
	if len(sym) < 3+20 || !strings.HasSuffix(sym, "E") || sym[len(sym)-20:len(sym)-17] != "17h" {
		return ""
	}
	hash := sym[len(sym)-18 : len(sym)-1]
	for i := 1; i < len(hash); i++ {
		if c := hash[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return hash
}

// demangleAll sets the demangled names of fns, on every CPU: a large C++
// library has tens of thousands of mangled names, at some 25 µs each.
func demangleAll(fns []Function) {
	const chunk = 256
	workers := min(runtime.GOMAXPROCS(0), (len(fns)+chunk-1)/chunk)
	if workers <= 1 {
		for i := range fns {
			fns[i].setDemangled()
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				end := int(next.Add(chunk))
				start := end - chunk
				if start >= len(fns) {
					return
				}
				for i := start; i < min(end, len(fns)); i++ {
					fns[i].setDemangled()
				}
			}
		}()
	}
	wg.Wait()
}

// setDemangled fills in f's Name and other names from its symbol name.
func (f *Function) setDemangled() {
	name, short, ok := demangled(f.Symbol)
	if !ok {
		// C: "fib.isra.0" is also "fib" to whoever looks for it.
		if base, whole := wholeClone(f.Symbol); whole && f.Symbol == f.Name {
			f.forms = []string{base}
		}
		return
	}
	f.Name = name
	if short != name {
		f.forms = []string{short}
	}
}

// disambiguate makes the Names of fns (in address order) unique, as
// described at the top of this file.
func disambiguate(fns []Function) []Function {
	byName := map[string][]int{}
	for i := range fns {
		byName[fns[i].Name] = append(byName[fns[i].Name], i)
	}
	drop := map[int]bool{}
	for name, idx := range byName {
		if len(idx) < 2 {
			continue
		}
		// One address, one function.
		kept := map[uint64]int{}
		var distinct []int
		for _, i := range idx {
			if k, ok := kept[fns[i].Addr]; ok {
				fns[k].syms = append(fns[k].syms, fns[i].Symbol)
				drop[i] = true
				continue
			}
			kept[fns[i].Addr] = i
			distinct = append(distinct, i)
		}
		if len(distinct) < 2 {
			continue
		}
		// Unmangled names are unique already (the symbol table reader
		// keeps one function per symbol name): a function whose mangled
		// name demangles to one leaves it alone.
		for j, i := range distinct {
			if fns[i].Symbol == name {
				distinct = append(distinct[:j:j], distinct[j+1:]...)
				break
			}
		}
		withHash := map[string]int{}
		for _, i := range distinct {
			if h := rustLegacyHash(fns[i].Symbol); h != "" {
				withHash[name+"::"+h]++
			}
		}
		for _, i := range distinct {
			f := &fns[i]
			f.forms = append([]string{name}, f.forms...)
			if h := rustLegacyHash(f.Symbol); h != "" && withHash[name+"::"+h] == 1 && byName[name+"::"+h] == nil {
				f.Name = name + "::" + h
			} else {
				f.Name = name + " [" + f.Symbol + "]"
			}
		}
	}
	if len(drop) == 0 {
		return fns
	}
	out := fns[:0]
	for i := range fns {
		if !drop[i] {
			out = append(out, fns[i])
		}
	}
	return out
}

// matchNames returns every name a pattern may match f by: its Name, its
// demangled forms and its symbol names.
func (f *Function) matchNames() []string {
	names := make([]string, 0, 2+len(f.forms)+len(f.syms))
	names = append(names, f.Name)
	names = append(names, f.forms...)
	if f.Symbol != "" && f.Symbol != f.Name {
		names = append(names, f.Symbol)
	}
	return append(names, f.syms...)
}
