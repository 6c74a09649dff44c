package e2e

import (
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/ulat-dev/ulat/internal/otlptest"
)

// durationPoints are the ulat.function.duration points of one push, by
// function.
func durationPoints(md pmetric.Metrics) map[string]pmetric.ExponentialHistogramDataPoint {
	out := map[string]pmetric.ExponentialHistogramDataPoint{}
	m, ok := otlptest.Metric(md, "ulat.function.duration")
	if !ok || m.Type() != pmetric.MetricTypeExponentialHistogram {
		return out
	}
	for _, p := range m.ExponentialHistogram().DataPoints().All() {
		out[otlptest.Attributes(p.Attributes())["function"]] = p
	}
	return out
}

// pushed waits until a push has exactly the given calls of each function.
func pushed(t *testing.T, recv *otlptest.Receiver, want map[string]uint64) map[string]pmetric.ExponentialHistogramDataPoint {
	t.Helper()
	reqs := recv.Wait(t, 2*time.Minute, fmt.Sprintf("push with %v calls", want), func(reqs []otlptest.Request) bool {
		return len(reqs) > 0 && counts(reqs[len(reqs)-1]) == fmt.Sprint(want)
	})
	return durationPoints(reqs[len(reqs)-1].Metrics)
}

func counts(r otlptest.Request) string {
	got := map[string]uint64{}
	for fn, p := range durationPoints(r.Metrics) {
		got[fn] = p.Count()
	}
	return fmt.Sprint(got)
}

// The agent pushes its series over OTLP as the config says: processes
// started after it, counted exactly in exponential histograms with the
// series' attributes; a reload that changes the otlp section moves the
// push to the new endpoint (here gRPC), and SIGTERM pushes once more.
func TestAgentOTLP(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "ctarget")
	copyFile(t, cTarget(t, true), bin)
	httpRecv, httpURL := otlptest.NewHTTP(t)
	grpcRecv, grpcAddr := otlptest.NewGRPC(t)
	config := filepath.Join(dir, "agent.yaml")
	addr := freeAddr(t)
	writeConfig := func(otlp string) {
		y := fmt.Sprintf("listen: %s\ntargets:\n  - name: ct\n    exe: %s/ct*\n    functions: [work, fast]\n    labels: {team: perf}\notlp: %s\n", addr, dir, otlp)
		if err := os.WriteFile(config, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(fmt.Sprintf("{endpoint: '%s', interval: 1s, headers: {authorization: Bearer e2e}}", httpURL))
	check, err := exec.Command(ulatBin, "agent", "--config", config, "--check").CombinedOutput()
	if err != nil || !strings.Contains(string(check), "valid, 1 target, OTLP push to "+httpURL+" every 1s") {
		t.Fatalf("--check: %v\n%s", err, check)
	}

	a := startAgent(t, config)
	a.waitLog(t, "pushing OTLP metrics to "+httpURL+" every 1s", 1)
	a.waitLog(t, "timing 2 functions in "+bin, 1)
	// A process started after the agent: 2 threads × 5 calls of work (1
	// ms) and 10× as many of fast.
	if out, err := exec.Command(bin, "2", "5", "1000").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	points := pushed(t, httpRecv, map[string]uint64{"work": 10, "fast": 100})
	prom, _ := a.scrapeCounts(t, addr, "text/plain", map[string]uint64{"work": 10, "fast": 100})
	for fn, p := range points {
		attrs := otlptest.Attributes(p.Attributes())
		if attrs["target"] != "ct" || attrs["binary"] != bin || attrs["team"] != "perf" || attrs["function"] != fn {
			t.Errorf("%s: attributes %v", fn, attrs)
		}
		// The same as /metrics' labels, but for those with no value
		// (the container, pod and namespace of a process in none).
		labels := map[string]string{}
		for _, l := range prom[fn].GetLabel() {
			if l.GetValue() != "" {
				labels[l.GetName()] = l.GetValue()
			}
		}
		if !maps.Equal(attrs, labels) {
			t.Errorf("%s: attributes %v, /metrics' labels %v", fn, attrs, labels)
		}
		var inBuckets uint64
		for _, c := range p.Positive().BucketCounts().All() {
			inBuckets += c
		}
		if p.Scale() != 6 || inBuckets+p.ZeroCount() != p.Count() || !p.HasMin() || !p.HasMax() || p.Sum() < p.Min()*float64(p.Count()) {
			t.Errorf("%s: scale %d, %d calls in buckets + %d zero, count %d, min %v, max %v, sum %v", fn, p.Scale(), inBuckets, p.ZeroCount(), p.Count(), p.Min(), p.Max(), p.Sum())
		}
	}
	// work sleeps 1 ms: all its calls above 2^-10 s (0.98 ms), so in
	// buckets from -640 on (bucket k holds (2^(k/64), 2^((k+1)/64)] s).
	if w := points["work"]; w.Positive().Offset() < -640 || w.Min() <= math.Exp2(-10) {
		t.Errorf("work: buckets from %d, min %v s; want from -640 on, above 2^-10 s", w.Positive().Offset(), w.Min())
	}
	last := httpRecv.Requests()[len(httpRecv.Requests())-1]
	res := otlptest.Attributes(last.Metrics.ResourceMetrics().At(0).Resource().Attributes())
	host, _ := os.Hostname()
	if res["service.name"] != "ulat-agent" || res["host.name"] != host || res["service.version"] == "" {
		t.Errorf("resource %v", res)
	}
	if last.Header.Get("Authorization") != "Bearer e2e" {
		t.Errorf("authorization header %q", last.Header.Get("Authorization"))
	}

	// A reload that changes the otlp section: the push moves to gRPC,
	// every hour, so that only the last push, on SIGTERM, reaches it.
	writeConfig(fmt.Sprintf("{endpoint: 'grpc://%s', interval: 1h}", grpcAddr))
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLog(t, "OTLP push to "+httpURL+" stopped", 1)
	a.waitLog(t, "pushing OTLP metrics to grpc://"+grpcAddr+" every 1h0m0s", 1)
	a.waitLog(t, "timing 2 functions in "+bin, 2)
	httpPushes := len(httpRecv.Requests())
	if out, err := exec.Command(bin, "1", "3", "1000").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	// Calls are streamed to the agent: once /metrics counts them, so
	// does the last push.
	a.scrapeCounts(t, addr, "text/plain", map[string]uint64{"work": 3, "fast": 30})
	if n := len(grpcRecv.Requests()); n != 0 {
		t.Errorf("%d pushes to gRPC before SIGTERM, want none (every hour)", n)
	}
	a.terminate(t)
	reqs := grpcRecv.Requests()
	if len(reqs) != 1 || counts(reqs[0]) != fmt.Sprint(map[string]uint64{"work": 3, "fast": 30}) {
		got := "none"
		if len(reqs) > 0 {
			got = counts(reqs[len(reqs)-1])
		}
		t.Errorf("gRPC: %d pushes, the last with %s calls; want 1, with the new sessions' 3 of work and 30 of fast\n%s", len(reqs), got, a.stderr())
	}
	if n := len(httpRecv.Requests()); n != httpPushes {
		t.Errorf("%d pushes over HTTP after the reload moved the push to gRPC", n-httpPushes)
	}
}

// A bad otlp section is refused by --check and by the agent, with where
// and what, exit status 2.
func TestAgentOTLPBadConfig(t *testing.T) {
	config := filepath.Join(t.TempDir(), "agent.yaml")
	for otlp, want := range map[string]string{
		"{endpoint: '127.0.0.1:4318'}":                        `otlp: endpoint "127.0.0.1:4318"`,
		"{endpoint: 'http://127.0.0.1:4318', interval: 10ms}": "otlp: interval 10ms: want at least 1s",
		"{endpoint: 'grpc://127.0.0.1'}":                      "no port",
		"{endpoint: 'http://127.0.0.1:4318', tls: {}}":        "otlp: tls is for https:// and grpcs:// endpoints",
		"{endpont: 'http://127.0.0.1:4318'}":                  "field endpont not found",
	} {
		os.WriteFile(config, []byte("targets: [{name: a, exe: /bin/true, functions: [f]}]\notlp: "+otlp+"\n"), 0o644)
		for _, args := range [][]string{{"--check"}, {}} {
			out, err := exec.Command(ulatBin, append([]string{"agent", "--config", config}, args...)...).CombinedOutput()
			if code := exitCode(t, err); code != 2 || !strings.Contains(string(out), want) {
				t.Errorf("otlp: %s, agent %v: exit %d, %q; want 2 and %q", otlp, args, code, out, want)
			}
		}
	}
}
