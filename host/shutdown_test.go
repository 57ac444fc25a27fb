package host

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// importingPid waits until the import of testdata/apps/gated.py with its
// gate in dir has begun and returns the pid of the process importing it.
func importingPid(t *testing.T, dir string) int {
	t.Helper()
	var pid int
	waitFor(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "importing"))
		pid, _ = strconv.Atoi(string(b))
		return err == nil && pid > 0
	}, "the gated app's import to begin")
	return pid
}

// exists reports whether the file dir/name exists.
func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// processGone reports whether pid is no longer a running process (gone,
// or a zombie not yet reaped).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

// withGatedApp is observeConfig plus the app testdata/apps/gated.py with
// its gate in the folder gate, mounted at /gated.
func withGatedApp(gate string) string {
	app := "  gated: {module: gated, dir: {{apps}}, python: {{python}}, env: {GOWSGI_TEST_GATE: \"" + gate + "\"}}\n"
	return strings.Replace(observeConfig, "mounts:\n", app+"mounts:\n  \"/gated\": gated\n", 1)
}

// TestStatusDuringReload: while a reload waits for an app to import,
// /status, /metrics, /healthz, /livez and /readyz answer at once, from the
// generation being served (they used to wait for the reload's lock).
func TestStatusDuringReload(t *testing.T) {
	t.Parallel()
	th := startHost(t, observeConfig)
	gate := t.TempDir()
	th.writeConfig(withGatedApp(gate), false)
	reloaded := make(chan error, 1)
	go func() { reloaded <- th.ReloadFile(th.path) }()
	importingPid(t, gate)
	for _, path := range []string{"/status", "/metrics", "/healthz", "/livez", "/readyz"} {
		resp, body := fetch(t, th.adminURL()+path)
		select {
		case <-reloaded:
			t.Fatalf("%s answered only once the reload was done", path)
		default:
		}
		if resp.StatusCode != 200 {
			t.Errorf("%s during a reload: %d %s", path, resp.StatusCode, body)
		}
		if path == "/status" && !strings.Contains(body, `"generation": 1,`) {
			t.Errorf("/status during a reload: want generation 1 (the one served):\n%s", body)
		}
	}
	os.WriteFile(filepath.Join(gate, "release"), nil, 0o644)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if code, body := th.get("/gated/"); code != 200 || body != "gated" {
		t.Errorf("GET /gated/ after the reload: %d %q", code, body)
	}
}

// TestShutdownCancelsReload: Shutdown during a reload that waits for an
// app to import cancels the reload, kills the importing process, says not
// ready at once, and does not wait for the import.
func TestShutdownCancelsReload(t *testing.T) {
	t.Parallel()
	th := startHost(t, observeConfig)
	admin := th.adminURL()
	gate := t.TempDir()
	th.writeConfig(withGatedApp(gate), false)
	reloaded := make(chan error, 1)
	go func() { reloaded <- th.ReloadFile(th.path) }()
	pid := importingPid(t, gate)

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		th.Shutdown(ctx)
	}()
	waitFor(t, func() bool { return th.stopping.Load() }, "the shutdown to begin")
	if resp, err := http.Get(admin + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("/readyz once the shutdown began: %d, want 503", resp.StatusCode)
		}
	}
	if err := <-reloaded; err == nil {
		t.Error("the reload in progress at shutdown succeeded")
	}
	<-stopped
	if exists(gate, "imported") {
		t.Error("Shutdown waited for the import of the app being added")
	}
	waitFor(t, func() bool { return processGone(pid) }, "the importing process to be gone")
	if exists(gate, "imported") {
		t.Error("the importing process went on after Shutdown")
	}
}

// TestShutdownCutRequestLogged: a request still running when the shutdown
// timeout ends is cut by the host; its access line says so (503, cut:
// shutdown) rather than blaming the client (499).
func TestShutdownCutRequestLogged(t *testing.T) {
	t.Parallel()
	th := startHost(t, observeConfig)
	cut := make(chan error, 1)
	go func() {
		resp, err := http.Get(th.URL + "/app/slow?s=30")
		if err == nil {
			resp.Body.Close()
		}
		cut <- err
	}()
	waitFor(t, func() bool { return th.Status().Apps[0].InFlight == 1 }, "the slow request to run")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time for requests in flight: they are cut
	th.Shutdown(ctx)
	if err := <-cut; err == nil {
		t.Error("the request in flight got a response")
	}
	var line map[string]any
	waitFor(t, func() bool {
		for _, m := range th.accessLines() {
			if m["path"] == "/app/slow" {
				line = m
				return true
			}
		}
		return false
	}, "the access line of the cut request")
	if line["status"] != 503.0 || line["cut"] != "shutdown" {
		t.Errorf("access line of a request cut at shutdown: %v, want status 503 and cut: shutdown", line)
	}
	var m dto.Metric
	th.metrics.requests.WithLabelValues("basic", "503").Write(&m)
	if got := m.GetCounter().GetValue(); got != 1 {
		t.Errorf("requests_total{basic,503} = %v, want 1", got)
	}
}
