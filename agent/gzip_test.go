package agent

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, c := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"identity"}, false},
		{[]string{"gzip;q=0"}, false},
		{[]string{"GZip; q=0.5"}, true},
		{[]string{"deflate, gzip;q=1.0, *;q=0.5"}, true}, // what Prometheus sends
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false}, // named wins over *
		{[]string{"br", "x-gzip"}, true},
		{[]string{"zstd, br"}, false},
	} {
		if got := acceptsGzip(c.header); got != c.want {
			t.Errorf("Accept-Encoding %q: acceptsGzip %v, want %v", c.header, got, c.want)
		}
	}
}

// A gzipped response decompresses to the handler's body, with no stale
// Content-Length; one not asked for compression is the body itself.
func TestGzipped(t *testing.T) {
	body := strings.Repeat("ulat_function_duration_seconds_bucket{function=\"main.work\"} 40\n", 1000)
	h := gzipped(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, body)
	}))
	for _, enc := range []string{"gzip", ""} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		got := rec.Body.String()
		if res.Header.Get("Content-Encoding") != enc {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", enc, res.Header.Get("Content-Encoding"))
		}
		if enc == "gzip" {
			if res.Header.Get("Content-Length") != "" {
				t.Errorf("gzipped response keeps the uncompressed Content-Length %q", res.Header.Get("Content-Length"))
			}
			zr, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Body.Len() > len(body)/10 {
				t.Errorf("%d repetitive bytes compressed to %d, want a tenth at most", len(body), rec.Body.Len())
			}
			got = string(b)
		}
		if got != body {
			t.Errorf("Accept-Encoding %q: body of %d bytes, want the handler's %d", enc, len(got), len(body))
		}
		if v := res.Header.Get("Vary"); v != "Accept-Encoding" {
			t.Errorf("Vary %q, want Accept-Encoding", v)
		}
	}
}
