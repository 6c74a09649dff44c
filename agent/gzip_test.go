package agent

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
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

func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 64, 4321, 70_000} {
		text := make([]byte, n)
		for i := range text {
			text[i] = byte(rng.Uint32())
		}
		for _, cut := range []int{0, n / 3, n} {
			a, b := text[:cut], text[cut:]
			got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b)))
			if want := crc32.ChecksumIEEE(text); got != want {
				t.Errorf("%d bytes cut at %d: %08x, want %08x", n, cut, got, want)
			}
		}
	}
}

// Text written and pieces deflated already, in any order, make one gzip
// member that decompresses to all of it, its CRC and length right (the
// reader checks them).
func TestGzipStreamTakesDeflated(t *testing.T) {
	piece := func(i int) string {
		return strings.Repeat(fmt.Sprintf("ulat_function_duration_seconds_bucket{function=\"main.work%03d\"} %d\n", i, i*7), 28)
	}
	for _, order := range []string{"", "w", "d", "wd", "dw", "ddd", "wdwdw", "dwwdd", "wwdd"} {
		var out bytes.Buffer
		z := newGzipStream()
		z.Reset(&out)
		var want strings.Builder
		for i, kind := range order {
			text := piece(i)
			want.WriteString(text)
			var err error
			if kind == 'w' {
				_, err = io.WriteString(z, text)
			} else {
				err = z.writeDeflated(deflate([]byte(text)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(&out)
		if err != nil {
			t.Fatalf("%q: %v", order, err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%q: %v", order, err)
		}
		if string(got) != want.String() {
			t.Errorf("%q: %d bytes, want %d", order, len(got), want.Len())
		}
		if rest := out.Len(); rest != 0 {
			t.Errorf("%q: %d bytes after the member", order, rest)
		}
	}
}
