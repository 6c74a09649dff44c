package agent

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/internal/otlptest"
)

const fineTargets = "targets: [{name: a, exe: /bin/a, functions: [f]}]\n"

func TestParseOTLP(t *testing.T) {
	cfg, err := Parse([]byte(fineTargets))
	if err != nil || cfg.OTLP != nil {
		t.Fatalf("no otlp section: %+v, %v; want none", cfg.OTLP, err)
	}
	cfg, err = Parse([]byte(fineTargets + "otlp: {endpoint: 'http://127.0.0.1:4318'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.OTLP; o.Interval != DefaultOTLPInterval || o.Timeout != DefaultOTLPTimeout || o.Endpoint != "http://127.0.0.1:4318" {
		t.Errorf("defaults: %+v", o)
	}
	cfg, err = Parse([]byte(fineTargets + `otlp:
  endpoint: grpcs://collector.example:4317
  interval: 15s
  timeout: 3s
  headers: {authorization: "Bearer x"}
  compression: gzip
  tls: {insecure_skip_verify: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.OTLP; o.Interval != 15*time.Second || o.Timeout != 3*time.Second || o.Headers["authorization"] != "Bearer x" || o.Compression != "gzip" || !o.TLS.InsecureSkipVerify {
		t.Errorf("otlp %+v", o)
	}
}

// Every mistake in the otlp section is ErrConfig, saying where and what.
func TestParseOTLPErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	for _, c := range []struct{ name, otlp, want string }{
		{"unknown field", "{endpoint: 'http://a:1', intervl: 1s}", "field intervl not found"},
		{"no endpoint", "{interval: 10s}", "otlp: no endpoint"},
		{"empty section", "{}", "otlp: no endpoint"},
		{"no scheme", "{endpoint: '127.0.0.1:4318'}", `otlp: endpoint "127.0.0.1:4318"`},
		{"bad scheme", "{endpoint: 'ftp://a:1'}", `scheme "ftp": want http(s)://host[:port][/path] or grpc(s)://host:port`},
		{"no host", "{endpoint: 'http://:4318'}", "no host"},
		{"bad port", "{endpoint: 'http://a:99999'}", "port 99999: want 1 to 65535"},
		{"port 0", "{endpoint: 'http://a:0'}", "port 0: want 1 to 65535"},
		{"grpc without port", "{endpoint: 'grpc://a'}", "no port"},
		{"grpc with path", "{endpoint: 'grpc://a:4317/v1/metrics'}", "gRPC has no path"},
		{"query", "{endpoint: 'http://a:1/v1/metrics?x=1'}", "no user, query or fragment"},
		{"user", "{endpoint: 'http://u:p@a:1'}", "no user, query or fragment"},
		{"interval not a duration", "{endpoint: 'http://a:1', interval: ten}", "cannot unmarshal !!str `ten` into time.Duration"},
		{"interval a number", "{endpoint: 'http://a:1', interval: 10}", "cannot unmarshal !!int `10` into time.Duration"},
		{"short interval", "{endpoint: 'http://a:1', interval: 10ms}", "otlp: interval 10ms: want at least 1s"},
		{"negative interval", "{endpoint: 'http://a:1', interval: -10s}", "otlp: interval -10s"},
		{"negative timeout", "{endpoint: 'http://a:1', timeout: -1s}", "otlp: timeout -1s: must be positive"},
		{"compression", "{endpoint: 'http://a:1', compression: zstd}", `otlp: compression "zstd": want gzip or none`},
		{"header name", "{endpoint: 'http://a:1', headers: {'a b': x}}", `otlp: header "a b": not a header name`},
		{"header value", "{endpoint: 'http://a:1', headers: {a: \"x\\ny\"}}", `otlp: header "a": its value has a line break`},
		{"tls without TLS", "{endpoint: 'http://a:1', tls: {insecure_skip_verify: true}}", "otlp: tls is for https:// and grpcs:// endpoints, not http://"},
		{"tls unknown field", "{endpoint: 'https://a:1', tls: {ca: /x}}", "field ca not found"},
		{"no ca file", "{endpoint: 'https://a:1', tls: {ca_file: " + dir + "/none.pem}}", "otlp: tls: ca_file: open " + dir + "/none.pem: no such file"},
		{"ca not PEM", "{endpoint: 'https://a:1', tls: {ca_file: " + notPEM + "}}", "no PEM certificate in it"},
		{"cert without key", "{endpoint: 'grpcs://a:1', tls: {cert_file: " + notPEM + "}}", "cert_file and key_file go together"},
		{"bad key pair", "{endpoint: 'grpcs://a:1', tls: {cert_file: " + notPEM + ", key_file: " + notPEM + "}}", "otlp: tls: cert_file " + notPEM},
	} {
		_, err := Parse([]byte(fineTargets + "otlp: " + c.otlp + "\n"))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrConfig saying %q", c.name, err, c.want)
		}
	}
}

// https:// and grpcs:// endpoints are verified with the config's CA file.
func TestOTLPPushTLS(t *testing.T) {
	for _, grpc := range []bool{false, true} {
		var recv *otlptest.Receiver
		var endpoint string
		var ca []byte
		if grpc {
			var addr string
			recv, addr, ca = otlptest.NewGRPCS(t)
			endpoint = "grpcs://" + addr
		} else {
			recv, endpoint, ca = otlptest.NewHTTPS(t)
		}
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, ca, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse([]byte(fineTargets + "otlp: {endpoint: '" + endpoint + "', interval: 1h, tls: {ca_file: " + caFile + "}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		var log syncBuffer
		started := time.Now().Truncate(time.Microsecond)
		p, err := startOTLP(*cfg.OTLP, otlpProducer{series: testSeries(started), version: "v-test", started: started}, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		p.stop()
		if reqs := recv.Requests(); len(reqs) != 1 {
			t.Errorf("%s: %d pushes, want 1; log:\n%s", endpoint, len(reqs), log.String())
		} else {
			checkPush(t, reqs[0].Metrics, started)
		}

		// Without the CA file, the receiver's certificate is not trusted.
		cfg.OTLP.TLS = nil
		cfg.OTLP.Timeout = time.Second // gRPC retries until then
		p, err = startOTLP(*cfg.OTLP, otlpProducer{series: testSeries(started), version: "v-test", started: started}, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		p.stop()
		if n := len(recv.Requests()); n != 1 || !strings.Contains(log.String(), "the last push failed") || !strings.Contains(log.String(), "certificate") {
			t.Errorf("%s without the CA: %d pushes in all, want still 1; log:\n%s", endpoint, n, log.String())
		}
	}
}
