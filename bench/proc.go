package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// proc is a tracer (ulat or bpftrace) running in the background: its
// output is kept, and one line of it tells that it is ready.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time

	mu      sync.Mutex
	stdout  lineWriter
	stderr  lineWriter
	ready   chan struct{}
	readyAt time.Duration // from start to the ready line
	readyLn string

	done   chan struct{}
	exitAt time.Duration // from start to exit
	err    error         // from Wait
}

// readyOn says which line marks a tracer as ready: the first line of
// stdout (stream 1) or stderr (stream 2) that starts with prefix.
type readyOn struct {
	stream int
	prefix string
}

// lineWriter keeps everything written to it and calls onLine for each
// complete line.
type lineWriter struct {
	mu      *sync.Mutex
	all     bytes.Buffer
	partial []byte
	onLine  func(string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(b)
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		if w.onLine != nil {
			w.onLine(line)
		}
	}
	return len(b), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// start runs argv in the background. Every process started here is
// registered with the bench and stopped by cleanup if still running.
func (b *bench) start(ctx context.Context, name string, argv []string, ready readyOn) (*proc, error) {
	p := &proc{name: name, ready: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	onLine := func(line string) {
		if strings.HasPrefix(line, ready.prefix) {
			once.Do(func() {
				// Called with p.mu held by the lineWriter.
				p.readyAt = time.Since(p.started)
				p.readyLn = line
				close(p.ready)
			})
		}
	}
	p.stdout = lineWriter{mu: &p.mu}
	p.stderr = lineWriter{mu: &p.mu}
	if ready.stream == 1 {
		p.stdout.onLine = onLine
	} else {
		p.stderr.onLine = onLine
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// On cancellation (Ctrl-C), ask the tracer to detach and exit cleanly
	// first; kill it only if it does not.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Stdout = &p.stdout
	cmd.Stderr = &p.stderr
	p.cmd = cmd
	if b.verbose {
		fmt.Fprintf(os.Stderr, "+ %s\n", shellQuote(argv))
	}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		p.exitAt = time.Since(p.started)
		close(p.done)
	}()
	return p, nil
}

// waitReady waits for the ready line, failing if the process exits first.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.ready:
		return nil
	case <-p.done:
		return fmt.Errorf("%s exited before it was ready (%v): %s", p.name, p.err, lastLines(p.stderr.String()+p.stdout.String(), 5))
	case <-t.C:
		return fmt.Errorf("%s not ready after %s: %s", p.name, timeout, lastLines(p.stderr.String()+p.stdout.String(), 5))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for the process to exit by itself, up to timeout.
func (p *proc) wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-t.C:
		p.stop()
		return fmt.Errorf("%s did not exit within %s (stopped it)", p.name, timeout)
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
}

// stop sends SIGINT, which makes ulat and bpftrace detach, print their
// report and exit, and waits for that; it kills the process when it takes
// longer than 20 s. It returns only once the process is gone, so that no
// probe of it stays attached.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit on SIGINT within 20 s; killed it", p.name)
	}
}

func (p *proc) exitErr() error {
	if p.err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w: %s", p.name, p.err, lastLines(p.stderr.String(), 5))
}

// cleanup stops every process still running.
func (b *bench) cleanup() {
	b.mu.Lock()
	procs := append([]*proc(nil), b.procs...)
	b.mu.Unlock()
	for _, p := range procs {
		_ = p.stop()
	}
}

// output runs a short command to completion and returns its stdout.
func (b *bench) output(ctx context.Context, argv []string, env ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if b.verbose {
		fmt.Fprintf(os.Stderr, "+ %s\n", shellQuote(argv))
	}
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), fmt.Errorf("%s: %w: %s", shellQuote(argv), err, lastLines(stderr.String(), 5))
		}
		return string(out), fmt.Errorf("%s: %w", shellQuote(argv), err)
	}
	return string(out), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"*?()[]{}$|&;<>\\") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}
