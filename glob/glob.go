// Package glob is ulat's pattern syntax for function names, shared by
// `ulat trace` (which functions to probe) and `ulat compare` (which
// functions a threshold names): '*' matches any run of characters, dots
// and slashes included, '?' one character; nothing else is special, so
// names such as 'main.(*Server).handle' need no escaping.
package glob

import (
	"regexp"
	"strings"
)

// Regexp compiles pattern to an anchored regular expression.
func Regexp(pattern string) *regexp.Regexp {
	var sb strings.Builder
	sb.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			sb.WriteString(".*")
		case '?':
			sb.WriteString(".")
		default:
			sb.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	sb.WriteString("$")
	// Every other character is quoted, so the expression always compiles.
	return regexp.MustCompile(sb.String())
}
