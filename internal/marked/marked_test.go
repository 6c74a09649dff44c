package marked

import (
	"errors"
	"io/fs"
	"testing"
)

func TestWith(t *testing.T) {
	mark := errors.New("mark")
	err := With(mark, &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist})
	if !errors.Is(err, mark) || !errors.Is(err, fs.ErrNotExist) || err.Error() != "open x: file does not exist" {
		t.Errorf("%v: want the mark, the cause, and the cause's message", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Error("errors.As does not find the cause")
	}
	if With(mark, nil) != nil {
		t.Error("a nil error marked is not nil")
	}
}
