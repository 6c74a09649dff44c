package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestSelector(t *testing.T) {
	cfg, err := Parse([]byte(`
targets:
  - name: api
    exe: /srv/*/bin/api
    functions: [f]
    cmdline: "* --role=web*"
    cgroup: "/kubepods.slice/*"
    namespace: "shop*"
    pod_labels: {app: checkout}
    exclude:
      - {cmdline: "* --dry-run*"}
      - {pod: "*-canary-*"}
`))
	if err != nil {
		t.Fatal(err)
	}
	sel := newSelector(cfg.Targets[0])
	web := &process{exe: "/srv/v2/bin/api", cmdline: "/srv/v2/bin/api --role=web --port 80", cgroup: "/kubepods.slice/kubepods-pod1.slice/cri-containerd-1.scope"}
	shop := &pod{Name: "checkout-1", Namespace: "shop-eu", Labels: map[string]string{"app": "checkout", "tier": "1"}}
	if !sel.runs(web) || !sel.needsPod() || !sel.chooses(web, shop) {
		t.Errorf("the web process in the shop pod is not chosen")
	}
	for name, c := range map[string]struct {
		p   *process
		pod *pod
	}{
		"another role":   {&process{cmdline: "/srv/v2/bin/api --role=batch", cgroup: web.cgroup}, shop},
		"on the host":    {&process{cmdline: web.cmdline, cgroup: "/system.slice/api.service"}, shop},
		"no pod":         {web, nil},
		"other ns":       {web, &pod{Name: "checkout-1", Namespace: "default", Labels: shop.Labels}},
		"no app label":   {web, &pod{Name: "checkout-1", Namespace: "shop", Labels: map[string]string{"tier": "1"}}},
		"dry run":        {&process{cmdline: web.cmdline + " --dry-run", cgroup: web.cgroup}, shop},
		"canary pod":     {web, &pod{Name: "checkout-canary-7", Namespace: "shop", Labels: shop.Labels}},
		"deleted binary": {nil, nil},
	} {
		if c.p == nil {
			if !sel.runs(&process{exe: "/srv/v3/bin/api (deleted)"}) || sel.runs(&process{exe: "/srv/v3/sbin/api"}) {
				t.Errorf("exe glob: a deleted file at a matching path is the target's, another path is not")
			}
			continue
		}
		if sel.chooses(c.p, c.pod) {
			t.Errorf("%s: chosen", name)
		}
	}
	if all := newSelector(Target{Exe: "/bin/x"}); !all.chooses(&process{}, nil) || all.needsPod() {
		t.Errorf("a target without selectors does not take every process")
	}
}

// The pods of the node come from the API server, with the service
// account's token; a pod it does not list is asked for again, once a
// second at most.
func TestPods(t *testing.T) {
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
			http.Error(w, "token "+got, http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("fieldSelector") != "spec.nodeName=n1" {
			http.Error(w, "selector", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"items":[{"metadata":{"name":"web-1","namespace":"shop","uid":"u-1","labels":{"app":"web"}},
			"status":{"containerStatuses":[{"name":"server","containerID":"containerd://abc"}],"initContainerStatuses":[{"name":"init","containerID":"cri-o://def"}]}}]}`)
	}))
	defer srv.Close()
	token := t.TempDir() + "/token"
	os.WriteFile(token, []byte("s3cret\n"), 0o600)
	p, err := newPods(Kubernetes{API: srv.URL, TokenFile: token, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := p.get("u-1")
	if err != nil || pd == nil || pd.Name != "web-1" || pd.Namespace != "shop" || pd.Labels["app"] != "web" || pd.Containers["abc"] != "server" || pd.Containers["def"] != "init" {
		t.Fatalf("pod u-1: %+v, %v", pd, err)
	}
	if pd, err := p.get("u-2"); pd != nil || err != nil || requests != 1 {
		t.Errorf("an unlisted pod within a second of the last list: %+v, %v, %d requests (want 1)", pd, err, requests)
	}

	os.WriteFile(token, []byte("wrong"), 0o600)
	p2, _ := newPods(Kubernetes{API: srv.URL, TokenFile: token, Node: "n1"})
	if _, err := p2.get("u-1"); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "service account") {
		t.Errorf("refused: %v, want the status and what the service account needs", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if p, err := newPods(Kubernetes{}); p != nil || err != nil {
		t.Errorf("outside Kubernetes: %v, %v", p, err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	t.Setenv("NODE_NAME", "")
	if _, err := newPods(Kubernetes{}); err == nil || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Errorf("in a pod without the node's name: %v", err)
	}
}
