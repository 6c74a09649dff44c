package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// What bpftool tells about attached BPF programs.
type perfEntry struct {
	Pid      int    `json:"pid"`
	ProgID   int    `json:"prog_id"`
	FdType   string `json:"fd_type"`
	Filename string `json:"filename"`
}

type linkEntry struct {
	ID     int    `json:"id"`
	Type   string `json:"type"`
	ProgID int    `json:"prog_id"`
	Path   string `json:"path"`
}

type progEntry struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	RunTimeNs uint64 `json:"run_time_ns"`
	RunCnt    uint64 `json:"run_cnt"`
}

func (b *bench) bpftoolJSON(ctx context.Context, v any, args ...string) error {
	out, err := b.output(ctx, append([]string{"bpftool", "-j"}, args...))
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) == "" {
		out = "[]"
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("bpftool %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// perfProbes lists the perf-event probes with a BPF program (how bpftrace
// and `ulat --attach perf` attach), optionally only those of one process.
func (b *bench) perfProbes(ctx context.Context, pid int) ([]perfEntry, error) {
	var all []perfEntry
	if err := b.bpftoolJSON(ctx, &all, "perf", "show"); err != nil {
		return nil, err
	}
	if pid == 0 {
		return all, nil
	}
	var mine []perfEntry
	for _, e := range all {
		if e.Pid == pid {
			mine = append(mine, e)
		}
	}
	return mine, nil
}

// waitProbes waits until process pid has n perf-event probes attached:
// bpftrace prints "Attaching N probes..." before it attaches them.
func (b *bench) waitProbes(ctx context.Context, p *proc, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := b.perfProbes(ctx, p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		if len(got) >= n {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while attaching: %s", p.name, lastLines(p.stderr.String(), 5))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d probes attached after 30 s", p.name, len(got), n)
		}
	}
}

// progsOn returns the IDs of the BPF programs attached to file path through
// uprobe_multi links, and of those attached by process pid through perf
// events.
func (b *bench) progsOn(ctx context.Context, path string, pid int) ([]int, error) {
	var links []linkEntry
	if err := b.bpftoolJSON(ctx, &links, "link", "show"); err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var ids []int
	for _, l := range links {
		if l.Path == path && !seen[l.ProgID] {
			seen[l.ProgID] = true
			ids = append(ids, l.ProgID)
		}
	}
	perf, err := b.perfProbes(ctx, pid)
	if err != nil {
		return nil, err
	}
	for _, e := range perf {
		if !seen[e.ProgID] {
			seen[e.ProgID] = true
			ids = append(ids, e.ProgID)
		}
	}
	return ids, nil
}

func (b *bench) progStats(ctx context.Context, ids []int) ([]progEntry, error) {
	var out []progEntry
	for _, id := range ids {
		var p progEntry
		if err := b.bpftoolJSON(ctx, &p, "prog", "show", "id", strconv.Itoa(id)); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// leftoverProbes counts probes still attached to files under dir, which
// would mean a tracer was not cleaned up.
func (b *bench) leftoverProbes(ctx context.Context, dir string) (int, error) {
	var links []linkEntry
	if err := b.bpftoolJSON(ctx, &links, "link", "show"); err != nil {
		return 0, err
	}
	n := 0
	for _, l := range links {
		if strings.HasPrefix(l.Path, dir+"/") {
			n++
		}
	}
	perf, err := b.perfProbes(ctx, 0)
	if err != nil {
		return 0, err
	}
	for _, e := range perf {
		if strings.HasPrefix(e.Filename, dir+"/") {
			n++
		}
	}
	return n, nil
}

const statsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// enableStats turns kernel.bpf_stats_enabled on and returns a function
// that restores the previous value (also called by cleanup).
func (b *bench) enableStats() (restore func(), err error) {
	old, err := os.ReadFile(statsSysctl)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(statsSysctl, []byte("1\n"), 0); err != nil {
		return nil, fmt.Errorf("sysctl -w kernel.bpf_stats_enabled=1: %w", err)
	}
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		if err := os.WriteFile(statsSysctl, old, 0); err != nil {
			fmt.Fprintf(os.Stderr, "bench: restore kernel.bpf_stats_enabled=%s: %v\n", strings.TrimSpace(string(old)), err)
		}
	}
	b.mu.Lock()
	b.restores = append(b.restores, restore)
	b.mu.Unlock()
	return restore, nil
}
