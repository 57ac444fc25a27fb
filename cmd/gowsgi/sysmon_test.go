package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestSysmonExec(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string // nil: no re-execution
	}{
		{"no GODEBUG", []string{"A=1"},
			[]string{"A=1", "GOWSGI_SAVED_GODEBUG=", "GODEBUG=schedtrace=2147483647"}},
		{"other settings kept after ours", []string{"GODEBUG=http2debug=1", "A=1"},
			[]string{"A=1", "GOWSGI_SAVED_GODEBUG==http2debug=1", "GODEBUG=schedtrace=2147483647,http2debug=1"}},
		{"empty GODEBUG", []string{"GODEBUG="},
			[]string{"GOWSGI_SAVED_GODEBUG==", "GODEBUG=schedtrace=2147483647,"}},
		{"the user's schedtrace stands", []string{"GODEBUG=gctrace=1,schedtrace=0"}, nil},
		{"schedtrace alone", []string{"GODEBUG=schedtrace=1000"}, nil},
		{"already re-executed", []string{"GODEBUG=schedtrace=2147483647", "GOWSGI_SAVED_GODEBUG="}, nil},
		{"a saved GODEBUG we did not set is dropped", []string{"GOWSGI_SAVED_GODEBUG==evil", "A=1"},
			[]string{"A=1", "GOWSGI_SAVED_GODEBUG=", "GODEBUG=schedtrace=2147483647"}},
		{"and replaced by the real one", []string{"GODEBUG=gctrace=1", "GOWSGI_SAVED_GODEBUG="},
			[]string{"GOWSGI_SAVED_GODEBUG==gctrace=1", "GODEBUG=schedtrace=2147483647,gctrace=1"}},
		{"ours must lead GODEBUG", []string{"GODEBUG=gctrace=1,schedtrace=2147483647", "GOWSGI_SAVED_GODEBUG="}, nil},
		{"the first GODEBUG counts, as in Go", []string{"GODEBUG=schedtrace=0", "GODEBUG=gctrace=1"}, nil},
		{"a later GODEBUG is dropped", []string{"GODEBUG=gctrace=1", "GODEBUG=schedtrace=0"},
			[]string{"GOWSGI_SAVED_GODEBUG==gctrace=1", "GODEBUG=schedtrace=2147483647,gctrace=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sysmonExec(tt.environ, func(k, v string) {}, func(string) {})
			if !slices.Equal(got, tt.want) {
				t.Errorf("sysmonExec(%q) = %q, want %q", tt.environ, got, tt.want)
			}
		})
	}
}

// TestSysmonRestore: the re-executed host puts the user's GODEBUG back.
func TestSysmonRestore(t *testing.T) {
	tests := []struct {
		saved   string
		want    string
		wantSet bool
	}{
		{"", "", false},
		{"=", "", true},
		{"=gctrace=1", "gctrace=1", true},
	}
	for _, tt := range tests {
		env := map[string]string{"GODEBUG": "schedtrace=2147483647", savedGodebugEnv: tt.saved}
		environ := []string{"GODEBUG=" + env["GODEBUG"], savedGodebugEnv + "=" + tt.saved}
		if got := sysmonExec(environ, func(k, v string) { env[k] = v }, func(k string) { delete(env, k) }); got != nil {
			t.Errorf("saved %q: re-executes again with %q", tt.saved, got)
		}
		v, set := env["GODEBUG"]
		if v != tt.want || set != tt.wantSet {
			t.Errorf("saved %q: GODEBUG = %q (set %v), want %q (set %v)", tt.saved, v, set, tt.want, tt.wantSet)
		}
		if _, ok := env[savedGodebugEnv]; ok {
			t.Errorf("saved %q: %s left in the environment", tt.saved, savedGodebugEnv)
		}
	}
}

// TestSysmonStaleSaved: a GOWSGI_SAVED_GODEBUG the host did not set itself
// is removed and never copied into GODEBUG.
func TestSysmonStaleSaved(t *testing.T) {
	for _, environ := range [][]string{
		{savedGodebugEnv + "==gctrace=1"},
		{savedGodebugEnv + "==gctrace=1", "GODEBUG=schedtrace=0"},
		{savedGodebugEnv + "=", "GODEBUG=x=1,schedtrace=2147483647"},
		{savedGodebugEnv + "==gctrace=1", "GODEBUG=schedtrace=21474836470"},
	} {
		env := map[string]string{}
		for _, kv := range environ {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		godebug, hadGodebug := env["GODEBUG"]
		sysmonExec(environ, func(k, v string) { env[k] = v }, func(k string) { delete(env, k) })
		if _, ok := env[savedGodebugEnv]; ok {
			t.Errorf("%q: %s left in the environment", environ, savedGodebugEnv)
		}
		if v, ok := env["GODEBUG"]; v != godebug || ok != hadGodebug {
			t.Errorf("%q: GODEBUG = %q (set %v), want it untouched", environ, v, ok)
		}
	}
}

// TestBinarySysmonSetting starts the real binary with -keep-sysmon-awake:
// it runs with the setting (its process environment shows what it was
// executed with), its workers do not see it, and a user's own schedtrace
// is left alone.
func TestBinarySysmonSetting(t *testing.T) {
	cfg := `
listeners: ["127.0.0.1:0"]
apps:
  pid: {module: pidapp, dir: {{apps}}, python: {{python}}}
mounts:
  "/": pid
`
	for _, tt := range []struct {
		godebug    string
		hostWant   string // the host's GODEBUG as executed
		workerWant string // "" means unset
	}{
		{"", "GODEBUG=schedtrace=2147483647", ""},
		{"gctrace=0", "GODEBUG=schedtrace=2147483647,gctrace=0", "GODEBUG=gctrace=0"},
		{"schedtrace=0", "GODEBUG=schedtrace=0", "GODEBUG=schedtrace=0"},
	} {
		t.Run("GODEBUG="+tt.godebug, func(t *testing.T) {
			if tt.godebug == "" {
				unsetenv(t, "GODEBUG")
			} else {
				t.Setenv("GODEBUG", tt.godebug)
			}
			s := start(t, writeConfig(t, t.TempDir(), cfg), "-keep-sysmon-awake")
			if got := godebugOf(t, s.cmd.Process.Pid); got != tt.hostWant {
				t.Errorf("host runs with %q, want %q", got, tt.hostWant)
			}
			code, body := s.get(t, "/")
			pid, err := strconv.Atoi(strings.Fields(body + " x")[0])
			if code != 200 || err != nil {
				t.Fatalf("GET / = %d %q", code, body)
			}
			if got := godebugOf(t, pid); got != tt.workerWant {
				t.Errorf("worker runs with %q, want %q", got, tt.workerWant)
			}
			if environ := readEnviron(t, pid); slices.ContainsFunc(environ, func(kv string) bool {
				return strings.HasPrefix(kv, savedGodebugEnv+"=")
			}) {
				t.Errorf("worker's environment has %s", savedGodebugEnv)
			}
		})
	}
}

// TestBinarySysmonKeepsName: started through a symlink, the re-executed
// host keeps the symlink's name (os.Executable would give the target's).
func TestBinarySysmonKeepsName(t *testing.T) {
	link := filepath.Join(t.TempDir(), "gowsgi-edge")
	if err := os.Symlink(binary, link); err != nil {
		t.Fatal(err)
	}
	unsetenv(t, "GODEBUG")
	s := startBinary(t, link, "-c", writeConfig(t, t.TempDir(), serveConfig), "-log-format", "json", "-keep-sysmon-awake")
	pid := s.cmd.Process.Pid
	if got := godebugOf(t, pid); got != "GODEBUG="+sysmonSetting {
		t.Fatalf("host runs with %q: not re-executed", got)
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(comm)); got != "gowsgi-edge" {
		t.Errorf("host's name is %q, want %q", got, "gowsgi-edge")
	}
}

// TestBinaryConfigFromPipe: a config that can be read only once (a FIFO,
// as `-c <(…)` gives) is served without the re-execution, which would
// read it again.
func TestBinaryConfigFromPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "gowsgi.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeConfig(t, t.TempDir(), serveConfig))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // until gowsgi opens it
		if err == nil {
			f.Write(b)
			f.Close()
		}
	}()
	t.Cleanup(func() {
		// Release the writer if gowsgi never opened the FIFO.
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	unsetenv(t, "GODEBUG")
	s := start(t, fifo, "-keep-sysmon-awake")
	if code, body := s.get(t, "/"); code != 200 {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if got := godebugOf(t, s.cmd.Process.Pid); got != "" {
		t.Errorf("host runs with %q, want it not re-executed", got)
	}
	if !strings.Contains(s.log(), "is not a regular file") {
		t.Errorf("log does not say why the host was not re-executed:\n%s", s.log())
	}
}

// TestBinaryNoReexecByDefault: without -keep-sysmon-awake the host runs
// as started, though it could have been re-executed (a config file it
// can read twice, no schedtrace in GODEBUG).
func TestBinaryNoReexecByDefault(t *testing.T) {
	unsetenv(t, "GODEBUG")
	s := start(t, writeConfig(t, t.TempDir(), serveConfig), "-log-level", "debug")
	if code, body := s.get(t, "/"); code != 200 {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if got := godebugOf(t, s.cmd.Process.Pid); got != "" {
		t.Errorf("host runs with %q: re-executed without -keep-sysmon-awake", got)
	}
	if strings.Contains(s.log(), "sysmon") {
		t.Errorf("log mentions sysmon without -keep-sysmon-awake:\n%s", s.log())
	}
}

// unsetenv unsets key for the test (t.Setenv can only set it, if to "").
func unsetenv(t *testing.T, key string) {
	t.Setenv(key, "") // restores the old value in Cleanup
	os.Unsetenv(key)
}

// godebugOf returns the GODEBUG=... entry a process was executed with, or "".
func godebugOf(t *testing.T, pid int) string {
	for _, kv := range readEnviron(t, pid) {
		if strings.HasPrefix(kv, "GODEBUG=") {
			return kv
		}
	}
	return ""
}

func readEnviron(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}
