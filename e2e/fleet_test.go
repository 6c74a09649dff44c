package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulat-dev/ulat/cgroup"
)

// fleetProcess is a target process of TestAgentFleet, waiting on stdin
// before its first traced call.
type fleetProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startIn starts ctarget ARGS in the cgroup dir (a cgroup v2 directory),
// through sh, which moves itself there first; with app, in PID and mount
// namespaces of its own where app (a directory holding a copy of
// ctarget) is mounted at mountAt, as a container's image is: its
// executable's path there names no such file outside.
func startIn(t *testing.T, dir, app, mountAt, bin string, args ...string) *fleetProcess {
	t.Helper()
	script := `echo $$ > "$1/cgroup.procs" || exit 9; shift; exec "$@"`
	argv := []string{"-c", script, "sh", dir}
	if app != "" {
		argv = append(argv, "unshare", "--pid", "--mount", "--fork", "--mount-proc", "sh", "-c", `mount --bind "$1" "$2" || exit 8; shift 2; exec "$@"`, "sh", app, mountAt)
	}
	cmd := exec.Command("sh", append(append(argv, bin), args...)...)
	cmd.Env = append(os.Environ(), "TARGET_WAIT=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return &fleetProcess{cmd, stdin}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// fleetSeries scrapes the agent's function series as "target function
// container pod namespace binary" → calls, and its traced-process gauges
// by target.
func fleetSeries(t *testing.T, a *runningAgent, addr string) (map[string]uint64, map[string]float64) {
	t.Helper()
	_, families := a.scrape(t, addr, "text/plain")
	calls, procs := map[string]uint64{}, map[string]float64{}
	for _, m := range families["ulat_function_duration_seconds"].GetMetric() {
		k := strings.Join([]string{label(m, "target"), label(m, "function"), label(m, "container"), label(m, "pod"), label(m, "namespace"), label(m, "binary")}, " ")
		calls[k] = m.GetHistogram().GetSampleCount()
	}
	for _, m := range families["ulat_traced_processes"].GetMetric() {
		procs[label(m, "target")] += m.GetGauge().GetValue()
	}
	return calls, procs
}

// A fleet in miniature: processes in containers (cgroups of a container
// runtime's naming, PID and mount namespaces of their own, an image's
// file at a path of their own) and on the host run the same program. The
// agent labels each container's calls with its container (the id, or
// its name in its Kubernetes pod, with the pod and namespace, from an API
// server of the test's), and traces for each target only the processes
// it selects: by Kubernetes namespace, by command line, less those an
// exclusion names. Exact counts.
func TestAgentFleet(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (util-linux, mount): %v", tool, err)
		}
	}
	mount, err := cgroup.Mount()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	host := filepath.Join(dir, "ctarget")
	copyFile(t, cTarget(t, true), host)
	// Each container's image has a file of its own, seen inside at
	// dir/app/ctarget, an empty directory outside.
	mountAt := filepath.Join(dir, "app")
	image := map[string]string{}
	for _, c := range []string{"c1", "c2"} {
		image[c] = filepath.Join(dir, c)
		os.Mkdir(image[c], 0o755)
		copyFile(t, cTarget(t, true), filepath.Join(image[c], "ctarget"))
	}
	os.Mkdir(mountAt, 0o755)

	// The cgroups: a docker container, a Kubernetes pod's container, and
	// the test's own (the host's processes).
	root := filepath.Join(mount, fmt.Sprintf("ulat-e2e-%d", os.Getpid()))
	docker, podUID := randomHex(t, 32), fmt.Sprintf("%s-%s-%s-%s-%s", randomHex(t, 4), randomHex(t, 2), randomHex(t, 2), randomHex(t, 2), randomHex(t, 6))
	containerd := randomHex(t, 32)
	dockerCg := filepath.Join(root, "docker-"+docker+".scope")
	podCg := filepath.Join(root, "kubepods.slice", "kubepods-pod"+strings.ReplaceAll(podUID, "-", "_")+".slice", "cri-containerd-"+containerd+".scope")
	for _, d := range []string{dockerCg, podCg} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Deepest first, once their processes are gone (cleanups run
		// last-registered first: the processes' were registered later).
		for _, d := range []string{podCg, filepath.Dir(podCg), filepath.Dir(filepath.Dir(podCg)), dockerCg, root} {
			for i := 0; os.Remove(d) != nil && i < 100; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if _, err := os.Stat(root); err == nil {
			t.Errorf("cgroup %s left behind", root)
		}
	})
	self, err := cgroup.Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	selfCg := filepath.Join(mount, self)

	// The API server of the node's pods.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/pods" || r.URL.Query().Get("fieldSelector") != "spec.nodeName=node-1" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"kind":"PodList","items":[{"metadata":{"name":"checkout-7f9c","namespace":"shop","uid":%q,"labels":{"app":"checkout"}},
			"status":{"containerStatuses":[{"name":"server","containerID":"containerd://%s"}]}}]}`, podUID, containerd)
	}))
	defer api.Close()

	addr := freeAddr(t)
	config := filepath.Join(dir, "agent.yaml")
	y := fmt.Sprintf(`listen: %s
kubernetes: {api: %s, node: node-1}
targets:
  - name: app
    exe: %s/ctarget
    functions: [work]
  - name: shop
    exe: %s/ctarget
    functions: [fast]
    namespace: shop
    pod_labels: {app: checkout}
  - name: host
    exe: %s
    functions: [work]
    cmdline: "* 1 5 1000"
    exclude: [{cgroup: "*/docker-*"}]
`, addr, api.URL, mountAt, mountAt, host)
	if err := os.WriteFile(config, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, config)
	a.waitLog(t, "timing 1 functions in "+host, 1)

	procs := []*fleetProcess{
		startIn(t, dockerCg, image["c1"], mountAt, mountAt+"/ctarget", "1", "3", "1000"),
		startIn(t, podCg, image["c2"], mountAt, mountAt+"/ctarget", "1", "4", "1000"),
		startIn(t, selfCg, "", "", host, "1", "5", "1000"),
		startIn(t, dockerCg, "", "", host, "1", "5", "1000"), // excluded
		startIn(t, selfCg, "", "", host, "1", "6", "1000"),   // not selected
	}
	// Released once the agent traces them: until then a process
	// selected is not followed, and a container's file not probed.
	wantProcs := map[string]float64{"app": 2, "shop": 1, "host": 1}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, got := fleetSeries(t, a, addr)
		if fmt.Sprint(got) == fmt.Sprint(wantProcs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("traced processes by target: %v, want %v\n%s", got, wantProcs, a.stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range procs {
		p.stdin.Write([]byte("go\n"))
	}
	for _, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("%v: %v", p.cmd.Args, err)
		}
	}
	inPod := "server checkout-7f9c shop " + mountAt + "/ctarget"
	want := map[string]uint64{
		"app work " + docker[:12] + "   " + mountAt + "/ctarget": 3,
		"app work " + inPod:    4,
		"shop fast " + inPod:   40,
		"host work    " + host: 5,
	}
	var got map[string]uint64
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		got, _ = fleetSeries(t, a, addr)
		for k, n := range got {
			if n == 0 {
				delete(got, k) // a function attached in a file no selected process ran
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls by target, function, container, pod, namespace and binary:\n got %v\nwant %v\n%s", got, want, a.stderr())
	}
	// For docs/agent.md.
	body, _ := io.ReadAll(a.get(t, addr, "/metrics", "text/plain").Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "ulat_function_duration_seconds_count{") || strings.HasPrefix(line, "ulat_traced_processes{") {
			t.Log(line)
		}
	}
}
