package agent

import (
	"os"
	"testing"
)

// The configs deploy/ ships (the DaemonSet's ConfigMap and the example
// overlay's) are valid; deploy's tests check that the rendered ConfigMaps
// carry these files.
func TestDeployedConfigs(t *testing.T) {
	for _, path := range []string{"../deploy/kubernetes/agent.yaml", "../deploy/example-overlay/agent.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse(data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if cfg.CgroupRoot != "/host/sys/fs/cgroup" {
			t.Errorf("%s: cgroup_root %q, want /host/sys/fs/cgroup, where the DaemonSet mounts the node's cgroups", path, cfg.CgroupRoot)
		}
		if cfg.Listen != "0.0.0.0:9435" {
			t.Errorf("%s: listen %s, want 0.0.0.0:9435: the pod's port metrics, where the probes and the PodMonitor reach it", path, cfg.Listen)
		}
	}
}
