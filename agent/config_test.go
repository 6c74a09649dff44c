package agent

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cfg, err := Parse([]byte(`
targets:
  - name: checkout
    exe: /usr/local/bin/checkout
    functions: ["main.(*Server).Handle*"]
    labels: {team: payments}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != DefaultListen || cfg.MaxSeries != DefaultMaxSeries {
		t.Errorf("defaults: listen %q, max_series %d", cfg.Listen, cfg.MaxSeries)
	}
	if tg := cfg.Targets[0]; tg.Name != "checkout" || tg.Exe != "/usr/local/bin/checkout" || tg.Functions[0] != "main.(*Server).Handle*" || tg.Labels["team"] != "payments" {
		t.Errorf("target %+v", tg)
	}
}

// Every mistake is ErrConfig, with a message that says where and what.
func TestParseErrors(t *testing.T) {
	const fine = "targets: [{name: a, exe: /bin/a, functions: [f]}]\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown field", "listne: 1.2.3.4:5\n" + fine, "field listne not found"},
		{"not yaml", "targets: [", "yaml"},
		{"bad listen", "listen: nowhere\n" + fine, `listen "nowhere": want host:port`},
		{"negative max_series", "max_series: -1\n" + fine, "max_series -1"},
		{"no targets", "listen: 127.0.0.1:1\n", "no targets"},
		{"no name", "targets: [{exe: /bin/a, functions: [f]}]", "targets[0]: no name"},
		{"twice", "targets: [{name: a, exe: /bin/a, functions: [f]}, {name: a, exe: /bin/b, functions: [f]}]", `target "a": named twice`},
		{"no exe", "targets: [{name: a, functions: [f]}]", `target "a": no exe`},
		{"relative exe", "targets: [{name: a, exe: bin/a, functions: [f]}]", "want an absolute path"},
		{"bad glob", "targets: [{name: a, exe: '/bin/[a', functions: [f]}]", "syntax error in pattern"},
		{"no functions", "targets: [{name: a, exe: /bin/a}]", "no functions"},
		{"reserved label", "targets: [{name: a, exe: /bin/a, functions: [f], labels: {function: x}}]", `label "function"`},
		{"bad label", "targets: [{name: a, exe: /bin/a, functions: [f], labels: {a-b: x}}]", `label "a-b"`},
		{"agent's label", "targets: [{name: a, exe: /bin/a, functions: [f], labels: {pod: x}}]", `label "pod"`},
		{"empty exclude", "targets: [{name: a, exe: /bin/a, functions: [f], exclude: [{}]}]", "exclude[0]: empty"},
		{"unknown match field", "targets: [{name: a, exe: /bin/a, functions: [f], comandline: x}]", "field comandline not found"},
		{"relative cgroup_root", "cgroup_root: sys/fs/cgroup\n" + fine, "cgroup_root"},
		{"bad api", "kubernetes: {api: 10.0.0.1:443}\n" + fine, "want https://host:port"},
		{"bad container_labels", "container_labels: maybe\n" + fine, "cannot unmarshal"},
	} {
		_, err := Parse([]byte(c.yaml))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrConfig saying %q", c.name, err, c.want)
		}
	}
}
