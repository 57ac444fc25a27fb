package config

import (
	"reflect"
	"testing"
)

// TestKeyTables: every key has a name, a doc and a read, once per table.
func TestKeyTables(t *testing.T) {
	checkTable(t, "topKeys", topKeys)
	checkTable(t, "logKeys", logKeys)
	checkTable(t, "limitKeys", limitKeys)
	checkTable(t, "adminKeys", adminKeys)
	checkTable(t, "listenerKeys", listenerKeys)
	checkTable(t, "tlsKeys", tlsKeys)
	checkTable(t, "appKeys", appKeys)
	checkTable(t, "includedKeys", includedKeys)
}

func checkTable[T any](t *testing.T, table string, keys []key[T]) {
	seen := make(map[string]bool)
	for i, k := range keys {
		switch {
		case k.name == "":
			t.Errorf("%s[%d] has no name", table, i)
		case seen[k.name]:
			t.Errorf("%s: %q is declared twice", table, k.name)
		case k.doc == "":
			t.Errorf("%s: %q has no doc", table, k.name)
		case k.read == nil:
			t.Errorf("%s: %q has no read", table, k.name)
		}
		seen[k.name] = true
	}
}

// TestDefaultsFromTables: a config that sets nothing optional gets the
// defaults the tables declare, and defaults are not shared between apps.
func TestDefaultsFromTables(t *testing.T) {
	cfg, err := Parse(t.TempDir()+"/gowsgi.yaml", []byte("listeners: [':1']\napps: {a: {module: m}, b: {module: m}}\nmounts: {/: a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits != DefaultLimits || cfg.Log != (Log{Access: true, AccessFormat: "json"}) || cfg.ShutdownTimeout != DefaultShutdownTimeout {
		t.Errorf("limits %+v, log %+v, shutdown %v", cfg.Limits, cfg.Log, cfg.ShutdownTimeout)
	}
	want := &App{Name: "a", Module: "m", Callable: DefaultCallable, Dir: cfg.Apps[0].Dir, Python: DefaultPython,
		Workers: 1, Threads: 1, Env: map[string]string{}, Timeout: DefaultTimeout, Queue: DefaultQueue,
		QueueTimeout: DefaultQueueTimeout, StartTimeout: DefaultStartTimeout, Umask: -1, Pos: cfg.Apps[0].Pos}
	if !reflect.DeepEqual(cfg.Apps[0], want) {
		t.Errorf("app %+v, want %+v", cfg.Apps[0], want)
	}
	if cfg.Apps[0].Env["x"] = "1"; len(cfg.Apps[1].Env) != 0 {
		t.Error("apps share their env")
	}
	if ln := cfg.Listeners[0]; ln.MaxConnections != DefaultMaxConnections {
		t.Errorf("listener %+v", ln)
	}
}
