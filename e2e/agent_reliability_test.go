package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The agent under load: killed (SIGKILL, its probes left for the kernel to
// remove) and started again while a Go program calls traced functions on
// four goroutines as fast as it can; the program runs on and every result
// it checks is right. A target whose pattern matches nothing is reported
// and the other traced; past max_series, series are counted, not served.
func TestAgentRestartedUnderLoad(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "goloop")
	copyFile(t, build(t, "goloop", "go", "build", "-o", "$OUT", "./testdata/goloop"), bin)
	addr := freeAddr(t)
	config := filepath.Join(dir, "agent.yaml")
	y := fmt.Sprintf(`listen: %s
max_series: 1
targets:
  - name: bad
    exe: %s
    functions: [main.nosuch]
  - name: loop
    exe: %s
    functions: [main.work, main.square]
`, addr, bin, bin)
	if err := os.WriteFile(config, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, config)
	a.waitLog(t, "timing 2 functions in "+bin, 1)
	if !strings.Contains(a.stderr(), `target bad: `+bin+` not traced: no function matches \"main.nosuch\"`) {
		t.Errorf("no clear word of the target whose pattern matches nothing:\n%s", a.stderr())
	}

	loop := exec.Command(bin, "4")
	stdin, err := loop.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := loop.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loop.Process.Kill(); loop.Wait() })
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "running\n" {
		t.Fatalf("goloop: %q", line)
	}
	// Calls counted: the first series in order (main.square; main.work is
	// past max_series).
	counted := func(a *runningAgent, atLeast uint64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			byFn, families := a.scrape(t, addr, "text/plain")
			if byFn["main.work"] != nil {
				t.Fatalf("main.work served past max_series 1")
			}
			over := families["ulat_series_over_limit"].GetMetric()
			if n := byFn["main.square"].GetHistogram().GetSampleCount(); n >= atLeast && len(over) == 1 && over[0].GetGauge().GetValue() == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %d calls of main.square counted, or no series over the limit:\n%s", atLeast, a.stderr())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	counted(a, 10000)
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	a.done <- nil // for the cleanup

	again := startAgent(t, config)
	again.waitLog(t, "timing 2 functions in "+bin, 1)
	counted(again, 10000)
	stdin.Close()
	line, _ := out.ReadString('\n')
	if err := loop.Wait(); err != nil || !strings.HasSuffix(line, " ok\n") {
		t.Fatalf("goloop after two agents came and went: %v, %q", err, line)
	}
}
