package report

import (
	"bytes"
	"strings"
	"testing"
)

// Calls that never returned are reported per function and in total, and
// calls still running at the end are reported apart.
func TestDidNotReturnAndInFlight(t *testing.T) {
	h := NewHistogram()
	h.Record(1000)
	r := &Report{
		Functions: []FunctionStats{
			{Function: "main.panicky", Binary: "/bin/x", Hist: h, DidNotReturn: 7},
			{Function: "main.fine", Binary: "/bin/x", Hist: NewHistogram()},
			{Function: "main.jumpy", Binary: "/bin/x", Hist: NewHistogram(), DidNotReturn: 2},
		},
		Lost: Lost{InFlight: 3},
	}
	out := renderTable(t, r)
	for _, want := range []string{
		"did not return: main.panicky: 7 calls (unwound by a panic, Goexit or longjmp, or the process ended)\n",
		"did not return: main.jumpy: 2 calls (",
		"in flight: 3 calls had not returned when tracing ended\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "main.fine: 0") || strings.Contains(out, "lost:") {
		t.Errorf("table reports nothing-lost lines:\n%s", out)
	}

	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"did_not_return": 7`, `"did_not_return": 9`, `"in_flight": 3`} {
		if !strings.Contains(buf.String(), field) {
			t.Errorf("JSON lacks %s:\n%s", field, buf.String())
		}
	}
	j, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if j.Functions[0].DidNotReturn != 7 || j.Functions[1].DidNotReturn != 0 || j.Functions[2].DidNotReturn != 2 {
		t.Errorf("per-function did_not_return: %+v", j.Functions)
	}
	if j.Lost.DidNotReturn != 9 || j.Lost.InFlight != 3 {
		t.Errorf("lost: %+v, want did_not_return 9 and in_flight 3", j.Lost)
	}
}
