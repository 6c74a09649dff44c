package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// OTLP is where and how the agent pushes its metrics over OTLP. A config
// without it pushes nothing.
type OTLP struct {
	// Endpoint is the collector's URL: http:// or https:// for OTLP/HTTP
	// (protobuf; to /v1/metrics when the URL has no path), grpc:// or
	// grpcs:// (TLS) for OTLP/gRPC.
	Endpoint string `yaml:"endpoint"`
	// Interval is how often the agent pushes (DefaultOTLPInterval).
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one push, retries included (DefaultOTLPTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// Headers are sent with every push (gRPC metadata for gRPC), such as
	// an authorization token.
	Headers map[string]string `yaml:"headers"`
	// Compression is "gzip" or "none" (the default).
	Compression string `yaml:"compression"`
	// TLS configures https:// and grpcs:// endpoints; without it the
	// host's CA certificates verify the collector.
	TLS *OTLPTLS `yaml:"tls"`
}

// OTLPTLS is how the agent connects to a collector over TLS.
type OTLPTLS struct {
	CAFile   string `yaml:"ca_file"`   // PEM certificates that verify the collector, instead of the host's
	CertFile string `yaml:"cert_file"` // the agent's client certificate (PEM), with key_file
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify accepts any certificate of the collector.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// DefaultOTLPInterval is the OpenTelemetry SDK's default export interval,
// and DefaultOTLPTimeout its exporters' default timeout.
const (
	DefaultOTLPInterval = 60 * time.Second
	DefaultOTLPTimeout  = 10 * time.Second
)

// minOTLPInterval keeps a typo ("10ms" for "10s") from pushing to a
// collector hundreds of times a second.
const minOTLPInterval = time.Second

// headerName is an HTTP header name (a token of RFC 9110).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// check fills in o's defaults and checks every field: where it says
// "otlp: ..." and what is wrong.
func (o *OTLP) check() error {
	if o.Interval == 0 {
		o.Interval = DefaultOTLPInterval
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultOTLPTimeout
	}
	if o.Endpoint == "" {
		return configErrorf("otlp: no endpoint (http://host:4318, https://, grpc://host:4317 or grpcs://)")
	}
	u, err := o.endpointURL()
	if err != nil {
		return err
	}
	switch {
	case o.Interval < minOTLPInterval:
		return configErrorf("otlp: interval %s: want at least %s", o.Interval, minOTLPInterval)
	case o.Timeout < 0:
		return configErrorf("otlp: timeout %s: must be positive", o.Timeout)
	case o.Compression != "" && o.Compression != "none" && o.Compression != "gzip":
		return configErrorf("otlp: compression %q: want gzip or none", o.Compression)
	}
	for k, v := range o.Headers {
		if !headerName.MatchString(k) {
			return configErrorf("otlp: header %q: not a header name", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return configErrorf("otlp: header %q: its value has a line break or NUL", k)
		}
	}
	if o.TLS != nil {
		if u.Scheme != "https" && u.Scheme != "grpcs" {
			return configErrorf("otlp: tls is for https:// and grpcs:// endpoints, not %s://", u.Scheme)
		}
		if _, err := o.TLS.config(); err != nil {
			return configErrorf("otlp: tls: %w", err)
		}
	}
	return nil
}

// endpointURL parses the endpoint and checks that it names a collector.
func (o *OTLP) endpointURL() (*url.URL, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil {
		return nil, configErrorf("otlp: endpoint %q: %w", o.Endpoint, err)
	}
	const want = "want http(s)://host[:port][/path] or grpc(s)://host:port"
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc" && u.Scheme != "grpcs":
		return nil, configErrorf("otlp: endpoint %q: scheme %q: %s", o.Endpoint, u.Scheme, want)
	case u.Host == "" || u.Hostname() == "":
		return nil, configErrorf("otlp: endpoint %q: no host: %s", o.Endpoint, want)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, configErrorf("otlp: endpoint %q: no user, query or fragment: %s (headers carry credentials)", o.Endpoint, want)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, configErrorf("otlp: endpoint %q: port %s: want 1 to 65535", o.Endpoint, p)
		}
	}
	if u.Scheme == "grpc" || u.Scheme == "grpcs" {
		if u.Port() == "" {
			return nil, configErrorf("otlp: endpoint %q: no port: %s", o.Endpoint, want)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, configErrorf("otlp: endpoint %q: gRPC has no path: %s", o.Endpoint, want)
		}
	}
	return u, nil
}

// config is the TLS configuration the files name, read now.
func (t *OTLPTLS) config() (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("cert_file and key_file go together: give both or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file %s, key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
