package worker

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gowsgi/gowsgi/internal/testpython"
)

// seenApp is an app that writes down, at import, what it sees of how its
// worker was started.
const seenApp = `import json, sys, __main__
json.dump({"argv": sys.argv, "path": sys.path, "main_file": hasattr(__main__, "__file__")},
          open("seen.json", "w"))
def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
`

// TestWorkerCommandLine: ps shows which app a worker serves, as
// "gowsgi-worker APP" when the interpreter has setproctitle, else as the
// interpreter's command line with the app as its argument; and the app
// sees none of it (as with python -c: no arguments, the app's folder and ""
// first on sys.path, no __main__.__file__), nor is the environment in
// /proc/PID/environ overwritten by the title.
func TestWorkerCommandLine(t *testing.T) {
	hasTitle := exec.Command(testpython.Path(), "-c", "import setproctitle").Run() == nil
	// A setproctitle that cannot be imported hides the real one.
	noTitle := t.TempDir()
	if err := os.WriteFile(filepath.Join(noTitle, "setproctitle.py"), []byte("raise ImportError('hidden by the test')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		title bool
		env   map[string]string
	}{
		{"with setproctitle", hasTitle, map[string]string{"GOWSGI_TEST_MARK": "1"}},
		{"without setproctitle", false, map[string]string{"GOWSGI_TEST_MARK": "1", "PYTHONPATH": noTitle}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "with setproctitle" && !hasTitle {
				t.Skip(testpython.Path() + " has no setproctitle")
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "seen.py"), []byte(seenApp), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := Start(&Spec{App: "blog-7", Python: testpython.Path(), Dir: dir, Module: "seen", Env: tt.env})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(time.Second)
			checkCommandLine(t, p.Pid, tt.title)
			checkSeen(t, dir)
		})
	}
}

func checkCommandLine(t *testing.T, pid int, title bool) {
	t.Helper()
	proc := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Fields(strings.ReplaceAll(string(b), "\x00", " "))
	if title {
		if want := []string{"gowsgi-worker", "blog-7"}; !slices.Equal(args, want) {
			t.Errorf("command line %q, want %q", args, want)
		}
	} else if len(args) != 4 || args[1] != "-u" || !regexp.MustCompile(`^/proc/self/fd/\d+$`).MatchString(args[2]) || args[3] != "blog-7" {
		t.Errorf("command line %q, want [PYTHON -u /proc/self/fd/N blog-7]", args)
	}
	if len(b) > 4096 {
		t.Errorf("command line is %d bytes", len(b))
	}
	env, err := os.ReadFile(proc + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.Split(string(env), "\x00")
	if !slices.Contains(vars, "GOWSGI_TEST_MARK=1") || slices.ContainsFunc(vars, func(kv string) bool { return strings.HasPrefix(kv, "SPT_NOENV=") }) {
		t.Errorf("/proc/PID/environ lost GOWSGI_TEST_MARK or has SPT_NOENV: %q", vars)
	}
}

func checkSeen(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "seen.json"))
	if err != nil {
		t.Fatal(err)
	}
	var seen struct {
		Argv     []string
		Path     []string
		MainFile bool `json:"main_file"`
	}
	if err := json.Unmarshal(b, &seen); err != nil {
		t.Fatal(err)
	}
	if len(seen.Argv) != 1 || seen.MainFile {
		t.Errorf("the app sees sys.argv %q and __main__.__file__ %v, want the program alone and none", seen.Argv, seen.MainFile)
	}
	if len(seen.Path) < 2 || seen.Path[0] != dir || seen.Path[1] != "" || slices.Contains(seen.Path, "/") {
		t.Errorf("the app's sys.path %q, want [%s, \"\", ...] without /", seen.Path, dir)
	}
}

// TestLoadErrorShowsProgramLines: the traceback of an app that fails at
// import shows the worker program's own lines, read from the program the
// worker runs, and the app's.
func TestLoadErrorShowsProgramLines(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "boom.py"), []byte("x = 1\nraise RuntimeError('boom at import')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(&Spec{App: "boom", Python: testpython.Path(), Dir: dir, Module: "boom"})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want *LoadError", err)
	}
	if !strings.Contains(le.Traceback, "    raise RuntimeError('boom at import')\n") {
		t.Errorf("traceback does not show the app's line:\n%s", le.Traceback)
	}
	lines := strings.Split(Program(), "\n")
	frames := regexp.MustCompile(`File "/proc/self/fd/\d+", line (\d+), in \w+\n +(.*)\n`).FindAllStringSubmatch(le.Traceback, -1)
	if len(frames) == 0 {
		t.Fatalf("traceback shows no line of the worker program:\n%s", le.Traceback)
	}
	for _, f := range frames {
		n, _ := strconv.Atoi(f[1])
		if n < 1 || n > len(lines) || strings.TrimSpace(lines[n-1]) != f[2] {
			t.Errorf("traceback shows %q as the program's line %s", f[2], f[1])
		}
	}
}
