package symbols

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestBuildID(t *testing.T) {
	// A GNU build ID, as readelf shows it.
	out, err := exec.Command("readelf", "-n", "/bin/true").Output()
	if err != nil {
		t.Skipf("readelf: %v", err)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		t.Skip("/bin/true has no GNU build ID")
	}
	if got, err := BuildID("/bin/true"); err != nil || got != string(m[1]) {
		t.Errorf("BuildID(/bin/true) = %q, %v; want %s", got, err, m[1])
	}

	// Go binaries linked without a GNU build ID (before Go 1.26, or with
	// -B none) have only Go's.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-ldflags=-B none", "-o", "prog", "main.go")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	prog := filepath.Join(dir, "prog")
	want, err := exec.Command("go", "tool", "buildid", prog).Output()
	if err != nil {
		t.Fatalf("go tool buildid: %v", err)
	}
	if got, err := BuildID(prog); err != nil || got != "go:"+strings.TrimSpace(string(want)) {
		t.Errorf("BuildID(Go binary) = %q, %v; want go:%s", got, err, strings.TrimSpace(string(want)))
	}

	if _, err := BuildID("/nonexistent"); err == nil {
		t.Error("BuildID of a missing file succeeded")
	}
}
