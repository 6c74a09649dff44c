// Package marked attaches a sentinel error to an error without changing
// its message: errors.Is finds the sentinel, the user reads the error.
package marked

type markedError struct{ err, mark error }

func (e markedError) Error() string   { return e.err.Error() }
func (e markedError) Unwrap() []error { return []error{e.err, e.mark} }

// With returns err marked with mark (nil for a nil err).
func With(mark, err error) error {
	if err == nil {
		return nil
	}
	return markedError{err, mark}
}
