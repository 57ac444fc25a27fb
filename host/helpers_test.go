package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/internal/testpython"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testHost is a running host with real Python workers on an ephemeral port.
type testHost struct {
	*Host
	t    *testing.T
	URL  string // http://127.0.0.1:PORT
	Logs *syncBuffer
	dir  string // the config's folder
	path string // the config file
}

// appsDir is the absolute path of the test apps.
func appsDir(t *testing.T) string {
	d, err := filepath.Abs("testdata/apps")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// expand fills the placeholders {{python}}, {{apps}} and {{examples}} in a test config.
func expand(t *testing.T, yaml string) string {
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("{{python}}", testpython.Path(), "{{apps}}", appsDir(t), "{{examples}}", examples).Replace(yaml)
}

// startHost writes yaml (placeholders expanded) to a temp gowsgi.yaml,
// starts a host on it and stops it, workers included, when the test ends.
func startHost(t *testing.T, yaml string) *testHost {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "gowsgi.yaml")
	if err := os.WriteFile(path, []byte(expand(t, yaml)), 0o644); err != nil {
		t.Fatal(err)
	}
	return startHostFile(t, path)
}

// startHostFile starts a host on the config file at path, as startHost.
func startHostFile(t *testing.T, path string) *testHost {
	t.Helper()
	dir := filepath.Dir(path)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	h := New(zerolog.New(logs).Level(zerolog.DebugLevel).With().Timestamp().Logger())
	if err := h.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	th := &testHost{Host: h, t: t, Logs: logs, dir: dir, path: path}
	t.Cleanup(func() { th.stop() })
	for _, a := range h.Addrs() {
		if a.Network() == "tcp" {
			th.URL = "http://" + a.String()
			break
		}
	}
	if th.URL == "" {
		t.Fatal("no tcp listener")
	}
	return th
}

// stop shuts the host down and checks that no worker process is left.
func (th *testHost) stop() {
	var pids []int
	th.mu.Lock()
	for _, rt := range th.apps {
		if rt.pool != nil {
			pids = append(pids, rt.pool.Pids()...)
			if tp := rt.pool.templatePid(); tp != 0 {
				pids = append(pids, tp)
			}
		}
	}
	th.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	th.Shutdown(ctx)
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			// Zombies are reaped by cmd.Wait in the host; a live pid is a leak.
			th.t.Errorf("worker %d still running after Shutdown", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if th.t.Failed() {
		th.t.Logf("host log:\n%s", th.Logs.String())
	}
}

// getClient bounds every th.get, so that a host that stops answering
// fails the test instead of hanging it.
var getClient = &http.Client{Timeout: 20 * time.Second}

// get fetches path and returns status and body, failing the test on a
// transport error.
// A failure is reported with Errorf (so that get may run in any
// goroutine) and gives code 0.
func (th *testHost) get(path string) (int, string) {
	th.t.Helper()
	resp, err := getClient.Get(th.URL + path)
	if err != nil {
		th.t.Errorf("GET %s: %v", path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		th.t.Errorf("GET %s: read body: %v", path, err)
		return 0, ""
	}
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watch makes the host follow its config file, as gowsgi does.
func (th *testHost) watch() {
	stop, err := th.WatchConfig(th.path)
	if err != nil {
		th.t.Fatalf("WatchConfig: %v", err)
	}
	th.t.Cleanup(stop)
}

// writeConfig replaces the config file: in place, or (rename) by writing a
// new file beside it and renaming it over the old one, as editors do.
func (th *testHost) writeConfig(yaml string, rename bool) {
	th.t.Helper()
	data := []byte(expand(th.t, yaml))
	if !rename {
		if err := os.WriteFile(th.path, data, 0o644); err != nil {
			th.t.Fatal(err)
		}
		return
	}
	tmp := th.path + ".swp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		th.t.Fatal(err)
	}
	if err := os.Rename(tmp, th.path); err != nil {
		th.t.Fatal(err)
	}
}

// waitGeneration waits until the host serves a generation after gen.
func (th *testHost) waitGeneration(gen int64) int64 {
	th.t.Helper()
	waitFor(th.t, func() bool { return th.Generation() > gen }, fmt.Sprintf("a generation after %d", gen))
	return th.Generation()
}

// tcpAddr is the host's TCP listener address now.
func (th *testHost) tcpAddr() string {
	for _, a := range th.Addrs() {
		if a.Network() == "tcp" {
			return a.String()
		}
	}
	return ""
}
