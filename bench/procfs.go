package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ulat-dev/ulat/internal/procfs"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on
// every architecture Linux builds ulat for.
const userHZ = 100

// cpuTime is the user + system CPU time process pid has taken, every
// thread's, exited ones too, but not its children's (utime + stime of
// proc(5), in ticks of 10 ms).
func cpuTime(pid int) (time.Duration, error) {
	f, err := procfs.StatFields(pid)
	if err != nil {
		return 0, err
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	pids, _ := procfs.Pids()
	var kids []int
	for _, child := range pids {
		f, err := procfs.StatFields(child)
		if err != nil {
			continue // exited meanwhile
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			kids = append(kids, child)
		}
	}
	return kids
}

// statusKB reads the kB figures of /proc/PID/status or smaps_rollup
// (file) named by keys ("VmRSS", "Pss").
func statusKB(pid int, file string, keys ...string) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	got := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !want[k] {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			got[k], _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			return nil, fmt.Errorf("/proc/%d/%s: no %s", pid, file, k)
		}
	}
	return got, nil
}

// contextSwitches sums the voluntary and involuntary context switches of
// pid's threads alive now: how often they went to sleep or were put off
// a CPU, close to how often they woke up.
func contextSwitches(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// bpfObject is a BPF map or program a process holds a file descriptor of,
// from /proc/PID/fdinfo.
type bpfObject struct {
	id      int
	kind    string // map_type or prog_type
	memlock int64  // bytes of kernel memory the kernel accounts to it
}

// bpfObjects lists the BPF maps and programs process pid holds, each once
// (by id, however many descriptors it has of it).
func bpfObjects(pid int) (maps, progs []bpfObject, err error) {
	infos, err := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	if err != nil {
		return nil, nil, err
	}
	seenMap, seenProg := map[int]bool{}, map[int]bool{}
	for _, path := range infos {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // closed meanwhile
		}
		fields := map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		memlock, _ := strconv.ParseInt(fields["memlock"], 10, 64)
		if id, err := strconv.Atoi(fields["map_id"]); err == nil {
			if !seenMap[id] {
				seenMap[id] = true
				maps = append(maps, bpfObject{id: id, kind: fields["map_type"], memlock: memlock})
			}
		} else if id, err := strconv.Atoi(fields["prog_id"]); err == nil {
			if !seenProg[id] {
				seenProg[id] = true
				progs = append(progs, bpfObject{id: id, kind: fields["prog_type"], memlock: memlock})
			}
		}
	}
	return maps, progs, nil
}

// bpfMappedKB sums the Rss and Pss of process pid's mappings of BPF maps
// (anon_inode:bpf-map: ring buffers, mmapped arrays). Those pages are the
// maps' kernel memory, counted in their memlock already; a ring buffer's
// data is mapped twice in a row, so RSS counts it twice.
func bpfMappedKB(pid int) (rss, pss int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	inMap := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header: ADDR PERMS OFFSET DEV INODE [NAME]
			inMap = len(f) >= 6 && f[5] == "anon_inode:bpf-map"
			continue
		}
		if !inMap || len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss += v
		case "Pss:":
			pss += v
		}
	}
	return rss, pss, nil
}
