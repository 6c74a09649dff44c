// Package agent is ulat's fleet front-end: it keeps a tracing session per
// executable file a config names, and serves their histograms to
// Prometheus (/metrics), as ulat's JSON report (/report.json) and to
// health checks (/healthz).
package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ulat-dev/ulat/internal/marked"
	"go.yaml.in/yaml/v3"
)

// Config is an agent's YAML configuration.
type Config struct {
	// Listen is the HTTP address of /metrics, /healthz and /report.json.
	Listen string `yaml:"listen"`
	// MaxSeries bounds the histogram series /metrics serves; the
	// functions past it are counted in ulat_series_over_limit instead.
	MaxSeries int      `yaml:"max_series"`
	Targets   []Target `yaml:"targets"`
}

// Target is a program to trace in every process that runs it.
type Target struct {
	// Name is the value of the target label of every series of it.
	Name string `yaml:"name"`
	// Exe is the executable's path, or a glob of paths ('/opt/*/bin/api').
	Exe string `yaml:"exe"`
	// Functions are the patterns of the functions to time, as for ulat
	// trace ('main.(*Server).Handle*', 'libc:malloc').
	Functions []string `yaml:"functions"`
	// Labels are added to every series of the target.
	Labels map[string]string `yaml:"labels"`
}

// DefaultListen and DefaultMaxSeries are what a config that leaves them
// out gets.
const (
	DefaultListen    = "127.0.0.1:9435"
	DefaultMaxSeries = 10000
)

// ErrConfig marks what is wrong with a config file.
var ErrConfig = errors.New("invalid agent config")

func configErrorf(format string, a ...any) error {
	return marked.With(ErrConfig, fmt.Errorf(format, a...))
}

// labelName is Prometheus's label name syntax.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are the labels the agent sets itself.
var reservedLabels = map[string]bool{"target": true, "function": true, "binary": true}

// Load reads and checks the config at path: every field known, every
// target named once, with an executable and functions. Its errors are
// ErrConfig (or the file's own, such as fs.ErrNotExist).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load of a config's bytes.
func Parse(data []byte) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, configErrorf("%w", err)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxSeries == 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, configErrorf("listen %q: want host:port (127.0.0.1:9435): %w", cfg.Listen, err)
	}
	if cfg.MaxSeries < 0 {
		return nil, configErrorf("max_series %d: must be positive", cfg.MaxSeries)
	}
	if len(cfg.Targets) == 0 {
		return nil, configErrorf("no targets: name at least one (name, exe, functions)")
	}
	seen := map[string]bool{}
	for i, t := range cfg.Targets {
		where := fmt.Sprintf("targets[%d]", i)
		if t.Name != "" {
			where = fmt.Sprintf("target %q", t.Name)
		}
		switch {
		case t.Name == "":
			return nil, configErrorf("%s: no name", where)
		case seen[t.Name]:
			return nil, configErrorf("%s: named twice", where)
		case t.Exe == "":
			return nil, configErrorf("%s: no exe (the executable's path, or a glob of paths)", where)
		case !strings.HasPrefix(t.Exe, "/"):
			return nil, configErrorf("%s: exe %q: want an absolute path", where, t.Exe)
		case len(t.Functions) == 0:
			return nil, configErrorf("%s: no functions to time", where)
		}
		if _, err := filepath.Match(t.Exe, ""); err != nil {
			return nil, configErrorf("%s: exe %q: %w", where, t.Exe, err)
		}
		seen[t.Name] = true
		for k := range t.Labels {
			if !labelName.MatchString(k) || strings.HasPrefix(k, "__") || reservedLabels[k] {
				return nil, configErrorf("%s: label %q: want a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __) other than target, function and binary", where, k)
			}
		}
	}
	return cfg, nil
}
