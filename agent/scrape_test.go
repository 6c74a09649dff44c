package agent

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/report"
)

// benchSnapshots are what make bench's agent section traces: 5 files of
// 200 functions, each function called 4 times (1, 30, 1,000 and 30,000
// loop iterations) by each of 10 processes, all in one cgroup.
func benchSnapshots() []snapshot {
	var out []snapshot
	started := time.Unix(1_700_000_000, 0)
	for f := range 5 {
		exe := fmt.Sprintf("/opt/idle/bin/idle%d", f)
		r := &report.Report{OverheadCorrected: true}
		for fn := range 200 {
			h := report.NewHistogram()
			for p := range 10 {
				for _, ns := range []uint64{40, 900, 30_000, 900_000} {
					h.Record(ns + uint64(7*fn+p))
				}
			}
			r.Functions = append(r.Functions, report.FunctionStats{
				Function: fmt.Sprintf("main.work%03d", fn), Binary: exe, Hist: h, Cgroup: 1000,
			})
		}
		out = append(out, snapshot{target: Target{Name: fmt.Sprintf("idle%d", f)}, exe: exe, processes: 10, r: r, started: started})
	}
	return out
}

func benchAgent(testing.TB) (*Agent, []snapshot) {
	a := &Agent{log: slog.New(slog.DiscardHandler), cfg: &Config{MaxSeries: 100_000}, places: newPlaces("", nil), started: time.Now()}
	snaps := benchSnapshots()
	for _, sn := range snaps {
		for _, f := range sn.r.Functions {
			a.places.named[f.Cgroup] = where{container: fmt.Sprintf("c%d", f.Cgroup), pod: "pod", namespace: "ns"}
		}
	}
	return a, snaps
}

// A scrape of each endpoint, at rest (the same snapshots each time), from
// the snapshots on: what the agent does beyond reading its sessions.
func BenchmarkScrape(b *testing.B) {
	for _, c := range []struct {
		name, path, accept string
		cold               bool // every series had calls since the last scrape
	}{
		{"text", "/metrics", "text/plain;version=0.0.4", false},
		{"text-cold", "/metrics", "text/plain;version=0.0.4", true},
		{"protobuf-cold", "/metrics", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", true},
		{"protobuf", "/metrics", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", false},
		{"json", "/report.json", "", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			a, snaps := benchAgent(b)
			srv := httptest.NewServer(a.handler(func() []snapshot { return snaps }))
			defer srv.Close()
			var size int64
			for b.Loop() {
				if c.cold {
					a.dtos = dtoCache{}
				}
				req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
				if c.accept != "" {
					req.Header.Set("Accept", c.accept)
				}
				req.Header.Set("Accept-Encoding", "gzip")
				res, err := srv.Client().Transport.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if size, err = io.Copy(io.Discard, res.Body); err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d, %v", c.path, res.StatusCode, err)
				}
				res.Body.Close()
			}
			b.ReportMetric(float64(size)/1024, "KiB/scrape")
		})
	}
}
