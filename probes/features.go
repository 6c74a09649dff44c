package probes

// KernelHasUprobeMulti reports whether the running kernel has uprobe_multi
// links (Linux 6.6+), by the same test Open makes to choose AttachMulti for
// AttachAuto: without them, AttachAuto falls back to AttachPerf.
func KernelHasUprobeMulti() bool { return kernelHasUprobeMulti() }
