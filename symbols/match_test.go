package symbols

import (
	"errors"
	"sort"
	"strings"
	"testing"
)

func sortedNames(fns []Function) []string {
	n := names(fns)
	sort.Strings(n)
	return n
}

func TestMatchGo(t *testing.T) {
	t.Parallel()
	b := open(t, goNormal(t))
	for _, tc := range []struct {
		patterns []string
		want     []string
	}{
		{[]string{"main.work"}, []string{"main.work"}},
		{[]string{"main.(*T).Inc"}, []string{"main.(*T).Inc"}}, // '*' is a glob, but matches itself
		{[]string{"main.(*T).*"}, []string{"main.(*T).Get", "main.(*T).Inc"}},
		{[]string{"main.wor?"}, []string{"main.work"}},
		{[]string{"main.w?rk"}, []string{"main.work"}},
		{[]string{"main.?eaf"}, []string{"main.leaf"}},
		{[]string{"*.twoWays"}, []string{"main.twoWays"}},
		{[]string{"main.leaf", "main.work"}, []string{"main.leaf", "main.work"}},
		// Overlapping patterns: each function once.
		{[]string{"main.work", "main.w*", "main.work", "main.wor?"}, []string{"main.work"}},
		{[]string{"main.(*T).Inc", "main.(*T).*"}, []string{"main.(*T).Get", "main.(*T).Inc"}},
	} {
		got, err := b.Match(tc.patterns...)
		if err != nil {
			t.Errorf("Match(%q): %v", tc.patterns, err)
			continue
		}
		if g := sortedNames(got); strings.Join(g, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Match(%q) = %q, want %q", tc.patterns, g, tc.want)
		}
	}
}

func TestMatchAllMain(t *testing.T) {
	t.Parallel()
	b := open(t, goNormal(t))
	all, err := b.Match("main.*")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range all {
		got[f.Name]++
		if !strings.HasPrefix(f.Name, "main.") {
			t.Errorf("main.* matched %s", f.Name)
		}
	}
	for _, name := range []string{"main.main", "main.work", "main.twoWays", "main.bigFrame", "main.leaf",
		"main.(*T).Inc", "main.(*T).Get", "main.empty", "main.boom"} {
		if got[name] != 1 {
			t.Errorf("main.* matched %s %d times, want once", name, got[name])
		}
	}
	// Every main.* function of Functions() and nothing else.
	want := 0
	for _, f := range b.Functions() {
		if strings.HasPrefix(f.Name, "main.") {
			want++
		}
	}
	if len(all) != want {
		t.Errorf("main.* matched %d functions, Functions() has %d", len(all), want)
	}
	// Address order, inlined-only functions last.
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if b.Addr != 0 && (a.Addr == 0 || a.Addr > b.Addr) {
			t.Errorf("Match result out of address order: %s %#x before %s %#x", a.Name, a.Addr, b.Name, b.Addr)
		}
	}
	// Union with an overlapping pattern adds nothing.
	again, err := b.Match("main.*", "main.work", "main.(*T).*")
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(all) {
		t.Errorf("overlapping patterns gave %d functions, main.* alone %d", len(again), len(all))
	}
}

// Characters other than * and ? are literal.
func TestMatchLiteral(t *testing.T) {
	t.Parallel()
	b := open(t, goNormal(t))
	for _, p := range []string{"mainXwork", "main.wor[k]", "main.work+", "main.wor.", "(main.work)", "^main.work$", "main.work|main.leaf", ""} {
		got, err := b.Match(p)
		if !errors.Is(err, ErrNoMatch) {
			t.Errorf("Match(%q) = %q, %v; want ErrNoMatch", p, names(got), err)
		}
	}
}

func TestMatchNoMatchSuggests(t *testing.T) {
	t.Parallel()
	b := open(t, goNormal(t))
	got, err := b.Match("main.wrk")
	if !errors.Is(err, ErrNoMatch) {
		t.Fatalf("Match(main.wrk) = %q, %v; want ErrNoMatch", names(got), err)
	}
	if got != nil {
		t.Errorf("Match returned functions with an error: %q", names(got))
	}
	msg := err.Error()
	for _, want := range []string{`"main.wrk"`, `"main.work"`, b.Path} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %s", msg, want)
		}
	}

	// One missing pattern fails the whole call and is the one named.
	_, err = b.Match("main.work", "main.twoWay")
	if !errors.Is(err, ErrNoMatch) {
		t.Fatalf("Match(main.work, main.twoWay): %v, want ErrNoMatch", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, `no function matches "main.twoWay" (did you mean "main.twoWays"`) ||
		strings.Contains(msg, `matches "main.work"`) || strings.Count(msg, "did you mean") != 1 {
		t.Errorf("error %q should name only the missing pattern and suggest main.twoWays first", msg)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	b := open(t, goNormal(t))
	for _, tc := range []struct {
		pattern string
		first   string
	}{
		{"main.wrk", "main.work"},
		{"main.twoways", "main.twoWays"}, // case
		{"TWOWAYS", "main.twoWays"},      // containment, ignoring case
		{"*twoWay*", "main.twoWays"},     // glob characters ignored
		{"main.bigframe", "main.bigFrame"},
		{"main.(*T).Incr", "main.(*T).Inc"},
	} {
		s := b.suggest(tc.pattern, 3)
		if len(s) == 0 || s[0] != tc.first || len(s) > 3 {
			t.Errorf("suggest(%q, 3) = %q, want up to 3 starting with %q", tc.pattern, s, tc.first)
		}
	}
	if s := b.suggest("qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 5); len(s) != 0 {
		t.Errorf("suggest of nonsense = %q, want nothing", s)
	}
	if s := b.suggest("main", 0); len(s) != 0 {
		t.Errorf("suggest(n=0) = %q", s)
	}
}

func TestMatchNative(t *testing.T) {
	t.Parallel()
	b := open(t, cSharedLib(t))
	got, err := b.Match("lib_*")
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(sortedNames(got), " "); g != "lib_add lib_call lib_mul" {
		t.Errorf("Match(lib_*) = %s", g)
	}
	for _, f := range got {
		if f.Lang != Native {
			t.Errorf("%s: Lang %q", f.Name, f.Lang)
		}
	}
	_, err = b.Match("lib_ad")
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), `"lib_add"`) {
		t.Errorf("Match(lib_ad) err = %v, want ErrNoMatch suggesting lib_add", err)
	}

	c := open(t, cPIE(t))
	got, err = c.Match("add?", "choose", "gree?")
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(sortedNames(got), " "); g != "add3 choose greet" {
		t.Errorf("Match(add?, choose, gree?) = %s", g)
	}
}
