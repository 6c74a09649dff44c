package guest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/e2e/ulattest"
	"github.com/ulat-dev/ulat/report"
)

var dir string

func TestMain(m *testing.M) {
	if os.Getpid() == 1 {
		os.Exit(runAsInit(m))
	}
	dir = os.Getenv(EnvDir)
	os.Exit(m.Run())
}

func setup(t *testing.T) {
	t.Helper()
	if dir == "" {
		t.Skipf("SKIPPED: run by the kernel matrix (make test-kernels), which sets %s", EnvDir)
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to load BPF programs")
	}
}

func ulat() string              { return filepath.Join(dir, "ulat") }
func target(name string) string { return filepath.Join(dir, name) }

// waiting is a target started with TARGET_WAIT: it waits for a line on
// stdin before its first traced call, so that ulat can attach to its pid.
type waiting struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   strings.Builder
}

func startWaiting(t *testing.T, bin string, args ...string) *waiting {
	t.Helper()
	w := &waiting{cmd: exec.Command(bin, args...)}
	w.cmd.Env = append(os.Environ(), "TARGET_WAIT=1")
	w.cmd.Stdout = &w.out
	var err error
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
	return w
}

func (w *waiting) pid() string { return fmt.Sprint(w.cmd.Process.Pid) }

func (w *waiting) release(t *testing.T) {
	t.Helper()
	if _, err := w.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
}

// traced runs bin with args under `ulat trace` of patterns, either by
// --pid (ulat ends when the target does) or for every process that runs
// bin, and returns the report and the target's output.
func traced(t *testing.T, byPid bool, flags []string, bin string, args []string, patterns ...string) (*report.JSONReport, string) {
	t.Helper()
	if byPid {
		w := startWaiting(t, bin, args...)
		tr := ulattest.StartTrace(t, ulat(), append(append(flags, "--pid", w.pid(), bin), patterns...)...)
		w.release(t)
		r := tr.Wait(10 * time.Minute)
		w.cmd.Wait()
		return r, w.out.String()
	}
	tr := ulattest.StartTrace(t, ulat(), append(append(flags, bin), patterns...)...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Errorf("%s %v under ulat: %v", bin, args, err)
	}
	return tr.Stop(), string(out)
}

// modes are the ways every tracing check runs: the default (no flags) and
// every call streamed to user space.
var modes = []struct {
	name  string
	flags []string
}{{"default", nil}, {"user", []string{"--aggregate", "user"}}}

var targets = []struct {
	name  string
	byPid bool
}{{"pid", true}, {"every-process", false}}

// C: threads, exact counts, recursion; the target's output unchanged.
func TestTraceC(t *testing.T) {
	setup(t)
	bin := target("ctarget")
	want := run(t, bin, "2", "10", "1000")
	for _, m := range modes {
		for _, tg := range targets {
			t.Run(m.name+"/"+tg.name, func(t *testing.T) {
				r, out := traced(t, tg.byPid, m.flags, bin, []string{"2", "10", "1000"}, "work", "fast", "fib")
				if out != want {
					t.Errorf("target output under tracing %q, untraced %q", out, want)
				}
				ulattest.WantNoLoss(t, r)
				work := ulattest.WantCount(t, r, "work", 2*10)
				if time.Duration(work.MinNs) < time.Millisecond {
					t.Errorf("work: min %dns is shorter than the 1ms it sleeps", work.MinNs)
				}
				ulattest.WantCount(t, r, "fast", 2*10*10)
				ulattest.WantCount(t, r, "fib", 177)
			})
		}
	}
}

// Go: goroutines that sleep, yield and park on channels, so that they
// resume on other threads mid-call; recursion; a stack grown mid-call.
func TestTraceGo(t *testing.T) {
	setup(t)
	bin := target("gotarget")
	want := run(t, bin, "4", "5", "1ms")
	for _, m := range modes {
		for _, tg := range targets {
			t.Run(m.name+"/"+tg.name, func(t *testing.T) {
				r, out := traced(t, tg.byPid, m.flags, bin, []string{"4", "5", "1ms"}, "main.work", "main.recurse", "main.deep", "main.grow")
				if out != want {
					t.Errorf("target output under tracing %q, untraced %q", out, want)
				}
				ulattest.WantNoLoss(t, r)
				ulattest.WantCount(t, r, "main.work", 4*5)
				ulattest.WantCount(t, r, "main.recurse", 11)
				ulattest.WantCount(t, r, "main.deep", 201)
				grow := ulattest.WantCount(t, r, "main.grow", 1)
				if deep := ulattest.Fn(t, r, "main.deep"); grow.MaxNs+grow.ProbeUncertaintyNs < deep.MaxNs {
					t.Errorf("main.grow took %dns (±%dns), less than its callee main.deep (%dns): pairs are crossed", grow.MaxNs, grow.ProbeUncertaintyNs, deep.MaxNs)
				}
			})
		}
	}
}

// Go calls that never return (recovered panics, Goexit, a panic through
// recursion) are counted as such; later calls still pair.
func TestUnwindGo(t *testing.T) {
	setup(t)
	const n = 20
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r, _ := traced(t, true, m.flags, target("gounwind"), []string{fmt.Sprint(n)}, "main.panicky", "main.goexiter", "main.recurse", "main.works")
			ulattest.WantUnwound(t, r, "main.panicky", n/2, n/2)
			ulattest.WantUnwound(t, r, "main.goexiter", 0, n)
			ulattest.WantUnwound(t, r, "main.recurse", 0, 6)
			ulattest.WantUnwound(t, r, "main.works", n, 0)
			ulattest.WantNoLoss(t, r)
		})
	}
}

// ulat run: counts from the command's first instruction, its exit status
// passed through, and --follow-forks into a forked and exec'd child.
func TestRun(t *testing.T) {
	setup(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r, code, out := ulattest.Run(t, ulat(), append(m.flags, "--func", "startup", "--func", "work", "--", target("runtarget"), "100", "3")...)
			if code != 3 {
				t.Errorf("exit status %d, want the command's 3", code)
			}
			if !strings.HasPrefix(out, "runtarget: 100 calls") {
				t.Errorf("command's stdout %q", out)
			}
			ulattest.WantCount(t, r, "startup", 1)
			ulattest.WantCount(t, r, "work", 100)
			ulattest.WantNoLoss(t, r)

			r, code, _ = ulattest.Run(t, ulat(), append(m.flags, "--follow-forks", "--func", "work", "--", target("cforker"))...)
			if code != 0 {
				t.Errorf("--follow-forks: exit status %d", code)
			}
			ulattest.WantCount(t, r, "work", 5+7+11)
			ulattest.WantNoLoss(t, r)
		})
	}
}

// Tail calls at -O2 (ping and pong jump to each other, countdown to
// itself): every entry is a call that returns, none lost; a function
// starting with a LOCK prefix is left out with a warning, the rest traced.
// Counts are the target's own. (Not '*': a static binary's libc has
// functions that return twice or never, which the e2e suite covers.)
func TestTailCallsAndRefused(t *testing.T) {
	setup(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r, code, out := ulattest.Run(t, ulat(), append(m.flags, "--func", "ping", "--func", "pong", "--func", "countdown", "--func", "plain", "--func", "locked", "--", target("cdistro"), "20", "10")...)
			if code != 0 {
				t.Fatalf("exit status %d", code)
			}
			var ping, pong, countdown, locked, plain, sum uint64
			if _, err := fmt.Sscanf(out, "ping %d pong %d countdown %d locked %d plain %d sum %d", &ping, &pong, &countdown, &locked, &plain, &sum); err != nil {
				t.Fatalf("cdistro output %q: %v", out, err)
			}
			ulattest.WantCount(t, r, "ping", ping)
			ulattest.WantCount(t, r, "pong", pong)
			ulattest.WantCount(t, r, "countdown", countdown)
			ulattest.WantCount(t, r, "plain", plain)
			for _, f := range []string{"ping", "pong", "countdown"} {
				if d := ulattest.Fn(t, r, f).DidNotReturn; d != 0 {
					t.Errorf("%s: %d calls did not return", f, d)
				}
			}
			ulattest.WantNoLoss(t, r)
			warned := false
			for _, w := range r.Warnings {
				warned = warned || strings.Contains(w, "locked (a LOCK prefix)")
			}
			if !warned {
				t.Errorf("no warning that locked cannot be probed: %q", r.Warnings)
			}
		})
	}
}

// ulat run --follow-forks: a pattern the command does not have is found in
// the program its child execs, and attached before that program's first
// instruction (the process is stopped at exec, then let go on).
func TestRunFollowsExec(t *testing.T) {
	setup(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r, code, out := ulattest.Run(t, ulat(), append(m.flags, "--follow-forks", "--func", "example.com/m/x.Work", "--", target("cdistro"), "exec", target("gomodule-work"), "6")...)
			if code != 0 {
				t.Fatalf("exit status %d, output %q", code, out)
			}
			ulattest.WantCount(t, r, "example.com/m/x.Work", 6)
			ulattest.WantNoLoss(t, r)
		})
	}
}

// ulat doctor passes (nothing FAILs), and what it loads and attaches is
// what trace and run then use.
func TestDoctor(t *testing.T) {
	setup(t)
	out, err := exec.Command(ulat(), "doctor").CombinedOutput()
	if err != nil {
		t.Fatalf("ulat doctor: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "FAIL") {
		t.Errorf("a check failed:\n%s", out)
	}
	for _, check := range []string{"kernel:", "BTF:", "uprobes:", "load:"} {
		if !strings.Contains(string(out), "PASS  "+check) {
			t.Errorf("no PASS for %s:\n%s", check, out)
		}
	}
	t.Logf("\n%s", out)
}

var run = ulattest.Output

// The calls of the exact target (e2e/testdata/exact) against what they
// measured of themselves, with in-kernel histograms, on every kernel.
// Guests are emulated (TCG), where a probe pair on a call of a traced
// program costs tens of µs more than calibration's back-to-back calls
// measure, and varies by as much: every duration is exactScale times
// longer than on the host, so that narrow (200 ms), bimodal (40 ms and
// 600 ms) and loguniform (20 ms to 1 s) are checked within 1%, as on
// the host. short (0.8 to 1.8 ms here) is shown, not checked: measured in
// the guests at half this scale, its p50 and p90 were 8-13% above the
// calls' own, its p99 up to 27% (+65 to +280 µs). At half this scale,
// narrow's p90 was once 1.7 ms (+1.68%) above its band, with nothing else
// running: the emulator stalls a call's probe path by up to ~1.5 ms
// (seen on p99s), a delay that does not grow with the call, so the calls
// are made long enough that it stays within the allowance below.
const (
	exactGuestCalls = 100 // ~70 s at exactScale
	exactScale      = 200
	// exactGuestTolerance is how far each percentile may be from the
	// exact one, as a fraction of it, plus exactGuestInContext: what a
	// call's probes may cost in the guest beyond the calibrated cost taken
	// out (short's calls showed +65 to +280 µs), which is 0.75% at
	// bimodal's 40 ms and 0.15% at narrow's 200 ms.
	exactGuestTolerance = 0.01
	exactGuestInContext = 300_000 // ns
)

func TestExactKernel(t *testing.T) {
	setup(t)
	bin := target("exact")
	sym := func(d string) string { return "dist_" + d }
	args := []string{"--aggregate", "kernel", bin}
	for _, d := range ulattest.ExactDists {
		args = append(args, sym(d))
	}
	tr := ulattest.StartTrace(t, ulat(), args...)
	exact := ulattest.RunExact(t, bin, fmt.Sprint(exactGuestCalls), fmt.Sprint(exactScale))
	r := tr.Stop()
	ulattest.WantNoLoss(t, r)
	tab := ulattest.CheckExact(t, r, ulattest.ExactCheck{
		Calls: exactGuestCalls,
		Sym:   sym,
		Tolerance: func(d string, _ report.JSONFunction) float64 {
			return exactGuestTolerance + exactGuestInContext/float64(exact[d].P50)
		},
		// With 100 calls, p99 is the second-longest call: one call
		// whose probe path the emulator delayed (1.4 ms was seen) moves
		// it, so it is shown, not checked, as short is.
		Unchecked: func(d string, pct int) bool { return d == "short" || pct == 99 },
	}, exact)
	t.Logf("%d calls each, durations x%d, --aggregate kernel, probe overhead subtracted: %v\n%s",
		exactGuestCalls, exactScale, r.ProbeOverheadNs, tab)
}

// The agent on this kernel: the exec watcher reports a process started
// after it, a command-line selector has it followed before its first
// call (the target waits until the agent says it traces it), and its
// calls are counted by cgroup, exactly.
func TestAgent(t *testing.T) {
	setup(t)
	addr := "127.0.0.1:9435"
	config := filepath.Join(t.TempDir(), "agent.yaml")
	y := fmt.Sprintf("listen: %s\ntargets:\n  - name: c\n    exe: %s\n    functions: [work, fast]\n    cmdline: \"* 2 10 1000\"\n", addr, target("ctarget"))
	if err := os.WriteFile(config, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(ulat(), "agent", "--config", config)
	var log ulattest.SyncBuffer
	agent.Stderr = &log
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	metric := func(name, fn string) float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, name+"{") && strings.Contains(line, fn) {
				var v float64
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
				return v
			}
		}
		return -1
	}
	waitFor := func(what string, name, fn string, want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for metric(name, fn) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s%s is %v, want %v\n%s", what, name, fn, metric(name, fn), want, log.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("the agent's start", "ulat_traced_processes", "", 0)
	other := startWaiting(t, target("ctarget"), "1", "3", "1000") // not selected
	w := startWaiting(t, target("ctarget"), "2", "10", "1000")
	waitFor("the selected process", "ulat_traced_processes", "", 1)
	other.release(t)
	w.release(t)
	w.cmd.Wait()
	other.cmd.Wait()
	waitFor("its calls", "ulat_function_duration_seconds_count", `function="work"`, 20)
	waitFor("its calls", "ulat_function_duration_seconds_count", `function="fast"`, 200)
	if got := metric("ulat_dropped_events_total", ""); got != 0 {
		t.Errorf("dropped events: %v", got)
	}
}
