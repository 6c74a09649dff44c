package symbols

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/arch/arm64/arm64asm"
)

// arm64asmMu makes arm64 decoding one instruction at a time: arm64asm.Decode
// marks the format it matched in a package-level coverage table, a data
// race between two Opens or Probes on different goroutines (go test -race
// reports it). x86asm had the same and now leaves its table nil outside
// its own tests (golang/go#33532); arm64asm v0.32.0 does not.
var arm64asmMu sync.Mutex

// decodeARM64 is arm64asm.Decode, safe to call from any goroutine.
func decodeARM64(src []byte) (arm64asm.Inst, error) {
	arm64asmMu.Lock()
	defer arm64asmMu.Unlock()
	return arm64asm.Decode(src)
}

// Go's arm64 stack-bound check (cmd/internal/obj/arm64, stacksplit) is the
// first thing in a function that has one. The g pointer lives in R28 and
// g.stackguard0 is at offset 16 (stackguard1, used by the runtime's
// C-ABI functions, at 24). In go tool objdump syntax:
//
//	frame <= StackSmall (128):
//		MOVD 16(R28), R16
//		CMP R16, RSP
//		BLS morestack
//	frame <= StackBig (4096):
//		MOVD 16(R28), R16
//		SUB $(frame-128), RSP, R17
//		CMP R16, R17
//		BLS morestack
//	larger frames (guard against SP-frame underflowing):
//		MOVD 16(R28), R16
//		MOVD $(frame-128), R27
//		SUBS R27, RSP, R17
//		BCC morestack
//		CMP R16, R17
//		BLS morestack
//
// The morestack block at the end of the function jumps back to its first
// instruction, so the entry probe goes after the BLS. Every instruction is
// 4 bytes, and Go pads functions to 16 bytes with zero words.
const arm64CheckWindow = 8 // instructions from the start in which the check must end

// goProbesARM64 finds the stack check and the RETs of an arm64 Go function.
func (b *Binary) goProbesARM64(f *Function, code []byte) (Probes, error) {
	afterCheck, rets, reason := scanGoARM64(code, f.Addr)
	if reason != "" {
		return Probes{}, &ErrCannotProbe{Function: f.Name, Reason: reason}
	}
	return b.goProbePoints(f, code, afterCheck, rets)
}

// scanGoARM64 scans the code of a function that starts at addr. It returns
// the address of the instruction after the stack check's BLS (0 when there
// is no check) and the addresses of the RETs, or a reason why the function
// cannot be probed.
//
// A word the decoder does not know is fatal only inside the stack check,
// where it would hide whether the entry is right. Elsewhere it is skipped:
// instructions are fixed-width, so it cannot shift the decoding of the
// next one, and it cannot be a RET (the decoder knows every RET encoding).
// golang.org/x/arch decodes ARMv8.0 only, and the Go runtime and the
// atomics Go inlines use ARMv8.1 LSE instructions (CAS, LDADD, SWP) behind
// a CPU feature test, so refusing every function that contains one would
// refuse ordinary user code.
func scanGoARM64(code []byte, addr uint64) (afterCheck uint64, rets []uint64, reason string) {
	if addr%4 != 0 {
		return 0, nil, fmt.Sprintf("its address %#x is not a multiple of 4, which no arm64 instruction can start at", addr)
	}
	var (
		gReg     = -1 // register the check loaded g.stackguard into, -1 if none yet
		prev     arm64asm.Inst
		havePrev bool
		n        int // instructions seen, padding excluded
	)
	for pc := 0; pc+4 <= len(code); pc += 4 {
		at := addr + uint64(pc)
		word := binary.LittleEndian.Uint32(code[pc:])
		if word == 0 {
			// Padding between functions (UDF #0 otherwise: never
			// executed by Go code).
			havePrev = false
			continue
		}
		n++
		inCheck := afterCheck == 0 && n <= arm64CheckWindow
		inst, err := decodeARM64(code[pc : pc+4])
		if err != nil {
			if inCheck && gReg >= 0 {
				return 0, nil, fmt.Sprintf("cannot disassemble the instruction at %#x, inside its stack-bound check", at)
			}
			havePrev = false
			continue
		}
		if inCheck {
			if r, ok := loadsStackguard(word); ok {
				gReg = r
			} else if gReg >= 0 && havePrev && isBLS(inst) && comparesReg(prev, gReg) {
				afterCheck = at + 4
			}
		}
		if inst.Op == arm64asm.RET {
			rets = append(rets, at)
		}
		prev, havePrev = inst, true
	}
	return afterCheck, rets, ""
}

// loadsStackguard matches LDR Xt, [X28, #16] or [X28, #24] (unsigned-offset
// form, the one Go's assembler emits for them) and returns t.
func loadsStackguard(word uint32) (int, bool) {
	const ldrXImm = 0xf9400000 // LDR (immediate, unsigned offset), 64-bit
	if word&0xffc00000 != ldrXImm {
		return 0, false
	}
	rt, rn, off := word&31, (word>>5)&31, ((word>>10)&0xfff)*8
	if rn != 28 || rt == 31 || (off != 16 && off != 24) {
		return 0, false
	}
	return int(rt), true
}

func isBLS(inst arm64asm.Inst) bool {
	if inst.Op != arm64asm.B {
		return false
	}
	c, ok := inst.Args[0].(arm64asm.Cond)
	return ok && c.String() == "LS"
}

// comparesReg reports whether inst is a CMP (SUBS to the zero register)
// that reads register r.
func comparesReg(inst arm64asm.Inst, r int) bool {
	if inst.Op != arm64asm.CMP {
		return false
	}
	if int(inst.Enc>>5)&31 == r { // Rn, in every form
		return true
	}
	switch inst.Args[1].(type) {
	case arm64asm.Reg, arm64asm.RegSP, arm64asm.RegExtshiftAmount:
		// Register forms (shifted or extended): Rm in bits 16-20.
		// In the immediate form those bits are the immediate.
		return int(inst.Enc>>16)&31 == r
	}
	return false
}
