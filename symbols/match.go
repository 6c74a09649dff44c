package symbols

import (
	"fmt"
	"strings"

	"github.com/xrash/smetrics"

	"github.com/ulat-dev/ulat/glob"
)

// Match returns the functions whose names match any of the patterns, each
// once, in address order. A pattern is an exact name or a glob where `*`
// matches any run of characters (dots and slashes included) and `?` one
// character; nothing else is special, so Go names such as
// `main.(*Server).handle` and C++ names such as `Server::handle(int)` need
// no escaping. A pattern that matches nothing is an error wrapping
// ErrNoMatch that suggests close names.
//
// A function matches by its Name and, for C++ and Rust, also by its
// demangled name without parameters (`Server::handle` matches every
// overload) and by its mangled symbol name.
func (b *Binary) Match(patterns ...string) ([]Function, error) {
	picked := make([]bool, len(b.funcs))
	var missing []string
	for _, p := range patterns {
		re := glob.Regexp(p)
		found := false
		for i := range b.funcs {
			for _, name := range b.funcs[i].matchNames() {
				if re.MatchString(name) {
					picked[i] = true
					found = true
					break
				}
			}
		}
		if !found {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		var msgs []string
		for _, p := range missing {
			msg := fmt.Sprintf("%q", p)
			if s := b.suggest(p, 5); len(s) > 0 {
				msg += " (did you mean " + strings.Join(quoteAll(s), ", ") + "?)"
			}
			msgs = append(msgs, msg)
		}
		return nil, fmt.Errorf("%w %s in %s", ErrNoMatch, strings.Join(msgs, "; "), b.Path)
	}
	var out []Function
	for i, ok := range picked {
		if ok {
			out = append(out, b.funcs[i])
		}
	}
	return out, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// suggest returns up to n function names close to pattern: names that
// contain it (ignoring case and glob characters) first, then the nearest by
// edit distance. A C++ function is compared by its name with and without
// parameters, and suggested by its Name.
func (b *Binary) suggest(pattern string, n int) []string {
	needle := strings.ToLower(strings.NewReplacer("*", "", "?", "").Replace(pattern))
	var cands []suggestion
	for i := range b.funcs {
		f := &b.funcs[i]
		best := 0
		for j, name := range append([]string{f.Name}, f.forms...) {
			lname := strings.ToLower(name)
			d := smetrics.WagnerFischer(needle, lname, 1, 1, 2)
			if needle != "" && strings.Contains(lname, needle) {
				d = -1000 + len(lname) // containment first, shorter names first
			}
			if j == 0 || d < best {
				best = d
			}
		}
		cands = append(cands, suggestion{f.Name, best})
	}
	return closest(cands, n, len(needle)/2+2)
}

// Probes works out where to attach f's entry and exit probes.
func (b *Binary) Probes(f *Function) (Probes, error) {
	if f.problem != "" {
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: f.problem}
	}
	if f.InlinedOnly() {
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: "it is inlined into every caller and has no out-of-line copy"}
	}
	if f.Lang == Native && f.Addr != 0 && f.Addr == b.file.Entry {
		// _start (and ld.so's, where every dynamically linked program
		// starts) is entered with argc where a return address would
		// be: a return probe there would overwrite it.
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: "it is the file's entry point, entered without a return address (a return probe would overwrite argc)"}
	}
	if f.Lang == Native && isSignalTrampoline(f.Name) {
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: "it is the signal return trampoline, entered without a return address (a return probe would corrupt the signal frame)"}
	}
	if f.Lang == Go {
		return b.goProbes(f)
	}
	off, err := b.fileOffset(f.Addr)
	if err != nil {
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: err.Error()}
	}
	if what := b.refusedProbe(f.Addr); what != "" {
		return Probes{}, refusedError(f, f.Addr, what)
	}
	return Probes{Entry: off, EntryEmulated: b.emulatedEntry(f.Addr)}, nil
}

// isSignalTrampoline tells the C libraries' sigreturn trampolines: the
// kernel's signal delivery "returns" into them, so their stack holds the
// signal frame, not a return address.
func isSignalTrampoline(name string) bool {
	switch name {
	case "__restore_rt", "__restore", "__sigreturn", "__rt_sigreturn", "__kernel_rt_sigreturn":
		return true
	}
	return false
}
