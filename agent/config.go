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
	// ContainerLabels counts each container's calls apart, in series
	// labelled container, pod and namespace (default true). Calls are
	// then streamed to the agent; false counts them in the kernel, per
	// function only.
	ContainerLabels *bool `yaml:"container_labels"`
	// CgroupRoot is where the host's cgroup v2 hierarchy is mounted (""
	// finds it in /proc/self/mountinfo); in a container, mount the host's.
	CgroupRoot string `yaml:"cgroup_root"`
	// Kubernetes is how the agent reads the pods of its node: in a pod,
	// the defaults (the API server, token and CA Kubernetes gives every
	// pod, and the node in $NODE_NAME) need no setting.
	Kubernetes Kubernetes `yaml:"kubernetes"`
	// OTLP, when set, is where the agent pushes the same series over
	// OTLP (see OTLP).
	OTLP *OTLP `yaml:"otlp"`
}

// Kubernetes says where the agent finds the pods of its node.
type Kubernetes struct {
	API       string `yaml:"api"`        // https://host:port; default from $KUBERNETES_SERVICE_HOST and _PORT
	TokenFile string `yaml:"token_file"` // default /var/run/secrets/kubernetes.io/serviceaccount/token
	CAFile    string `yaml:"ca_file"`    // default ca.crt beside it; "" with an http:// API
	Node      string `yaml:"node"`       // default $NODE_NAME
}

// Match selects processes. Every field given must match; an empty Match
// matches every process.
type Match struct {
	// Cmdline is a glob ('*' any run of characters, '?' one) matched
	// against the command line, its arguments joined by spaces.
	Cmdline string `yaml:"cmdline"`
	// Cgroup is a glob matched against the process's cgroup v2 path
	// ('/kubepods.slice/*', '/system.slice/nginx.service').
	Cgroup string `yaml:"cgroup"`
	// Namespace and Pod are globs matched against the Kubernetes pod the
	// process runs in; PodLabels, labels that pod must have.
	Namespace string            `yaml:"namespace"`
	Pod       string            `yaml:"pod"`
	PodLabels map[string]string `yaml:"pod_labels"`
}

// empty says whether m selects nothing out.
func (m Match) empty() bool {
	return m.Cmdline == "" && m.Cgroup == "" && !m.kubernetes()
}

// kubernetes says whether m needs the process's pod.
func (m Match) kubernetes() bool {
	return m.Namespace != "" || m.Pod != "" || len(m.PodLabels) > 0
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
	// The processes running Exe that the target traces: those its Match
	// fields select (all, when there are none), less any that one of
	// Exclude's matches.
	Match   `yaml:",inline"`
	Exclude []Match `yaml:"exclude"`
}

// selects says whether the target traces some of the processes running
// its executable rather than all.
func (t Target) selects() bool {
	return !t.Match.empty() || len(t.Exclude) > 0
}

// Containers says whether calls are counted per container.
func (c *Config) Containers() bool {
	return c.ContainerLabels == nil || *c.ContainerLabels
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
var reservedLabels = map[string]bool{"target": true, "function": true, "binary": true, "container": true, "pod": true, "namespace": true}

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
	if cfg.OTLP != nil {
		if err := cfg.OTLP.check(); err != nil {
			return nil, err
		}
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
				return nil, configErrorf("%s: label %q: want a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __) other than target, function, binary, container, pod and namespace", where, k)
			}
		}
		for j, m := range t.Exclude {
			if m.empty() {
				return nil, configErrorf("%s: exclude[%d]: empty, which would exclude every process: give cmdline, cgroup, namespace, pod or pod_labels", where, j)
			}
		}
	}
	if cfg.CgroupRoot != "" && !strings.HasPrefix(cfg.CgroupRoot, "/") {
		return nil, configErrorf("cgroup_root %q: want an absolute path", cfg.CgroupRoot)
	}
	if k := cfg.Kubernetes.API; k != "" && !strings.HasPrefix(k, "https://") && !strings.HasPrefix(k, "http://") {
		return nil, configErrorf("kubernetes: api %q: want https://host:port", k)
	}
	return cfg, nil
}
