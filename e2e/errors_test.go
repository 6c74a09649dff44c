package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ulat answers bad input with one clear line and exit status 2, and
// runtime failures with status 1; never a panic or a stack trace.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("hello\n"), 0o644)
	cbin := cTarget(t, true)
	stripped := build(t, "ctarget-stripped", "gcc", "-O2", "-s", "-pthread", "-o", "$OUT", "testdata/ctarget/ctarget.c")
	raw, err := os.ReadFile(cbin)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated")
	os.WriteFile(truncated, raw[:100], 0o755)
	// The same binary claiming to be for RISC-V (e_machine 243).
	riscv := filepath.Join(dir, "riscv")
	patched := append([]byte{}, raw...)
	patched[18], patched[19] = 243, 0
	os.WriteFile(riscv, patched, 0o755)

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing file", []string{"trace", "/no/such/binary", "main"}, 2, "open /no/such/binary: file does not exist"},
		{"directory", []string{"trace", dir, "main"}, 2, "is a directory, not an ELF file"},
		{"not ELF", []string{"trace", text, "main"}, 2, "not an ELF file (it does not start with the ELF magic bytes)"},
		{"truncated ELF", []string{"symbols", truncated}, 2, "not an ELF file (truncated or corrupted"},
		{"other architecture", []string{"trace", riscv, "work"}, 2, "unsupported binary: built for EM_RISCV; ulat supports x86-64 and arm64"},
		{"stripped, its libraries traceable", []string{"trace", stripped, "work"}, 2, "the functions of the libraries it uses (libc.so.6) can still be traced in its processes, as LIB:FUNC ('libc:FUNC')"},
		{"no match", []string{"trace", cbin, "wrk"}, 2, `no function matches "wrk" (did you mean "work"`},
		{"bad format", []string{"trace", "-f", "xml", cbin, "work"}, 2, `--format "xml": must be table or json`},
		{"bad duration", []string{"trace", "-d", "soon", cbin, "work"}, 2, "invalid value \"soon\" for flag -d"},
		{"flag after args", []string{"trace", cbin, "work", "-d", "1s"}, 2, "flag -d must come before BINARY"},
		{"missing pattern", []string{"trace", cbin}, 2, "trace needs BINARY and at least one PATTERN"},
		{"no such pid", []string{"trace", "--pid", "999999999", cbin, "work"}, 2, "process 999999999: no such process"},
		{"unknown command", []string{"tarce"}, 2, `unknown command "tarce"`},
		{"symbols without binary", []string{"symbols"}, 2, "symbols needs BINARY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := ulatStatus(t, nil, c.args...)
			if code != c.code {
				t.Errorf("exit status %d, want %d; stderr: %s", code, c.code, stderr)
			}
			if !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q does not say %q", stderr, c.msg)
			}
			noPanic(t, stderr)
		})
	}
}

// Without privileges ulat says which ones it needs.
func TestNoPrivileges(t *testing.T) {
	requireRoot(t) // to drop them
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("SKIPPED: setpriv (util-linux) is not installed")
	}
	bin := cTarget(t, true)
	os.Chmod(targetDir, 0o755)
	code, stderr := ulatStatus(t, []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all"},
		"trace", "-d", "1s", bin, "work")
	if code != 1 {
		t.Errorf("exit status %d, want 1; stderr: %s", code, stderr)
	}
	if !strings.Contains(stderr, "needs root, or the capabilities CAP_BPF and CAP_PERFMON") {
		t.Errorf("stderr does not name the privileges needed: %s", stderr)
	}
	noPanic(t, stderr)
}

func ulatStatus(t *testing.T, prefix []string, args ...string) (int, string) {
	t.Helper()
	argv := append(append(prefix, ulatBin), args...)
	c := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	c.Stderr = &stderr
	return exitCode(t, c.Run()), stderr.String()
}

func noPanic(t *testing.T, stderr string) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", ".go:"} {
		if strings.Contains(stderr, s) {
			t.Errorf("stderr looks like a crash (%q): %s", s, stderr)
		}
	}
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
		t.Errorf("want a one-line error, got %d lines: %s", n+1, stderr)
	}
}

// A kernel without BTF, or without uprobes, cannot be booted here; a mount
// namespace that hides what ulat (and libbpf) look for stands in for one:
// an empty /sys/kernel/btf (no vmlinux BTF; this machine has none in /boot
// or /lib/modules either), an empty /sys/bus/event_source/devices (no
// uprobe PMU for the perf-event path).
func TestKernelWithoutBTFOrUprobes(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("SKIPPED: unshare (util-linux) is not installed")
	}
	bin := cTarget(t, true)
	for _, tc := range []struct {
		name, hide string
		args       []string
		msg        string
	}{
		{"no BTF", "/sys/kernel/btf", []string{"trace", "-d", "1s", bin, "work"},
			"this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): ulat's BPF program needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"},
		{"no uprobes", "/sys/bus/event_source/devices", []string{"trace", "--attach", "perf", "-d", "1s", bin, "work"},
			"this kernel has no uprobe support (CONFIG_UPROBES and CONFIG_UPROBE_EVENTS are needed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hide == "/sys/kernel/btf" {
				rel := kernelRelease(t)
				for _, p := range []string{"/boot/vmlinux-" + rel, "/lib/modules/" + rel + "/vmlinux-" + rel, "/usr/lib/debug/boot/vmlinux-" + rel} {
					if _, err := os.Stat(p); err == nil {
						t.Skipf("SKIPPED: libbpf would find the kernel's BTF in %s", p)
					}
				}
			}
			script := "mount -t tmpfs none " + tc.hide + ` && exec "$@"`
			code, stderr := ulatStatus(t, []string{"unshare", "-m", "sh", "-c", script, "sh"}, tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tc.msg)
			}
			noPanic(t, stderr)
		})
	}
}

func kernelRelease(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
