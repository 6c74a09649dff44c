package compare

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ulat-dev/ulat/glob"
)

// The default, used for every function when no threshold without a
// function is given: the median only. On a shared machine run-to-run noise
// moves a whole run's p50 by a few percent (one identical run in about ten
// by up to 14% here), but its p99, which rests on 1% of the calls, by
// 27-69% under a load of 4-6 and by +1500% while a benchmark ran on the
// other CPU: a default tail threshold would fail builds for nothing. Tail
// thresholds are for quiet, dedicated runners, asked for with --threshold.
const defaultP50Limit = 0.10

// defaultThresholds returns the thresholds that apply to every function
// when no threshold without a function is given.
func defaultThresholds() []Threshold {
	return []Threshold{
		{Metric: "p50", Limit: defaultP50Limit},
	}
}

// ErrThreshold is returned (wrapped) by ParseThreshold for a malformed
// threshold.
var ErrThreshold = errors.New("bad threshold")

// Threshold is the largest relative change of one metric that is not a
// regression (nor, the other way, an improvement).
type Threshold struct {
	// Function is "" for every function, else a function name or a glob
	// ('*' matches any run of characters, dots and slashes included, '?'
	// one character, as in ulat trace), matched against the function's
	// name and against its key "file:name" (report.FunctionKey), so that
	// "libc.so.6:malloc" names malloc in libc only.
	Function string
	// Metric is "mean" or a percentile "pN" with 0 < N < 100: "p50",
	// "p99", "p99.9".
	Metric string
	// Limit is the relative change allowed: 0.10 allows +10% (and -10%
	// before an improvement is reported).
	Limit float64
}

// String renders t as ParseThreshold accepts it.
func (t Threshold) String() string {
	s := t.Metric + "=" + formatChange(t.Limit)
	if t.Function != "" {
		s = t.Function + ":" + s
	}
	return s
}

// ParseThreshold parses "METRIC=+N%" or "FUNCTION:METRIC=+N%", such as
// "p99=+10%", "mean=+5%", "main.parse:p99=+20%",
// "main.(*S).handle:p50=+15%" or "libc.so.6:malloc:p99=+20%". The limit
// follows the last '=' and the metric the last ':' before it, so function
// names may hold both (C++'s "Buf::operator=").
func ParseThreshold(s string) (Threshold, error) {
	bad := func(format string, a ...any) (Threshold, error) {
		return Threshold{}, fmt.Errorf("threshold %q: %s: %w", s, fmt.Sprintf(format, a...), ErrThreshold)
	}
	eq := strings.LastIndexByte(s, '=')
	if eq < 0 {
		return bad("want METRIC=+N%% or FUNCTION:METRIC=+N%%, such as p99=+10%% or 'main.parse:p99=+20%%'")
	}
	lhs, limit := s[:eq], strings.TrimSpace(s[eq+1:])
	var t Threshold
	metric := lhs
	if c := strings.LastIndexByte(lhs, ':'); c >= 0 {
		t.Function, metric = lhs[:c], lhs[c+1:]
		if t.Function == "" {
			return bad("no function before ':'")
		}
	}
	m, err := parseMetric(strings.TrimSpace(metric))
	if err != nil {
		return bad("%v", err)
	}
	t.Metric = m
	if !strings.HasSuffix(limit, "%") {
		return bad("limit %q must be a percentage, such as +10%%", limit)
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(limit, "%"), 64)
	if err != nil || v != v || v > 1e6 {
		return bad("limit %q must be a percentage, such as +10%%", limit)
	}
	if v < 0 || strings.HasPrefix(limit, "-") {
		return bad("limit %q must not be negative: it is how much slower is still fine (+N%%); improvements beyond it are reported too", limit)
	}
	t.Limit = v / 100
	return t, nil
}

// parseMetric canonicalises "P99.90" to "p99.9".
func parseMetric(m string) (string, error) {
	m = strings.ToLower(m)
	if m == "mean" {
		return m, nil
	}
	if strings.HasPrefix(m, "p") {
		p, err := strconv.ParseFloat(m[1:], 64)
		if err == nil && p > 0 && p < 100 && !strings.ContainsAny(m[1:], "eExXpP_+-") {
			return "p" + strconv.FormatFloat(p, 'f', -1, 64), nil
		}
	}
	if m == "" {
		return "", fmt.Errorf("no metric: want p50, p90, p99, p99.9 (any pN with 0 < N < 100) or mean")
	}
	return "", fmt.Errorf("unknown metric %q: want p50, p90, p99, p99.9 (any pN with 0 < N < 100) or mean", m)
}

// percentileOf returns N of the metric "pN", or false for "mean".
func percentileOf(metric string) (float64, bool) {
	if !strings.HasPrefix(metric, "p") {
		return 0, false
	}
	p, err := strconv.ParseFloat(metric[1:], 64)
	return p, err == nil
}

// thresholdSet resolves which limit applies to each function and metric.
type thresholdSet struct {
	global  []Threshold // one per metric, in the order given
	perFunc []Threshold
	globs   []*regexp.Regexp // per perFunc
	used    []bool           // per perFunc: matched some function
}

func newThresholdSet(ts []Threshold) *thresholdSet {
	s := &thresholdSet{}
	for _, t := range ts {
		if t.Function == "" {
			s.global = setMetric(s.global, t)
		} else {
			s.perFunc = append(s.perFunc, t)
			s.globs = append(s.globs, glob.Regexp(t.Function))
		}
	}
	if len(s.global) == 0 {
		s.global = defaultThresholds()
	}
	s.used = make([]bool, len(s.perFunc))
	return s
}

// setMetric replaces the threshold for t's metric, or appends t: a later
// threshold wins over an earlier one for the same metric.
func setMetric(ts []Threshold, t Threshold) []Threshold {
	for i := range ts {
		if ts[i].Metric == t.Metric {
			ts[i] = t
			return ts
		}
	}
	return append(ts, t)
}

// forFunction returns the thresholds that judge one function: the global
// ones, overridden (per metric) or extended by those naming the function.
// A threshold naming it exactly wins over a glob; among equals the later
// one wins.
func (s *thresholdSet) forFunction(function, key string) []Threshold {
	out := append([]Threshold(nil), s.global...)
	best := map[string]int{}
	for i := range s.perFunc {
		t := s.perFunc[i]
		m := 0 // how well t names the function: 2 exactly, 1 by glob
		switch {
		case t.Function == function || t.Function == key:
			m = 2
		case s.globs[i].MatchString(function) || s.globs[i].MatchString(key):
			m = 1
		default:
			continue
		}
		s.used[i] = true
		if m >= best[t.Metric] {
			best[t.Metric] = m
			out = setMetric(out, t)
		}
	}
	return out
}
