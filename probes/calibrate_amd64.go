//go:build amd64

package probes

/*
// Calibration targets: functions that do nothing, whose first instruction
// is one the kernel emulates (push) or one it must single-step (lea), so
// that a probe pair's own cost can be measured for each. Naked, so the
// compiler adds nothing; each exists twice, once for each exit kind, since
// two exit probes on one function would time each other.
__attribute__((naked, noinline)) void ulat_calib_push_ret(void) { __asm__("push %rbp\n\tpop %rbp\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_push_ur(void) { __asm__("push %rbp\n\tpop %rbp\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_step_ret(void) { __asm__("lea 0x1(%rdi),%rax\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_step_ur(void) { __asm__("lea 0x1(%rdi),%rax\n\tret"); }

// Callers, traced with an emulated entry and a uretprobe: each calls one
// of the functions above, whose probes' whole cost is what a traced call
// adds to a traced caller's duration; the first calls an untraced function
// that does nothing, for comparison. Then the same as tail calls (a jmp),
// whose exit shares the trap of the caller's.
__attribute__((naked, noinline)) void ulat_calib_nop(void) { __asm__("ret"); }
__attribute__((naked, noinline)) void ulat_calib_call_nop(void) { __asm__("push %rbp\n\tcall ulat_calib_nop@PLT\n\tpop %rbp\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_call_push_ret(void) { __asm__("push %rbp\n\tcall ulat_calib_push_ret@PLT\n\tpop %rbp\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_call_push_ur(void) { __asm__("push %rbp\n\tcall ulat_calib_push_ur@PLT\n\tpop %rbp\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_call_step_ret(void) { __asm__("push %rbp\n\tcall ulat_calib_step_ret@PLT\n\tpop %rbp\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_call_step_ur(void) { __asm__("push %rbp\n\tcall ulat_calib_step_ur@PLT\n\tpop %rbp\n\tret"); }
__attribute__((naked, noinline)) void ulat_calib_tail_nop(void) { __asm__("push %rbp\n\tpop %rbp\n\tjmp ulat_calib_nop@PLT"); }
__attribute__((naked, noinline)) void ulat_calib_tail_push_ur(void) { __asm__("push %rbp\n\tpop %rbp\n\tjmp ulat_calib_push_ur@PLT"); }
__attribute__((naked, noinline)) void ulat_calib_tail_step_ur(void) { __asm__("push %rbp\n\tpop %rbp\n\tjmp ulat_calib_step_ur@PLT"); }

static void ulat_calib_call(void *f) { ((void (*)(void))f)(); }
*/
import "C"

import "unsafe"

// calibrationTargets are the functions above: the probe kinds, each with
// the function that measures it, its RET's offset, and its callers.
func calibrationTargets() calibration {
	return calibration{
		kinds: []calibTarget{
			{kind: Overhead{Exit: ExitRET, Entry: EntryEmulated}, addr: unsafe.Pointer(C.ulat_calib_push_ret), ret: 2,
				caller: unsafe.Pointer(C.ulat_calib_call_push_ret)},
			{kind: Overhead{Exit: ExitUretprobe, Entry: EntryEmulated}, addr: unsafe.Pointer(C.ulat_calib_push_ur), ret: 2,
				caller: unsafe.Pointer(C.ulat_calib_call_push_ur), tailCaller: unsafe.Pointer(C.ulat_calib_tail_push_ur)},
			{kind: Overhead{Exit: ExitRET, Entry: EntryStepped}, addr: unsafe.Pointer(C.ulat_calib_step_ret), ret: 4,
				caller: unsafe.Pointer(C.ulat_calib_call_step_ret)},
			{kind: Overhead{Exit: ExitUretprobe, Entry: EntryStepped}, addr: unsafe.Pointer(C.ulat_calib_step_ur), ret: 4,
				caller: unsafe.Pointer(C.ulat_calib_call_step_ur), tailCaller: unsafe.Pointer(C.ulat_calib_tail_step_ur)},
		},
		baseline:     unsafe.Pointer(C.ulat_calib_call_nop),
		tailBaseline: unsafe.Pointer(C.ulat_calib_tail_nop),
	}
}

// callCalibrationFunction calls a function of calibrationTargets.
func callCalibrationFunction(f unsafe.Pointer) { C.ulat_calib_call(f) }
