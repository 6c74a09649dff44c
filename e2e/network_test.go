package e2e

import (
	"bufio"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Goroutines that park on network I/O in the middle of a traced call: the
// bundled demo server's handlers and the load generator's http.Client.Get,
// whose counts both programs report themselves.
func TestTraceNetworkIO(t *testing.T) {
	requireRoot(t)
	bin := build(t, "ulat-demo", "go", "build", "-o", "$OUT", "../cmd/ulat-demo")
	tr := startTrace(t, bin, "main.(*Server).handle*", "net/http.(*Client).Get")

	server := exec.Command(bin, "serve", "-addr", "127.0.0.1:0")
	serr, err := server.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer server.Process.Kill()
	lines := bufio.NewScanner(serr)
	var addr string
	if lines.Scan() {
		if m := regexp.MustCompile(`http://(\S+) `).FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("server did not say where it listens: %q", lines.Text())
	}
	load, err := exec.Command(bin, "load", "-addr", addr, "-duration", "2s", "-concurrency", "8").CombinedOutput()
	if err != nil {
		t.Fatalf("load: %v\n%s", err, load)
	}
	var sent, failed uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(load)), "ulat-demo: sent %d requests (%d failed)", &sent, &failed); err != nil {
		t.Fatalf("load output %q: %v", load, err)
	}
	server.Process.Signal(syscall.SIGTERM)
	var served uint64
	for lines.Scan() {
		if s, ok := strings.CutPrefix(lines.Text(), "ulat-demo: served "); ok {
			served, _ = strconv.ParseUint(strings.Fields(s)[0], 10, 64)
		}
	}
	server.Wait()
	time.Sleep(100 * time.Millisecond)
	r := tr.Stop()

	if sent < 100 || failed != 0 || served != sent {
		t.Fatalf("demo sent %d (%d failed), served %d: want a clean run", sent, failed, served)
	}
	wantCount(t, r, "net/http.(*Client).Get", sent+failed)
	var handled uint64
	for _, f := range r.Functions {
		if strings.HasPrefix(f.Function, "main.(*Server).handle") {
			handled += f.Count
		}
	}
	if handled != served {
		t.Errorf("handlers counted %d calls, the server served %d requests", handled, served)
	}
	wantNoLoss(t, r)
}
