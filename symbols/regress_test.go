package symbols

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// A symbol with several versions resolves to its default version (name@@V),
// the one programs call, not to an older one listed first.
func TestDefaultSymbolVersion(t *testing.T) {
	lib := buildC(t, "libver.so", "ver.c", "-O2", "-shared", "-fPIC", "-s",
		"-Wl,--version-script="+testdataPath(t, "ver.map"))
	out := tool(t, "readelf", "--dyn-syms", "-W", lib)
	var want uint64
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && f[7] == "vfunc@@VER_2" {
			want = parseHex(t, f[1])
		}
	}
	if want == 0 {
		t.Fatalf("readelf shows no vfunc@@VER_2:\n%s", out)
	}
	b := open(t, lib)
	fns, err := b.Match("vfunc")
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 1 || fns[0].Addr != want {
		t.Errorf("vfunc resolved to %+v, want one function at %#x (vfunc@@VER_2)", fns, want)
	}
}

// IFUNC symbols are resolvers, not the function: refused with the reason.
func TestIFUNCRefused(t *testing.T) {
	const libc = "/lib/x86_64-linux-gnu/libc.so.6"
	if _, err := os.Stat(libc); err != nil {
		t.Skip("no glibc here")
	}
	b := open(t, libc)
	fns, err := b.Match("memcpy")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Probes(&fns[0])
	var cannot *ErrCannotProbe
	if !errors.As(err, &cannot) || !strings.Contains(cannot.Reason, "IFUNC") {
		t.Errorf("memcpy: %v, want ErrCannotProbe naming the IFUNC", err)
	}
}

// Open neither reads nor writes the os.Stderr variable, so it can run
// beside a goroutine that writes to stderr or swaps it (ulat's calibration
// and libbpf's log callback print there while symbols load). Under -race,
// any access of Open's to os.Stderr is reported: delve makes its loggers
// from os.Stderr unless told otherwise, and Open once swapped it to silence
// delve. The binary has DWARF, so that delve reads it.
func TestOpenConcurrentStderr(t *testing.T) {
	bin := goNormal(t)
	stderr := os.Stderr
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			// A write of the variable, as a test that captures
			// stderr makes, and a read, as every print makes.
			os.Stderr = stderr
			os.Stderr.Write(nil)
		}
	}()
	var opens sync.WaitGroup
	for i := 0; i < 2; i++ {
		opens.Add(1)
		go func() {
			defer opens.Done()
			b, err := Open(bin)
			if err != nil {
				t.Error(err)
				return
			}
			b.Close()
		}()
	}
	opens.Wait()
	close(stop)
	<-done
}

// An assembly function and its register-ABI wrapper share a name; the name
// is listed once, so a call is timed once.
func TestGoNamesUnique(t *testing.T) {
	b := open(t, goNormal(t))
	seen := map[string]bool{}
	for _, f := range b.Functions() {
		if seen[f.Name] {
			t.Errorf("%s is listed twice", f.Name)
		}
		seen[f.Name] = true
	}
	if !seen["runtime.write"] {
		t.Errorf("runtime.write (assembly with an ABI wrapper) is missing")
	}
}
