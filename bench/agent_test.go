package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIdleTargetSource(t *testing.T) {
	dir := t.TempDir()
	if err := writeIdleTarget(dir, 7); err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "main.go"), nil, parser.ParseComments)
	if err != nil {
		t.Fatalf("generated source does not parse: %v", err)
	}
	var works []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fn.Name.Name, "work") {
			continue
		}
		works = append(works, fn.Name.Name)
		if fn.Doc == nil || !strings.Contains(docDirectives(fn.Doc), "//go:noinline") {
			t.Errorf("%s is not marked //go:noinline", fn.Name.Name)
		}
	}
	want := []string{"work0000", "work0001", "work0002", "work0003", "work0004", "work0005", "work0006"}
	if !reflect.DeepEqual(works, want) {
		t.Errorf("functions %v, want %v", works, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Error(err)
	}
}

// docDirectives returns a doc comment's lines as written: Text leaves
// out directives such as //go:noinline.
func docDirectives(g *ast.CommentGroup) string {
	var lines []string
	for _, c := range g.List {
		lines = append(lines, c.Text)
	}
	return strings.Join(lines, "\n")
}

func TestCPUTime(t *testing.T) {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Work until the kernel has counted 30 ms more (3 ticks), with a
	// deadline far past what that takes.
	deadline := time.Now().Add(time.Minute)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		now, err := cpuTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 30*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time went from %s to %s in a minute of work", before, now)
		}
	}
	_ = x
	if _, err := cpuTime(-1); err == nil {
		t.Error("cpuTime of pid -1: no error")
	}
}

func TestChildrenOf(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if kids := childrenOf(os.Getpid()); !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("childrenOf(%d) = %v, without its child %d", os.Getpid(), kids, cmd.Process.Pid)
	}
}

func TestMemoryOfSelf(t *testing.T) {
	mem, err := statusKB(os.Getpid(), "status", "VmRSS", "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if mem["VmRSS"] <= 0 || mem["VmHWM"] < mem["VmRSS"] {
		t.Errorf("VmRSS %d kB, VmHWM %d kB", mem["VmRSS"], mem["VmHWM"])
	}
	if _, err := statusKB(os.Getpid(), "status", "NoSuchField"); err == nil || !strings.Contains(err.Error(), "no NoSuchField") {
		t.Errorf("a missing field: error %v", err)
	}
	// The test holds no BPF map.
	rss, pss, err := bpfMappedKB(os.Getpid())
	if err != nil || rss != 0 || pss != 0 {
		t.Errorf("bpfMappedKB of a process without BPF maps: %d, %d, %v", rss, pss, err)
	}
	maps, progs, err := bpfObjects(os.Getpid())
	if err != nil || len(maps) != 0 || len(progs) != 0 {
		t.Errorf("bpfObjects of a process without BPF objects: %v, %v, %v", maps, progs, err)
	}
}

func TestMapGroups(t *testing.T) {
	const mb = 1 << 20
	maps := []bpfObject{
		{id: 1, kind: "9", memlock: 7 * mb},
		{id: 2, kind: "9", memlock: 7 * mb},
		{id: 3, kind: "27", memlock: 4 * mb},
		{id: 4, kind: "27", memlock: mb / 4},
		{id: 5, kind: "2", memlock: 4096},
		{id: 6, kind: "2", memlock: 4096},
		{id: 7, kind: "6", memlock: 8192},
	}
	shown := map[int]bpftoolMap{
		1: {1, "starts", "lru_hash"}, 2: {2, "starts", "lru_hash"},
		3: {3, "events", "ringbuf"}, 4: {4, "events", "ringbuf"},
		5: {5, "11.rodata", "array"}, 6: {6, "33.rodata", "array"},
		// 7 is not shown by bpftool
	}
	got := mapGroups(maps, shown)
	want := []mapGroup{
		{"2 × starts (lru_hash)", "14 MB (7.0 MB each)"},
		{"2 × events (ringbuf)", "4 MB (0.2 MB to 4.0 MB)"},
		{"2 other kinds", "0.0 MB"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mapGroups:\n got %q\nwant %q", got, want)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[string]string{
		count(1, "child"):    "1 child",
		count(5, "child"):    "5 children",
		count(50, "process"): "50 processes",
		count(1, "file"):     "1 file",
		count(5, "file"):     "5 files",
	} {
		if n != want {
			t.Errorf("got %q, want %q", n, want)
		}
	}
}
