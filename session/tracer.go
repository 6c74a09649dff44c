package session

import (
	"time"

	"github.com/ulat-dev/ulat/probes"
)

// tracer is what a session needs of a probes.Tracer: an interface so that
// the engine's own tests can give it events where the kernel is not the
// point.
type tracer interface {
	Attach(fns []probes.Function) error
	Add(fns []probes.Function, base int) error
	Refused() []probes.Refused
	Poll(timeout time.Duration, fn func(*probes.Event)) (int, error)
	Wake()
	Drain(fn func(*probes.Event)) int
	Counters() (probes.Counters, error)
	Unfinished() (probes.Unfinished, error)
	Histograms(known func(fn int, count uint64) bool) ([]*probes.Histogram, error)
	NextInterval() error
	SetCosts(costs probes.Costs) error
	Continue(pid int) error
	Follow(pid int) error
	Detach() error
	Close() error
}

// costSource is what a session needs of a probes.Calibration.
type costSource interface {
	Costs() (probes.Costs, error)
	Close() error
}

// kernel is how a session reaches the kernel: probes, but for tests.
type kernel struct {
	// open loads a tracer; fallback lets it count in user space where
	// the in-kernel histograms do not load. It returns whether calls are
	// counted in the kernel, and a warning when they fell back.
	open func(opts probes.Options, fallback bool) (tracer, bool, string, error)
	// calibrate starts measuring the probes' cost.
	calibrate func(opts probes.Options) (costSource, error)
	// histogramBytes is the kernel memory in-kernel histograms take for
	// n functions.
	histogramBytes func(n int) int
}

var probesKernel = kernel{
	open: func(opts probes.Options, fallback bool) (tracer, bool, string, error) {
		t, inKernel, warning, err := probes.OpenCounting(opts, fallback)
		if err != nil {
			return nil, false, "", err
		}
		return t, inKernel, warning, nil
	},
	calibrate: func(opts probes.Options) (costSource, error) {
		c, err := probes.StartCalibration(opts)
		if err != nil {
			return nil, err
		}
		return c, nil
	},
	histogramBytes: probes.HistogramBytes,
}
