package glob

import "testing"

func TestRegexp(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"main.*", "main.(*Server).handle", true},
		{"main.(*Server).*", "main.(*Server).handle", true},
		{"main.(*Server).*", "main.Server.handle", false},
		{"handle?", "handleX", true},
		{"handle?", "handle", false},
		{"a+b", "a+b", true},
		{"a+b", "aab", false},
		{"work", "work2", false},
	} {
		if got := Regexp(tc.pattern).MatchString(tc.name); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}
