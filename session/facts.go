package session

import (
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/ulat-dev/ulat/report"
	"github.com/ulat-dev/ulat/symbols"
)

// runFacts records what a report was measured with: ulat's version, the
// kernel, and the traced files with their build IDs, so that a later
// comparison can tell the same binary from a rebuilt one.
func runFacts(groups []*group, version string, log *slog.Logger) report.Facts {
	run := report.Facts{UlatVersion: version}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		run.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	for _, g := range groups {
		id, err := symbols.BuildID(g.loc.Path)
		if err != nil {
			log.Warn(err.Error())
		}
		run.Binaries = append(run.Binaries, report.Binary{Path: g.loc.Path, BuildID: id})
	}
	return run
}
