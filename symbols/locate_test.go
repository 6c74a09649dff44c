package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ldconfigP runs `ldconfig -p` and returns its entries in order.
func ldconfigP(t *testing.T) *ldCache {
	t.Helper()
	if _, err := os.Stat(ldCachePath); err != nil {
		t.Skipf("SKIPPED: no %s here", ldCachePath)
	}
	out, err := exec.Command(findLdconfig(), "-p").Output()
	if err != nil {
		t.Skipf("SKIPPED: ldconfig -p: %v", err)
	}
	c, err := parseLdconfigP(out)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The real cache parses to exactly what ldconfig itself lists, in the same
// order, and this machine's libraries are the ones ldconfig labels x86-64.
func TestLDCacheMatchesLdconfig(t *testing.T) {
	want := ldconfigP(t)
	data, err := os.ReadFile(ldCachePath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseLDCache(data)
	if err != nil {
		t.Fatalf("parse %s: %v", ldCachePath, err)
	}
	if len(got.Entries) != len(want.Entries) {
		t.Fatalf("%d entries, ldconfig -p lists %d", len(got.Entries), len(want.Entries))
	}
	native := 0
	for i, g := range got.Entries {
		w := want.Entries[i]
		if g.Name != w.Name || g.Path != w.Path {
			t.Errorf("entry %d: %s => %s, ldconfig -p says %s => %s", i, g.Name, g.Path, w.Name, w.Path)
		}
		if g.native() != w.native() {
			t.Errorf("entry %d (%s): native %v (flags %#x), ldconfig -p says %v", i, g.Name, g.native(), g.Flags, w.native())
		}
		if g.native() {
			native++
		}
	}
	if runtime.GOARCH == "amd64" && native == 0 {
		t.Errorf("no x86-64 entries among %d", len(got.Entries))
	}
}

// ldconfigPath is what `ldconfig -p` resolves name to for this architecture.
func ldconfigPath(t *testing.T, c *ldCache, name string) string {
	t.Helper()
	for _, e := range c.Entries {
		if e.Name == name && e.native() {
			return e.Path
		}
	}
	return ""
}

func TestLookupRealCache(t *testing.T) {
	want := ldconfigP(t)
	c, err := readLDCache(ldCachePath)
	if err != nil {
		t.Fatal(err)
	}
	libc := ldconfigPath(t, want, "libc.so.6")
	if libc == "" {
		t.Skip("SKIPPED: ldconfig -p lists no libc.so.6")
	}
	cases := []struct{ name, soname string }{
		{"libc", "libc.so.6"},
		{"libc.so", "libc.so.6"},
		{"libc.so.6", "libc.so.6"},
		{"libz", "libz.so.1"},
		{"libz.so.1", "libz.so.1"},
		{"libssl.so.3", "libssl.so.3"},
	}
	for _, tc := range cases {
		w := ldconfigPath(t, want, tc.soname)
		if w == "" {
			t.Logf("%s is not installed; skipping %q", tc.soname, tc.name)
			continue
		}
		got, err := c.lookup(tc.name)
		if err != nil || got != w {
			t.Errorf("Lookup(%q) = %q, %v; ldconfig -p says %s => %s", tc.name, got, err, tc.soname, w)
		}
		loc, err := LocateLibrary(tc.name, 0)
		if err != nil || loc.Path != w {
			t.Errorf("LocateLibrary(%q, 0) = %+v, %v; want %s", tc.name, loc, err, w)
		}
	}

	_, err = c.lookup("libcc")
	if !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), `no library "libcc" in the ld.so cache (did you mean libc.so.6`) {
		t.Errorf("Lookup(libcc): %v", err)
	}
	_, err = c.lookup("libno-such-thing-at-all")
	if !errors.Is(err, ErrNoLibrary) || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("Lookup of nonsense: %v (want no suggestions)", err)
	}
	// Paths are taken as they are.
	loc, err := LocateLibrary("./x/libfoo.so", 0)
	if abs, _ := filepath.Abs("./x/libfoo.so"); err != nil || loc.Path != abs {
		t.Errorf("LocateLibrary(path) = %+v, %v", loc, err)
	}
}

type synthEntry struct {
	flags      int32
	name, path string
	hwcap      uint64
}

// synthCache writes a cache in the new format, optionally after an old
// table (the compatible format of glibc 2.2 to 2.31).
func synthCache(entries []synthEntry, old bool) []byte {
	const hdr, entSize = 48, 24
	var strs bytes.Buffer
	base := hdr + len(entries)*entSize
	offs := map[string]uint32{}
	str := func(s string) uint32 {
		if o, ok := offs[s]; ok {
			return o
		}
		o := uint32(base + strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		offs[s] = o
		return o
	}
	le := binary.LittleEndian
	body := make([]byte, base)
	copy(body, ldMagicNew)
	le.PutUint32(body[20:], uint32(len(entries)))
	body[28] = 2 // little endian
	for i, e := range entries {
		b := body[hdr+i*entSize:]
		le.PutUint32(b[0:], uint32(e.flags))
		le.PutUint32(b[4:], str(e.name))
		le.PutUint32(b[8:], str(e.path))
		le.PutUint64(b[16:], e.hwcap)
	}
	le.PutUint32(body[24:], uint32(strs.Len()))
	body = append(body, strs.Bytes()...)
	if !old {
		return body
	}
	// Old header: magic, nlibs, then 12-byte entries, padded to 8.
	n := 3
	pre := make([]byte, (16+n*12+7)&^7)
	copy(pre, ldMagicOld)
	le.PutUint32(pre[12:], uint32(n))
	return append(pre, body...)
}

func TestParseLDCacheSynthetic(t *testing.T) {
	arch := ldArchFlag(runtime.GOARCH)
	if arch < 0 {
		t.Skipf("SKIPPED: no ld.so cache flag for %s", runtime.GOARCH)
	}
	native := ldFlagELFLibc6 | arch
	entries := []synthEntry{
		{ldFlagELFLibc6, "libfoo.so.1", "/usr/lib32/libfoo.so.1", 0}, // i386: never ours
		{native, "libfoo.so.1", "/lib64/libfoo.so.1", 0},
		{native | 0, "libbar.so.2", "/lib64/glibc-hwcaps/x86-64-v3/libbar.so.2", 1<<62 | 0},
		{native, "libbar.so.2", "/lib64/libbar.so.2", 0},
		{native, "libamb.so.3", "/nonexistent/libamb.so.3", 0},
		{native, "libamb.so.1.1", "/nonexistent/libamb.so.1.1", 0},
		{native, "libonly32.so.1", "/usr/lib32/libonly32.so.1", 0},
	}
	entries[6].flags = ldFlagELFLibc6
	for _, old := range []bool{false, true} {
		c, err := parseLDCache(synthCache(entries, old))
		if err != nil {
			t.Fatalf("old=%v: %v", old, err)
		}
		if len(c.Entries) != len(entries) {
			t.Fatalf("old=%v: %d entries, want %d", old, len(c.Entries), len(entries))
		}
		for i, e := range c.Entries {
			if e.Name != entries[i].name || e.Path != entries[i].path || e.Flags != entries[i].flags || e.HWCap != entries[i].hwcap {
				t.Errorf("old=%v entry %d: %+v, want %+v", old, i, e, entries[i])
			}
		}
		for name, want := range map[string]string{
			"libfoo":      "/lib64/libfoo.so.1", // this architecture's, not i386's
			"libfoo.so.1": "/lib64/libfoo.so.1",
			"libbar":      "/lib64/libbar.so.2", // the plain entry, not the hwcaps one
			"libamb.so.3": "/nonexistent/libamb.so.3",
		} {
			if got, err := c.lookup(name); err != nil || got != want {
				t.Errorf("old=%v: Lookup(%q) = %q, %v; want %s", old, name, got, err, want)
			}
		}
		if _, err := c.lookup("libamb"); !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), "ambiguous") ||
			!strings.Contains(err.Error(), "libamb.so.3") || !strings.Contains(err.Error(), "libamb.so.1.1") {
			t.Errorf("old=%v: Lookup(libamb) with two versions: %v", old, err)
		}
		if _, err := c.lookup("libonly32"); !errors.Is(err, ErrNoLibrary) {
			t.Errorf("old=%v: Lookup of an i386-only library: %v", old, err)
		}
	}
	good := synthCache(entries, false)
	for _, bad := range [][]byte{nil, []byte("hello"), good[:40], good[:100], []byte(ldMagicOld + "\xff\xff\xff\xff")} {
		if _, err := parseLDCache(bad); err == nil {
			t.Errorf("ParseLDCache(%q...) did not fail", bad[:min(len(bad), 24)])
		}
	}
	// A string offset past the end.
	broken := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(broken[48+4:], 1<<30)
	if _, err := parseLDCache(broken); err == nil {
		t.Error("ParseLDCache with a string offset out of range did not fail")
	}
}

func TestSplitLibrary(t *testing.T) {
	cases := []struct {
		in      string
		lib, fn string
		ok      bool
	}{
		{"libc:malloc", "libc", "malloc", true},
		{"libc.so.6:malloc*", "libc.so.6", "malloc*", true},
		{"/lib/x86_64-linux-gnu/libz.so.1:deflate", "/lib/x86_64-linux-gnu/libz.so.1", "deflate", true},
		{"./build/libfoo.so:foo", "./build/libfoo.so", "foo", true},
		{"ld-linux-x86-64.so.2:_dl_open", "ld-linux-x86-64.so.2", "_dl_open", true},
		{"libstdc++:std::sort*", "libstdc++", "std::sort*", true},
		{"libfoo:ns::Server::handle", "libfoo", "ns::Server::handle", true},
		{"Server::handle", "", "", false},
		{"ns::Server::handle*", "", "", false},
		{"std::vector<int>::push_back", "", "", false},
		{"main.work", "", "", false},
		{"main.(*Server).handle", "", "", false},
		{"github.com/x/y.(*T).F", "", "", false},
		{"work:x", "", "", false},  // "work" is no library name
		{"libc:", "", "", false},   // no function
		{":malloc", "", "", false}, // no library
		{"lib*:malloc", "", "", false},
		{"libusb_open", "", "", false},
	}
	for _, c := range cases {
		lib, fn, ok := SplitLibrary(c.in)
		if lib != c.lib || fn != c.fn || ok != c.ok {
			t.Errorf("SplitLibrary(%q) = %q, %q, %v; want %q, %q, %v", c.in, lib, fn, ok, c.lib, c.fn, c.ok)
		}
	}
}

func TestParseMaps(t *testing.T) {
	maps := `55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 1234                       /usr/bin/sleep
55d0c0a02000-55d0c0a06000 r-xp 00002000 fe:00 1234                       /usr/bin/sleep
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000020000 r--p 00000000 fe:00 5678                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000100000-7f0000110000 r-xp 00000000 00:2a 99                         /tmp/my lib/libx.so.1 (deleted)
7f0000200000-7f0000201000 rw-p 00000000 00:00 0 
7fff00000000-7fff00002000 r-xp 00000000 00:00 0                          [vdso]
`
	got := parseMaps([]byte(maps))
	want := []mapping{
		{Start: 0x55d0c0a00000, End: 0x55d0c0a02000, Dev: devOf(0xfe, 0), Inode: 1234, Path: "/usr/bin/sleep"},
		{Start: 0x7f0000000000, End: 0x7f0000020000, Dev: devOf(0xfe, 0), Inode: 5678, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{Start: 0x7f0000100000, End: 0x7f0000110000, Dev: devOf(0, 0x2a), Inode: 99, Path: "/tmp/my lib/libx.so.1", Deleted: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// startProcess runs bin with args and kills it when the test ends.
func startProcess(t *testing.T, bin string, args ...string) int {
	t.Helper()
	c := exec.Command(bin, args...)
	if err := c.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	// Wait until it runs bin rather than the test binary it forked from,
	// and sleeps: the loader has mapped its libraries by then.
	want, err := statID(bin)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		id, err := statID(procPath(c.Process.Pid, "exe"))
		stat, _ := os.ReadFile(procPath(c.Process.Pid, "stat"))
		if _, rest, ok := bytes.Cut(stat, []byte(") ")); ok && err == nil && id == want && rest[0] == 'S' {
			return c.Process.Pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s did not start", bin)
	return 0
}

func sleepBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("SKIPPED: no sleep command")
	}
	return p
}

func TestProcessExecutable(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	loc, err := ProcessExecutable(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if loc.Path != self || loc.Name != self || loc.Deleted {
		t.Errorf("own executable: %+v, want %s", loc, self)
	}

	sleep := sleepBinary(t)
	real, err := filepath.EvalSymlinks(sleep)
	if err != nil {
		t.Fatal(err)
	}
	pid := startProcess(t, sleep, "60")
	loc, err = ProcessExecutable(pid)
	if err != nil {
		t.Fatal(err)
	}
	if loc.Path != real || loc.Deleted {
		t.Errorf("sleep: %+v, want %s", loc, real)
	}
	mustOpenELF(t, loc.Path)
}

// mustOpenELF checks that path reaches a readable ELF file.
func mustOpenELF(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	f.Close()
}

// A process whose file was deleted, or replaced by another, still runs the
// old inode: /proc/PID/exe reaches it, the path does not.
func TestProcessExecutableDeleted(t *testing.T) {
	sleep := sleepBinary(t)
	for _, replace := range []bool{false, true} {
		dir := t.TempDir()
		copyPath := filepath.Join(dir, "mysleep")
		copyFile(t, sleep, copyPath)
		orig, err := statID(copyPath)
		if err != nil {
			t.Fatal(err)
		}
		pid := startProcess(t, copyPath, "60")
		if err := os.Remove(copyPath); err != nil {
			t.Fatal(err)
		}
		if replace {
			copyFile(t, sleep, copyPath) // same name, new inode
		}
		loc, err := ProcessExecutable(pid)
		if err != nil {
			t.Fatal(err)
		}
		wantPath := procPath(pid, "exe")
		if loc.Path != wantPath || loc.Name != copyPath || !loc.Deleted {
			t.Errorf("replace=%v: %+v, want Path %s, Name %s, Deleted", replace, loc, wantPath, copyPath)
		}
		if id, err := statID(loc.Path); err != nil || id != orig {
			t.Errorf("replace=%v: %s is %v (%v), want the original inode %v", replace, loc.Path, id, err, orig)
		}
		mustOpenELF(t, loc.Path)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// isDynamic reports whether the ELF file at path asks for an interpreter.
func isDynamic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// The library a process maps is found by name or by any path to it, and
// is the same file as the ld.so cache's.
func TestLocateLibraryInProcess(t *testing.T) {
	want := ldconfigP(t)
	libc := ldconfigPath(t, want, "libc.so.6")
	if libc == "" {
		t.Skip("SKIPPED: ldconfig -p lists no libc.so.6")
	}
	libcID, err := statID(libc)
	if err != nil {
		t.Fatal(err)
	}
	sleep := sleepBinary(t)
	if !isDynamic(sleep) {
		t.Skipf("SKIPPED: %s is statically linked", sleep)
	}
	pids := map[string]int{"sleep": startProcess(t, sleep, "60")}
	if self, _ := os.Executable(); isDynamic(self) {
		pids["self"] = os.Getpid()
	}
	for who, pid := range pids {
		for _, name := range []string{"libc", "libc.so.6", "libc.so", libc} {
			loc, err := LocateLibrary(name, pid)
			if err != nil {
				t.Errorf("%s: LocateLibrary(%q): %v", who, name, err)
				continue
			}
			if id, err := statID(loc.Path); err != nil || id != libcID {
				t.Errorf("%s: LocateLibrary(%q) = %+v, not the file ldconfig names (%s)", who, name, loc, libc)
			}
			if filepath.Base(loc.Name) != "libc.so.6" || loc.Deleted {
				t.Errorf("%s: LocateLibrary(%q) = %+v, want a name ending in libc.so.6", who, name, loc)
			}
		}
	}
	pid := pids["sleep"]
	_, err = LocateLibrary("libz", pid)
	if !errors.Is(err, ErrNotMapped) || !strings.Contains(err.Error(), "does not map libz") {
		t.Errorf("libz in sleep: %v", err)
	}
	_, err = LocateLibrary("libcc", pid)
	if !errors.Is(err, ErrNotMapped) || !strings.Contains(err.Error(), "did you mean libc.so.6") {
		t.Errorf("libcc in sleep: %v", err)
	}
	_, err = LocateLibrary("/no/such/libz.so.1", pid)
	if !errors.Is(err, ErrNotMapped) {
		t.Errorf("a path sleep does not map: %v", err)
	}
}

func TestProcessErrors(t *testing.T) {
	const nopid = 999999999
	if _, err := ProcessExecutable(nopid); !errors.Is(err, ErrNoProcess) || !strings.Contains(err.Error(), "process 999999999: no such process") {
		t.Errorf("ProcessExecutable(no such pid): %v", err)
	}
	if _, err := LocateLibrary("libc", nopid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("LocateLibrary(libc, no such pid): %v", err)
	}
	if os.Geteuid() == 0 {
		t.Log("running as root: the unreadable-/proc case is covered by the end-to-end tests")
		return
	}
	// pid 1 belongs to root; its exe link is not ours to read.
	if _, err := ProcessExecutable(1); !errors.Is(err, ErrProcess) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("ProcessExecutable(1) as a user: %v", err)
	}
}

func devOf(major, minor uint32) uint64 { return unix.Mkdev(major, minor) }
