// Package otlptest is an OTLP metrics receiver for tests, over HTTP and
// gRPC on 127.0.0.1, which decodes what it is sent with the
// OpenTelemetry collector's pdata: what a real collector would make of
// it.
package otlptest

import (
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// Request is one push the receiver got.
type Request struct {
	Metrics pmetric.Metrics
	// Header holds the HTTP headers, or the gRPC metadata and
	// Grpc-Encoding, the compression.
	Header http.Header
}

// Receiver keeps every push it got.
type Receiver struct {
	mu       sync.Mutex
	requests []Request
}

func (r *Receiver) add(req Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
}

// Requests are the pushes so far.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Wait waits until done says yes to the pushes so far, and fails the test
// when it has not after limit, which only keeps a broken exporter from
// hanging the test.
func (r *Receiver) Wait(t testing.TB, limit time.Duration, what string, done func([]Request) bool) []Request {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		reqs := r.Requests()
		if done(reqs) {
			return reqs
		}
		if time.Now().After(deadline) {
			t.Fatalf("OTLP receiver: no %s after %s; %d pushes", what, limit, len(reqs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NewHTTP starts an OTLP/HTTP receiver (protobuf, gzip or not) on
// 127.0.0.1, stopped when the test ends, and returns it and its URL.
func NewHTTP(t testing.TB) (*Receiver, string) {
	r := &Receiver{}
	srv := httptest.NewServer(r.httpHandler())
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// NewHTTPS is NewHTTP over TLS, with a certificate of its own for
// 127.0.0.1: it returns the certificate too (PEM), for the client to
// trust.
func NewHTTPS(t testing.TB) (*Receiver, string, []byte) {
	r := &Receiver{}
	cert, certPEM := selfSigned(t)
	srv := httptest.NewUnstartedServer(r.httpHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // clients that do not trust it, on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return r, srv.URL, certPEM
}

func (r *Receiver) httpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/metrics" || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a POST of protobuf to /v1/metrics", http.StatusNotFound)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		er := pmetricotlp.NewExportRequest()
		if err := er.UnmarshalProto(data); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(Request{Metrics: er.Metrics(), Header: req.Header.Clone()})
		resp, _ := pmetricotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	})
}

// NewGRPC starts an OTLP/gRPC receiver on 127.0.0.1, stopped when the
// test ends, and returns it and its address.
func NewGRPC(t testing.TB) (*Receiver, string) {
	return newGRPC(t)
}

// NewGRPCS is NewGRPC over TLS, with a certificate of its own for
// 127.0.0.1: it returns the certificate too (PEM), for the client to
// trust.
func NewGRPCS(t testing.TB) (*Receiver, string, []byte) {
	cert, certPEM := selfSigned(t)
	r, addr := newGRPC(t, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	return r, addr, certPEM
}

func newGRPC(t testing.TB, opts ...grpc.ServerOption) (*Receiver, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{}
	s := grpc.NewServer(append(opts, grpc.StatsHandler(encodingHandler{}))...)
	pmetricotlp.RegisterGRPCServer(s, &grpcServer{r: r})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return r, ln.Addr().String()
}

type grpcServer struct {
	pmetricotlp.UnimplementedGRPCServer
	r *Receiver
}

func (g *grpcServer) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := http.Header{}
	for k, vs := range md {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if enc, _ := ctx.Value(encodingKey{}).(*string); enc != nil && *enc != "" {
		h.Set("Grpc-Encoding", *enc)
	}
	g.r.add(Request{Metrics: req.Metrics(), Header: h})
	return pmetricotlp.NewExportResponse(), nil
}

// encodingHandler tells Export the request's compression (grpc-encoding),
// which gRPC keeps out of the metadata.
type encodingHandler struct{}

type encodingKey struct{}

func (encodingHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, encodingKey{}, new(string))
}

func (encodingHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok {
		if enc, _ := ctx.Value(encodingKey{}).(*string); enc != nil {
			*enc = in.Compression
		}
	}
}

func (encodingHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (encodingHandler) HandleConn(context.Context, stats.ConnStats) {}

// Metric is the metric called name in md, and false when there is none.
// The agent sends one resource and one scope.
func Metric(md pmetric.Metrics, name string) (pmetric.Metric, bool) {
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() == name {
					return m, true
				}
			}
		}
	}
	return pmetric.Metric{}, false
}

// Attributes are a data point's attributes as strings.
func Attributes(attrs interface {
	AsRaw() map[string]any
}) map[string]string {
	out := map[string]string{}
	for k, v := range attrs.AsRaw() {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}

// selfSigned is a certificate for 127.0.0.1, signed by itself, and its
// PEM.
func selfSigned(t testing.TB) (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "otlptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
