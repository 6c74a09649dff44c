package agent

import (
	"sync"
	"time"

	"github.com/ulat-dev/ulat/cgroup"
)

// where is where calls ran: the container, pod and namespace labels of
// their series ("" where not in one).
type where struct{ container, pod, namespace string }

// places names the cgroups that calls are counted in (by id, as the BPF
// program gives them), once each: a cgroup's labels do not change.
type places struct {
	mount string // the cgroup v2 hierarchy; "" when none
	pods  *pods  // nil outside Kubernetes

	mu     sync.Mutex
	paths  map[uint64]string // cgroup ids seen in processes, or walked
	named  map[uint64]where
	walked time.Time
}

func newPlaces(mount string, pods *pods) *places {
	return &places{mount: mount, pods: pods, paths: map[uint64]string{}, named: map[uint64]where{}}
}

// saw records the cgroup of a process the agent read, so that its id need
// not be looked for.
func (p *places) saw(path string) {
	if p.mount == "" || path == "" {
		return
	}
	id, err := cgroup.ID(p.mount, path)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.paths[id] = path
	p.mu.Unlock()
}

// of is the labels of cgroup id. A cgroup whose path is not known yet is
// looked for in the whole hierarchy, at most once a second; one still not
// found (gone already) has no labels.
func (p *places) of(id uint64) where {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, ok := p.named[id]; ok {
		return w
	}
	path, ok := p.paths[id]
	if !ok && p.mount != "" && time.Since(p.walked) >= time.Second {
		p.walked = time.Now()
		if all, err := cgroup.Paths(p.mount); err == nil {
			for i, pth := range all {
				p.paths[i] = pth
			}
			path, ok = p.paths[id]
		}
	}
	if !ok {
		return where{}
	}
	c := cgroup.ContainerOf(path)
	w := where{container: short(c.ID)}
	pd, _ := p.pods.get(c.PodUID)
	if pd != nil {
		w.pod, w.namespace = pd.Name, pd.Namespace
		if name := pd.Containers[c.ID]; name != "" {
			w.container = name
		}
	}
	// Kept only once complete: a pod the API server did not list yet
	// is asked for again.
	if c.PodUID == "" || pd != nil {
		p.named[id] = w
	}
	return w
}

// short is a container id as docker ps shows it.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
