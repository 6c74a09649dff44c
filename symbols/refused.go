package symbols

import "fmt"

// refusedProbe tells what about the instruction at addr makes the kernel
// refuse a uprobe there, or "" when it accepts it (as far as ulat knows).
//
// x86 uprobes single-step the probed instruction out of line, and
// arch/x86/kernel/uprobes.c (uprobe_init_insn, the same from 5.10 to 6.18)
// refuses, with ENOTSUPP (errno 524), an instruction with a segment
// override or LOCK prefix, one that masks exceptions (mov/pop to SS), and
// opcodes invalid in 64-bit mode or unsafe to step (INT3, INT n, HLT,
// CLI/STI, far transfers...), and EVEX encodings (AVX-512). Some VEX
// (AVX) instructions are refused and others not (vmovd and vpxor were,
// vzeroupper was not, on 6.18): those are left to Attach, which finds
// them when the kernel refuses a batch (glibc's __memset_avx2_* and the
// like start with one). One such function used to sink a whole
// uprobe_multi link; a function starting like that is now left out with
// this reason. Two-byte opcodes the kernel refuses are not listed here:
// the tracer finds those when the kernel refuses them.
func (b *Binary) refusedProbe(addr uint64) string {
	if b.Arch != "amd64" {
		return ""
	}
	code, err := b.code(addr, addr+15)
	if err != nil {
		return ""
	}
	return b.refused(code)
}

// refused is refusedProbe for the instruction at the start of code.
func (b *Binary) refused(code []byte) string {
	if b.Arch != "amd64" {
		return ""
	}
	for i, c := range code {
		switch c {
		case 0xf0:
			return "a LOCK prefix"
		case 0x26, 0x2e, 0x36, 0x3e:
			return fmt.Sprintf("a segment-override prefix (%#02x)", c)
		case 0x64, 0x65, 0x66, 0x67, 0xf2, 0xf3:
			continue // prefixes the kernel accepts
		}
		if c >= 0x40 && c <= 0x4f { // REX
			continue
		}
		if name, bad := refusedOpcodes[c]; bad {
			return name + ", which uprobes cannot single-step"
		}
		if c == 0x8e && i+1 < len(code) && code[i+1]>>3&7 == 2 {
			return "mov to SS, which masks exceptions"
		}
		return ""
	}
	return ""
}

// refusedOpcodes are the one-byte opcodes that good_insns_64 in
// arch/x86/kernel/uprobes.c leaves out.
var refusedOpcodes = map[byte]string{
	0x06: "push es", 0x07: "pop es", 0x0e: "push cs", 0x16: "push ss", 0x17: "pop ss",
	0x1e: "push ds", 0x1f: "pop ds", 0x27: "daa", 0x2f: "das", 0x37: "aaa", 0x3f: "aas",
	0x60: "pusha", 0x61: "popa", 0x62: "an EVEX-encoded (AVX-512) instruction", 0x82: "an invalid opcode", 0x9a: "call far",
	0xcc: "int3", 0xcd: "int", 0xce: "into", 0xcf: "iret",
	0xd4: "aam", 0xd5: "aad", 0xd6: "salc", 0xea: "jmp far",
	0xf1: "int1", 0xf4: "hlt", 0xfa: "cli", 0xfb: "sti",
}

// refusedError is the ErrCannotProbe for a probe the kernel would refuse.
func refusedError(f *Function, addr uint64, what string) *ErrCannotProbe {
	return &ErrCannotProbe{
		Function: f.Name,
		Reason:   fmt.Sprintf("the kernel's uprobes refuse its instruction at %#x (%s)", addr, what),
		Refused:  what,
	}
}
