package agent

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
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

var gzipStreams = sync.Pool{New: func() any { return newGzipStream() }}

func newGzipStream() *gzipStream {
	return &gzipStream{w: bufio.NewWriterSize(nil, 64<<10), fw: newFlateWriter()}
}

var flateWriters = sync.Pool{New: func() any { return newFlateWriter() }}

func newFlateWriter() *flate.Writer {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed) // a valid level: no error
	return fw
}

// gzipped compresses h's responses when the request accepts gzip.
func gzipped(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
		if !acceptsGzip(r.Header.Values("Accept-Encoding")) {
			h.ServeHTTP(w, r)
			return
		}
		z := gzipStreams.Get().(*gzipStream)
		z.Reset(w)
		w.Header().Set("Content-Encoding", "gzip")
		h.ServeHTTP(gzipResponse{ResponseWriter: w, z: z}, r)
		_ = z.Close() // a client gone: nothing to tell it
		gzipStreams.Put(z)
	})
}

type gzipResponse struct {
	http.ResponseWriter
	z *gzipStream
}

func (g gzipResponse) Write(p []byte) (int, error) { return g.z.Write(p) }

func (g gzipResponse) writeDeflated(d deflated) error { return g.z.writeDeflated(d) }

// WriteHeader drops the length the handler may set, which is that of the
// uncompressed body.
func (g gzipResponse) WriteHeader(code int) {
	g.Header().Del("Content-Length")
	g.ResponseWriter.WriteHeader(code)
}

// deflatedWriter takes text compressed already, as well as text to
// compress (Write): a text scrape's series that had no call since the
// last (most, at rest) are written as compressed then.
type deflatedWriter interface {
	io.Writer
	writeDeflated(deflated) error
}

// deflated is text compressed on its own: deflate blocks, none of them
// the last, that refer to nothing before them, ending on a byte, so that
// such pieces make a deflate stream in any order.
type deflated struct {
	data  []byte
	crc   uint32 // of the text
	size  uint32 // the text's length
	shift uint32 // crc32Shift(size)
}

func deflate(text []byte) deflated {
	fw := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(fw)
	var b bytes.Buffer
	fw.Reset(&b)
	fw.Write(text) // into memory: no error
	fw.Flush()     // a sync flush: the end of the blocks, on a byte
	return deflated{bytes.Clone(b.Bytes()), crc32.ChecksumIEEE(text), uint32(len(text)), crc32Shift(int64(len(text)))}
}

// gzipStream writes a gzip member (RFC 1952) as compress/gzip does at
// its fastest level, and takes pieces deflated already besides.
type gzipStream struct {
	w       *bufio.Writer // pieces are small: a write each to the response was a fifth of a scrape
	fw      *flate.Writer
	crc     uint32
	size    uint32
	err     error
	started bool // the header is written
	pending bool // fw has text since it was last reset
}

// gzipHeader is compress/gzip's at its fastest level: deflate, no name
// nor time, an unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}

func (z *gzipStream) Reset(w io.Writer) {
	z.w.Reset(w)
	*z = gzipStream{w: z.w, fw: z.fw}
	z.fw.Reset(z.w)
}

func (z *gzipStream) start() {
	if !z.started {
		z.started = true
		_, z.err = z.w.Write(gzipHeader)
	}
}

func (z *gzipStream) Write(p []byte) (int, error) {
	z.start()
	if z.err != nil {
		return 0, z.err
	}
	if !z.pending {
		// Nothing before this refers to what was written since the last
		// reset, which fw did not see.
		z.fw.Reset(z.w)
		z.pending = true
	}
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(len(p))
	var n int
	n, z.err = z.fw.Write(p)
	return n, z.err
}

func (z *gzipStream) writeDeflated(d deflated) error {
	z.start()
	if z.err == nil && z.pending {
		z.err = z.fw.Flush()
		z.pending = false
	}
	if z.err != nil {
		return z.err
	}
	_, z.err = z.w.Write(d.data)
	z.crc = multModP(d.shift, z.crc) ^ d.crc
	z.size += d.size
	return z.err
}

// Close writes the last block and the trailer.
func (z *gzipStream) Close() error {
	z.start()
	if z.err != nil {
		return z.err
	}
	if !z.pending {
		z.fw.Reset(z.w) // the last block is empty
	}
	if z.err = z.fw.Close(); z.err != nil {
		return z.err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], z.crc)
	binary.LittleEndian.PutUint32(trailer[4:], z.size)
	if _, z.err = z.w.Write(trailer[:]); z.err == nil {
		z.err = z.w.Flush()
	}
	z.w.Reset(nil) // not to hold the response while pooled
	return z.err
}

// crc32Combine is the IEEE CRC-32 of a text of CRC crc1 followed by one
// of CRC crc2 and length len2, as zlib's crc32_combine computes it: crc1
// times x^(8*len2), modulo the polynomial, plus crc2.
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	return multModP(crc32Shift(len2), crc1) ^ crc2
}

// crc32Shift is x^(8*n) modulo the CRC polynomial: the product, for each
// bit k of 8*n, of x^(2^k).
func crc32Shift(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n > 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = multModP(x2n[k&31], p)
		}
	}
	return p
}

// x2n[k] is x^(2^k) modulo the CRC polynomial, reflected.
var x2n = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for k := 1; k < 32; k++ {
		p = multModP(p, p)
		t[k] = p
	}
	return t
}()

// multModP is a(x)*b(x) modulo the CRC polynomial, in zlib's reflected
// bit order; a is not zero.
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; ; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32.IEEE
		} else {
			b >>= 1
		}
	}
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
