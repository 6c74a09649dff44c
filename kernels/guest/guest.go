// Package guest is the kernel matrix's end-to-end suite: the checks that
// run on every kernel ulat supports. The kernels test (../kernels_test.go)
// builds this package's tests as a static test binary, with the static
// bin/ulat and static targets beside it, and runs it as the init process of
// QEMU guests booted on Debian's kernels, and directly on the host's kernel.
//
// Targets are prebuilt (a guest has no compiler) and found in the bundle
// directory; outside the matrix the suite skips.
package guest

// What the host and the guest agree on.
const (
	// EnvDir names the bundle directory (ulat and the targets) when the
	// suite runs on the host's kernel.
	EnvDir = "ULAT_GUEST_DIR"
	// BundleDir is the bundle directory in a guest's initramfs.
	BundleDir = "/ulat-guest"
	// ResultPort is the guest's second serial port, where the suite's
	// output goes, away from the kernel's console on the first.
	ResultPort = "/dev/ttyS1"
	// ExitMarker, followed by go test's exit status, is the last line the
	// guest writes.
	ExitMarker = "ULAT-GUEST-EXIT"
)
