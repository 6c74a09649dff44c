package session

import (
	"slices"
	"testing"

	"github.com/ulat-dev/ulat/probes"
)

// Symbols that name one entry point are one target; the name kept is the
// one a pattern names exactly, else the plainest.
func TestMergeAliases(t *testing.T) {
	at := func(name string, entry uint64) target {
		return target{name: name, probe: probes.Function{Name: name, Entry: entry}}
	}
	targets := []target{at("__libc_malloc", 0x10), at("malloc", 0x10), at("__malloc", 0x10), at("free", 0x20), at("gsignal", 0x30), at("raise", 0x30)}
	names := func(ts []target) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.name)
		}
		return out
	}
	got, aliases := mergeAliases(targets, []string{"*"})
	if want := []string{"malloc", "free", "raise"}; !slices.Equal(names(got), want) {
		t.Errorf("kept %v, want %v", names(got), want)
	}
	if len(aliases) != 3 {
		t.Errorf("aliases %v, want 3", aliases)
	}
	got, _ = mergeAliases(targets, []string{"*", "gsignal"})
	if want := []string{"malloc", "free", "gsignal"}; !slices.Equal(names(got), want) {
		t.Errorf("with gsignal named: kept %v, want %v", names(got), want)
	}
}
