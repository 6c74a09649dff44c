package symbols

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// goProbes finds a Go function's entry and exit probe points.
//
// Entry: a Go function starts with a stack-bound check that calls
// runtime.morestack and jumps back to the first instruction when the stack
// must grow, so a probe on the first byte fires twice for one call. The probe
// goes on the instruction right after the check's conditional branch, not at
// DWARF's prologue end further on: there the frame is not set up yet, so SP
// is what it will be again at the RET, which is how the BPF program pairs an
// exit with its own entry (and notices calls that never returned). On amd64
// it is also a PUSH, which the kernel emulates instead of single-stepping.
// Functions without the check (NOSPLIT) start at byte 0.
//
// Exits: every RET. A function can have several, and one without any (it
// always panics, or ends in a tail jump) cannot be timed.
//
// The per-architecture scanners only find the check and the RETs;
// goProbePoints turns what they found into file offsets.
func (b *Binary) goProbes(f *Function) (Probes, error) {
	code, err := b.code(f.Addr, f.End)
	if err != nil {
		// One bad function must not abort a listing of the others.
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: err.Error()}
	}
	switch b.Arch {
	case "amd64":
		return b.goProbesAMD64(f, code)
	case "arm64":
		return b.goProbesARM64(f, code)
	}
	return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: fmt.Sprintf("Go on %s is not supported yet", b.Arch)}
}

func (b *Binary) goProbesAMD64(f *Function, code []byte) (Probes, error) {
	var (
		afterCheck uint64 // address after the stack check's branch, 0 if none seen
		rets       []uint64
		prev       x86asm.Inst
		n          int
	)
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: fmt.Sprintf("cannot disassemble the instruction at %#x", f.Addr+uint64(pc))}
		}
		addr := f.Addr + uint64(pc)
		n++
		if n <= 8 && afterCheck == 0 && isCondJump(inst.Op) && comparesWithG(prev) {
			afterCheck = addr + uint64(inst.Len)
		}
		if inst.Op == x86asm.RET {
			rets = append(rets, addr)
		}
		prev = inst
		pc += inst.Len
	}
	return b.goProbePoints(f, code, afterCheck, rets)
}

// goProbePoints turns the result of an architecture's scan of f into
// probes: code is f's code, afterCheck the address of the instruction
// after the stack check's branch (0 when f has no check), rets the
// addresses of its RETs.
func (b *Binary) goProbePoints(f *Function, code []byte, afterCheck uint64, rets []uint64) (Probes, error) {
	if len(rets) == 0 {
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: "it has no RET instruction (it never returns normally, or ends in a tail call)"}
	}
	entry := f.Addr
	if afterCheck != 0 {
		entry = afterCheck
	}
	for _, r := range rets {
		if r == entry {
			// Entry and exit probes on one instruction fire in no
			// guaranteed order.
			return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: "its body is a single RET instruction"}
		}
	}
	for _, at := range append([]uint64{entry}, rets...) {
		what := ""
		if i := at - f.Addr; i < uint64(len(code)) {
			what = b.refused(code[i:])
		} else {
			what = b.refusedProbe(at)
		}
		if what != "" {
			return Probes{}, refusedError(f, at, what)
		}
	}
	// The entry instruction is in the code already read: decoding it from
	// there saves reading the file again for every function.
	var p Probes
	if i := entry - f.Addr; i < uint64(len(code)) {
		p.EntryEmulated = b.emulated(code[i:])
	} else {
		p.EntryEmulated = b.emulatedEntry(entry)
	}
	var err error
	if p.Entry, err = b.fileOffset(entry); err != nil {
		return Probes{}, err
	}
	for _, r := range rets {
		off, err := b.fileOffset(r)
		if err != nil {
			return Probes{}, err
		}
		p.Exits = append(p.Exits, off)
	}
	return p, nil
}

func isCondJump(op x86asm.Op) bool {
	switch op {
	case x86asm.JBE, x86asm.JB, x86asm.JA, x86asm.JAE, x86asm.JE, x86asm.JNE, x86asm.JLE, x86asm.JL, x86asm.JG, x86asm.JGE:
		return true
	}
	return false
}

// comparesWithG matches the stack check's CMP against g.stackguard0,
// which is at a small offset from the g pointer in R14.
func comparesWithG(inst x86asm.Inst) bool {
	if inst.Op != x86asm.CMP {
		return false
	}
	for _, a := range inst.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.R14 {
			return true
		}
	}
	return false
}

// emulatedEntry reports whether the x86 kernel emulates a uprobe on the
// instruction at addr rather than single-stepping it: it does for push of
// a register, a one-byte nop, and relative jumps, calls and conditional
// jumps (arch/x86/kernel/uprobes.c; measured here: 1.7 against 14 µs for a
// probe pair). Unknown elsewhere, so false.
func (b *Binary) emulatedEntry(addr uint64) bool {
	if b.Arch != "amd64" {
		return false
	}
	code, err := b.code(addr, addr+15)
	if err != nil {
		return false
	}
	return b.emulated(code)
}

// emulated is emulatedEntry for the instruction at the start of code.
func (b *Binary) emulated(code []byte) bool {
	if b.Arch != "amd64" {
		return false
	}
	inst, err := x86asm.Decode(code, 64)
	if err != nil {
		return false
	}
	switch {
	case inst.Op == x86asm.PUSH:
		_, isReg := inst.Args[0].(x86asm.Reg)
		return isReg
	case inst.Op == x86asm.NOP:
		return inst.Len == 1
	case inst.Op == x86asm.CALL, inst.Op == x86asm.JMP, isCondJump(inst.Op):
		_, isRel := inst.Args[0].(x86asm.Rel)
		return isRel
	}
	return false
}
