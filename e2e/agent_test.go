package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ulat-dev/ulat/e2e/ulattest"
	"github.com/ulat-dev/ulat/report"
)

// runningAgent is a `ulat agent` started by a test.
type runningAgent struct {
	cmd  *exec.Cmd
	addr string
	log  ulattest.SyncBuffer
	done chan error
}

func (a *runningAgent) stderr() string { return a.log.String() }

// waitLog waits until the agent's log has n lines saying s. The limit
// only keeps a broken agent from hanging the test.
func (a *runningAgent) waitLog(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for strings.Count(a.stderr(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's log does not say %q %d times:\n%s", s, n, a.stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr is a local address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startAgent(t *testing.T, config string) *runningAgent {
	t.Helper()
	a := &runningAgent{done: make(chan error, 1)}
	a.cmd = exec.Command(ulatBin, "agent", "--config", config)
	a.cmd.Stderr = &a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		<-a.done
	})
	return a
}

// terminate sends the agent SIGTERM and waits for it to exit, with
// status 0.
func (a *runningAgent) terminate(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("agent after SIGTERM: %v\n%s", err, a.stderr())
		}
		a.done <- err // for the cleanup
	case <-time.After(time.Minute):
		t.Fatalf("agent still running a minute after SIGTERM")
	}
}

// get fetches path from the agent, with the Accept header given.
func (a *runningAgent) get(t *testing.T, addr, path, accept string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, a.stderr())
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return resp
}

// scrape reads /metrics in the format accept asks for: the histogram
// series of ulat_function_duration_seconds by function, and the family of
// each other name.
func (a *runningAgent) scrape(t *testing.T, addr, accept string) (map[string]*dto.Metric, map[string]*dto.MetricFamily) {
	t.Helper()
	resp := a.get(t, addr, "/metrics", accept)
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	byFn, families := map[string]*dto.Metric{}, map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		families[mf.GetName()] = &mf
		if mf.GetName() != "ulat_function_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "function" {
					byFn[l.GetValue()] = m
				}
			}
		}
	}
	return byFn, families
}

// scrapeCounts scrapes until each function's series counts want[fn]
// calls: they are streamed to the agent, which counts them as it reads
// them. The limit only keeps a broken agent from hanging the test.
func (a *runningAgent) scrapeCounts(t *testing.T, addr, accept string, want map[string]uint64) (map[string]*dto.Metric, map[string]*dto.MetricFamily) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		byFn, families := a.scrape(t, addr, accept)
		got := map[string]uint64{}
		for fn := range want {
			got[fn] = byFn[fn].GetHistogram().GetSampleCount()
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			return byFn, families
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// nativeCount is the calls a native histogram's buckets hold.
func nativeCount(h *dto.Histogram) uint64 {
	n, c := h.GetZeroCount(), int64(0)
	for _, d := range h.GetPositiveDelta() {
		c += d
		n += uint64(c)
	}
	return n
}

// The agent traces a program's processes that start after it, serves
// their calls to Prometheus (text and protobuf, classic and native
// buckets, exact counts) and as a JSON report, picks up a binary replaced
// on disk, keeps its config when a reload is bad, and ends on SIGTERM.
func TestAgent(t *testing.T) {
	requireRoot(t)
	// A copy of its own: nobody else's processes run this file.
	dir := t.TempDir()
	bin := filepath.Join(dir, "ctarget")
	copyFile(t, cTarget(t, true), bin)
	addr := freeAddr(t)
	config := filepath.Join(dir, "agent.yaml")
	writeConfig := func(team string) {
		y := fmt.Sprintf("listen: %s\ntargets:\n  - name: ct\n    exe: %s/ct*\n    functions: [work, fast]\n    labels: {team: %s}\n", addr, dir, team)
		if err := os.WriteFile(config, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("perf")

	check, err := exec.Command(ulatBin, "agent", "--config", config, "--check").CombinedOutput()
	if err != nil || !strings.Contains(string(check), "valid, 1 target") {
		t.Fatalf("--check: %v\n%s", err, check)
	}

	a := startAgent(t, config)
	a.waitLog(t, "timing 2 functions in "+bin, 1)
	// Processes started after the agent, one after the other: 2 threads × 5
	// calls of work (1 ms) and 10× as many of fast, each.
	for range 2 {
		if out, err := exec.Command(bin, "2", "5", "1000").CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, out)
		}
	}
	if body, _ := io.ReadAll(a.get(t, addr, "/healthz", "").Body); string(body) != "ok\n" {
		t.Errorf("/healthz: %q", body)
	}

	text, families := a.scrapeCounts(t, addr, "text/plain", map[string]uint64{"work": 20, "fast": 200})
	for fn, want := range map[string]uint64{"work": 20, "fast": 200} {
		m := text[fn]
		if m == nil {
			t.Fatalf("no series of %s in /metrics: %v", fn, families)
		}
		if h := m.GetHistogram(); h.GetSampleCount() != want {
			t.Errorf("%s: %d calls, want %d", fn, h.GetSampleCount(), want)
		}
		if label(m, "target") != "ct" || label(m, "team") != "perf" || label(m, "binary") != bin {
			t.Errorf("%s: labels %v", fn, m.GetLabel())
		}
	}
	// work sleeps 1 ms: none at or below 2^-10 s (0.98 ms), all below 32 s.
	for _, b := range text["work"].GetHistogram().GetBucket() {
		if (b.GetUpperBound() <= 0x1p-10 && b.GetCumulativeCount() != 0) || (b.GetUpperBound() >= 32 && b.GetCumulativeCount() != 20) {
			t.Errorf("work: %d calls at or below %g s", b.GetCumulativeCount(), b.GetUpperBound())
		}
	}
	for _, name := range []string{"ulat_dropped_events_total", "ulat_unpaired_exits_total", "ulat_calls_not_returned_total", "ulat_series_over_limit"} {
		if families[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}
	proto, _ := a.scrape(t, addr, `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`)
	for fn, want := range map[string]uint64{"work": 20, "fast": 200} {
		h := proto[fn].GetHistogram()
		if h.GetSchema() != 6 || nativeCount(h) != want || h.GetSampleCount() != want {
			t.Errorf("%s (protobuf): schema %d, %d calls in native buckets, count %d; want 6, %d, %d", fn, h.GetSchema(), nativeCount(h), h.GetSampleCount(), want, want)
		}
	}

	r, err := report.ReadJSON(a.get(t, addr, "/report.json", "").Body)
	if err != nil {
		t.Fatal(err)
	}
	for fn, want := range map[string]uint64{"work": 20, "fast": 200} {
		if f := reportFn(r, fn); f == nil || f.Count != want {
			t.Errorf("/report.json: %s: %+v, want %d calls", fn, f, want)
		}
	}
	if len(r.Binaries) != 1 || r.Binaries[0].Path != bin || r.Aggregation == "" || r.UlatVersion == "" {
		t.Errorf("/report.json says it measured %+v, aggregation %q, ulat %q: want %s, an aggregation, a version", r.Binaries, r.Aggregation, r.UlatVersion, bin)
	}

	// An upgrade: a new file at the path.
	next := filepath.Join(t.TempDir(), "ctarget")
	copyFile(t, cTarget(t, true), next)
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, bin+" was replaced: tracing the new file", 1)
	a.waitLog(t, "timing 2 functions in "+bin, 2)
	if out, err := exec.Command(bin, "1", "3", "1000").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	text, _ = a.scrapeCounts(t, addr, "text/plain", map[string]uint64{"work": 3})
	if n := text["work"].GetHistogram().GetSampleCount(); n != 3 {
		t.Errorf("after the upgrade: %d calls of work, want the new file's 3", n)
	}

	// A bad config is not taken; a good one is.
	if err := os.WriteFile(config, []byte("targets: [{name: x}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, "config not reloaded, the previous one goes on", 1)
	writeConfig("latency")
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, "config reloaded: 1 targets", 1)
	a.waitLog(t, "timing 2 functions in "+bin, 3)
	if out, err := exec.Command(bin, "1", "2", "1000").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	text, _ = a.scrapeCounts(t, addr, "text/plain", map[string]uint64{"work": 2})
	if m := text["work"]; label(m, "team") != "latency" || m.GetHistogram().GetSampleCount() != 2 {
		t.Errorf("after the reload: team %q, %d calls of work; want latency and 2", label(m, "team"), m.GetHistogram().GetSampleCount())
	}

	a.terminate(t)
}

func reportFn(r *report.JSONReport, name string) *report.JSONFunction {
	for i := range r.Functions {
		if r.Functions[i].Function == name {
			return &r.Functions[i]
		}
	}
	return nil
}

// A config with a mistake is refused with the reason and exit status 2.
func TestAgentBadConfig(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "agent.yaml")
	os.WriteFile(config, []byte("targets:\n  - name: a\n    exe: /bin/true\n    functoins: [f]\n"), 0o644)
	for _, args := range [][]string{{"--check"}, {}} {
		out, err := exec.Command(ulatBin, append([]string{"agent", "--config", config}, args...)...).CombinedOutput()
		if code := exitCode(t, err); code != 2 || !strings.Contains(string(out), "field functoins not found") {
			t.Errorf("agent %v: exit %d, %q; want 2 and the unknown field", args, code, out)
		}
	}
	out, err := exec.Command(ulatBin, "agent", "--config", filepath.Join(dir, "none.yaml")).CombinedOutput()
	if code := exitCode(t, err); code != 2 || !strings.Contains(string(out), "no such file") {
		t.Errorf("missing config: exit %d, %q", code, out)
	}
}
