// Package testpython picks the Python interpreter that tests run workers
// with, so that every package's tests agree on it.
package testpython

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Path is the interpreter for tests: GOWSGI_TEST_PYTHON, else Debian's
// /usr/bin/python3 (which has the frameworks when the python3-* packages
// are installed), else python3 on PATH.
func Path() string {
	if p := os.Getenv("GOWSGI_TEST_PYTHON"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

// Require skips the test unless the interpreter imports every module;
// with GOWSGI_REQUIRE_FRAMEWORKS=1 (as in CI) that is a failure instead.
func Require(t testing.TB, modules ...string) {
	t.Helper()
	py := Path()
	code := "import " + strings.Join(modules, ", ")
	out, err := exec.Command(py, "-c", code).CombinedOutput()
	if err == nil {
		return
	}
	msg := py + " cannot " + code + ": " + strings.TrimSpace(string(out))
	if os.Getenv("GOWSGI_REQUIRE_FRAMEWORKS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set GOWSGI_TEST_PYTHON to an interpreter that has them)")
}
