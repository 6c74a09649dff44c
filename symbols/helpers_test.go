package symbols

// Shared test fixtures: the target binaries (built once per test binary, on
// first use, into one temporary directory) and the independent oracles the
// tests compare the package against (readelf, objdump, go tool objdump).

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// workDir holds every binary the tests build. It is created by TestMain and
// removed when the tests end.
var workDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "ulat-symbols-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	workDir = d
	code := m.Run()
	for _, b := range opened {
		b.Close()
	}
	os.RemoveAll(d)
	os.Exit(code)
}

type built struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*built{}
)

// artifact returns the path of the binary name, building it with build the
// first time any test asks for it. Concurrent callers wait for one build.
func artifact(t *testing.T, name string, build func(out string) error) string {
	t.Helper()
	buildsMu.Lock()
	b := builds[name]
	if b == nil {
		b = &built{}
		builds[name] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(workDir, name)
		b.err = build(b.path)
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

func run(dir, name string, env []string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// tool runs an oracle tool and fails the test if it fails.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run("", name, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// --- C targets ---

func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func buildC(t *testing.T, name, src string, flags ...string) string {
	t.Helper()
	src = testdataPath(t, src)
	return artifact(t, name, func(out string) error {
		args := append(append([]string{}, flags...), "-o", out, src)
		_, err := run(workDir, "gcc", nil, args...)
		return err
	})
}

func cPIE(t *testing.T) string      { return buildC(t, "c-pie", "native.c", "-O2", "-g", "-pie", "-fPIE") }
func cNoPIE(t *testing.T) string    { return buildC(t, "c-nopie", "native.c", "-O2", "-no-pie") }
func cStripped(t *testing.T) string { return buildC(t, "c-stripped", "native.c", "-O2", "-s") }
func cSharedLib(t *testing.T) string {
	return buildC(t, "libtarget.so", "lib.c", "-O2", "-shared", "-fPIC", "-s")
}

// --- Go targets ---

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// goEnv is the environment for building Go targets: GOFLAGS unset, no cgo,
// no toolchain download, no workspace.
func goEnv(goarch string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "CGO_ENABLED", "GOOS", "GOARCH", "GOTOOLCHAIN", "GOWORK", "GO111MODULE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOTOOLCHAIN=local", "GOWORK=off")
}

func buildGo(t *testing.T, name, goarch string, flags ...string) string {
	t.Helper()
	return buildGoFrom(t, "goprog", name, goEnv(goarch), flags...)
}

// buildGoFrom builds testdata/dir/main.go as its own module.
func buildGoFrom(t *testing.T, dir, name string, env []string, flags ...string) string {
	t.Helper()
	src, err := os.ReadFile(testdataPath(t, dir+"/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	return artifact(t, name, func(out string) error {
		dir := out + ".src"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/target\n\ngo 1.22\n"), 0o644); err != nil {
			return err
		}
		args := append(append([]string{"build"}, flags...), "-o", out, ".")
		_, err := run(dir, goTool(), env, args...)
		return err
	})
}

func goNormal(t *testing.T) string   { return buildGo(t, "go-normal", "amd64") }
func goPIE(t *testing.T) string      { return buildGo(t, "go-pie", "amd64", "-buildmode=pie") }
func goStripped(t *testing.T) string { return buildGo(t, "go-stripped", "amd64", "-ldflags=-s -w") }
func goARM64(t *testing.T) string    { return buildGo(t, "go-arm64", "arm64") }

func goCgo(t *testing.T) string {
	env := append(goEnv("amd64"), "CGO_ENABLED=1", "CGO_CFLAGS=-O2 -g") // the last value wins
	return buildGoFrom(t, "cgoprog", "go-cgo", env)
}

// goCgoNoCDWARF has no DWARF for its C code (CGO_CFLAGS without -g), so its
// C functions are known only from the ELF symbol table.
func goCgoNoCDWARF(t *testing.T) string {
	env := append(goEnv("amd64"), "CGO_ENABLED=1", "CGO_CFLAGS=-O2")
	return buildGoFrom(t, "cgoprog", "go-cgo-nodwarf", env)
}

// --- oracles ---

func parseHex(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		t.Fatalf("parse hex %q: %v", s, err)
	}
	return v
}

type segment struct{ off, vaddr, filesz uint64 }

// loadSegments reads the PT_LOAD program headers with readelf -lW.
func loadSegments(t *testing.T, path string) []segment {
	t.Helper()
	var segs []segment
	for _, line := range strings.Split(tool(t, "readelf", "-lW", path), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] != "LOAD" {
			continue
		}
		segs = append(segs, segment{off: parseHex(t, f[1]), vaddr: parseHex(t, f[2]), filesz: parseHex(t, f[4])})
	}
	if len(segs) == 0 {
		t.Fatalf("readelf -lW %s: no LOAD segment", path)
	}
	return segs
}

func vaddrToOff(t *testing.T, segs []segment, addr uint64) uint64 {
	t.Helper()
	for _, s := range segs {
		if addr >= s.vaddr && addr < s.vaddr+s.filesz {
			return addr - s.vaddr + s.off
		}
	}
	t.Fatalf("address %#x is in no LOAD segment", addr)
	return 0
}

func offToVaddr(t *testing.T, segs []segment, off uint64) uint64 {
	t.Helper()
	for _, s := range segs {
		if off >= s.off && off < s.off+s.filesz {
			return off - s.off + s.vaddr
		}
	}
	t.Fatalf("file offset %#x is in no LOAD segment", off)
	return 0
}

// elfFuncSymbols returns the defined FUNC symbols readelf -sW lists (both
// .symtab and .dynsym), name (without @version) to value.
func elfFuncSymbols(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	syms := map[string]uint64{}
	for _, line := range strings.Split(tool(t, "readelf", "-sW", path), "\n") {
		f := strings.Fields(line)
		// Num: Value Size Type Bind Vis Ndx Name
		if len(f) < 8 || !strings.HasSuffix(f[0], ":") || f[3] != "FUNC" || f[6] == "UND" {
			continue
		}
		name, _, _ := strings.Cut(f[7], "@")
		syms[name] = parseHex(t, f[1])
	}
	return syms
}

// objdumpFirstInsn returns the bytes of the first instruction objdump -d
// decodes at addr.
func objdumpFirstInsn(t *testing.T, path string, addr uint64) []byte {
	t.Helper()
	out := tool(t, "objdump", "-d", "--insn-width=16",
		fmt.Sprintf("--start-address=%#x", addr), fmt.Sprintf("--stop-address=%#x", addr+16), path)
	prefix := fmt.Sprintf("%x:", addr)
	for _, line := range strings.Split(out, "\n") {
		parts := strings.Split(line, "\t")
		if len(parts) < 2 || strings.TrimSpace(parts[0]) != prefix {
			continue
		}
		var code []byte
		for _, h := range strings.Fields(parts[1]) {
			v, err := strconv.ParseUint(h, 16, 8)
			if err != nil {
				t.Fatalf("objdump byte %q in %q: %v", h, line, err)
			}
			code = append(code, byte(v))
		}
		return code
	}
	t.Fatalf("objdump shows no instruction at %#x:\n%s", addr, out)
	return nil
}

func readAt(t *testing.T, path string, off uint64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, int64(off)); err != nil {
		t.Fatalf("read %d bytes at %#x of %s: %v", n, off, path, err)
	}
	return buf
}

type goInsn struct {
	addr uint64
	code []byte
	asm  string
}

// goObjdump lists the instructions of one function with go tool objdump.
func goObjdump(t *testing.T, path, fn string) []goInsn {
	t.Helper()
	out, err := run("", goTool(), goEnv("amd64"), "tool", "objdump", "-s", "^"+regexp.QuoteMeta(fn)+"$", path)
	if err != nil {
		t.Fatal(err)
	}
	var insns []goInsn
	for _, line := range strings.Split(out, "\n") {
		var parts []string
		for _, p := range strings.Split(line, "\t") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		if len(parts) < 4 || !strings.HasPrefix(parts[1], "0x") {
			continue
		}
		code := make([]byte, len(parts[2])/2)
		for i := range code {
			v, err := strconv.ParseUint(parts[2][2*i:2*i+2], 16, 8)
			if err != nil {
				t.Fatalf("go tool objdump line %q: %v", line, err)
			}
			code[i] = byte(v)
		}
		insns = append(insns, goInsn{addr: parseHex(t, parts[1]), code: code, asm: parts[3]})
	}
	if len(insns) == 0 {
		t.Fatalf("go tool objdump shows no instruction for %s:\n%s", fn, out)
	}
	return insns
}

// --- package helpers ---

// openMu guards the opened cache (and keeps openSerial's callers simple;
// Open itself is safe for concurrent use, see TestOpenConcurrentStderr).
var openMu sync.Mutex

func openSerial(path string) (*Binary, error) {
	openMu.Lock()
	defer openMu.Unlock()
	return Open(path)
}

// opened caches the Binaries open returns: loading a Go binary's symbols
// takes about a second, and Functions, Match, suggest and Probes only read.
// TestMain closes them.
var opened = map[string]*Binary{}

// open returns the shared, already opened Binary for path.
func open(t *testing.T, path string) *Binary {
	t.Helper()
	openMu.Lock()
	defer openMu.Unlock()
	if b := opened[path]; b != nil {
		return b
	}
	b, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	opened[path] = b
	return b
}

func lookup(t *testing.T, b *Binary, name string) Function {
	t.Helper()
	for _, f := range b.Functions() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("%s: no function %s in Functions()", b.Path, name)
	return Function{}
}

func names(fns []Function) []string {
	out := make([]string, len(fns))
	for i, f := range fns {
		out[i] = f.Name
	}
	return out
}

func goCgoPIE(t *testing.T) string {
	env := append(goEnv("amd64"), "CGO_ENABLED=1", "CGO_CFLAGS=-O2 -g")
	return buildGoFrom(t, "cgoprog", "go-cgo-pie", env, "-buildmode=pie")
}

// stripped copies path and strips the copy of every symbol and all DWARF,
// as distributions ship their binaries.
func stripped(t *testing.T, path string) string {
	t.Helper()
	return artifact(t, filepath.Base(path)+"-stripped", func(out string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, data, 0o755); err != nil {
			return err
		}
		_, err = run("", "strip", nil, out)
		return err
	})
}
