package symbols

// Where the code lives: library names resolved as the dynamic loader does
// (the ld.so cache), the libraries a running process has actually mapped
// (/proc/PID/maps), and a process's own executable (/proc/PID/exe), each
// turned into a path that reaches the very inode the process runs, from
// ulat's own mount namespace. Uprobes attach by inode, so that is what
// matters: a path that names a different file of the same name (a
// container's /usr/bin/python3 seen from the host, a library upgraded
// since the process loaded it) would silently time nothing.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ulat-dev/ulat/internal/procfs"
	"github.com/xrash/smetrics"
	"golang.org/x/sys/unix"
)

// Sentinel errors of library and process resolution.
var (
	ErrNoLibrary = errors.New("no such library")     // a name the ld.so cache does not know
	ErrNotMapped = errors.New("library not mapped")  // the process has no such library mapped
	ErrNoProcess = errors.New("no such process")     // /proc/PID does not exist
	ErrProcess   = errors.New("cannot read process") // /proc/PID exists but cannot be read
)

// locateError is a message that wraps a sentinel without repeating it.
type locateError struct {
	msg      string
	sentinel error
}

func (e *locateError) Error() string { return e.msg }
func (e *locateError) Unwrap() error { return e.sentinel }

func errorf(sentinel error, format string, a ...any) error {
	return &locateError{fmt.Sprintf(format, a...), sentinel}
}

// ldCachePath is where the dynamic loader's cache of library names lives.
const ldCachePath = "/etc/ld.so.cache"

// Location is a file to probe, found by library name or through a process.
type Location struct {
	// Path reaches the file's inode from this mount namespace: open it,
	// and attach probes to it. It may be a /proc path (/proc/PID/exe,
	// /proc/PID/root/..., /proc/PID/map_files/...).
	Path string
	// Name is the file as the ld.so cache or the process names it, without
	// a " (deleted)" suffix; it equals Path in the common case.
	Name string
	// Deleted reports that the process runs a file that has since been
	// deleted or replaced; Path still reaches the one it runs.
	Deleted bool
}

// String describes the location for messages: the path, and the name the
// process knows it by when that differs.
func (l Location) String() string {
	switch {
	case l.Deleted:
		return fmt.Sprintf("%s (%s, deleted)", l.Path, l.Name)
	case l.Name != "" && l.Name != l.Path:
		return fmt.Sprintf("%s (%s)", l.Path, l.Name)
	}
	return l.Path
}

// IsLibraryPath reports whether s names a file rather than a library: it
// contains a slash.
func IsLibraryPath(s string) bool { return strings.Contains(s, "/") }

// LooksLikeLibrary reports whether s can be a library name (`libc`,
// `libc.so.6`, `ld-linux-x86-64.so.2`) or a path to one: it contains a
// slash, or starts with "lib", or contains ".so"; and it has no glob or
// other characters that no file name of a library has.
func LooksLikeLibrary(s string) bool {
	if s == "" || strings.ContainsAny(s, "*?()[]: \t") {
		return false
	}
	return IsLibraryPath(s) || strings.HasPrefix(s, "lib") || strings.Contains(s, ".so")
}

// SplitLibrary splits a pattern of the form LIB:FUNC. The split is on the
// first single ':' (one that is not part of a C++ or Rust '::'), and only
// when what is left of it looks like a library name or path, so
// `Server::handle` and `ns::f` stay function patterns while
// `libstdc++:std::sort*` splits into libstdc++ and std::sort*.
func SplitLibrary(pattern string) (lib, fn string, ok bool) {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] != ':' {
			continue
		}
		if i+1 < len(pattern) && pattern[i+1] == ':' {
			i++ // skip the whole '::'
			continue
		}
		lib, fn = pattern[:i], pattern[i+1:]
		if fn == "" || !LooksLikeLibrary(lib) {
			return "", "", false
		}
		return lib, fn, true
	}
	return "", "", false
}

// LocateLibrary finds the library name names: a path (anything with a
// slash) or a name the loader knows (`libc` finds libc.so.6, `libz`
// libz.so.1, `libssl.so.3` itself). With pid > 0 it is the library that
// process has mapped, which wins over the ld.so cache, reached through
// /proc/PID/root so that processes in containers work; it is an error
// wrapping ErrNotMapped when the process has none. Without a pid, names
// are looked up in the ld.so cache (an error wrapping ErrNoLibrary, with
// suggestions, when it has none) and paths are returned as absolute paths.
func LocateLibrary(name string, pid int) (Location, error) {
	if pid > 0 {
		return locateMapped(name, pid)
	}
	if IsLibraryPath(name) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return Location{}, err
		}
		return Location{Path: abs, Name: abs}, nil
	}
	c, err := readLDCache(ldCachePath)
	if err != nil {
		return Location{}, err
	}
	p, err := c.lookup(name)
	if err != nil {
		return Location{}, err
	}
	return Location{Path: p, Name: p}, nil
}

// ---------------------------------------------------------------------------
// The ld.so cache.

// ldCache is a parsed /etc/ld.so.cache (glibc's "glibc-ld.so.cache1.1"
// format, alone or after the old "ld.so-1.7.0" table).
type ldCache struct {
	Entries []ldCacheEntry // in the file's order
}

// ldCacheEntry maps a library's name (its soname, or a file name) to a path.
type ldCacheEntry struct {
	Name  string // e.g. libc.so.6
	Path  string // e.g. /lib/x86_64-linux-gnu/libc.so.6
	Flags int32  // library type (low byte) and required architecture (next byte)
	HWCap uint64 // nonzero for glibc-hwcaps (x86-64-v3, ...) variants
}

// Flags of cache entries (glibc's dl-cache.h).
const (
	ldFlagTypeMask     = 0x00ff
	ldFlagELF          = 0x0001
	ldFlagELFLibc6     = 0x0003
	ldFlagRequiredMask = 0xff00
	ldFlagX8664Lib64   = 0x0300
	ldFlagAArch64Lib64 = 0x0a00
)

// ldArchFlag is the required-architecture flag of libraries this machine's
// 64-bit programs load.
func ldArchFlag(goarch string) int32 {
	switch goarch {
	case "amd64":
		return ldFlagX8664Lib64
	case "arm64":
		return ldFlagAArch64Lib64
	}
	return -1
}

// native reports whether the entry is a library for this machine's
// architecture (x86-64 here, not i386 or x32).
func (e ldCacheEntry) native() bool {
	t := e.Flags & ldFlagTypeMask
	return (t == ldFlagELF || t == ldFlagELFLibc6) && e.Flags&ldFlagRequiredMask == ldArchFlag(runtime.GOARCH)
}

const (
	ldMagicOld = "ld.so-1.7.0"
	ldMagicNew = "glibc-ld.so.cache1.1"
)

// readLDCache reads and parses the cache at path. When the file is in a
// format it cannot parse, it falls back to the output of `ldconfig -p`.
func readLDCache(path string) (*ldCache, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the ld.so cache: %w", err)
	}
	c, perr := parseLDCache(data)
	if perr == nil {
		return c, nil
	}
	if out, err := exec.Command(findLdconfig(), "-p", "-C", path).Output(); err == nil {
		if c, err := parseLdconfigP(out); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("read the ld.so cache %s: %w", path, perr)
}

// findLdconfig finds ldconfig, which is in /sbin, often not on a user's PATH.
func findLdconfig() string {
	if p, err := exec.LookPath("ldconfig"); err == nil {
		return p
	}
	for _, p := range []string{"/sbin/ldconfig", "/usr/sbin/ldconfig"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "ldconfig"
}

// parseLDCache parses the bytes of an ld.so cache.
func parseLDCache(data []byte) (*ldCache, error) {
	base := 0
	if bytes.HasPrefix(data, []byte(ldMagicOld)) {
		// The old table comes first (magic, nlibs, 12-byte entries); the
		// new one follows, aligned to 8 bytes.
		if len(data) < 16 {
			return nil, errors.New("truncated header")
		}
		n := int(binary.LittleEndian.Uint32(data[12:16]))
		base = (16 + n*12 + 7) &^ 7
		if n < 0 || base > len(data) {
			return nil, errors.New("truncated old-format table")
		}
	}
	d := data[base:]
	if !bytes.HasPrefix(d, []byte(ldMagicNew)) {
		return nil, errors.New("not a glibc-ld.so.cache1.1 file")
	}
	const hdr, entSize = 48, 24
	if len(d) < hdr {
		return nil, errors.New("truncated header")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if d[28]&3 == 3 { // cache_file_new_flags_endian_big
		bo = binary.BigEndian
	}
	n := int(bo.Uint32(d[20:24]))
	if n < 0 || hdr+n*entSize > len(d) {
		return nil, fmt.Errorf("truncated: %d entries do not fit in %d bytes", n, len(d))
	}
	// Strings are NUL-terminated, at offsets from the new header.
	str := func(off uint32) (string, error) {
		if int(off) >= len(d) {
			return "", fmt.Errorf("string offset %d out of range", off)
		}
		end := bytes.IndexByte(d[off:], 0)
		if end < 0 {
			return "", fmt.Errorf("unterminated string at %d", off)
		}
		return string(d[off : int(off)+end]), nil
	}
	c := &ldCache{Entries: make([]ldCacheEntry, 0, n)}
	for i := 0; i < n; i++ {
		e := d[hdr+i*entSize:]
		name, err := str(bo.Uint32(e[4:8]))
		if err != nil {
			return nil, err
		}
		path, err := str(bo.Uint32(e[8:12]))
		if err != nil {
			return nil, err
		}
		c.Entries = append(c.Entries, ldCacheEntry{
			Name: name, Path: path, Flags: int32(bo.Uint32(e[0:4])), HWCap: bo.Uint64(e[16:24]),
		})
	}
	return c, nil
}

// parseLdconfigP reads `ldconfig -p` output: "\tNAME (libc6,x86-64) => PATH".
func parseLdconfigP(out []byte) (*ldCache, error) {
	c := &ldCache{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, " (")
		if !ok {
			continue
		}
		attrs, path, ok := strings.Cut(rest, ") => ")
		if !ok {
			continue
		}
		var flags int32 = ldFlagELFLibc6
		if strings.Contains(attrs, "x86-64") && !strings.Contains(attrs, "x32") {
			flags |= ldFlagX8664Lib64
		} else if strings.Contains(attrs, "AArch64") {
			flags |= ldFlagAArch64Lib64
		}
		var hwcap uint64
		if strings.Contains(attrs, "hwcap") {
			hwcap = 1
		}
		c.Entries = append(c.Entries, ldCacheEntry{Name: name, Path: path, Flags: flags, HWCap: hwcap})
	}
	if len(c.Entries) == 0 {
		return nil, errors.New("ldconfig -p listed no libraries")
	}
	return c, nil
}

// lookup finds the path of a library for this machine's architecture by
// name: an exact entry (`libc.so.6`, `libssl.so.3`) or, for a name without
// its version (`libc`, `libz`, `libz.so`), the entry `NAME.so.VERSION`.
// When several versions are installed as different files (libssl.so.1.1
// and libssl.so.3) it is an error naming them. Entries for glibc-hwcaps
// subdirectories are used only when no plain entry exists.
func (c *ldCache) lookup(name string) (string, error) {
	var native []ldCacheEntry
	for _, e := range c.Entries {
		if e.native() {
			native = append(native, e)
		}
	}
	// Plain entries before hwcaps variants, otherwise in file order.
	sort.SliceStable(native, func(i, j int) bool { return (native[i].HWCap == 0) && native[j].HWCap != 0 })
	for _, e := range native {
		if e.Name == name {
			return e.Path, nil
		}
	}
	var cands []candidate
	seen := map[string]bool{}
	for _, e := range native {
		if matchesUnversioned(e.Name, name) && !seen[e.Name] {
			seen[e.Name] = true // the plain entry, which sorts first
			cands = append(cands, candidate{name: e.Name, path: e.Path})
		}
	}
	if p, err := pickCandidate(name, cands, "the ld.so cache"); err != nil || p != "" {
		return p, err
	}
	var names []string
	for _, e := range native {
		names = append(names, e.Name)
	}
	msg := fmt.Sprintf("no library %q in the ld.so cache", name)
	if s := suggestLibraries(name, names, 3); len(s) > 0 {
		msg += " (did you mean " + strings.Join(s, ", ") + "?)"
	}
	return "", errorf(ErrNoLibrary, "%s", msg)
}

// matchesUnversioned reports whether file (a library file name such as
// libz.so.1) is what the versionless name (libz, or libz.so) refers to.
func matchesUnversioned(file, name string) bool {
	stem := name
	if !strings.HasSuffix(stem, ".so") && !strings.Contains(stem, ".so.") {
		stem += ".so"
	}
	return file == stem || strings.HasPrefix(file, stem+".")
}

type candidate struct {
	name string // file name (soname)
	path string // path to probe
	id   fileID // identity, when known
}

// pickCandidate chooses among the files a versionless name matched: fine
// when they are all the same file (libz.so and libz.so.1); the one with a
// version otherwise preferred over the bare development link; an error when
// several different versions remain. It returns "" when there is none.
func pickCandidate(name string, cands []candidate, where string) (string, error) {
	if len(cands) == 0 {
		return "", nil
	}
	// Versioned names first (libz.so.1 before libz.so), then shorter ones.
	sort.SliceStable(cands, func(i, j int) bool {
		vi, vj := strings.Contains(cands[i].name, ".so."), strings.Contains(cands[j].name, ".so.")
		if vi != vj {
			return vi
		}
		return len(cands[i].name) < len(cands[j].name)
	})
	distinct := map[fileID]bool{}
	var names []string
	seen := map[string]bool{}
	for _, c := range cands {
		id := c.id
		if id == (fileID{}) {
			if st, err := statID(c.path); err == nil {
				id = st
			} else {
				id = fileID{ino: uint64(len(distinct)) + 1<<62} // unknown: count it as distinct
			}
		}
		distinct[id] = true
		if !seen[c.name] {
			seen[c.name] = true
			names = append(names, c.name)
		}
	}
	if len(distinct) > 1 {
		return "", errorf(ErrNoLibrary, "library %q is ambiguous in %s: %s; name one of them",
			name, where, strings.Join(names, ", "))
	}
	return cands[0].path, nil
}

// suggestLibraries returns up to n names close to name, nearest first: by
// edit distance to the name or to its stem (libc.so.6 → libc), a name that
// contains it counting as distance 1; ties go to the shorter name.
func suggestLibraries(name string, names []string, n int) []string {
	needle := strings.ToLower(name)
	seen := map[string]bool{}
	var cands []suggestion
	for _, full := range names {
		if seen[full] {
			continue
		}
		seen[full] = true
		lname := strings.ToLower(full)
		stem := lname
		if i := strings.Index(stem, ".so"); i > 0 {
			stem = stem[:i]
		}
		d := min(smetrics.WagnerFischer(needle, lname, 1, 1, 2), smetrics.WagnerFischer(needle, stem, 1, 1, 2))
		if needle != "" && strings.Contains(lname, needle) {
			d = min(d, 1)
		}
		cands = append(cands, suggestion{full, d})
	}
	return closest(cands, n, len(needle)/3+1)
}

// ---------------------------------------------------------------------------
// Processes.

// fileID identifies a file: device and inode.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

// ExecutableID identifies the file a process runs (device and inode).
type ExecutableID struct{ id fileID }

// ExecutableOf identifies pid's executable file, for ProcessesRunning.
func ExecutableOf(pid int) (ExecutableID, error) {
	id, err := statID(procPath(pid, "exe"))
	if err != nil {
		return ExecutableID{}, procError(pid, "executable", err)
	}
	return ExecutableID{id}, nil
}

// IdentifyFile identifies the file at path, to compare with ExecutableOf.
func IdentifyFile(path string) (ExecutableID, error) {
	id, err := statID(path)
	return ExecutableID{id}, err
}

// ProcessesRunning lists the processes other than except that run exe, in
// pid order: a server's worker processes, say, which --pid of its master
// does not trace.
func ProcessesRunning(exe ExecutableID, except int) []int {
	pids, err := procfs.Pids()
	if err != nil {
		return nil
	}
	var out []int
	for _, pid := range pids {
		if pid == except {
			continue
		}
		if id, err := statID(procPath(pid, "exe")); err == nil && id == exe.id {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

func procPath(pid int, elem ...string) string {
	return filepath.Join(append([]string{"/proc", strconv.Itoa(pid)}, elem...)...)
}

// procError turns an error reading /proc/PID/... into one of ErrNoProcess
// or ErrProcess, with the reason.
func procError(pid int, what string, err error) error {
	if _, serr := os.Stat(procPath(pid)); errors.Is(serr, fs.ErrNotExist) {
		return errorf(ErrNoProcess, "process %d: no such process", pid)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == syscall.EACCES || errno == syscall.EPERM) {
		return errorf(ErrProcess, "process %d: cannot read %s: permission denied (run as root, or as the process's owner)", pid, what)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return errorf(ErrProcess, "process %d: cannot read %s: %v", pid, what, err)
}

const deletedSuffix = " (deleted)"

// reach returns a path that reaches the file identified by want, for a
// file the process names name: name itself when it is the same file from
// here, else name under /proc/PID/root (the process's mount namespace),
// else fallback (a /proc magic link to the file itself).
func reach(pid int, name string, want fileID, fallback string) string {
	for _, p := range []string{name, procPath(pid, "root", name)} {
		if id, err := statID(p); err == nil && id == want {
			return p
		}
	}
	return fallback
}

// ProcessExecutable finds the executable process pid runs, as a path that
// reaches the running inode: its path when that is still the same file,
// the path under /proc/PID/root for a process in another mount namespace,
// and /proc/PID/exe itself when the file has been deleted or replaced
// since the process started.
func ProcessExecutable(pid int) (Location, error) {
	exe := procPath(pid, "exe")
	link, err := os.Readlink(exe)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(procPath(pid)); serr == nil {
				return Location{}, errorf(ErrProcess, "process %d has no executable (a kernel thread, or a zombie)", pid)
			}
		}
		return Location{}, procError(pid, exe, err)
	}
	want, err := statID(exe)
	if err != nil {
		return Location{}, procError(pid, exe, err)
	}
	name := strings.TrimSuffix(link, deletedSuffix)
	p := reach(pid, name, want, exe)
	return Location{Path: p, Name: name, Deleted: p == exe}, nil
}

// mapping is one file-backed mapping of /proc/PID/maps.
type mapping struct {
	Start, End uint64
	Dev        uint64 // unix.Mkdev(major, minor)
	Inode      uint64
	Path       string // as the process names it, without " (deleted)"
	Deleted    bool
}

// processMappings lists the distinct files process pid has mapped (the
// first mapping of each), in address order.
func processMappings(pid int) ([]mapping, error) {
	f := procPath(pid, "maps")
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, procError(pid, f, err)
	}
	return parseMaps(data), nil
}

func parseMaps(data []byte) []mapping {
	var out []mapping
	seen := map[fileID]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		// start-end perms offset major:minor inode path
		fields := strings.SplitN(line, " ", 6)
		if len(fields) < 6 {
			continue
		}
		path := strings.TrimLeft(fields[5], " ")
		if !strings.HasPrefix(path, "/") {
			continue // anonymous, [heap], [vdso], ...
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		maj, min, ok := strings.Cut(fields[3], ":")
		ma, err3 := strconv.ParseUint(maj, 16, 32)
		mi, err4 := strconv.ParseUint(min, 16, 32)
		ino, err5 := strconv.ParseUint(fields[4], 10, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || ino == 0 {
			continue
		}
		m := mapping{Start: start, End: end, Dev: unix.Mkdev(uint32(ma), uint32(mi)), Inode: ino}
		m.Path, m.Deleted = strings.CutSuffix(path, deletedSuffix)
		id := fileID{m.Dev, m.Inode}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, m)
	}
	return out
}

// mapFile is /proc/PID/map_files/START-END, a link to the mapped file
// itself (readable by root only).
func (m mapping) mapFile(pid int) string {
	return procPath(pid, "map_files", fmt.Sprintf("%x-%x", m.Start, m.End))
}

// identity is what a path must stat as to be this mapping's file: what the
// map_files link stats as when it is readable (this holds on overlayfs and
// btrfs, whose stat devices differ from the device maps shows), and maps'
// own device and inode otherwise.
func (m mapping) identity(pid int) fileID {
	if id, err := statID(m.mapFile(pid)); err == nil {
		return id
	}
	return fileID{m.Dev, m.Inode}
}

// location turns the mapping into a path that reaches its file from here.
func (m mapping) location(pid int) (Location, error) {
	want := m.identity(pid)
	fallback := m.mapFile(pid)
	p := reach(pid, m.Path, want, fallback)
	if p == fallback {
		if _, err := statID(fallback); err != nil {
			return Location{}, procError(pid, fmt.Sprintf("%s to reach its mapping of %s", fallback, m.Path), err)
		}
	}
	return Location{Path: p, Name: m.Path, Deleted: m.Deleted}, nil
}

// locateMapped finds the library named name (a name or a path) among the
// files process pid has mapped.
func locateMapped(name string, pid int) (Location, error) {
	maps, err := processMappings(pid)
	if err != nil {
		return Location{}, err
	}
	var libs []string // mapped file names, for suggestions
	for _, m := range maps {
		libs = append(libs, filepath.Base(m.Path))
	}
	if IsLibraryPath(name) {
		// The process names files by their resolved path (/usr/lib/...)
		// while people name them by a link (/lib/...): compare files.
		var ids []fileID
		if abs, err := filepath.Abs(name); err == nil {
			name = abs
		}
		for _, p := range []string{name, procPath(pid, "root", name)} {
			if id, err := statID(p); err == nil {
				ids = append(ids, id)
			}
		}
		for _, m := range maps {
			if m.Path == name {
				return m.location(pid)
			}
			id := m.identity(pid)
			for _, want := range ids {
				if id == want {
					return m.location(pid)
				}
			}
		}
		return Location{}, notMapped(pid, name, nil)
	}
	var exact []mapping
	var cands []candidate
	byPath := map[string]mapping{}
	for _, m := range maps {
		base := filepath.Base(m.Path)
		switch {
		case base == name:
			exact = append(exact, m)
		case matchesUnversioned(base, name):
			cands = append(cands, candidate{name: base, path: m.Path, id: fileID{m.Dev, m.Inode}})
			byPath[m.Path] = m
		}
	}
	if len(exact) > 0 {
		return exact[0].location(pid)
	}
	p, err := pickCandidate(name, cands, fmt.Sprintf("process %d", pid))
	if err != nil {
		return Location{}, err
	}
	if p != "" {
		return byPath[p].location(pid)
	}
	return Location{}, notMapped(pid, name, libs)
}

func notMapped(pid int, name string, mapped []string) error {
	msg := fmt.Sprintf("process %d does not map %s", pid, name)
	path := name
	if !IsLibraryPath(name) {
		if c, err := readLDCache(ldCachePath); err == nil {
			path, _ = c.lookup(name)
		} else {
			path = ""
		}
	}
	switch {
	case path != "":
		// A real library, just not loaded (yet).
		msg += fmt.Sprintf(" (not loaded yet? to time its calls once it is, name the library by its path, %s, as the binary to trace)", path)
	default:
		if s := suggestLibraries(name, mapped, 3); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, ", ") + "?)"
		}
	}
	return errorf(ErrNotMapped, "%s", msg)
}
