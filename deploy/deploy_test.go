package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The configs are checked with agent.Parse by the agent package's tests
// (agent/deployed_test.go), not here: kustomize links Go's plugin package,
// which cannot link with the agent's cgo libbpf (not built -fPIC). Here
// the ConfigMaps are checked to carry those files byte for byte.

// wantCaps are the capabilities the agent is given, measured on Linux
// 5.10, 6.1, 6.12 and 6.18 (docs/agent.md, "Capabilities"): what kernels
// with uprobe_multi need to trace other containers' processes.
var wantCaps = []string{"BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"}

// olderKernelCaps are what components/perf-event-uprobes adds for kernels
// without uprobe_multi (and before 5.11, RLIMIT_MEMLOCK).
var olderKernelCaps = []string{"SYS_ADMIN", "SYS_RESOURCE"}

// podMonitor is the part of the Prometheus Operator's PodMonitor
// (monitoring.coreos.com/v1) the base uses, decoded strictly: a field the
// operator does not have there is an error.
type podMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// manifests are the objects a kustomization renders, each decoded into
// its type.
type manifests struct {
	namespace   *corev1.Namespace
	account     *corev1.ServiceAccount
	configMap   *corev1.ConfigMap
	role        *rbacv1.ClusterRole
	binding     *rbacv1.ClusterRoleBinding
	daemonSet   *appsv1.DaemonSet
	podMonitor  *podMonitor
	kinds       []string // in the order rendered
	namespaceOf map[string]string
}

// render builds the kustomization at dir as `kubectl kustomize` does
// (krusty is its engine) and decodes every object strictly.
func render(t *testing.T, fSys filesys.FileSystem, dir string) *manifests {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fSys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	m := &manifests{namespaceOf: map[string]string{}}
	for _, r := range resources.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		kind := r.GetKind()
		m.kinds = append(m.kinds, kind)
		m.namespaceOf[kind] = r.GetNamespace()
		if kind == "PodMonitor" {
			pm := &podMonitor{}
			strict, err := sigsjson.UnmarshalStrict(data, pm)
			if err != nil || len(strict) > 0 {
				t.Fatalf("PodMonitor %s: %v %v", r.GetName(), err, strict)
			}
			m.podMonitor = pm
			continue
		}
		obj, _, err := decoder.Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", kind, r.GetName(), err)
		}
		// Two objects of a kind would leave one unchecked.
		twice := func(seen bool) {
			if seen {
				t.Fatalf("two objects of kind %s", kind)
			}
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			twice(m.namespace != nil)
			m.namespace = o
		case *corev1.ServiceAccount:
			twice(m.account != nil)
			m.account = o
		case *corev1.ConfigMap:
			twice(m.configMap != nil)
			m.configMap = o
		case *rbacv1.ClusterRole:
			twice(m.role != nil)
			m.role = o
		case *rbacv1.ClusterRoleBinding:
			twice(m.binding != nil)
			m.binding = o
		case *appsv1.DaemonSet:
			twice(m.daemonSet != nil)
			m.daemonSet = o
		default:
			t.Fatalf("unexpected object %s %s", kind, r.GetName())
		}
	}
	return m
}

func onDisk(t *testing.T, dir string) *manifests {
	t.Helper()
	return render(t, filesys.MakeFsOnDisk(), dir)
}

func (m *manifests) agent(t *testing.T) *corev1.Container {
	t.Helper()
	if m.daemonSet == nil {
		t.Fatal("no DaemonSet")
	}
	cs := m.daemonSet.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want the agent alone", len(cs))
	}
	return &cs[0]
}

func (m *manifests) caps(t *testing.T) []string {
	t.Helper()
	sc := m.agent(t).SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("the agent has no securityContext.capabilities")
	}
	if got := sc.Capabilities.Drop; !reflect.DeepEqual(got, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities dropped: %v, want [ALL]", got)
	}
	var add []string
	for _, c := range sc.Capabilities.Add {
		add = append(add, string(c))
	}
	return add
}

// configPath is the file --config names, and the ConfigMap key that is it.
func (m *manifests) configPath(t *testing.T) (string, string) {
	t.Helper()
	c := m.agent(t)
	if len(c.Command) != 0 {
		t.Errorf("command %v replaces the image's entrypoint (ulat agent)", c.Command)
	}
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %v: no --config FILE", c.Args)
	}
	file := c.Args[i+1]
	var mount *corev1.VolumeMount
	for j := range c.VolumeMounts {
		if c.VolumeMounts[j].MountPath == path.Dir(file) {
			mount = &c.VolumeMounts[j]
		}
	}
	if mount == nil {
		t.Fatalf("--config %s: no volume is mounted at %s", file, path.Dir(file))
	}
	if !mount.ReadOnly {
		t.Errorf("the config volume is mounted read-write")
	}
	for _, v := range m.daemonSet.Spec.Template.Spec.Volumes {
		if v.Name != mount.Name {
			continue
		}
		if v.ConfigMap == nil {
			t.Fatalf("volume %s is not a ConfigMap", v.Name)
		}
		if m.configMap == nil || v.ConfigMap.Name != m.configMap.Name {
			t.Fatalf("volume %s names ConfigMap %q, which is not rendered", v.Name, v.ConfigMap.Name)
		}
		return file, path.Base(file)
	}
	t.Fatalf("no volume %s", mount.Name)
	return "", ""
}

func TestBase(t *testing.T) {
	m := onDisk(t, "kubernetes")
	want := []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "PodMonitor"}
	if got := slices.Sorted(slices.Values(m.kinds)); !reflect.DeepEqual(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("rendered %v, want one each of %v", m.kinds, want)
	}
	ds := m.daemonSet
	pod := ds.Spec.Template.Spec

	t.Run("namespace", func(t *testing.T) {
		if m.namespace.Name != "ulat" {
			t.Errorf("namespace %q, want ulat", m.namespace.Name)
		}
		for _, kind := range []string{"ServiceAccount", "ConfigMap", "DaemonSet", "PodMonitor"} {
			if m.namespaceOf[kind] != "ulat" {
				t.Errorf("%s in namespace %q, want ulat", kind, m.namespaceOf[kind])
			}
		}
	})

	t.Run("privileges", func(t *testing.T) {
		if !pod.HostPID {
			t.Error("hostPID is not set: the agent would see only its own pod's processes")
		}
		if pod.HostNetwork || pod.HostIPC {
			t.Errorf("hostNetwork %v, hostIPC %v: the agent needs neither", pod.HostNetwork, pod.HostIPC)
		}
		// One host path: the node's cgroup hierarchy, read-only, for the
		// container labels.
		for _, v := range pod.Volumes {
			if v.HostPath == nil {
				continue
			}
			if v.HostPath.Path != "/sys/fs/cgroup" {
				t.Errorf("volume %s mounts the host's %s: the agent needs only /sys/fs/cgroup", v.Name, v.HostPath.Path)
			}
			for _, vm := range m.agent(t).VolumeMounts {
				if vm.Name == v.Name && (!vm.ReadOnly || vm.MountPath != "/host/sys/fs/cgroup") {
					t.Errorf("the node's cgroups are mounted at %s, read-only %v: want /host/sys/fs/cgroup (agent.yaml's cgroup_root), read-only", vm.MountPath, vm.ReadOnly)
				}
			}
		}
		sc := m.agent(t).SecurityContext
		if sc.Privileged != nil && *sc.Privileged {
			t.Error("the agent is privileged")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("the root file system is not read-only")
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			t.Errorf("runAsUser %v, want 0: added capabilities reach uid 0's effective set only", sc.RunAsUser)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("seccompProfile %v, want RuntimeDefault", sc.SeccompProfile)
		}
		if got := m.caps(t); !reflect.DeepEqual(got, wantCaps) {
			t.Errorf("capabilities added: %v, want exactly %v", got, wantCaps)
		}
	})

	t.Run("container", func(t *testing.T) {
		c := m.agent(t)
		if c.Image != "ulat:dev" {
			t.Errorf("image %q, want ulat:dev (the base's images: entry)", c.Image)
		}
		var nodeName bool
		for _, e := range c.Env {
			if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
				nodeName = true
			}
		}
		if !nodeName {
			t.Errorf("env %v: no NODE_NAME from spec.nodeName", c.Env)
		}
		port := metricsPort(t, c)
		for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("no HTTP %s probe", name)
				continue
			}
			if p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != port.Name {
				t.Errorf("%s probe GET %s on port %s, want /healthz on %s", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), port.Name)
			}
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			q, ok := req[r]
			l, lok := lim[r]
			if !ok || !lok {
				t.Errorf("%s: request %v, limit %v: want both", r, q.String(), l.String())
				continue
			}
			if q.Cmp(l) > 0 {
				t.Errorf("%s: request %s above limit %s", r, q.String(), l.String())
			}
		}
		// The goals for an idle agent: under 0.5% of a CPU and
		// 100 MB; requests are what the scheduler reserves.
		if cpu := req[corev1.ResourceCPU]; cpu.MilliValue() != 5 {
			t.Errorf("cpu request %s, want 5m (0.5%% of a CPU)", cpu.String())
		}
		if mem := req[corev1.ResourceMemory]; mem.Value() != 100<<20 {
			t.Errorf("memory request %s, want 100Mi", mem.String())
		}
		if pod.ServiceAccountName != m.account.Name {
			t.Errorf("serviceAccountName %q, the ServiceAccount is %q", pod.ServiceAccountName, m.account.Name)
		}
	})

	t.Run("config", func(t *testing.T) {
		_, key := m.configPath(t)
		data, ok := m.configMap.Data[key]
		if !ok {
			t.Fatalf("ConfigMap %s has no %s (keys %v)", m.configMap.Name, key, slices.Sorted(maps.Keys(m.configMap.Data)))
		}
		file, err := os.ReadFile(filepath.Join("kubernetes", "agent.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if data != string(file) {
			t.Errorf("the ConfigMap's %s is not kubernetes/agent.yaml:\n%s", key, data)
		}
		var cfg struct{ Listen string }
		if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
			t.Fatalf("the ConfigMap's %s: %v", key, err)
		}
		host, port, _ := net.SplitHostPort(cfg.Listen)
		if want := strconv.Itoa(int(metricsPort(t, m.agent(t)).ContainerPort)); port != want {
			t.Errorf("listen %s: port %s, the container's metrics port is %s", cfg.Listen, port, want)
		}
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			t.Errorf("listen %s: on loopback, the probes and Prometheus cannot reach it", cfg.Listen)
		}
	})

	t.Run("rbac", func(t *testing.T) {
		want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}
		if !reflect.DeepEqual(m.role.Rules, want) {
			t.Errorf("ClusterRole rules %+v, want exactly get, list and watch of pods", m.role.Rules)
		}
		b := m.binding
		if b.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: m.role.Name}) {
			t.Errorf("roleRef %+v, want ClusterRole %s", b.RoleRef, m.role.Name)
		}
		wantSubject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: m.account.Name, Namespace: m.account.Namespace}}
		if !reflect.DeepEqual(b.Subjects, wantSubject) {
			t.Errorf("subjects %+v, want %+v", b.Subjects, wantSubject)
		}
	})

	t.Run("podmonitor", func(t *testing.T) {
		pm := m.podMonitor
		if pm.APIVersion != "monitoring.coreos.com/v1" {
			t.Errorf("PodMonitor apiVersion %q", pm.APIVersion)
		}
		sel := labels.SelectorFromSet(pm.Spec.Selector.MatchLabels)
		if len(pm.Spec.Selector.MatchLabels) == 0 || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
			t.Errorf("selector %v does not match the pod labels %v", pm.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("%d endpoints, want 1", len(pm.Spec.PodMetricsEndpoints))
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		if ep.Port != metricsPort(t, m.agent(t)).Name || ep.Path != "/metrics" {
			t.Errorf("endpoint port %q path %q, want the container's port %q, /metrics", ep.Port, ep.Path, metricsPort(t, m.agent(t)).Name)
		}
	})
}

func metricsPort(t *testing.T, c *corev1.Container) corev1.ContainerPort {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			return p
		}
	}
	t.Fatalf("ports %v: none named metrics", c.Ports)
	return corev1.ContainerPort{}
}

// The example overlay replaces the config and the image, and nothing else.
func TestExampleOverlay(t *testing.T) {
	m := onDisk(t, "example-overlay")
	base := onDisk(t, "kubernetes")
	_, key := m.configPath(t)
	want, err := os.ReadFile(filepath.Join("example-overlay", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.configMap.Data[key]; got != string(want) {
		t.Errorf("the overlay's %s is not example-overlay/agent.yaml:\n%s", key, got)
	}
	if m.configMap.Name == base.configMap.Name {
		t.Errorf("the ConfigMap keeps the base's name %s: a new config would not roll the DaemonSet", m.configMap.Name)
	}
	if got := m.agent(t).Image; got != "registry.example.com/ulat:v0.1.0" {
		t.Errorf("image %q", got)
	}
	if got := m.caps(t); !reflect.DeepEqual(got, wantCaps) {
		t.Errorf("capabilities %v, want the base's %v", got, wantCaps)
	}
}

// overlay renders an overlay of the base, written beside a copy of
// deploy/kubernetes in memory (kustomize wants bases under relative
// paths), from its kustomization.yaml.
func overlay(t *testing.T, kustomization string) *manifests {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir("kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/deploy", p), data)
	})
	if err == nil {
		err = mem.WriteFile("/deploy/overlay/kustomization.yaml", []byte(kustomization))
	}
	if err != nil {
		t.Fatal(err)
	}
	return render(t, mem, "/deploy/overlay")
}

// The component for kernels without uprobe_multi adds SYS_ADMIN and
// SYS_RESOURCE, and nothing else changes.
func TestPerfEventComponent(t *testing.T) {
	m := overlay(t, `
resources: [../kubernetes]
components: [../kubernetes/components/perf-event-uprobes]
`)
	if got, want := m.caps(t), append(slices.Clone(wantCaps), olderKernelCaps...); !reflect.DeepEqual(got, want) {
		t.Errorf("capabilities %v, want %v", got, want)
	}
}

// The overlay docs/agent.md gives for clusters without the Prometheus
// Operator leaves the PodMonitor out.
func TestWithoutPodMonitor(t *testing.T) {
	m := overlay(t, `
resources: [../kubernetes]
patches:
  - patch: |-
      $patch: delete
      apiVersion: monitoring.coreos.com/v1
      kind: PodMonitor
      metadata:
        name: ulat-agent
`)
	if m.podMonitor != nil || slices.Contains(m.kinds, "PodMonitor") {
		t.Errorf("rendered %v, with a PodMonitor", m.kinds)
	}
	if m.daemonSet == nil {
		t.Error("no DaemonSet")
	}
}

// unitKeys reads a systemd unit's Key=Value lines, by key.
func unitKeys(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("line %d: %q is not Key=Value", n, line)
		}
		keys[k] = append(keys[k], v)
	}
	return keys
}

func TestSystemdUnit(t *testing.T) {
	const unit = "systemd/ulat-agent.service"
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	keys := unitKeys(t, data)
	one := func(k string) string {
		if len(keys[k]) != 1 {
			t.Errorf("%s: %d values %v, want 1", k, len(keys[k]), keys[k])
			return ""
		}
		return keys[k][0]
	}
	if got := one("ExecStart"); got != "/usr/local/bin/ulat agent --config /etc/ulat/agent.yaml" {
		t.Errorf("ExecStart=%s", got)
	}
	if got := one("ExecReload"); got != "kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%s, want SIGHUP, on which the agent reloads", got)
	}
	// The same capabilities as the DaemonSet's, for root: no ambient ones
	// (those are for a non-root user) and nothing else.
	var caps []string
	for _, c := range strings.Fields(one("CapabilityBoundingSet")) {
		caps = append(caps, strings.TrimPrefix(c, "CAP_"))
	}
	if !reflect.DeepEqual(caps, wantCaps) {
		t.Errorf("CapabilityBoundingSet %v, want the DaemonSet's %v", caps, wantCaps)
	}
	if base := onDisk(t, "kubernetes"); !reflect.DeepEqual(base.caps(t), caps) {
		t.Errorf("the unit's capabilities %v differ from the DaemonSet's %v", caps, base.caps(t))
	}
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "read-only",
		"LimitMEMLOCK": "infinity", "RestartPreventExitStatus": "2",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	for _, k := range []string{"User", "DynamicUser", "AmbientCapabilities", "PrivateTmp", "ProtectProc"} {
		if v, ok := keys[k]; ok {
			t.Errorf("%s=%v: the agent runs as root, and sees the host's /tmp and processes", k, v)
		}
	}

	t.Run("systemd-analyze", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("SKIPPED: no systemd-analyze to verify the unit with (Debian's systemd package)")
		}
		// verify wants the executables to exist: the test's own stands
		// in for /usr/local/bin/ulat. It reads the unit, and changes
		// nothing on the host.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		copyPath := filepath.Join(dir, "ulat-agent.service")
		if err := os.WriteFile(copyPath, bytes.ReplaceAll(data, []byte("/usr/local/bin/ulat"), []byte(self)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}

// The image runs `ulat agent`, which the DaemonSet's args complete.
func TestContainerfile(t *testing.T) {
	data, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from, entrypoint string
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "FROM "):
			from = strings.TrimPrefix(line, "FROM ")
		case strings.HasPrefix(line, "ENTRYPOINT "):
			entrypoint = strings.TrimPrefix(line, "ENTRYPOINT ")
		}
	}
	if !strings.HasPrefix(from, "gcr.io/distroless/static") {
		t.Errorf("FROM %s, want distroless/static (the binary is static)", from)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || !reflect.DeepEqual(ep, []string{"/usr/local/bin/ulat", "agent"}) {
		t.Errorf("ENTRYPOINT %s (%v), want [\"/usr/local/bin/ulat\", \"agent\"]", entrypoint, err)
	}
}
