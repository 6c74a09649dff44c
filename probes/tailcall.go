package probes

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Kernels before 5.15 have no BPF cookies, so one program cannot tell which
// of the functions it is attached to fired. Instead each probe gets a tiny
// program of its own (a "cookie program") that stores its cookie in the
// per-CPU cookie_slot map and tail-calls ulat's real program of its kind,
// which reads the cookie from there (have_cookies is false).

// Indexes of the real programs in the tail_progs map (enum ulat_tail).
const (
	tailEntry  = 0 // ULAT_TAIL_ENTRY
	tailExit   = 1 // ULAT_TAIL_EXIT
	tailReturn = 2 // ULAT_TAIL_RETURN
)

var tailIndex = map[string]uint32{"entry": tailEntry, "exit": tailExit, "return": tailReturn}

// cookiePrograms loads and keeps the cookie programs of one tracer, one per
// cookie and probe kind: a function's several RET probes share one.
type cookiePrograms struct {
	slotFD, tailFD int
	progs          map[cookieProgKey]*ebpf.Program
}

type cookieProgKey struct {
	cookie uint64
	tail   uint32
}

// cookieProgram returns the program that passes cookie on to the real
// program at index tail, loading it the first time.
func (c *cookiePrograms) cookieProgram(cookie uint64, tail uint32) (*ebpf.Program, error) {
	key := cookieProgKey{cookie, tail}
	if p := c.progs[key]; p != nil {
		return p, nil
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // the context, for the tail call
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, c.slotFD),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadImm(asm.R1, int64(cookie), asm.DWord),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, c.tailFD),
		asm.Mov.Imm(asm.R3, int32(tail)),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	p, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:         "ulat_cookie",
		Type:         ebpf.Kprobe,
		Instructions: insns,
		License:      "GPL",
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return nil, fmt.Errorf("load the cookie program of a probe: %w", err)
	}
	if c.progs == nil {
		c.progs = map[cookieProgKey]*ebpf.Program{}
	}
	c.progs[key] = p
	return p, nil
}

func (c *cookiePrograms) close() error {
	var errs []error
	for k, p := range c.progs {
		errs = append(errs, p.Close())
		delete(c.progs, k)
	}
	return errors.Join(errs...)
}

// fillTailProgs puts the real programs of the perf-event mode into
// tail_progs, where the cookie programs find them.
func (t *Tracer) fillTailProgs() error {
	tail, err := t.mod.GetMap("tail_progs")
	if err != nil {
		return fmt.Errorf("find tail_progs map: %w", err)
	}
	slot, err := t.mod.GetMap("cookie_slot")
	if err != nil {
		return fmt.Errorf("find cookie_slot map: %w", err)
	}
	for kind, idx := range tailIndex {
		prog, err := t.mod.GetProgram(perfPrograms[kind])
		if err != nil {
			return fmt.Errorf("find program %s: %w", perfPrograms[kind], err)
		}
		key, fd := idx, uint32(prog.FileDescriptor())
		if err := tail.Update(unsafe.Pointer(&key), unsafe.Pointer(&fd)); err != nil {
			return fmt.Errorf("set tail program %s: %w", perfPrograms[kind], err)
		}
	}
	t.cookieProgs = &cookiePrograms{slotFD: slot.FileDescriptor(), tailFD: tail.FileDescriptor()}
	return nil
}
