package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ulat-dev/ulat/internal/marked"
)

// ErrInvalid is returned (wrapped) by ReadFiles for a file that is not a
// usable ulat report, or reports that cannot be merged.
var ErrInvalid = errors.New("invalid report")

func invalidf(format string, a ...any) error {
	return marked.With(ErrInvalid, fmt.Errorf(format, a...))
}

// ReadFiles reads JSON reports and merges them into one. Each file is
// checked on its own first, so that an error names the file.
func ReadFiles(paths []string) (*Report, error) {
	docs := make([]*JSONReport, len(paths))
	for i, path := range paths {
		doc, err := readFile(path)
		if err != nil {
			return nil, err
		}
		for j := range doc.Functions {
			if _, err := doc.Functions[j].Histogram(); err != nil {
				return nil, invalidf("%s: %w", path, err)
			}
		}
		if i > 0 && doc.OverheadCorrected != docs[0].OverheadCorrected {
			return nil, invalidf("%s and %s cannot be merged: one has the probes' own cost subtracted and the other not (it was recorded raw)", paths[0], path)
		}
		docs[i] = doc
	}
	r, err := Merge(docs)
	if err != nil {
		return nil, invalidf("%s: %w", strings.Join(paths, ", "), err)
	}
	return r, nil
}

func readFile(path string) (*JSONReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, invalidf("%s is a directory, not a JSON report", path)
	}
	doc, err := ReadJSON(f)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return doc, nil
	case errors.Is(err, ErrSchema):
		return nil, invalidf("%s: %w", path, err)
	case errors.As(err, &syntax) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, invalidf("%s: not a ulat JSON report: %w", path, err)
	}
	return nil, fmt.Errorf("%s: %w", path, err)
}
