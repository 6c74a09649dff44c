// Package kernels runs ulat's end-to-end suite (./guest) on every kernel
// ulat supports: Debian's own kernel packages booted in QEMU, and the
// host's kernel. `make test-kernels` runs it, and `make test` runs that.
//
// A guest is an initramfs holding the static bin/ulat, static targets and
// the suite built as a static test binary, which is the guest's init: it
// mounts what ulat needs, runs the checks, writes go test's verbose output
// to the second serial port and powers off. Booting takes seconds; the
// emulated CPU (TCG: /dev/kvm may exist, but its vCPUs hang on these
// machines) makes the checks many times slower than on the host.
package kernels

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"

	"github.com/ulat-dev/ulat/kernels/guest"
)

// Matrix is the kernels ulat supports, by Debian's series: the oldest
// supported one first. ULAT_KERNELS (space-separated series, or "none")
// chooses a subset; the host's own kernel always runs.
var Matrix = []string{"5.10", "6.1", "6.12"}

var root string

func TestMain(m *testing.M) {
	r, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	root = r
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root to load BPF programs (run `sudo make test-kernels`)")
	}
}

// bundle builds what a guest runs into dir: ulat, the targets (static: a
// guest has no libraries) and the suite.
func bundle(t *testing.T, dir string) {
	t.Helper()
	ulat := filepath.Join(root, "bin", "ulat")
	if _, err := os.Stat(ulat); err != nil {
		t.Fatalf("%s is missing: run `make build` (or `make test-kernels`) first", ulat)
	}
	cc := func(name, src string, flags ...string) []string {
		return append(append([]string{"gcc", "-static", "-O2", "-g"}, flags...), "-o", filepath.Join(dir, name), filepath.Join(root, src))
	}
	gobuild := func(name, pkg string) []string {
		return []string{"go", "build", "-o", filepath.Join(dir, name), pkg}
	}
	steps := [][]string{
		{"cp", ulat, filepath.Join(dir, "ulat")},
		cc("ctarget", "e2e/testdata/ctarget/ctarget.c", "-pthread"),
		cc("runtarget", "e2e/testdata/runtarget/runtarget.c"),
		cc("cforker", "e2e/testdata/cforker/cforker.c"),
		cc("cdistro", "e2e/testdata/cdistro/cdistro.c"),
		append(cc("exact", "e2e/testdata/exact/exact.c", "-fno-omit-frame-pointer", "-fno-ipa-icf"), "-lm"),
		gobuild("gotarget", "./e2e/testdata/gotarget"),
		gobuild("gounwind", "./e2e/testdata/gounwind"),
		{"go", "test", "-c", "-o", filepath.Join(dir, "guest.test"), "./kernels/guest"},
	}
	// A module of its own (example.com/m): built from its directory.
	gomodule := exec.Command("go", "build", "-o", filepath.Join(dir, "gomodule-work"), "./cmd/work")
	gomodule.Dir = filepath.Join(root, "e2e/testdata/gomodule")
	gomodule.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := gomodule.CombinedOutput(); err != nil {
		t.Fatalf("build gomodule-work: %v\n%s", err, out)
	}
	for _, s := range steps {
		c := exec.Command(s[0], s[1:]...)
		c.Dir = root
		c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
}

// initramfs writes a newc archive of the bundle with the suite as /init.
func initramfs(t *testing.T, bundleDir, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := cpio.NewWriter(bufio.NewWriter(f))
	dirs := []string{"bin", "dev", "proc", "sys", "tmp", strings.TrimPrefix(guest.BundleDir, "/")}
	for _, d := range dirs {
		if err := w.WriteHeader(&cpio.Header{Name: d, Mode: cpio.TypeDir | 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	add := func(name, src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | 0o755, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		add(strings.TrimPrefix(guest.BundleDir, "/")+"/"+e.Name(), filepath.Join(bundleDir, e.Name()))
	}
	add("init", filepath.Join(bundleDir, "guest.test"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// fetch returns the vmlinuz of a series, downloading it the first time.
func fetch(t *testing.T, series string) string {
	t.Helper()
	var stderr bytes.Buffer
	c := exec.Command("bash", filepath.Join(root, "kernels", "fetch.sh"), series)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("fetch the %s kernel: %v\n%s", series, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// guestLimit bounds one guest's whole run; it only turns a hang into a
// failure.
const guestLimit = 40 * time.Minute

var (
	exitLine   = regexp.MustCompile(`(?m)^` + guest.ExitMarker + ` (\d+)\s*$`)
	doctorLine = regexp.MustCompile(`^\s+(PASS|WARN|FAIL)  `)
)

// boot runs the suite in a QEMU guest on vmlinuz and returns what it
// wrote, and the kernel's console.
func boot(t *testing.T, vmlinuz, initrd, work string) (results, console string) {
	t.Helper()
	resultsPath, consolePath := filepath.Join(work, "results.log"), filepath.Join(work, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), guestLimit)
	defer cancel()
	// -cpu max,-cx16: without it 6.12 kernels double-fault under TCG now
	// and then (an emulator fault in the slab allocator, not ulat's).
	c := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-cpu", "max,-cx16", "-smp", "2", "-m", "1024",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 oops=panic",
		"-nographic", "-no-reboot", "-monitor", "none",
		"-serial", "file:"+consolePath,
		"-chardev", "file,id=results,path="+resultsPath,
		"-device", "isa-serial,chardev=results",
	)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	r, _ := os.ReadFile(resultsPath)
	con, _ := os.ReadFile(consolePath)
	if ctx.Err() != nil {
		t.Errorf("the guest did not finish within %s", guestLimit)
	} else if err != nil {
		t.Errorf("qemu: %v\n%s", err, out.String())
	}
	return string(r), string(con)
}

// TestKernels runs the suite on the host's kernel and on each kernel of
// the matrix, two guests at a time (go test's -parallel).
func TestKernels(t *testing.T) {
	requireRoot(t)
	work := t.TempDir()
	bundleDir := filepath.Join(work, "bundle")
	if err := os.Mkdir(bundleDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bundle(t, bundleDir)

	t.Run("host", func(t *testing.T) {
		c := exec.Command(filepath.Join(bundleDir, "guest.test"), "-test.v", "-test.count=1")
		c.Env = append(os.Environ(), guest.EnvDir+"="+bundleDir)
		out, err := c.CombinedOutput()
		report(t, string(out), err == nil)
		if err != nil {
			t.Errorf("the suite failed on the host's kernel: %v", err)
		}
	})

	series := Matrix
	if s, ok := os.LookupEnv("ULAT_KERNELS"); ok {
		series = strings.Fields(s)
		if s == "none" {
			series = nil
		}
	}
	if len(series) == 0 {
		return
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 is not installed: `make test-kernels` installs it (scripts/deps.sh --test)")
	}
	initrd := filepath.Join(work, "initrd.cpio")
	initramfs(t, bundleDir, initrd)
	for _, s := range series {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			vmlinuz := fetch(t, s)
			dir := t.TempDir()
			start := time.Now()
			results, console := boot(t, vmlinuz, initrd, dir)
			m := exitLine.FindStringSubmatch(results)
			report(t, results, m != nil && m[1] == "0")
			switch {
			case m == nil:
				t.Errorf("the guest on %s ended without the suite's exit status; the end of its console:\n%s", filepath.Base(vmlinuz), tail(console, 40))
			case m[1] != "0":
				t.Errorf("the suite failed on %s (exit status %s)", filepath.Base(vmlinuz), m[1])
			}
			t.Logf("%s: %s in %s", filepath.Base(vmlinuz), firstLine(results, "KERNEL"), time.Since(start).Round(time.Second))
		})
	}
}

// report logs a suite's result lines, and all its output when it failed.
func report(t *testing.T, out string, passed bool) {
	t.Helper()
	if !passed {
		t.Logf("the suite's output:\n%s", out)
		return
	}
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		// Test results, and ulat doctor's verdicts.
		if strings.Contains(line, "--- PASS") || strings.Contains(line, "--- SKIP") || strings.HasPrefix(line, "KERNEL ") ||
			doctorLine.MatchString(line) {
			fmt.Fprintln(&b, line)
		}
	}
	t.Logf("\n%s", b.String())
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s, prefix string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return sc.Text()
		}
	}
	return ""
}
