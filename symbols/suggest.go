package symbols

import "sort"

// suggestion is a name offered for what the user typed, and how far it is
// from it (lower is closer; negative for names that contain it).
type suggestion struct {
	name string
	dist int
}

// closest returns up to n of the names within limit, nearest first; ties go
// to the shorter name.
func closest(cands []suggestion, n, limit int) []string {
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].dist != cands[j].dist {
			return cands[i].dist < cands[j].dist
		}
		return len(cands[i].name) < len(cands[j].name)
	})
	var out []string
	for _, c := range cands {
		if len(out) == n || c.dist > limit {
			break
		}
		out = append(out, c.name)
	}
	return out
}
