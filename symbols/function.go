package symbols

import "fmt"

// Language tells how a function's calls are timed.
type Language string

const (
	// Go code: exits are uprobes on each RET (a uretprobe rewrites the
	// return address on the goroutine stack, and the runtime crashes when
	// it copies that stack), and calls are paired by goroutine.
	Go Language = "go"
	// Native code (C, C++, Rust, and C inside cgo binaries): the exit is a
	// uretprobe and calls are paired by thread.
	Native Language = "native"
)

// Function is one function of a binary and how to probe it.
type Function struct {
	// Name is the function's name in reports and the first name patterns
	// match. Native C++ and Rust functions have their demangled name (see
	// demangle.go): "Server::handle(int)", "myapp::parse".
	Name string
	// Symbol is the function's name in the ELF symbol table: the mangled
	// name of a C++ or Rust function, the same as Name for C (without
	// cgo's "C." prefix). It is empty for functions known only from DWARF
	// or .gopclntab.
	Symbol string
	Lang   Language
	Addr   uint64 // virtual address of the first instruction (0 when inlined-only)
	End    uint64 // first address past the function

	// Inlined reports that some callers have a copy of the function's body
	// inlined; those calls cannot be timed. With Addr == 0 it is the only
	// form the function has.
	Inlined bool

	problem string
	forms   []string // other demangled names patterns match: "Server::handle"
	syms    []string // symbol names of aliases merged into this function
}

// InlinedOnly reports that the function exists only as copies inside its
// callers.
func (f *Function) InlinedOnly() bool { return f.Addr == 0 }

// Probes is where to attach: a file offset for the entry probe and, for Go,
// the file offsets of every RET. Exits is nil for native functions, whose
// exit is a uretprobe at the entry.
type Probes struct {
	Entry uint64
	Exits []uint64
	// EntryEmulated reports that the kernel emulates the instruction under
	// the entry probe instead of single-stepping it, which makes the probe
	// several times cheaper (and the bias it adds to durations smaller).
	EntryEmulated bool
}

// ErrCannotProbe describes a function that exists but cannot be timed.
type ErrCannotProbe struct {
	Function string
	Reason   string
	// Refused, when not empty, is what about an instruction under one of
	// its probes makes the kernel refuse it ("a LOCK prefix").
	Refused string
}

func (e *ErrCannotProbe) Error() string {
	return fmt.Sprintf("%s cannot be timed: %s", e.Function, e.Reason)
}
