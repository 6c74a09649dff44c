package probes

import (
	"errors"
	"strings"
	"testing"
)

// What libbpf printed when Debian's 6.1 kernel refused the in-kernel
// histogram update (cut), and when 5.10 refused a helper it lacks.
const (
	log61     = "libbpf: prog 'ulat_exit_pe': BPF program load failed: Permission denied\n"
	log61Body = `libbpf: prog 'ulat_exit_pe': -- BEGIN PROG LOAD LOG --
; __sync_fetch_and_add(&h->slots[s], 1);
232: (db) lock *(u64 *)(r0 +32) += r1
R0 unbounded memory access, make sure to bounds check any such access
processed 939 insns (limit 1000000) max_states_per_insn 8 total_states 96 peak_states 54 mark_read 6
-- END PROG LOAD LOG --
`
	log510     = "libbpf: prog 'ulat_entry_pe': BPF program load failed: Invalid argument\n"
	log510Body = `libbpf: prog 'ulat_entry_pe': -- BEGIN PROG LOAD LOG --
; __u64 cookie = bpf_get_attach_cookie(ctx);
invalid func unknown#174
processed 17 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 1
-- END PROG LOAD LOG --
`
)

func TestRejectedErrorNamesProgramAndReason(t *testing.T) {
	for _, c := range []struct {
		msgs         []string
		prog, reason string
	}{
		{[]string{"libbpf: map 'events': created successfully, fd=9\n", log61, log61Body}, "ulat_exit_pe", "R0 unbounded memory access, make sure to bounds check any such access"},
		{[]string{log510, log510Body, "libbpf: failed to load object '/proc/self/fd/3'\n"}, "ulat_entry_pe", "invalid func unknown#174"},
	} {
		startLoadLog(nil)
		for _, m := range c.msgs {
			onLibbpfLog(0, m)
		}
		err := rejectedError(loadFailures())
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("%v: not ErrRejected", err)
		}
		for _, want := range []string{c.prog, c.reason, "on Linux "} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not say %q", err, want)
			}
		}
	}
	startLoadLog(nil)
	onLibbpfLog(0, "libbpf: map 'events': created successfully, fd=9\n")
	if err := rejectedError(loadFailures()); err != nil {
		t.Errorf("no program failed, yet: %v", err)
	}
}
