package doctor

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as a process with a seccomp filter (see
// startFilteredChild).
const childEnv = "ULAT_DOCTOR_TEST_SECCOMP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(seccompChild())
	}
	os.Exit(m.Run())
}

// seccompChild installs an allow-everything seccomp filter on every thread,
// says so on stdout and waits for stdin to close.
func seccompChild() int {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("prctl:", err)
		return 1
	}
	filter := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		fmt.Println("seccomp:", errno)
		return 1
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// startFilteredChild starts a process with a seccomp filter and returns
// its pid; it exits when the test ends.
func startFilteredChild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child with a seccomp filter: %q, %v", line, err)
	}
	return cmd.Process.Pid
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    kernelVersion
	}{
		{"6.18.44-fc-v769", kernelVersion{6, 18, 44}},
		{"6.1.0-18-amd64", kernelVersion{6, 1, 0}},         // Debian 12
		{"5.15.0-91-generic", kernelVersion{5, 15, 0}},     // Ubuntu 22.04
		{"4.18.0-513.el8.x86_64", kernelVersion{4, 18, 0}}, // RHEL 8
		{"6.11.0-rc3+", kernelVersion{6, 11, 0}},           // a development kernel
		{"6.8.0", kernelVersion{6, 8, 0}},
		{"6.10", kernelVersion{6, 10, 0}},
		{"5.10.205-195.807.amzn2.x86_64", kernelVersion{5, 10, 205}}, // Amazon Linux 2
		{"6.6.12-linuxkit", kernelVersion{6, 6, 12}},                 // Docker Desktop
	} {
		got, err := parseVersion(tc.release)
		if err != nil || got != tc.want {
			t.Errorf("parseVersion(%q) = %v, %v; want %v", tc.release, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "linux", "6", "6-generic", ".6.1"} {
		if v, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) = %v, want an error", bad, v)
		}
	}
	// And the running kernel's.
	k := readKernel()
	if k.Err != nil {
		t.Errorf("running kernel %q: %v", k.Release, k.Err)
	}
	if !strings.HasPrefix(k.Release, fmt.Sprintf("%d.%d", k.Version.Major, k.Version.Minor)) {
		t.Errorf("running kernel %q parsed as %v", k.Release, k.Version)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v            kernelVersion
		major, minor int
		want         bool
	}{
		{kernelVersion{6, 1, 0}, 6, 6, false}, // Debian 12: no uprobe_multi
		{kernelVersion{6, 6, 0}, 6, 6, true},
		{kernelVersion{6, 18, 44}, 6, 6, true},
		{kernelVersion{5, 15, 0}, 5, 15, true},
		{kernelVersion{5, 4, 250}, 5, 15, false}, // patch levels do not count
		{kernelVersion{5, 19, 0}, 6, 0, false},
		{kernelVersion{7, 0, 0}, 6, 14, true},
		{kernelVersion{6, 13, 9}, 6, 14, false},
	} {
		if got := tc.v.atLeast(tc.major, tc.minor); got != tc.want {
			t.Errorf("%v.atLeast(%d, %d) = %v", tc.v, tc.major, tc.minor, got)
		}
	}
}

func TestParseStatusSelf(t *testing.T) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStatus(data)
	if err != nil {
		t.Fatal(err)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != strings.TrimSpace(string(comm)) {
		t.Errorf("Name = %q, want %q", st.Name, comm)
	}
	if st.Seccomp < 0 || st.Seccomp > 2 {
		t.Errorf("Seccomp = %d", st.Seccomp)
	}
	// The mask in the file and the kernel's answer to capget agree.
	caps, err := effectiveCaps()
	if err != nil {
		t.Fatal(err)
	}
	if !st.HasCapEff || st.CapEff != caps {
		t.Errorf("CapEff = %#x (present %v), capget says %#x", uint64(st.CapEff), st.HasCapEff, uint64(caps))
	}
}

func TestSeccompFilterProcess(t *testing.T) {
	pid := startFilteredChild(t)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStatus(data)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seccomp != 2 || !st.NoNewPrivs {
		t.Fatalf("child: Seccomp %d, NoNewPrivs %v; want 2 (filter), true", st.Seccomp, st.NoNewPrivs)
	}
	if st.SeccompFilters != -1 && st.SeccompFilters != 1 {
		t.Errorf("child: Seccomp_filters %d, want 1", st.SeccompFilters)
	}
	// The whole process check on the real child, on this kernel.
	k := readKernel()
	btf, btfErr := os.ReadFile(btfPath)
	res := checkProcess(pid, k, kernelFeatures(k, btf, btfErr), "")
	if len(res) != 3 || res[0].Check != "process" || res[0].Status != Pass || res[1].Check != "seccomp" {
		t.Fatalf("checkProcess = %v", res)
	}
	if !strings.Contains(res[1].Found, "a seccomp filter") {
		t.Errorf("seccomp: %v", res[1])
	}
	// The child is this test binary, a Go program.
	if res[1].Status == Warn && !strings.Contains(res[1].Fix, "its Go functions are safe") {
		t.Errorf("seccomp WARN does not say the Go functions are safe: %v", res[1])
	}
	t.Logf("on this kernel:\n%v\n%v\n%v", res[0], res[1], res[2])
}

func TestCheckSeccomp(t *testing.T) {
	filter := procStatus{Name: "server", Seccomp: 2, SeccompFilters: 1}
	withSyscall := features{UretprobeSyscall: true, UretprobeSyscallKnown: true, From: "kernel BTF"}
	without := features{UretprobeSyscallKnown: true, From: "kernel BTF"}
	v := func(s string) kernel {
		ver, err := parseVersion(s)
		return kernel{Release: s, Machine: "x86_64", Version: ver, Err: err}
	}
	for _, tc := range []struct {
		name   string
		st     procStatus
		k      kernel
		f      features
		goExe  bool
		want   Status
		phrase string
	}{
		{"no filter", procStatus{Seccomp: 0, SeccompFilters: 0}, v("6.12.0"), withSyscall, false, Pass, "no seccomp filter"},
		{"filter, syscall, 6.12", filter, v("6.12.0"), withSyscall, false, Warn, "Go functions are not affected"},
		{"filter, syscall, 6.12, Go", filter, v("6.12.0"), withSyscall, true, Warn, "only C functions of a cgo program"},
		{"filter, syscall, 6.14", filter, v("6.14.2"), withSyscall, false, Pass, "6.14+"},
		{"filter, no syscall", filter, v("6.1.0-18-amd64"), without, false, Pass, "with a trap"},
		{"strict", procStatus{Seccomp: 1, SeccompFilters: 0}, v("6.11.0"), withSyscall, false, Warn, "strict seccomp mode"},
		{"not reported", procStatus{Seccomp: -1, SeccompFilters: -1}, v("6.12.0"), withSyscall, false, Pass, "unknown"},
	} {
		r := checkSeccomp(42, tc.st, tc.k, tc.f, tc.goExe)
		if r.Status != tc.want || !strings.Contains(r.String(), tc.phrase) {
			t.Errorf("%s: %v; want %s mentioning %q", tc.name, r, tc.want, tc.phrase)
		}
		if r.Status == Warn && !strings.Contains(r.Fix, "335") {
			t.Errorf("%s: the fix does not name the syscall's number: %v", tc.name, r)
		}
	}
}

func TestCaps(t *testing.T) {
	for _, tc := range []struct {
		mask             string
		bpf, perf, admin bool
		tracing          bool
		capLast          int
		what             string
	}{
		{"000001ffffffffff", true, true, true, true, 40, "root on 6.x"},
		{"00000000a80425fb", false, false, false, false, 40, "Docker's default set"},
		{"000000c000000000", true, true, false, true, 40, "CAP_BPF and CAP_PERFMON only"},
		{"0000004000000000", false, true, false, false, 40, "CAP_PERFMON only"},
		{"0000000000200000", false, false, true, true, 40, "CAP_SYS_ADMIN only"},
		{"0000003fffffffff", false, false, true, true, 37, "root on 5.4"},
		{"000000c000000000", true, true, false, false, 37, "bits a pre-5.8 kernel does not know"},
	} {
		c, err := parseCaps(tc.mask)
		if err != nil {
			t.Fatal(err)
		}
		if c.has(capBPF) != tc.bpf || c.has(capPerfmon) != tc.perf || c.has(capSysAdmin) != tc.admin {
			t.Errorf("%s (%s): BPF %v PERFMON %v SYS_ADMIN %v", tc.what, tc.mask, c.has(capBPF), c.has(capPerfmon), c.has(capSysAdmin))
		}
		if got := hasTracingCaps(c, tc.capLast); got != tc.tracing {
			t.Errorf("%s: hasTracingCaps = %v", tc.what, got)
		}
	}
	if _, err := parseCaps("not hex"); err == nil {
		t.Errorf("parseCaps(not hex) succeeded")
	}
	if capSet(1<<63).has(64) || capSet(^uint64(0)).has(-1) {
		t.Errorf("Has accepts capabilities out of range")
	}
}

func TestCheckPrivileges(t *testing.T) {
	docker, _ := parseCaps("00000000a80425fb")
	r := checkPrivileges(0, docker, nil, 40, true)
	if r.Status != Fail || !strings.Contains(r.Fix, "--cap-add BPF") || !strings.Contains(r.Found, "lacks CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN") {
		t.Errorf("root in a default container: %v", r)
	}
	r = checkPrivileges(1000, 0, nil, 40, true)
	if r.Status != Fail || !strings.Contains(r.Fix, "setcap") {
		t.Errorf("user: %v", r)
	}
	r = checkPrivileges(1000, capSet(1<<capBPF|1<<capPerfmon), nil, 40, true)
	if r.Status != Pass || !strings.Contains(r.Found, "has CAP_BPF, CAP_PERFMON; lacks CAP_SYS_ADMIN") {
		t.Errorf("user with setcap: %v", r)
	}
	// Without uprobe_multi, perf-event uprobes may need CAP_SYS_ADMIN.
	r = checkPrivileges(1000, capSet(1<<capBPF|1<<capPerfmon), nil, 40, false)
	if r.Status != Warn || !strings.Contains(r.Fix, "CAP_SYS_ADMIN") {
		t.Errorf("user with setcap, no uprobe_multi: %v", r)
	}
	r = checkPrivileges(0, capSet(1<<capBPF|1<<capPerfmon), nil, 37, false)
	if r.Status != Fail || !strings.Contains(r.Fix, "CAP_SYS_ADMIN") {
		t.Errorf("pre-5.8 kernel without CAP_SYS_ADMIN: %v", r)
	}
	// This process, as the command would see it.
	caps, err := effectiveCaps()
	r = checkPrivileges(os.Geteuid(), caps, err, readSysctlInt("/proc/sys/kernel/cap_last_cap"), true)
	t.Logf("this process: %v", r)
}

func TestParseKernelConfig(t *testing.T) {
	cfg, err := parseKernelConfig(strings.NewReader(`#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_UPROBES=y
# CONFIG_UPROBE_EVENTS is not set
CONFIG_LOG_BUF_SHIFT=17
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"CONFIG_CC_VERSION_TEXT": "gcc (Debian 12.2.0-14) 12.2.0", "CONFIG_UPROBES": "y", "CONFIG_UPROBE_EVENTS": "n", "CONFIG_LOG_BUF_SHIFT": "17"}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("parseKernelConfig = %v, want %v", cfg, want)
	}
	r := checkUprobes(uprobePMU{Err: os.ErrNotExist}, cfg, "/boot/config-test")
	if r.Status != Fail || !strings.Contains(r.Found, "CONFIG_UPROBE_EVENTS=n") {
		t.Errorf("uprobes without CONFIG_UPROBE_EVENTS: %v", r)
	}

	// The running kernel's, when it can be read.
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		t.Skipf("no /proc/config.gz: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = parseKernelConfig(zr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg["CONFIG_BPF_SYSCALL"] != "y" {
		t.Errorf("/proc/config.gz: CONFIG_BPF_SYSCALL=%q (%d options read)", cfg["CONFIG_BPF_SYSCALL"], len(cfg))
	}
	if _, err := os.Stat(uprobePMUType); err == nil && cfg["CONFIG_UPROBE_EVENTS"] != "y" {
		t.Errorf("the uprobe PMU exists but /proc/config.gz says CONFIG_UPROBE_EVENTS=%q", cfg["CONFIG_UPROBE_EVENTS"])
	}
}

// TestKernelFeatures compares what the BTF says with what the version
// says, on this kernel.
func TestKernelFeatures(t *testing.T) {
	k := readKernel()
	btf, err := os.ReadFile(btfPath)
	if err != nil {
		t.Skipf("no BTF: %v", err)
	}
	fromBTF := kernelFeatures(k, btf, nil)
	fromVersion := kernelFeatures(k, nil, os.ErrNotExist)
	if fromBTF.From != "kernel BTF" || fromVersion.From != "kernel version" {
		t.Fatalf("sources: %q, %q", fromBTF.From, fromVersion.From)
	}
	// A distribution can backport features, never remove them.
	if fromVersion.Cookies && !fromBTF.Cookies {
		t.Errorf("Linux %s has no bpf_get_attach_cookie_trace in its BTF", k.Release)
	}
	if fromVersion.UretprobeSyscall && !fromBTF.UretprobeSyscall {
		t.Errorf("Linux %s (%s) has no uretprobe syscall in its BTF", k.Release, k.Machine)
	}
	t.Logf("Linux %s: BTF %+v, version %+v", k.Release, fromBTF, fromVersion)
}

func TestResultString(t *testing.T) {
	pass := Result{Status: Pass, Check: "BTF", Found: "/sys/kernel/btf/vmlinux (6.0 MiB)", Fix: "ignored"}
	if got := pass.String(); got != "PASS  BTF: /sys/kernel/btf/vmlinux (6.0 MiB)" {
		t.Errorf("%q", got)
	}
	warn := Result{Status: Warn, Check: "uprobe_multi", Found: "missing", Fix: "ulat falls back"}
	if got := warn.String(); got != "WARN  uprobe_multi: missing\n      ulat falls back" {
		t.Errorf("%q", got)
	}
	if n := Failed([]Result{pass, warn, {Status: Fail}, {Status: Fail}}); n != 2 {
		t.Errorf("Failed = %d", n)
	}
}

func TestCheckMemlock(t *testing.T) {
	eightMiB := memlock{Cur: 8 << 20, Max: 8 << 20}
	new := kernel{Version: kernelVersion{6, 1, 0}}
	old := kernel{Version: kernelVersion{5, 10, 0}}
	if r := checkMemlock(eightMiB, new, false); r.Status != Pass || !strings.Contains(r.Found, "RLIMIT_MEMLOCK 8 MiB (hard 8 MiB)") {
		t.Errorf("6.1: %v", r)
	}
	if r := checkMemlock(eightMiB, old, false); r.Status != Warn || !strings.Contains(r.Fix, "ulimit -l") {
		t.Errorf("5.10, 8 MiB, no CAP_SYS_RESOURCE: %v", r)
	}
	if r := checkMemlock(eightMiB, old, true); r.Status != Pass || !strings.Contains(r.Found, "ulat raises it") {
		t.Errorf("5.10, 8 MiB, CAP_SYS_RESOURCE: %v", r)
	}
	if r := checkMemlock(memlock{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}, old, false); r.Status != Pass {
		t.Errorf("5.10, unlimited: %v", r)
	}
	caps, _ := effectiveCaps()
	t.Logf("this process: %v", checkMemlock(readMemlock(), readKernel(), caps.has(capSysResource)))
}

// Root without CAP_SYS_PTRACE is told to add it, not to run as root; and a
// load refused on a kernel that charges BPF memory to RLIMIT_MEMLOCK, when
// that is short, points at memlock rather than at capabilities (both
// measured on Debian's 5.10 in QEMU, docs/agent.md).
func TestPermissionFixes(t *testing.T) {
	all := capSet(1<<capBPF | 1<<capPerfmon | 1<<capSysPtrace)
	noPtrace := capSet(1<<capBPF | 1<<capPerfmon)
	if fix := unreadableProcessFix(0, noPtrace, nil); !strings.Contains(fix, "root without CAP_SYS_PTRACE") || strings.Contains(fix, "run it as root") {
		t.Errorf("root without CAP_SYS_PTRACE: %s", fix)
	}
	for _, c := range []struct {
		euid int
		caps capSet
	}{{0, all}, {1000, noPtrace}} {
		if fix := unreadableProcessFix(c.euid, c.caps, nil); !strings.Contains(fix, "run it as root (or with CAP_SYS_PTRACE)") {
			t.Errorf("euid %d, caps %x: %s", c.euid, c.caps, fix)
		}
	}
	if fix := loadPermissionFix(true); !strings.HasPrefix(fix, "see memlock above") || !strings.Contains(fix, "CAP_SYS_RESOURCE") {
		t.Errorf("memlock short: %s", fix)
	}
	if fix := loadPermissionFix(false); !strings.HasPrefix(fix, "see privileges above") {
		t.Errorf("memlock fine: %s", fix)
	}
}

// TestRun runs every check on this machine, when it can load BPF.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load and attach")
	}
	res := Run(Options{Pid: os.Getpid()})
	var b strings.Builder
	for _, r := range res {
		fmt.Fprintln(&b, r)
	}
	t.Logf("\n%s", b.String())
	checks := map[string]bool{}
	for _, r := range res {
		checks[r.Check] = true
	}
	for _, c := range []string{"kernel", "BTF", "uprobes", "uprobe_multi", "BPF cookies", "privileges", "sysctls", "memlock", "load", "attach (perf-event)", "process", "seccomp", "uretprobe syscall"} {
		if !checks[c] {
			t.Errorf("no %q check", c)
		}
	}
	if n := Failed(res); n > 0 {
		t.Errorf("%d checks failed as root", n)
	}
}
