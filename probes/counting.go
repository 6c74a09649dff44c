package probes

import (
	"errors"
	"fmt"
	"io"
)

// OpenCounting opens a tracer as Open does. Where the kernel rejects the
// in-kernel histograms' program (opts.Aggregate), calls are counted in user
// space instead when the caller lets it choose (fallback), and the warning
// says so; otherwise the error says that user space works. It returns
// whether calls are counted in the kernel.
func OpenCounting(opts Options, fallback bool) (*Tracer, bool, string, error) {
	return openCounting(Open, opts, fallback)
}

func openCounting[T io.Closer](open func(Options) (T, error), opts Options, fallback bool) (tracer T, inKernel bool, warning string, err error) {
	tracer, err = open(opts)
	if err == nil || !opts.KernelHistograms || !errors.Is(err, ErrRejected) {
		return tracer, opts.KernelHistograms, "", err
	}
	user := opts
	user.KernelHistograms = false
	streaming, userErr := open(user)
	switch {
	case userErr != nil:
		return tracer, false, "", err
	case !fallback:
		streaming.Close()
		return tracer, false, "", fmt.Errorf("%w; counting every call in user space works on this kernel", err)
	}
	return streaming, false, fmt.Sprintf("%v; counting every call in user space instead", unwrapLoad(err)), nil
}

// unwrapLoad drops the "load bpf object: " context, which a warning that
// goes on working does not need.
func unwrapLoad(err error) error {
	if u := errors.Unwrap(err); u != nil && errors.Is(u, ErrRejected) {
		return u
	}
	return err
}
