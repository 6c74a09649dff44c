package e2e

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ulat doctor passes here as root (every check PASS or WARN, status 0) and
// fails, saying why, without privileges.
func TestDoctor(t *testing.T) {
	requireRoot(t)
	out, err := exec.Command(ulatBin, "doctor", "--pid", itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		t.Fatalf("ulat doctor: %v\n%s", err, out)
	}
	for _, check := range []string{"kernel:", "BTF:", "uprobes:", "uprobe_multi:", "privileges:", "load:", "attach (uprobe_multi):", "process:", "seccomp:"} {
		if !strings.Contains(string(out), "PASS  "+check) {
			t.Errorf("no PASS for %s:\n%s", check, out)
		}
	}
	if strings.Contains(string(out), "FAIL") {
		t.Errorf("a check failed as root:\n%s", out)
	}

	nobody := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", ulatBin, "doctor")
	o, err := nobody.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("ulat doctor without privileges: %v, want exit status 1", err)
	}
	if !strings.Contains(string(o), "FAIL  privileges:") || !strings.Contains(string(o), "FAIL  load:") {
		t.Errorf("ulat doctor without privileges does not FAIL privileges and load:\n%s", o)
	}
}
