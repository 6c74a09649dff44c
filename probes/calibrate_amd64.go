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
*/
import "C"

import "unsafe"

// calibrationTargets are the functions above, by the probe kind each
// measures, with the offset of its RET from its start.
func calibrationTargets() []calibTarget {
	return []calibTarget{
		{kind: Overhead{Exit: ExitRET, Entry: EntryEmulated}, addr: unsafe.Pointer(C.ulat_calib_push_ret), ret: 2},
		{kind: Overhead{Exit: ExitUretprobe, Entry: EntryEmulated}, addr: unsafe.Pointer(C.ulat_calib_push_ur), ret: 2},
		{kind: Overhead{Exit: ExitRET, Entry: EntryStepped}, addr: unsafe.Pointer(C.ulat_calib_step_ret), ret: 4},
		{kind: Overhead{Exit: ExitUretprobe, Entry: EntryStepped}, addr: unsafe.Pointer(C.ulat_calib_step_ur), ret: 4},
	}
}

func callCalibrationTarget(i int) {
	switch i {
	case 0:
		C.ulat_calib_push_ret()
	case 1:
		C.ulat_calib_push_ur()
	case 2:
		C.ulat_calib_step_ret()
	case 3:
		C.ulat_calib_step_ur()
	}
}
