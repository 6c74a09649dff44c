package symbols

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// --- targets ---

func cxxTarget(t *testing.T) string {
	t.Helper()
	src := testdataPath(t, "cxx.cc")
	return artifact(t, "cxx", func(out string) error {
		_, err := run(workDir, "g++", nil, "-O2", "-g", "-o", out, src)
		return err
	})
}

type rustBuild struct {
	once sync.Once
	path string
	skip string
	err  error
}

var (
	rustMu     sync.Mutex
	rustBuilds = map[string]*rustBuild{}
)

// rustTarget builds testdata/rust.rs as crate myapp with the given symbol
// mangling ("legacy" or "v0"), once, and skips the test when rustc is
// missing or cannot produce that mangling.
func rustTarget(t *testing.T, mangling string) string {
	t.Helper()
	rustc, err := exec.LookPath("rustc")
	if err != nil {
		t.Skip("rustc is not on PATH: install Rust (rustup) to run the Rust demangling tests")
	}
	src := testdataPath(t, "rust.rs")
	rustMu.Lock()
	b := rustBuilds[mangling]
	if b == nil {
		b = &rustBuild{}
		rustBuilds[mangling] = b
	}
	rustMu.Unlock()
	b.once.Do(func() {
		// One directory per build: rustc puts its temporary objects
		// beside the output, named after the crate.
		dir := filepath.Join(workDir, "rust-"+mangling)
		if b.err = os.MkdirAll(dir, 0o755); b.err != nil {
			return
		}
		b.path = filepath.Join(dir, "myapp")
		build := func(flags ...string) error {
			args := append(flags, "-C", "opt-level=1", "--edition", "2021", "--crate-name", "myapp", "-o", b.path, src)
			_, err := run(dir, rustc, nil, args...)
			return err
		}
		err := build("-C", "symbol-mangling-version="+mangling)
		if err != nil && strings.Contains(err.Error(), "unstable-options") {
			// Stable rustc accepts -C symbol-mangling-version=legacy
			// only with -Z unstable-options, but legacy is its default.
			if mangling != "legacy" {
				b.skip = "this rustc does not support -C symbol-mangling-version=" + mangling + " on stable: " + firstLine(err.Error())
				return
			}
			err = build()
		}
		b.err = err
	})
	if b.skip != "" {
		t.Skip(b.skip)
	}
	if b.err != nil {
		t.Fatalf("build rust target (%s mangling): %v", mangling, b.err)
	}
	return b.path
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "error") {
			return strings.TrimSpace(l)
		}
	}
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// --- the demangler alone ---

func TestDemangled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sym, name, short string }{
		{"_ZN6Server6handleEi", "Server::handle(int)", "Server::handle"},
		{"_ZN6Server6handleERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE",
			"Server::handle(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&)", "Server::handle"},
		{"_ZNKSt6vectorIiSaIiEE4sizeEv", "std::vector<int, std::allocator<int> >::size() const", "std::vector<int, std::allocator<int> >::size"},
		{"_Z5twiceIiET_S0_", "int twice<int>(int)", "twice<int>"},
		{"_ZZ4mainENKUlvE_clEv", "main::{lambda()#1}::operator()() const", "main::{lambda()#1}::operator()"},
		{"_ZN6ServerD0Ev", "Server::~Server()", "Server::~Server"},
		// Clone suffixes stay in the short form: "Server::handle" is
		// not also the function's cold part.
		{"_ZN6Server6handleEi.cold", "Server::handle(int) [clone .cold]", "Server::handle [clone .cold]"},
		// Whole-function clones are the function to whoever calls it,
		// split-off parts are not.
		{"_ZN6Server6handleEi.constprop.0", "Server::handle(int) [clone .constprop.0]", "Server::handle"},
		{"_ZN6Server6handleEi.isra.0", "Server::handle(int) [clone .isra.0]", "Server::handle"},
		{"_ZN6Server6handleEi.constprop.0.isra.0", "Server::handle(int) [clone .constprop.0] [clone .isra.0]", "Server::handle"},
		{"_ZN6Server6handleEi.part.0", "Server::handle(int) [clone .part.0]", "Server::handle [clone .part.0]"},
		{"_ZThn8_N6Server6handleEi", "non-virtual thunk to Server::handle(int)", "non-virtual thunk to Server::handle(int)"},
		// Rust, legacy: no hash, with or without LLVM's suffix.
		{"_ZN5myapp5parse17h0123456789abcdefE", "myapp::parse", "myapp::parse"},
		{"_ZN5myapp5parse17h0123456789abcdefE.llvm.1234", "myapp::parse", "myapp::parse"},
		{"_ZN4core3ptr85drop_in_place$LT$std..rt..lang_start$LT$$LP$$RP$$GT$..$u7b$$u7b$closure$u7d$$u7d$$GT$17h0c5b1a7f8e9d2b3aE",
			"core::ptr::drop_in_place<std::rt::lang_start<()>::{{closure}}>", "core::ptr::drop_in_place<std::rt::lang_start<()>::{{closure}}>"},
		// Rust, v0: the short form drops generic arguments.
		{"_RNvCs7az0beRE9Ya_5myapp5parse", "myapp::parse", "myapp::parse"},
		{"_RNvNtCs7az0beRE9Ya_5myapp6config5parse", "myapp::config::parse", "myapp::config::parse"},
		{"_RINvCs7az0beRE9Ya_5myapp5identmEB2_", "myapp::ident::<u32>", "myapp::ident"},
	} {
		name, short, ok := demangled(tc.sym)
		if !ok || name != tc.name || short != tc.short {
			t.Errorf("demangled(%s) = %q, %q, %v; want %q, %q", tc.sym, name, short, ok, tc.name, tc.short)
		}
	}
	for _, sym := range []string{"main", "plain_c", "_start", "_init", "_GLOBAL__sub_I_main", "_Z", "_Zgarbage", "_ZN3foo", "_R", "_Rxyz", "__Z3fooi", "", strings.Repeat("_ZN", 1000)} {
		if name, short, ok := demangled(sym); ok {
			t.Errorf("demangled(%.40q) = %q, %q, true; want not mangled", sym, name, short)
		}
	}
}

func TestRustLegacyHash(t *testing.T) {
	t.Parallel()
	for sym, want := range map[string]string{
		"_ZN5myapp5parse17h0123456789abcdefE":           "h0123456789abcdef",
		"_ZN5myapp5parse17h0123456789abcdefE.llvm.1234": "h0123456789abcdef",
		"_ZN5myapp5parse17h0123456789abcdeXE":           "", // not hex
		"_ZN5myapp5parse17g0123456789abcdefE":           "",
		"_ZN6Server6handleEi":                           "",
		"_RNvCs7az0beRE9Ya_5myapp5parse":                "",
		"parse":                                         "",
	} {
		if got := rustLegacyHash(sym); got != want {
			t.Errorf("rustLegacyHash(%s) = %q, want %q", sym, got, want)
		}
	}
}

func TestDisambiguate(t *testing.T) {
	t.Parallel()
	fn := func(sym string, addr uint64) Function {
		f := Function{Name: sym, Symbol: sym, Lang: Native, Addr: addr, End: addr + 16}
		f.setDemangled()
		return f
	}
	fns := disambiguate([]Function{
		fn("_ZN6ServerD2Ev", 0x100),
		fn("_ZN6ServerD1Ev", 0x100), // alias of D2: merged
		fn("_ZN6ServerD0Ev", 0x120), // another function with the same name
		fn("_ZN6ServerC2Ei", 0x140),
		fn("_ZN6ServerC1Ei", 0x140),
		fn("_ZN5myapp5ident17h46eb6b4ced0567dcE", 0x200),
		fn("_ZN5myapp5ident17h7692d2dbd2dfb6e7E", 0x220),
		fn("_ZN5myapp5parse17h0123456789abcdefE", 0x240),
		fn("_ZN5myapp5parse17h0123456789abcdefE.llvm.7", 0x260), // the hash is not enough
		fn("_Z3foov", 0x300),
		fn("foo()", 0x320), // an unmangled symbol keeps its name
		fn("plain", 0x340),
	})
	want := []struct {
		name  string
		match []string // names that must match it
	}{
		{"Server::~Server() [_ZN6ServerD2Ev]", []string{"Server::~Server()", "Server::~Server", "_ZN6ServerD2Ev", "_ZN6ServerD1Ev"}},
		{"Server::~Server() [_ZN6ServerD0Ev]", []string{"Server::~Server()", "Server::~Server", "_ZN6ServerD0Ev"}},
		{"Server::Server(int)", []string{"Server::Server", "_ZN6ServerC2Ei", "_ZN6ServerC1Ei"}},
		{"myapp::ident::h46eb6b4ced0567dc", []string{"myapp::ident", "_ZN5myapp5ident17h46eb6b4ced0567dcE"}},
		{"myapp::ident::h7692d2dbd2dfb6e7", []string{"myapp::ident"}},
		{"myapp::parse [_ZN5myapp5parse17h0123456789abcdefE]", []string{"myapp::parse"}},
		{"myapp::parse [_ZN5myapp5parse17h0123456789abcdefE.llvm.7]", []string{"myapp::parse"}},
		{"foo() [_Z3foov]", []string{"foo()", "foo", "_Z3foov"}},
		{"foo()", nil},
		{"plain", nil},
	}
	if len(fns) != len(want) {
		t.Fatalf("disambiguate gave %d functions %q, want %d", len(fns), names(fns), len(want))
	}
	for i, w := range want {
		f := &fns[i]
		if f.Name != w.name {
			t.Errorf("function %d at %#x: Name %q, want %q", i, f.Addr, f.Name, w.name)
		}
		got := f.matchNames()
		for _, m := range w.match {
			if !contains(got, m) {
				t.Errorf("%s: matched by %q, want also %q", f.Name, got, m)
			}
		}
	}
	if m := fns[8].matchNames(); len(m) != 1 {
		t.Errorf("unmangled foo() is matched by %q, want only its name", m)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// --- C++ ---

// The functions of the C++ target by symbol name, with the names they must
// have. Server's constructors C1 and C2 (and destructors D1 and D2) are one
// function at one address; its deleting destructor D0 is another function
// with the same demangled name.
var cxxWant = map[string]string{
	"_ZN6Server6handleEi": "Server::handle(int)",
	"_ZN6Server6handleERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE": "Server::handle(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&)",
	"_ZN5myapp5parseEPKc":      "myapp::parse(char const*)",
	"_ZN5myapp9parse_allEPKci": "myapp::parse_all(char const*, int)",
	"_Z5twiceIiET_S0_":         "int twice<int>(int)",
	"_Z5twiceIlET_S0_":         "long twice<long>(long)",
	"plain_c":                  "plain_c",
	"main":                     "main",
	"_ZN6ServerD0Ev":           "Server::~Server() [_ZN6ServerD0Ev]",
}

func TestCXXNames(t *testing.T) {
	t.Parallel()
	path := cxxTarget(t)
	b := open(t, path)
	bySym := map[string]Function{}
	seen := map[string]bool{}
	for _, f := range b.Functions() {
		if seen[f.Name] {
			t.Errorf("two functions named %q", f.Name)
		}
		seen[f.Name] = true
		bySym[f.Symbol] = f
		if f.Lang != Native {
			t.Errorf("%s: Lang %q, want native", f.Name, f.Lang)
		}
	}
	for sym, name := range cxxWant {
		f, ok := bySym[sym]
		if !ok {
			t.Errorf("no function with symbol %s (functions: %q)", sym, names(b.Functions()))
			continue
		}
		if f.Name != name {
			t.Errorf("%s: Name %q, want %q", sym, f.Name, name)
		}
	}
	// The constructor is one function, whichever alias named it.
	ctor := lookup(t, b, "Server::Server(int)")
	if ctor.Symbol != "_ZN6ServerC1Ei" && ctor.Symbol != "_ZN6ServerC2Ei" {
		t.Errorf("Server::Server(int) has symbol %s", ctor.Symbol)
	}
	var dtors []string
	for _, f := range b.Functions() {
		if strings.HasPrefix(f.Name, "Server::~Server()") {
			dtors = append(dtors, f.Name)
		}
	}
	if len(dtors) != 2 {
		t.Errorf("destructors %q, want D0 and one for D1/D2", dtors)
	}

	// c++filt agrees on every mangled name.
	var syms []string
	var fns []Function
	for _, f := range b.Functions() {
		if strings.HasPrefix(f.Symbol, "_Z") {
			syms = append(syms, f.Symbol)
			fns = append(fns, f)
		}
	}
	filt := strings.Split(strings.TrimSuffix(tool(t, "c++filt", syms...), "\n"), "\n")
	if len(filt) != len(syms) {
		t.Fatalf("c++filt gave %d lines for %d names", len(filt), len(syms))
	}
	for i, f := range fns {
		if f.Name != filt[i] && f.Name != filt[i]+" ["+f.Symbol+"]" {
			t.Errorf("%s: Name %q, c++filt says %q", f.Symbol, f.Name, filt[i])
		}
	}
}

func TestCXXMatch(t *testing.T) {
	t.Parallel()
	b := open(t, cxxTarget(t))
	handleInt := cxxWant["_ZN6Server6handleEi"]
	handleStr := cxxWant["_ZN6Server6handleERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"]
	dtors := []string{"Server::~Server() [_ZN6ServerD0Ev]", lookupPrefix(t, b, "Server::~Server() [_ZN6ServerD", "_ZN6ServerD0Ev")}
	sort.Strings(dtors)
	for _, tc := range []struct {
		patterns []string
		want     []string
	}{
		{[]string{"Server::handle"}, []string{handleStr, handleInt}}, // both overloads
		{[]string{"Server::handle(int)"}, []string{handleInt}},
		{[]string{"Server::handle(*string*)"}, []string{handleStr}},
		{[]string{"*::handle(int)"}, []string{handleInt}},
		{[]string{"_ZN6Server6handleEi"}, []string{handleInt}},
		{[]string{"_ZN6Server6handle*"}, []string{handleStr, handleInt}},
		{[]string{"Server::*"}, append([]string{"Server::Server(int)", handleStr, handleInt}, dtors...)},
		{[]string{"Server::Server"}, []string{"Server::Server(int)"}},
		{[]string{"_ZN6ServerC1Ei"}, []string{"Server::Server(int)"}}, // both aliases
		{[]string{"_ZN6ServerC2Ei"}, []string{"Server::Server(int)"}},
		{[]string{"Server::~Server()"}, dtors},
		{[]string{"Server::~Server"}, dtors},
		{[]string{"_ZN6ServerD0Ev"}, dtors[:1]},
		{[]string{"myapp::parse*"}, []string{"myapp::parse(char const*)", "myapp::parse_all(char const*, int)"}},
		{[]string{"myapp::parse"}, []string{"myapp::parse(char const*)"}},
		{[]string{"myapp::parse(char const\\*)"}, nil}, // a backslash is literal
		{[]string{"twice<int>"}, []string{"int twice<int>(int)"}},
		{[]string{"twice*"}, []string{"int twice<int>(int)", "long twice<long>(long)"}},
		{[]string{"plain_c"}, []string{"plain_c"}},
		{[]string{"plain_*", "myapp::parse"}, []string{"myapp::parse(char const*)", "plain_c"}},
	} {
		got, err := b.Match(tc.patterns...)
		if tc.want == nil {
			if !errors.Is(err, ErrNoMatch) {
				t.Errorf("Match(%q) = %q, %v; want ErrNoMatch", tc.patterns, names(got), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Match(%q): %v", tc.patterns, err)
			continue
		}
		sort.Strings(tc.want)
		if g := sortedNames(got); strings.Join(g, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("Match(%q) = %q, want %q", tc.patterns, g, tc.want)
		}
	}
	for _, p := range []string{"handle", "Server::handl", "Server::handle(long)", "Server", "server::handle"} {
		if got, err := b.Match(p); !errors.Is(err, ErrNoMatch) {
			t.Errorf("Match(%q) = %q, %v; want ErrNoMatch", p, names(got), err)
		}
	}
	// Suggestions are display names, found through the short form too.
	_, err := b.Match("Server::handel")
	if err == nil || !strings.Contains(err.Error(), `"Server::handle(int)"`) {
		t.Errorf("Match(Server::handel) error %v, want a suggestion of Server::handle(int)", err)
	}
	if s := b.suggest("myapp::parse_al", 1); len(s) != 1 || s[0] != "myapp::parse_all(char const*, int)" {
		t.Errorf("suggest(myapp::parse_al) = %q", s)
	}
}

// lookupPrefix returns the one function whose name starts with prefix,
// other than the one with symbol not.
func lookupPrefix(t *testing.T, b *Binary, prefix, not string) string {
	t.Helper()
	var found []string
	for _, f := range b.Functions() {
		if strings.HasPrefix(f.Name, prefix) && f.Symbol != not {
			found = append(found, f.Name)
		}
	}
	if len(found) != 1 {
		t.Fatalf("functions named %s…: %q, want one", prefix, found)
	}
	return found[0]
}

// Probes of a C++ function are at its mangled symbol's address, as readelf
// gives it.
func TestCXXProbes(t *testing.T) {
	t.Parallel()
	path := cxxTarget(t)
	b := open(t, path)
	syms := elfFuncSymbols(t, path)
	segs := loadSegments(t, path)
	fns, err := b.Match("Server::handle", "myapp::parse", "twice*", "plain_c", "Server::Server", "Server::~Server")
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 9 {
		t.Errorf("matched %d functions %q, want 9", len(fns), names(fns))
	}
	for i := range fns {
		f := &fns[i]
		val, ok := syms[f.Symbol]
		if !ok {
			t.Errorf("%s: readelf knows no symbol %s", f.Name, f.Symbol)
			continue
		}
		p, err := b.Probes(f)
		if err != nil {
			t.Errorf("Probes(%s): %v", f.Name, err)
			continue
		}
		if want := vaddrToOff(t, segs, val); p.Entry != want || p.Exits != nil {
			t.Errorf("Probes(%s) = entry %#x exits %v, want entry %#x (readelf: %s at %#x) and a uretprobe", f.Name, p.Entry, p.Exits, want, f.Symbol, val)
		}
	}
}

// --- Rust ---

func TestRust(t *testing.T) {
	t.Parallel()
	for _, mangling := range []string{"legacy", "v0"} {
		t.Run(mangling, func(t *testing.T) {
			t.Parallel()
			testRust(t, mangling)
		})
	}
}

func testRust(t *testing.T, mangling string) {
	path := rustTarget(t, mangling)
	prefix := map[string]string{"legacy": "_ZN5myapp", "v0": "_R"}[mangling]
	// The mangled symbols of our functions, from the ELF file directly.
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	elfSyms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	mangled := map[string]bool{}
	for _, s := range elfSyms {
		if strings.HasPrefix(s.Name, prefix) && strings.Contains(s.Name, "5myapp") {
			mangled[s.Name] = true
		}
	}
	if len(mangled) == 0 {
		if mangling == "legacy" {
			t.Skip("this rustc mangles neither by default nor on request (-C symbol-mangling-version=legacy needs -Z unstable-options) with legacy mangling")
		}
		t.Fatalf("%s has no %s… symbols of crate myapp", path, prefix)
	}

	b := open(t, path)
	syms := elfFuncSymbols(t, path)
	segs := loadSegments(t, path)
	one := func(pattern, wantName string) Function {
		t.Helper()
		fns, err := b.Match(pattern)
		if err != nil {
			t.Fatalf("Match(%q): %v", pattern, err)
		}
		if len(fns) != 1 || fns[0].Name != wantName {
			t.Fatalf("Match(%q) = %q, want %q", pattern, names(fns), wantName)
		}
		return fns[0]
	}
	parse := one("myapp::parse", "myapp::parse")
	config := one("myapp::config::parse", "myapp::config::parse")
	for _, f := range []Function{parse, config} {
		if !mangled[f.Symbol] || f.Lang != Native {
			t.Errorf("%s: symbol %q, lang %s; want a %s-mangled symbol of myapp, native", f.Name, f.Symbol, f.Lang, mangling)
		}
		if mangling == "legacy" && rustLegacyHash(f.Symbol) == "" {
			t.Errorf("%s: symbol %s has no legacy hash", f.Name, f.Symbol)
		}
		// The raw symbol matches too, and the entry is readelf's.
		one(f.Symbol, f.Name)
		p, err := b.Probes(&f)
		if err != nil {
			t.Fatalf("Probes(%s): %v", f.Name, err)
		}
		if want := vaddrToOff(t, segs, syms[f.Symbol]); syms[f.Symbol] == 0 || p.Entry != want || p.Exits != nil {
			t.Errorf("Probes(%s) = %#x %v, want %#x (readelf: %s)", f.Name, p.Entry, p.Exits, want, f.Symbol)
		}
	}
	// Globs: myapp::parse* is parse (and any closure of it), not config::parse.
	fns, err := b.Match("myapp::parse*")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(names(fns), "myapp::parse") || contains(names(fns), "myapp::config::parse") {
		t.Errorf("Match(myapp::parse*) = %q", names(fns))
	}
	if fns, err := b.Match("myapp::*parse"); err != nil || strings.Join(sortedNames(fns), " ") != "myapp::config::parse myapp::parse" {
		t.Errorf("Match(myapp::*parse) = %q, %v", names(fns), err)
	}

	// The two instances of the generic ident: distinct names, one
	// pattern for both.
	ident, err := b.Match("myapp::ident")
	if err != nil {
		t.Fatal(err)
	}
	var wantIdent []string
	switch mangling {
	case "legacy":
		for _, f := range ident {
			wantIdent = append(wantIdent, "myapp::ident::"+rustLegacyHash(f.Symbol))
		}
		sort.Strings(wantIdent)
	case "v0":
		wantIdent = []string{"myapp::ident::<u32>", "myapp::ident::<u64>"}
	}
	if g := sortedNames(ident); len(ident) != 2 || strings.Join(g, " ") != strings.Join(wantIdent, " ") {
		t.Errorf("Match(myapp::ident) = %q, want %q", g, wantIdent)
	}
	seen := map[string]bool{}
	for _, f := range b.Functions() {
		if seen[f.Name] {
			t.Errorf("two functions named %q", f.Name)
		}
		seen[f.Name] = true
	}
}

func TestWholeClone(t *testing.T) {
	for _, c := range []struct {
		sym, base string
		whole     bool
	}{
		{"fib.isra.0", "fib", true},
		{"fib.constprop.0", "fib", true},
		{"fib.constprop.1.isra.0", "fib", true},
		{"fib.part.0", "fib.part.0", false},
		{"fib.cold", "fib.cold", false},
		{"fib.isra", "fib.isra", false},
		{"fib.isra.x", "fib.isra.x", false},
		{"fib", "fib", false},
		{".isra.0", ".isra.0", false},
	} {
		if base, whole := wholeClone(c.sym); base != c.base || whole != c.whole {
			t.Errorf("wholeClone(%q) = %q, %v; want %q, %v", c.sym, base, whole, c.base, c.whole)
		}
	}
}
