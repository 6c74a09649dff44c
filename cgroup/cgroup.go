// Package cgroup finds the cgroup v2 of processes: its path, its id (what
// BPF's bpf_get_current_cgroup_id returns) and, from the path, the
// container and Kubernetes pod a process runs in.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// ErrNoV2 is returned where no cgroup v2 hierarchy is mounted.
var ErrNoV2 = errors.New("no cgroup v2 hierarchy is mounted")

// Mount is where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on
// most systems, /sys/fs/cgroup/unified on hybrid ones.
func Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - type source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if ok && len(fields) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return unescape(fields[4]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	return "", ErrNoV2
}

// unescape undoes mountinfo's octal escapes of spaces and the like.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Of is the cgroup v2 path of process pid, from the root of the
// hierarchy ("/system.slice/ssh.service"), as its /proc/PID/cgroup says.
func Of(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return fromHostRoot(path), nil
		}
	}
	return "", fmt.Errorf("process %d: %w", pid, ErrNoV2)
}

// fromHostRoot turns a path as a reader in a cgroup namespace of its own
// sees it (a container's: "/../../kubepods.slice/..." for a cgroup
// outside its own) into the path from the hierarchy's root: the ".."s
// climb exactly to it. A cgroup inside the reader's own keeps a path
// relative to that, which names no cgroup under the root.
func fromHostRoot(path string) string {
	for strings.HasPrefix(path, "/..") && (len(path) == 3 || path[3] == '/') {
		path = path[3:]
	}
	if path == "" {
		return "/"
	}
	return path
}

// ID is the id of the cgroup at path under the hierarchy mounted at
// mount: its directory's inode number.
func ID(mount, path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mount, path), &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// Paths maps each cgroup id under mount to its path, walking the whole
// hierarchy: for ids whose processes were not seen.
func Paths(mount string) (map[uint64]string, error) {
	paths := map[uint64]string{}
	err := filepath.WalkDir(mount, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A cgroup removed during the walk.
			if errors.Is(err, fs.ErrNotExist) && p != mount {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel, _ := filepath.Rel(mount, p)
		paths[st.Ino] = "/" + strings.TrimPrefix(filepath.ToSlash(rel), ".")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk cgroups under %s: %w", mount, err)
	}
	return paths, nil
}

// Container is what a cgroup path says of the container it is.
type Container struct {
	ID     string // the runtime's container id (64 hex digits); "" outside containers
	PodUID string // the Kubernetes pod's uid; "" outside pods
}

var (
	// Docker, containerd (cri-containerd-), CRI-O (crio-) and podman
	// (libpod-) under systemd name the scope after the id; with the
	// cgroupfs driver it is the directory itself.
	containerID = regexp.MustCompile(`^(?:[a-z-]+-)?([0-9a-f]{64})(?:\.scope)?$`)
	// kubepods-burstable-pod<uid with _>.slice (systemd) or pod<uid> (cgroupfs).
	podUID = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?(?:/|$)`)
)

// ContainerOf reads the container and pod out of a cgroup path.
func ContainerOf(path string) Container {
	var c Container
	// The innermost container: a container's own cgroups (systemd in a
	// container) are below its scope.
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i >= 0 && c.ID == ""; i-- {
		if m := containerID.FindStringSubmatch(parts[i]); m != nil {
			c.ID = m[1]
		}
	}
	if m := podUID.FindStringSubmatch(path); m != nil {
		c.PodUID = strings.ReplaceAll(m[1], "_", "-")
	}
	return c
}
