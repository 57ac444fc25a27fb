package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reloadConfig is a config variant for the reload tests: the stable app
// and mount exist in all of them; the rest comes and goes.
func reloadConfig(dir string, i int) string {
	var b strings.Builder
	b.WriteString("listeners:\n  - \"127.0.0.1:0\"\n")
	if i%3 == 1 {
		fmt.Fprintf(&b, "  - \"unix:%s/extra.sock\"\n", dir)
	}
	fmt.Fprintf(&b, "apps:\n  stable: {module: basic, dir: {{apps}}, python: {{python}}, workers: %d}\n", 1+i%2)
	b.WriteString("  keep: {module: pidapp, dir: {{apps}}, python: {{python}}}\n")
	if i%4 >= 2 {
		b.WriteString("  extra: {module: pidapp, dir: {{apps}}, python: {{python}}}\n")
	}
	b.WriteString("mounts:\n  \"/stable\": stable\n  \"/keep\": keep\n")
	if i%4 >= 2 {
		fmt.Fprintf(&b, "  \"/extra%d\": extra\n", i)
	}
	if i%2 == 1 {
		b.WriteString("  \"/also-keep\": keep\n")
	}
	return b.String()
}

func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	th := startHost(t, reloadConfig(dir, 0))
	th.watch()
	keepPids := fmt.Sprint(th.Pids("keep"))

	ctx, stop := context.WithCancel(context.Background())
	var requests, failures atomic.Int64
	var failMu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	// load sends requests with do until the test stops it, counting them
	// and their failures.
	load := func(path string, do func(i int) error) {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			err := do(i)
			requests.Add(1)
			if err == nil {
				continue
			}
			failures.Add(1)
			failMu.Lock()
			failed = append(failed, path+": "+err.Error())
			failMu.Unlock()
		}
	}
	keepAlive := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer keepAlive.CloseIdleConnections()
	for _, c := range []struct {
		client *http.Client
		path   string
	}{{keepAlive, "/stable/pid"}, {keepAlive, "/keep/"}, {fresh, "/stable/"}, {fresh, "/keep/x"}} {
		wg.Add(1)
		go load(c.path, func(int) error { return getOK(c.client, th.URL+c.path) })
	}

	// Large bodies wait in the shared body area of the stable app, which
	// every reload replaces (its worker count changes): an old area is
	// closed while its requests may still be in flight.
	wg.Add(1)
	go load("/stable/echo", func(i int) error {
		return postEcho(keepAlive, th.URL+"/stable/echo", patterned(100_000+i%5000, uint64(i)))
	})

	gen := th.Generation()
	const reloads = 32
	for i := 1; i <= reloads; i++ {
		th.writeConfig(reloadConfig(dir, i), i%2 == 0)
		gen = th.waitGeneration(gen)
		// The new mapping is served right away.
		if i%4 >= 2 {
			if code, _ := th.get(fmt.Sprintf("/extra%d/", i)); code != 200 {
				t.Errorf("reload %d: new mount /extra%d answers %d", i, i, code)
			}
		}
		if i%2 == 1 {
			if code, _ := th.get("/also-keep/"); code != 200 {
				t.Errorf("reload %d: /also-keep answers %d", i, code)
			}
		} else if code, _ := th.get("/also-keep/"); code != 404 {
			t.Errorf("reload %d: removed mount /also-keep answers %d", i, code)
		}
		if i%3 == 1 {
			c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "extra.sock"))
			}}}
			resp, err := c.Get("http://unix/stable/")
			if err != nil {
				t.Errorf("reload %d: added unix listener: %v", i, err)
			} else {
				resp.Body.Close()
			}
		}
	}
	stop()
	wg.Wait()
	if failures.Load() > 0 {
		t.Errorf("%d of %d requests failed during %d reloads; first: %v", failures.Load(), requests.Load(), reloads, failed[:min(5, len(failed))])
	}
	if got := fmt.Sprint(th.Pids("keep")); got != keepPids {
		t.Errorf("unchanged app keep: pids %s -> %s", keepPids, got)
	}
	t.Logf("%d requests, %d reloads", requests.Load(), reloads)
}

func TestReloadRefusedKeepsServing(t *testing.T) {
	dir := t.TempDir()
	good := `
listeners: ["127.0.0.1:0"]
apps:
  app: {module: pidapp, dir: ` + dir + `, python: {{python}}}
mounts:
  "/app": app
`
	src := "import os\ndef application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'%s %%d' %% os.getpid()]\n"
	if err := os.WriteFile(filepath.Join(dir, "pidapp.py"), []byte(fmt.Sprintf(src, "v1")), 0o644); err != nil {
		t.Fatal(err)
	}
	th := startHost(t, good)
	th.watch()
	_, before := th.get("/app")
	gen := th.Generation()

	// A YAML syntax error: nothing changes, the problem is logged with its position.
	th.writeConfig("listeners: [\"127.0.0.1:0\"]\napps:\n  app: {module: pidapp\nmounts: {\n", false)
	waitFor(t, func() bool { return strings.Contains(th.Logs.String(), "reload refused") }, "the refusal in the log")
	if !strings.Contains(th.Logs.String(), "gowsgi.yaml:") {
		t.Errorf("no file:line:col in the log:\n%s", th.Logs.String())
	}
	if th.Generation() != gen {
		t.Fatal("a config with a syntax error was applied")
	}
	if _, now := th.get("/app"); now != before {
		t.Errorf("after a refused reload: %q, want %q", now, before)
	}

	// A changed app whose new module raises on import: the old one keeps serving.
	if err := os.WriteFile(filepath.Join(dir, "broken2.py"), []byte("raise RuntimeError('import boom')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	th.writeConfig(strings.Replace(good, "module: pidapp", "module: broken2", 1), true)
	th.waitGeneration(gen)
	if _, now := th.get("/app"); now != before {
		t.Errorf("after a failed app start: %q, want the old worker's %q", now, before)
	}
	if !strings.Contains(th.Logs.String(), "import boom") {
		t.Error("the failed import's traceback is not in the log")
	}

	// The next good edit applies, and a new mount serves within 1 s of the
	// write. (The edit starts no Python, whose start alone can take a
	// second on a loaded machine.)
	if err := os.WriteFile(filepath.Join(dir, "pidapp.py"), []byte(fmt.Sprintf(src, "v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	th.writeConfig(good+"  \"/new\": app\n  \"/newbroken\": broken\napps2: 1\n", false) // unknown key: refused
	waitFor(t, func() bool { return strings.Count(th.Logs.String(), "reload refused") >= 2 }, "the second refusal")
	gen = th.Generation()
	written := time.Now()
	th.writeConfig(good+"  \"/new\": app\n", false)
	var code int
	var body string
	for time.Since(written) < 5*time.Second {
		if code, body = th.get("/new/"); code == 200 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(written); code != 200 || took > time.Second {
		t.Errorf("new mount: %d %q after %v, want 200 within 1s", code, body, took)
	}

	// A brand-new app that fails to import: its mount answers 503 and
	// /status says why; the rest of the edit applies.
	gen = th.waitGeneration(gen)
	th.writeConfig(strings.Replace(good, "apps:\n", "apps:\n  broken: {module: broken2, dir: "+dir+", python: {{python}}}\n", 1)+
		"  \"/new\": app\n  \"/newbroken\": broken\n", false)
	th.waitGeneration(gen)
	if code, body := th.get("/newbroken/"); code != 503 || body != appFailedBody {
		t.Errorf("brand-new broken app: %d %q, want 503 %q", code, body, appFailedBody)
	}
	for _, a := range th.Status().Apps {
		if a.Name == "broken" && !strings.Contains(a.Error, "import boom") {
			t.Errorf("brand-new broken app in /status: %q, want its reason", a.Error)
		}
	}
	// The app definition did not change in the last edits, so its worker
	// is the same process; it imported v1 long ago.
	if _, now := th.get("/app"); now != before {
		t.Errorf("unchanged app was restarted: %q -> %q", before, now)
	}
}

func TestReloadKeepsConnectionsAndSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	th := startHost(t, reloadConfig(dir, 0))
	addr := strings.TrimPrefix(th.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	ask := func() {
		t.Helper()
		fmt.Fprintf(conn, "GET /keep/ HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive connection after reload: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("keep-alive connection after reload: %d", resp.StatusCode)
		}
	}
	ask()
	gen := th.Generation()
	for i := 1; i <= 6; i++ {
		th.writeConfig(reloadConfig(dir, i), i%2 == 0)
		if err := th.ReloadFile(th.path); err != nil {
			t.Fatal(err)
		}
		if th.Generation() <= gen {
			t.Fatal("reload did not apply")
		}
		gen = th.Generation()
		ask()
		if got := strings.TrimPrefix(th.URL, "http://"); th.tcpAddr() != got {
			t.Fatalf("listener moved: %s -> %s", got, th.tcpAddr())
		}
	}
}

func TestReloadOnSourceChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(version string) {
		src := "import os\ndef application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'" + version + " %d' % os.getpid()]\n"
		if err := os.WriteFile(filepath.Join(dir, "devapp.py"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("v1")
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  dev: {module: devapp, dir: `+dir+`, python: {{python}}, reload: true}
  other: {module: pidapp, dir: {{apps}}, python: {{python}}}
mounts:
  "/": dev
  "/other": other
`)
	otherPids := fmt.Sprint(th.Pids("other"))
	_, before := th.get("/app")
	if !strings.HasPrefix(before, "v1 ") {
		t.Fatalf("GET / = %q", before)
	}
	gen := th.Generation()
	write("v2")
	th.waitGeneration(gen)
	if _, now := th.get("/app"); !strings.HasPrefix(now, "v2 ") {
		t.Errorf("after editing the source: %q, want v2", now)
	}
	if got := fmt.Sprint(th.Pids("other")); got != otherPids {
		t.Errorf("other app restarted: %s -> %s", otherPids, got)
	}
}
