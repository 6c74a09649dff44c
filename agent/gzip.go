package agent

import (
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// A scrape of a thousand histograms is megabytes of text, which gzip at
// its default level took a fifth of a scrape's CPU time to compress:
// the fastest level compresses such repetitive text nearly as well, in a
// fraction of the time. promhttp's level cannot be set, so the agent
// compresses its responses itself.

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
	return w
}}

// gzipped compresses h's responses when the request accepts gzip.
func gzipped(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
		if !acceptsGzip(r.Header.Values("Accept-Encoding")) {
			h.ServeHTTP(w, r)
			return
		}
		gz := gzipWriters.Get().(*gzip.Writer)
		gz.Reset(w)
		w.Header().Set("Content-Encoding", "gzip")
		h.ServeHTTP(gzipResponse{ResponseWriter: w, gz: gz}, r)
		_ = gz.Close() // a client gone: nothing to tell it
		gzipWriters.Put(gz)
	})
}

type gzipResponse struct {
	http.ResponseWriter
	gz *gzip.Writer
}

func (g gzipResponse) Write(p []byte) (int, error) { return g.gz.Write(p) }

// WriteHeader drops the length the handler may set, which is that of the
// uncompressed body.
func (g gzipResponse) WriteHeader(code int) {
	g.Header().Del("Content-Length")
	g.ResponseWriter.WriteHeader(code)
}

// acceptsGzip says whether Accept-Encoding values offer gzip (RFC 9110
// 12.5.3): named, or "*", with a q-value above 0.
func acceptsGzip(values []string) bool {
	offered, starOffered, named := false, false, false
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
						q = f
					}
				}
			}
			switch name = strings.ToLower(strings.TrimSpace(name)); name {
			case "gzip", "x-gzip":
				named, offered = true, q > 0
			case "*":
				starOffered = q > 0
			}
		}
	}
	if named {
		return offered
	}
	return starOffered
}
