package cgroup

import (
	"os"
	"testing"
)

func TestContainerOf(t *testing.T) {
	const id = "3f4e2b1a9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
	for _, c := range []struct {
		path string
		want Container
	}{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6a7b_8c9d_0e1f2a3b4c5d.slice/cri-containerd-" + id + ".scope",
			Container{ID: id, PodUID: "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}},
		{"/kubepods/besteffort/pod0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d/" + id, Container{ID: id, PodUID: "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}},
		{"/system.slice/docker-" + id + ".scope", Container{ID: id}},
		{"/machine.slice/libpod-" + id + ".scope/container", Container{ID: id}},
		{"/system.slice/crio-" + id + ".scope", Container{ID: id}},
		{"/system.slice/ssh.service", Container{}},
		{"/user.slice/user-1000.slice/session-3.scope", Container{}},
		{"/", Container{}},
		{"/system.slice/docker-" + id[:63] + ".scope", Container{}}, // not an id
	} {
		if got := ContainerOf(c.path); got != c.want {
			t.Errorf("ContainerOf(%q) = %+v, want %+v", c.path, got, c.want)
		}
	}
}

// The test process's own cgroup: its id is found, and a walk of the
// hierarchy maps that id back to its path.
func TestOwnCgroup(t *testing.T) {
	mount, err := Mount()
	if err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	path, err := Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	id, err := ID(mount, path)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := Paths(mount)
	if err != nil {
		t.Fatal(err)
	}
	if paths[id] != path {
		t.Errorf("cgroup %d: walk says %q, /proc/self/cgroup says %q", id, paths[id], path)
	}
}

func TestUnescape(t *testing.T) {
	if got := unescape(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("unescape: %q", got)
	}
}

// Seen from a container's cgroup namespace, other cgroups are up its
// "..": those climb to the root of the hierarchy.
func TestFromHostRoot(t *testing.T) {
	for in, want := range map[string]string{
		"/../../../kubepods.slice/kubepods-pod1.slice/cri-containerd-2.scope": "/kubepods.slice/kubepods-pod1.slice/cri-containerd-2.scope",
		"/../..":                  "/",
		"/system.slice/x.service": "/system.slice/x.service",
		"/..foo":                  "/..foo",
		"/":                       "/",
	} {
		if got := fromHostRoot(in); got != want {
			t.Errorf("fromHostRoot(%q) = %q, want %q", in, got, want)
		}
	}
}
