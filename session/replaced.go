package session

import (
	"fmt"
	"os"
	"strings"
)

// replacedFiles notices when a traced file is replaced on disk (a rebuild,
// a package upgrade): uprobes stay on the old file, so processes started
// from the new one are not traced, which the user must be told.
type replacedFiles struct {
	files  map[string]os.FileInfo // path → what was probed
	warned map[string]bool
}

func watchReplaced(targets []target) *replacedFiles {
	r := &replacedFiles{files: map[string]os.FileInfo{}, warned: map[string]bool{}}
	for _, t := range targets {
		// /proc/PID/... paths reach the running file itself and cannot be
		// replaced by another.
		if _, seen := r.files[t.binary]; seen || strings.HasPrefix(t.binary, "/proc/") {
			continue
		}
		if st, err := os.Stat(t.binary); err == nil {
			r.files[t.binary] = st
		}
	}
	return r
}

// check returns a warning for each file newly found replaced or removed.
func (r *replacedFiles) check() []string {
	var out []string
	for path, was := range r.files {
		if r.warned[path] {
			continue
		}
		st, err := os.Stat(path)
		if err == nil && os.SameFile(st, was) {
			continue
		}
		r.warned[path] = true
		out = append(out, fmt.Sprintf("%s was replaced or removed while tracing: processes still running the old file are traced, ones started from the new file are not (run ulat again for those)", path))
	}
	return out
}
