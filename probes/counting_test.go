package probes

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type fakeTracer struct{ closed *int }

func (f fakeTracer) Close() error { *f.closed++; return nil }

// A kernel whose verifier rejects the in-kernel histograms' program: with
// --aggregate auto, ulat counts in user space and says so in one line;
// with --aggregate kernel it fails and says that user space works; other
// errors are returned as they are.
func TestOpenCountingFallsBackWhenRejected(t *testing.T) {
	rejected := fmt.Errorf("load bpf object: %w", fmt.Errorf("%w ulat_exit_pe on Linux 6.1.0 (the verifier: \"R0 unbounded memory access\")", ErrRejected))
	for _, c := range []struct {
		name       string
		kernelErr  error // what loading with in-kernel histograms returns
		userErr    error // and without
		auto       bool
		wantErr    string
		wantWarn   string
		wantKernel bool
		opens      int
	}{
		{"loads", nil, nil, true, "", "", true, 1},
		{"rejected/auto", rejected, nil, true, "", "ulat_exit_pe on Linux 6.1.0 (the verifier: \"R0 unbounded memory access\"); counting every call in user space instead", false, 2},
		{"rejected/kernel", rejected, nil, false, "counting every call in user space works on this kernel", "", false, 2},
		{"rejected/both", rejected, rejected, true, "ulat_exit_pe", "", false, 2},
		{"permission", ErrPermission, nil, true, "permission denied", "", false, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			closed, opens := 0, 0
			var modes []bool
			open := func(o Options) (fakeTracer, error) {
				opens++
				modes = append(modes, o.KernelHistograms)
				if o.KernelHistograms {
					return fakeTracer{&closed}, c.kernelErr
				}
				return fakeTracer{&closed}, c.userErr
			}
			_, inKernel, warning, err := openCounting(open, Options{KernelHistograms: true, Functions: 3}, c.auto)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, c.wantErr)
			}
			if c.wantErr != "" && c.kernelErr != nil && !errors.Is(err, c.kernelErr) && !errors.Is(err, ErrRejected) {
				t.Errorf("error %v does not wrap the load error", err)
			}
			if !strings.Contains(warning, c.wantWarn) || (c.wantWarn == "") != (warning == "") {
				t.Errorf("warning %q, want %q", warning, c.wantWarn)
			}
			if strings.Contains(warning, "load bpf object") {
				t.Errorf("warning %q repeats the load context", warning)
			}
			if (err == nil && inKernel != c.wantKernel) || opens != c.opens {
				t.Errorf("in kernel %v after %d opens %v, want %v after %d", inKernel, opens, modes, c.wantKernel, c.opens)
			}
			if c.name == "rejected/kernel" && closed != 1 {
				t.Errorf("the user-space tracer opened to check it was closed %d times", closed)
			}
		})
	}
}
