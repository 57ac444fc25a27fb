package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestEnvValues reads ${NAME} and ${NAME:-default} in values: unquoted
// they read as if written in place (integers stay integers), quoted they
// are strings, "$${" is a literal "${", keys are left alone.
func TestEnvValues(t *testing.T) {
	t.Setenv("GOWSGI_T_PORT", "8123")
	t.Setenv("GOWSGI_T_WORKERS", "3")
	t.Setenv("GOWSGI_T_EMPTY", "")
	os.Unsetenv("GOWSGI_T_UNSET")
	dir := t.TempDir()
	path := filepath.Join(dir, "gowsgi.yaml")
	data := []byte(`listeners: ["127.0.0.1:${GOWSGI_T_PORT}"]
apps:
  hello:
    module: hello
    workers: ${GOWSGI_T_WORKERS}
    threads: ${GOWSGI_T_UNSET:-2}
    timeout: ${GOWSGI_T_EMPTY:-45s}
    env:
      GREETING: "hello ${GOWSGI_T_UNSET:-world}"
      LITERAL: "$${HOME}"
      "${KEY}": kept
mounts:
  /: hello
`)
	cfg, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps[0]
	if got := cfg.Listeners[0].Addr; got != "127.0.0.1:8123" {
		t.Errorf("listener = %q", got)
	}
	if a.Workers != 3 || a.Threads != 2 || a.Timeout.String() != "45s" {
		t.Errorf("workers %d threads %d timeout %v, want 3 2 45s", a.Workers, a.Threads, a.Timeout)
	}
	if a.Env["GREETING"] != "hello world" || a.Env["LITERAL"] != "${HOME}" {
		t.Errorf("env = %q", a.Env)
	}

	// Read again at every load: a reload sees the environment of then.
	t.Setenv("GOWSGI_T_WORKERS", "5")
	if cfg, err = Parse(path, data); err != nil || cfg.Apps[0].Workers != 5 {
		t.Errorf("second load: workers %v, err %v", cfg, err)
	}
}

func TestExpandRefs(t *testing.T) {
	env := map[string]string{"A": "1", "E": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for in, want := range map[string]string{
		"x":              "x",
		"${A}":           "1",
		"a${A}b${A}c":    "a1b1c",
		"${E}":           "",
		"${E:-d}":        "d",
		"${U:-}":         "",
		"${U:-a:b}":      "a:b",
		"$${A}":          "${A}",
		"$$${A}":         "$${A}",
		"cost: $5 ${A}$": "cost: $5 1$",
	} {
		if got, err := expandRefs(in, lookup); err != nil || got != want {
			t.Errorf("expandRefs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"${U}", "${", "${A", "${1A}", "${}", "${A B}"} {
		if _, err := expandRefs(in, lookup); err == nil {
			t.Errorf("expandRefs(%q): no error", in)
		}
	}
}
