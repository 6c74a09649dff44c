package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLab follows the Vagrant lab (vagrant/) in a throwaway Debian 12 root
// that stands in for the lab's VM (newLabMachine): it runs the lab's
// provisioning there for real, from nothing, then every command of the
// guide, vagrant/LAB.md, and checks what each prints against the output
// the guide shows, so that the guide cannot rot. Nothing of this machine's
// changes: the packages and files the provisioning installs go into the
// throwaway root. ULAT_ATTACH=perf puts ulat on the path it takes in the
// VM, whose kernel (6.1) has no uprobe_multi; the kernel matrix
// (make test-kernels) runs ulat on a real 6.1.
//
// How the guide is read (the same rules are at the top of LAB.md):
//
//   - Each "## " section is a terminal session of its own: one bash, started
//     in the checkout (the VM's ~/ulat), whose processes are all stopped
//     when the section ends. Commands run as root; a leading "sudo " is
//     dropped, and ~/ulat and /home/vagrant/ulat name the checkout.
//   - Only ```console blocks run. A line starting with "$ " is a command (a
//     trailing "\" continues it on the next line, which may start with
//     "> "); the lines after it, up to the next command, are the output it
//     should print. A command ending in "&" runs in the background.
//   - A command must exit with status 0, unless the next command is
//     "echo $?", whose output then says which status is expected.
//   - Expected output is matched line by line, in order, against what the
//     session prints from the command's start on (stdout and stderr, and
//     background jobs' output too; other lines may come in between). A
//     line "..." stands for lines left out, blank lines are ignored, and
//     so are bash's job notices ("[1] 1234", "[1]+  Done ...").
//   - Within a line, spacing is free, "@" bars and "-" rules may have any
//     length, and numbers are placeholders: a number with a unit (52.2µs,
//     8.01s, 64K) or a fraction matches any number with any unit, with or
//     without ulat's marks before it ("~" rough, "≤" a bound); a plain
//     integer matches any integer, except that 0 must be 0 and any other
//     must not be 0 (counts that should be non-zero, "(0 failed)").
//     Everything else is literal: function names, messages, headers.
//   - A line "<!-- check: EXPR OP EXPR [OP EXPR...] -->" after a block
//     compares values from the last ulat table that the block printed. EXPR is FUNCTION.COLUMN (a column of ulat's table: COUNT,
//     MEAN, MIN, P50, P90, P99, MAX), optionally "N * " before it, or a
//     number with an optional unit (10ms); OP is <, <=, > or >=. Example:
//     <!-- check: main.(*Server).handleReport.P50 > 10 * main.(*Server).handleLookup.P50 -->
//   - Write files under /tmp, not in the checkout.
func TestLab(t *testing.T) {
	requireRoot(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	guide, err := parseLabGuide(filepath.Join(root, "vagrant", "LAB.md"))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, s := range guide {
		ran += len(s.cmds)
	}
	if len(guide) < 3 || ran < 10 {
		t.Fatalf("vagrant/LAB.md has %d sections with %d commands in console blocks; the guide's exercises seem to be missing", len(guide), ran)
	}

	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("SKIPPED: debootstrap is not installed (make deps --test installs it)")
	}
	m := newLabMachine(t, root)
	if !t.Run("provision", func(t *testing.T) { testLabProvision(t, m) }) {
		t.Fatal("provisioning failed: the guide's commands would not run in the VM either")
	}
	for _, s := range guide {
		s := s
		t.Run(s.title, func(t *testing.T) {
			if err := runLabSection(t, m.host(t), s, "ULAT_ATTACH=perf"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// labMachine is a throwaway Debian 12 root made by debootstrap, with a
// user vagrant and a copy of the checkout in /home/vagrant/ulat, as in the
// lab's VM. Commands run in it through chroot, in a mount namespace of
// their own that adds /proc, /sys and /dev, and this machine's Go in
// /usr/local/go (the VM downloads it; TestLabGoToolchain tests that part).
// The root is cached as a tarball in ~/.cache/ulat (ULAT_CACHE), so that
// only the first run on a machine debootstraps.
type labMachine struct {
	root string
}

// labCheckout is where the lab's VM has the checkout.
const labCheckout = "/home/vagrant/ulat"

func newLabMachine(t *testing.T, checkout string) *labMachine {
	t.Helper()
	m := &labMachine{root: filepath.Join(t.TempDir(), "root")}
	if err := os.Mkdir(m.root, 0o755); err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("ULAT_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "ulat")
	}
	tarball := filepath.Join(cache, "lab-root-bookworm-"+runtime.GOARCH+".tar")
	sh := func(script string, args ...string) {
		t.Helper()
		out, err := exec.Command("bash", append([]string{"-ec", script, "bash"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	start := time.Now()
	if _, err := os.Stat(tarball); err == nil {
		sh(`tar -xf "$1" -C "$2"`, tarball, m.root)
	} else {
		sh(`debootstrap --variant=minbase bookworm "$1" http://deb.debian.org/debian >"$1.log" 2>&1 || { tail -n 30 "$1.log"; exit 1; }
			mkdir -p "$2" && tar -cf "$3.tmp" -C "$1" . && mv "$3.tmp" "$3"`, m.root, cache, tarball)
	}
	// The network as this machine has it (with the certificate authorities
	// it trusts besides Debian's, which a proxy in the way may need); a user
	// vagrant who owns a copy of the checkout's files (what git tracks, and
	// new files it does not ignore), as the Vagrantfile's rsync leaves them.
	sh(`cp /etc/resolv.conf /etc/hosts "$1/etc/"
		if [ -d /usr/local/share/ca-certificates ]; then
			mkdir -p "$1/usr/local/share/ca-certificates"
			cp -a /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/"
		fi
		chroot "$1" useradd -m -s /bin/bash vagrant
		mkdir -p "$1$3"
		git -C "$2" ls-files -z --cached --others --exclude-standard | (cd "$2" && xargs -0 cp -a --parents -t "$1$3" 2>/dev/null || true)
		chroot "$1" chown -R vagrant:vagrant /home/vagrant`, m.root, checkout, labCheckout)
	t.Logf("a Debian 12 root in %s, ready in %s", m.root, time.Since(start).Round(time.Second))
	return m
}

// command runs argv in the root, as root, with the environment a login
// shell there has.
func (m *labMachine) command(argv ...string) *exec.Cmd {
	const enter = `r=$0
		mount -t proc proc "$r/proc"
		mount --rbind /sys "$r/sys"
		mount --rbind /dev "$r/dev"
		mkdir -p "$r/usr/local/go"
		mount --bind /usr/local/go "$r/usr/local/go"
		mount -o remount,bind,ro "$r/usr/local/go"
		exec chroot "$r" "$@"`
	c := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-ec", enter, m.root}, argv...)...)
	c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"}
	return c
}

// host is where a lab session's shell runs: bash in the root, in the
// checkout, with a scratch directory it shares with the test.
func (m *labMachine) host(t *testing.T) labHost {
	scratch, err := os.MkdirTemp(filepath.Join(m.root, "tmp"), "lab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	return labHost{
		shell: func(env []string) *exec.Cmd {
			c := m.command("bash", "-c", `cd "$0" && exec bash --noprofile --norc`, labCheckout)
			c.Env = append(c.Env, env...)
			return c
		},
		checkout:    labCheckout,
		scratch:     strings.TrimPrefix(scratch, m.root),
		hostScratch: scratch,
	}
}

// labHost is where runLabSection runs a section: a machine's bash, the
// checkout as that bash sees it, and a scratch directory that both the
// test (hostScratch) and the bash (scratch) can reach.
type labHost struct {
	shell                func(env []string) *exec.Cmd
	checkout             string
	scratch, hostScratch string
}

// thisMachine runs sections on this machine, in dir (TestLabHarness).
func thisMachine(t *testing.T, dir string) labHost {
	scratch := t.TempDir()
	return labHost{
		shell: func(env []string) *exec.Cmd {
			c := exec.Command("bash", "--noprofile", "--norc")
			c.Dir = dir
			c.Env = append(os.Environ(), env...)
			return c
		},
		checkout: dir, scratch: scratch, hostScratch: scratch,
	}
}

// The provisioning runs for real, twice: the second run must find
// everything in place, change nothing and be quick.
func testLabProvision(t *testing.T, m *labMachine) {
	run := func() (string, time.Duration) {
		start := time.Now()
		out, err := m.command("bash", labCheckout+"/vagrant/provision.sh").CombinedOutput()
		if err != nil {
			t.Fatalf("vagrant/provision.sh: %v\n%s", err, out)
		}
		return string(out), time.Since(start)
	}
	first, took := run()
	t.Logf("first run (%s):\n%s", took.Round(time.Millisecond), first)
	second, took := run()
	t.Logf("second run (%s):\n%s", took.Round(time.Millisecond), second)
	for _, want := range []string{"deps: all packages present", "go: go", "Nothing to be done for 'build'", "'bin/ulat-demo' is up to date", "provision: done"} {
		if !strings.Contains(second, want) {
			t.Errorf("second run does not say %q: it should find everything in place", want)
		}
	}
	for _, bad := range []string{"installing", "downloading", "wrote", "go build"} {
		if strings.Contains(second, bad) {
			t.Errorf("second run says %q: provisioning is not idempotent", bad)
		}
	}
	if took > 30*time.Second {
		t.Errorf("second run took %s, want it quick when everything is in place", took)
	}
	for _, bin := range []string{"bin/ulat", "bin/ulat-demo"} {
		if _, err := os.Stat(filepath.Join(m.root, labCheckout, bin)); err != nil {
			t.Errorf("provisioning did not build %s: %v", bin, err)
		}
	}
}

// TestLabGoToolchain checks the lab's Go installer on a stand-in archive
// served from a file: URL: a checksum mismatch installs nothing, a match
// installs, and a second run or the right version already there does
// nothing. It also checks that vagrant/go.sha256 pins the Go that go.mod
// asks for, which is what the VM downloads.
func TestLabGoToolchain(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	version := string(m[1])
	pins, err := os.ReadFile(filepath.Join(root, "vagrant", "go.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^[0-9a-f]{64}  go` + regexp.QuoteMeta(version) + `\.linux-amd64\.tar\.gz$`).Match(pins) {
		t.Errorf("vagrant/go.sha256 pins no sha256 for go%s.linux-amd64.tar.gz, the Go that go.mod asks for: the lab VM could not install it", version)
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the stand-in archive is named for amd64")
	}

	dir := t.TempDir()
	script := filepath.Join(dir, "vagrant", "install-go.sh")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(root, "vagrant", "install-go.sh"), script)
	copyFile(t, filepath.Join(root, "vagrant", "go.sha256"), filepath.Join(dir, "vagrant", "go.sha256"))
	const v = "1.99.1"
	archive := filepath.Join(dir, "dl", "go"+v+".linux-amd64.tar.gz")
	src := filepath.Join(dir, "src", "go")
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "VERSION"), []byte("go"+v+"\ntime 2026-01-01T00:00:00Z\n"), 0o644)
	os.WriteFile(filepath.Join(src, "bin", "go"), []byte("#!/bin/sh\n"), 0o755)
	os.MkdirAll(filepath.Dir(archive), 0o755)
	if out, err := exec.Command("tar", "-C", filepath.Dir(src), "-czf", archive, "go").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	goroot := filepath.Join(dir, "usr", "local", "go")
	install := func(wantOK bool, want string) {
		t.Helper()
		c := exec.Command("bash", script, v, goroot)
		c.Env = append(os.Environ(), "ULAT_GO_DL=file://"+filepath.Dir(archive))
		out, err := c.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("install-go.sh %s: %v, want success %v\n%s", v, err, wantOK, out)
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("install-go.sh said %q, want %q", out, want)
		}
	}

	// Not pinned at all, then pinned with another checksum.
	install(false, "no checksum for go"+v+".linux-amd64.tar.gz")
	pinned := filepath.Join(dir, "vagrant", "go.sha256")
	os.WriteFile(pinned, []byte(strings.Repeat("0", 64)+"  go"+v+".linux-amd64.tar.gz\n"), 0o644)
	install(false, "does not match its pinned sha256")
	if _, err := os.Stat(goroot); !os.IsNotExist(err) {
		t.Fatalf("a mismatching archive left %s behind: %v", goroot, err)
	}
	sum, err := exec.Command("sha256sum", archive).Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pinned, []byte(strings.Fields(string(sum))[0]+"  go"+v+".linux-amd64.tar.gz\n"), 0o644)
	// An older Go is replaced; the right one is left alone.
	os.MkdirAll(goroot, 0o755)
	os.WriteFile(filepath.Join(goroot, "VERSION"), []byte("go1.19\n"), 0o644)
	install(true, "installed go"+v)
	if b, _ := os.ReadFile(filepath.Join(goroot, "VERSION")); !strings.HasPrefix(string(b), "go"+v+"\n") {
		t.Errorf("%s/VERSION is %q after installing", goroot, b)
	}
	os.Remove(archive)
	install(true, "go"+v+" is in "+goroot)
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(goroot), ".go-new.*"))
	if len(leftovers) > 0 {
		t.Errorf("install-go.sh left %v behind", leftovers)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// The guide, parsed.

type labSection struct {
	title string
	cmds  []*labCmd
}

type labCmd struct {
	line       int // in LAB.md
	text       string
	background bool
	expect     []string
	block      int            // index in its section of its block's first command
	checks     []labCheckLine // after its block, which it ends
}

type labCheckLine struct {
	line int
	expr string
}

func parseLabGuide(path string) ([]*labSection, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var (
		sections []*labSection
		cur      *labSection
		fence    string // "" outside a fenced block, else its info string
		last     *labCmd
		block    int  // index of the current block's first command
		cont     bool // the last command ends in a backslash
	)
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if fence == "" {
				fence = strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
				if fence == "" {
					fence = "text"
				}
				if cur != nil {
					block = len(cur.cmds)
				}
			} else {
				if cont {
					return nil, fmt.Errorf("LAB.md:%d: a command ends in \\ at the end of its block", n)
				}
				fence = ""
			}
			continue
		}
		if fence == "" {
			if t, ok := strings.CutPrefix(line, "## "); ok {
				cur = &labSection{title: strings.TrimSpace(t)}
				sections = append(sections, cur)
				last = nil
				continue
			}
			if c, ok := strings.CutPrefix(trimmed, "<!-- check:"); ok {
				c, ok = strings.CutSuffix(c, "-->")
				if !ok {
					return nil, fmt.Errorf("LAB.md:%d: a check must be on one line, ending in -->", n)
				}
				if last == nil {
					return nil, fmt.Errorf("LAB.md:%d: a check must follow a console block", n)
				}
				if _, err := parseLabCheck(strings.TrimSpace(c)); err != nil {
					return nil, fmt.Errorf("LAB.md:%d: %v", n, err)
				}
				last.checks = append(last.checks, labCheckLine{n, strings.TrimSpace(c)})
			}
			continue
		}
		if fence != "console" {
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("LAB.md:%d: a console block before the first ## section", n)
		}
		if cont {
			line = strings.TrimPrefix(line, "> ")
			last.text += "\n" + line
			cont = strings.HasSuffix(line, "\\")
			continue
		}
		if c, ok := strings.CutPrefix(line, "$ "); ok {
			last = &labCmd{line: n, text: c, block: block}
			cur.cmds = append(cur.cmds, last)
			cont = strings.HasSuffix(c, "\\")
			continue
		}
		if last == nil {
			return nil, fmt.Errorf("LAB.md:%d: output %q before any command in its block", n, line)
		}
		last.expect = append(last.expect, line)
	}
	if fence != "" {
		return nil, fmt.Errorf("LAB.md: a ``` block is not closed")
	}
	var out []*labSection
	for _, s := range sections {
		for _, c := range s.cmds {
			body := strings.TrimSpace(c.text)
			c.background = strings.HasSuffix(body, "&") && !strings.HasSuffix(body, "&&")
		}
		if len(s.cmds) > 0 {
			out = append(out, s)
		}
	}
	return out, nil
}

// Running a section.

const labMarker = "@@ulat-lab-done@@"

// How long expected output may take to appear after a command ended (a
// server's last words after `kill`), or after the section's last command
// for a background command.
var labGrace, labBackgroundGrace = 15 * time.Second, 60 * time.Second

type labSession struct {
	stdin    *os.File
	dir      string // where command files are written
	shellDir string // the same directory as the shell sees it

	mu    sync.Mutex
	lines []string
	done  map[int]int // output index of each command's end marker -> exit status
	ended bool
	wake  chan struct{}
}

// runLabSection runs a section's commands in one shell, in root, and
// returns what went wrong: the first failing command ends the section, as
// it would a reader's; every failing check is reported.
func runLabSection(t *testing.T, h labHost, sec *labSection, env ...string) error {
	root := h.checkout
	sh := h.shell(env)
	for i, e := range sh.Env {
		if p, ok := strings.CutPrefix(e, "PATH="); ok {
			sh.Env[i] = "PATH=/usr/local/go/bin:" + p
		}
	}
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	sh.Stdin, sh.Stdout, sh.Stderr = inR, outW, outW
	err = sh.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		return err
	}
	s := &labSession{stdin: inW, dir: h.hostScratch, shellDir: h.scratch, done: map[int]int{}, wake: make(chan struct{}, 1)}
	go s.read(outR)
	defer func() {
		// Stop everything the section started, as closing its terminal would.
		// ulat, when tracing, reports and detaches on SIGTERM: give it time.
		inW.Close()
		pgid := sh.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		go sh.Wait()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if syscall.Kill(-pgid, 0) == syscall.ESRCH {
				break
			}
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
	}()

	type pending struct {
		c     *labCmd
		start int
	}
	var background []pending
	var errs []error
	starts := make([]int, len(sec.cmds))
	for i, c := range sec.cmds {
		text := labCommand(c.text, root)
		t.Logf("LAB.md:%d: $ %s", c.line, text)
		start, status, err := s.run(i, text)
		if err != nil {
			return fmt.Errorf("LAB.md:%d: %v\noutput:\n%s", c.line, err, s.since(start))
		}
		starts[i] = start
		if c.background {
			background = append(background, pending{c, start})
		} else {
			checkStatus := !(i+1 < len(sec.cmds) && strings.TrimSpace(sec.cmds[i+1].text) == "echo $?")
			if checkStatus && status != 0 {
				return fmt.Errorf("LAB.md:%d: `%s` exited with status %d\noutput:\n%s", c.line, c.text, status, s.since(start))
			}
			if err := s.expect(c, start, root, labGrace); err != nil {
				return fmt.Errorf("LAB.md:%d: `%s`: %v\noutput:\n%s", c.line, c.text, err, s.since(start))
			}
		}
		// Checks read the last table that the block printed.
		for _, check := range c.checks {
			if err := labEvalCheck(check.expr, s.since(starts[c.block])); err != nil {
				errs = append(errs, fmt.Errorf("LAB.md:%d: check %s: %v\nthe block's output:\n%s", check.line, check.expr, err, s.since(starts[c.block])))
			}
		}
	}
	for _, p := range background {
		if err := s.expect(p.c, p.start, root, labBackgroundGrace); err != nil {
			errs = append(errs, fmt.Errorf("LAB.md:%d: `%s` (in the background): %v\noutput since:\n%s", p.c.line, p.c.text, err, s.since(p.start)))
		}
	}
	return errors.Join(errs...)
}

// labCommand is a guide's command as it runs here: without sudo, and with
// the VM's checkout path naming this one.
func labCommand(text, root string) string {
	text = strings.TrimSpace(text)
	if rest, ok := strings.CutPrefix(text, "sudo "); ok {
		text = rest
	}
	return labPaths(text, root)
}

func labPaths(s, root string) string {
	s = strings.ReplaceAll(s, "/home/vagrant/ulat", root)
	return strings.ReplaceAll(s, "~/ulat", root)
}

func (s *labSession) read(r *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		if i := strings.Index(line, labMarker+" "); i >= 0 {
			if i > 0 {
				s.lines = append(s.lines, line[:i])
			}
			status, _ := strconv.Atoi(strings.TrimSpace(line[i+len(labMarker)+1:]))
			s.done[len(s.lines)] = status
		} else {
			s.lines = append(s.lines, line)
		}
		s.mu.Unlock()
		s.poke()
	}
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.poke()
}

func (s *labSession) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run runs one command in the session and waits until the shell is ready
// for the next (at once for a background command). It returns where the
// command's output starts and its exit status.
func (s *labSession) run(i int, text string) (int, int, error) {
	s.mu.Lock()
	start := len(s.lines)
	s.mu.Unlock()
	file := filepath.Join(s.dir, fmt.Sprintf("cmd%d.sh", i))
	if err := os.WriteFile(file, []byte(text+"\n"), 0o644); err != nil {
		return start, 0, err
	}
	// Commands read no terminal: stdin is /dev/null, as a background job's
	// is. $? is the previous command's status, for `echo $?`.
	fmt.Fprintf(s.stdin, "__lab_status() { return ${__lab_rc:-0}; }; __lab_cmd=$(cat %s); __lab_status; eval \"$__lab_cmd\" </dev/null; __lab_rc=$?; printf '\\n%s %%d\\n' \"$__lab_rc\"\n", filepath.Join(s.shellDir, filepath.Base(file)), labMarker)
	deadline := time.After(5 * time.Minute)
	for {
		s.mu.Lock()
		for at, status := range s.done {
			delete(s.done, at)
			s.mu.Unlock()
			return start, status, nil
		}
		ended := s.ended
		s.mu.Unlock()
		if ended {
			return start, 0, fmt.Errorf("the shell ended while running `%s`", text)
		}
		select {
		case <-s.wake:
		case <-deadline:
			return start, 0, fmt.Errorf("`%s` did not end within 5 minutes", text)
		}
	}
}

func (s *labSession) since(start int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines[start:], "\n")
}

// expect waits up to grace for the command's expected lines to appear, in
// order, in the session's output from start on.
func (s *labSession) expect(c *labCmd, start int, root string, grace time.Duration) error {
	var want []*regexp.Regexp
	var wantText []string
	for _, e := range c.expect {
		if labIgnored(e) {
			continue
		}
		e = labPaths(e, root)
		want = append(want, labLinePattern(e))
		wantText = append(wantText, e)
	}
	deadline := time.After(grace)
	for {
		s.mu.Lock()
		got := append([]string(nil), s.lines[start:]...)
		ended := s.ended
		s.mu.Unlock()
		k := 0
		for _, line := range got {
			if k < len(want) && want[k].MatchString(strings.TrimRight(line, " \t")) {
				k++
			}
		}
		if k == len(want) {
			return nil
		}
		if ended {
			return fmt.Errorf("no line like %q in its output", wantText[k])
		}
		select {
		case <-s.wake:
		case <-deadline:
			return fmt.Errorf("no line like %q in its output (waited %s)", wantText[k], grace)
		}
	}
}

var labJobNotice = regexp.MustCompile(`^\[\d+\]([+-]?\s+(Done|Exit \d+|Terminated|Killed|Interrupt|Running|Stopped)\b.*|\s+\d+)$`)

func labIgnored(line string) bool {
	l := strings.TrimSpace(line)
	return l == "" || l == "..." || labJobNotice.MatchString(l)
}

var (
	labToken = regexp.MustCompile(`\|[@ ]*\||[~≤]?\d+(?:\.\d+)?(?:ns|µs|us|ms|s|K|M|G|%)?|\s+|-{2,}|.`)
	labUnits = `(?:ns|µs|us|ms|s|K|M|G|%)`
)

// labLinePattern turns a line of expected output into a pattern; see
// TestLab for the rules.
func labLinePattern(line string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^\s*`)
	for _, tok := range labToken.FindAllString(strings.TrimSpace(line), -1) {
		switch {
		case tok[0] >= '0' && tok[0] <= '9' || strings.HasPrefix(tok, "~") || strings.HasPrefix(tok, "≤"):
			marked := strings.TrimLeft(tok, "~≤")
			num := strings.TrimRight(marked, "nsµumKMG%")
			switch {
			case num != marked || strings.Contains(num, ".") || marked != tok:
				b.WriteString(`[~≤]?\d+(?:\.\d+)?` + labUnits + `?`)
			case strings.Trim(num, "0") == "":
				b.WriteString(`0+`)
			default:
				b.WriteString(`0*[1-9]\d*`)
			}
		case strings.TrimSpace(tok) == "":
			b.WriteString(`\s*`)
		case tok[0] == '|' && len(tok) > 1: // a histogram's bar
			b.WriteString(`\|[@ ]*\|`)
		case strings.HasPrefix(tok, "--"):
			b.WriteString(`-+`)
		default:
			b.WriteString(regexp.QuoteMeta(tok))
		}
	}
	b.WriteString(`\s*$`)
	return regexp.MustCompile(b.String())
}

// Checks on ulat's table.

type labTerm struct {
	factor float64
	fn     string // "" for a constant
	column string
}

type labCheck struct {
	terms []labTerm
	ops   []string
}

func parseLabCheck(expr string) (*labCheck, error) {
	toks := strings.Fields(expr)
	c := &labCheck{}
	term := func() error {
		if len(toks) == 0 {
			return fmt.Errorf("check %q: a value is missing", expr)
		}
		t := labTerm{factor: 1}
		if len(toks) >= 3 && toks[1] == "*" {
			f, err := strconv.ParseFloat(toks[0], 64)
			if err != nil {
				return fmt.Errorf("check %q: %q is not a number", expr, toks[0])
			}
			t.factor = f
			toks = toks[2:]
		}
		if v, err := labValue(toks[0]); err == nil {
			t.factor *= v
		} else {
			i := strings.LastIndex(toks[0], ".")
			if i <= 0 {
				return fmt.Errorf("check %q: %q is neither FUNCTION.COLUMN nor a number", expr, toks[0])
			}
			t.fn, t.column = toks[0][:i], toks[0][i+1:]
			switch t.column {
			case "COUNT", "MEAN", "MIN", "P50", "P90", "P99", "MAX":
			default:
				return fmt.Errorf("check %q: no column %q in ulat's table", expr, t.column)
			}
		}
		toks = toks[1:]
		c.terms = append(c.terms, t)
		return nil
	}
	if err := term(); err != nil {
		return nil, err
	}
	for len(toks) > 0 {
		switch toks[0] {
		case "<", "<=", ">", ">=":
			c.ops = append(c.ops, toks[0])
		default:
			return nil, fmt.Errorf("check %q: %q is not <, <=, > or >=", expr, toks[0])
		}
		toks = toks[1:]
		if err := term(); err != nil {
			return nil, err
		}
	}
	if len(c.ops) == 0 {
		return nil, fmt.Errorf("check %q compares nothing", expr)
	}
	return c, nil
}

// labValue reads a number as ulat prints it: 4961, 52.2µs, 20.6ms, 1.2s,
// ~3.1µs, ≤40ns (durations in ns; a mark is dropped).
func labValue(s string) (float64, error) {
	m := regexp.MustCompile(`^[~≤]?(\d+(?:\.\d+)?)(ns|µs|us|ms|s)?$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	switch m[2] {
	case "µs", "us":
		v *= 1e3
	case "ms":
		v *= 1e6
	case "s":
		v *= 1e9
	}
	return v, nil
}

// labTable reads the last table ulat printed in out: function -> column ->
// value.
func labTable(out string) (map[string]map[string]string, error) {
	var header []string
	var table map[string]map[string]string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		if cells[0] == "FUNCTION" {
			header, table = cells, map[string]map[string]string{}
			continue
		}
		if header == nil || len(cells) != len(header) {
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		table[cells[0]] = row
	}
	if table == nil {
		return nil, fmt.Errorf("the command printed no table")
	}
	return table, nil
}

func labEvalCheck(expr, out string) error {
	c, err := parseLabCheck(expr)
	if err != nil {
		return err
	}
	table, err := labTable(out)
	if err != nil {
		return err
	}
	vals := make([]float64, len(c.terms))
	shown := make([]string, len(c.terms))
	for i, t := range c.terms {
		if t.fn == "" {
			vals[i], shown[i] = t.factor, strconv.FormatFloat(t.factor, 'g', -1, 64)
			continue
		}
		row, ok := table[t.fn]
		if !ok {
			return fmt.Errorf("no row for %s in the table", t.fn)
		}
		v, err := labValue(row[t.column])
		if err != nil {
			return fmt.Errorf("%s.%s: %v", t.fn, t.column, err)
		}
		vals[i], shown[i] = t.factor*v, row[t.column]
		if t.factor != 1 {
			shown[i] = strconv.FormatFloat(t.factor, 'g', -1, 64) + " * " + shown[i]
		}
	}
	for i, op := range c.ops {
		a, b := vals[i], vals[i+1]
		ok := map[string]bool{"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
		if !ok {
			return fmt.Errorf("%s %s %s is false", shown[i], op, shown[i+1])
		}
	}
	return nil
}

// TestLabHarness runs the guide's rules on a made-up guide: what must pass
// passes and each kind of mistake is caught. No root needed.
func TestLabHarness(t *testing.T) {
	defer func(fg, bg time.Duration) { labGrace, labBackgroundGrace = fg, bg }(labGrace, labBackgroundGrace)
	labGrace, labBackgroundGrace = 1500*time.Millisecond, 1500*time.Millisecond
	table := `$ printf '+---+\n| FUNCTION | COUNT | P50 |\n+---+\n| f | 3 | 2.0ms |\n| g | 10 | 30µs |\n'`
	guide := "# Made up\n\nNot run:\n\n```sh\n$ false\n```\n\n" +
		"## pass\n\n```console\n" +
		"$ echo hello 42; echo 'took 5.2ms, 0 failed'\nhello 7\ntook 80µs, 0 failed\n" +
		"$ echo 'p50 ~3.1µs min ≤40ns'\np50 2.0µs min 1.5µs\n" +
		"$ sudo echo one \\\n> two\none two\n" +
		"$ false\n$ echo $?\n1\n" +
		"$ (sleep 0.5; echo later 0 failed) &\n[1] 4242\n" +
		"$ echo now\nnow\n...\nlater 0 failed\n" +
		"$ cd ~/ulat && pwd\n/home/vagrant/ulat\n" +
		"$ echo '[32K, 64K)   3505 |@@@@@@@@    |'\n[1K, 2K)  7 |@@@@@@@@@@@@@@@@@@@@|\n" +
		"```\n\n" +
		"```console\n" + table + "\n+-----+\n| FUNCTION | COUNT | P50 |\n...\n```\n" +
		"<!-- check: f.P50 > 10 * g.P50 -->\n<!-- check: 1ms < f.P50 < 3ms -->\n<!-- check: g.COUNT >= 10 -->\n\n" +
		"## wrong text\n\n```console\n$ echo hello\ngoodbye\n```\n\n" +
		"## zero is not zero\n\n```console\n$ echo '3 failed'\n0 failed\n```\n\n" +
		"## count is zero\n\n```console\n$ echo 'count 0'\ncount 5\n```\n\n" +
		"## order\n\n```console\n$ echo b; echo a\na\nb\n```\n\n" +
		"## status\n\n```console\n$ false\n$ echo done\n```\n\n" +
		"## background\n\n```console\n$ true &\nnever\n$ echo x\n```\n\n" +
		"## check\n\n```console\n" + table + "\n```\n<!-- check: g.P50 > f.P50 -->\n\n" +
		"## no table\n\n```console\n$ echo none\n```\n<!-- check: g.P50 > f.P50 -->\n\n" +
		"## Exercise 4: placeholder\n\nTODO.\n"
	path := filepath.Join(t.TempDir(), "LAB.md")
	if err := os.WriteFile(path, []byte(guide), 0o644); err != nil {
		t.Fatal(err)
	}
	sections, err := parseLabGuide(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"pass":             "",
		"wrong text":       `no line like "goodbye"`,
		"zero is not zero": `no line like "0 failed"`,
		"count is zero":    `no line like "count 5"`,
		"order":            `no line like "b"`,
		"status":           "`false` exited with status 1",
		"background":       "`true &` (in the background): no line like \"never\"",
		"check":            "check g.P50 > f.P50: 30µs > 2.0ms is false",
		"no table":         "the command printed no table",
	}
	if len(sections) != len(want) {
		t.Fatalf("%d sections with commands, want %d (a section without any is skipped)", len(sections), len(want))
	}
	root := t.TempDir()
	for _, sec := range sections {
		err := runLabSection(t, thisMachine(t, root), sec)
		w, ok := want[sec.title]
		switch {
		case !ok:
			t.Errorf("unexpected section %q", sec.title)
		case w == "" && err != nil:
			t.Errorf("section %q: %v", sec.title, err)
		case w != "" && (err == nil || !strings.Contains(err.Error(), w)):
			t.Errorf("section %q: error %v, want one saying %q", sec.title, err, w)
		}
	}

	for _, bad := range []struct{ guide, want string }{
		{"## a\n<!-- check: f.P50 > 1 -->\n", "a check must follow a console block"},
		{"## a\n```console\nhello\n```\n", "output \"hello\" before any command"},
		{"## a\n```console\n$ echo \\\n```\n", "ends in \\ at the end of its block"},
		{"## a\n```console\n$ echo\n```\n<!-- check: f.P51 > 1 -->\n", `no column "P51"`},
		{"## a\n```console\n$ echo\n```\n<!-- check: f.P50 -->\n", "compares nothing"},
		{"## a\n```console\n$ echo\n```\n<!-- check: f.P50 = 1 -->\n", `"=" is not <, <=, > or >=`},
		{"```console\n$ echo\n```\n", "before the first ## section"},
		{"## a\n```console\n$ echo\n", "not closed"},
	} {
		path := filepath.Join(t.TempDir(), "LAB.md")
		os.WriteFile(path, []byte(bad.guide), 0o644)
		if _, err := parseLabGuide(path); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("guide %q: error %v, want one saying %q", bad.guide, err, bad.want)
		}
	}
}
