package host

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gowsgi/gowsgi/worker"
)

// heavyApp builds about 40 MB of Python objects at import, as a large
// framework app does, and answers with its pid.
const heavyApp = `
import os
TABLE = {i: ("row %d " % i) * 4 for i in range(400000)}
def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
`

// threadedApp leaves a thread running after its import.
const threadedApp = `
import os, threading, time
threading.Thread(target=time.sleep, args=(3600,), name="metrics-flusher", daemon=True).start()
def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
`

// appDir writes module name with src into a new folder and returns it.
func appDir(t *testing.T, name, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name+".py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func preloadConfig(dir, module string, workers int, extra string) string {
	return fmt.Sprintf(`
listeners: ["127.0.0.1:0"]
apps:
  app: {module: %s, dir: %s, python: {{python}}, workers: %d, preload: true%s}
mounts:
  "/": app
`, module, dir, workers, extra)
}

// templatePid is the pid of app's template (0: none).
func (th *testHost) templatePid(app string) int {
	th.mu.Lock()
	rt := th.apps[app]
	th.mu.Unlock()
	if rt == nil || rt.pool == nil {
		return 0
	}
	return rt.pool.templatePid()
}

// memory returns the PSS and RSS of pid in bytes, from smaps_rollup.
func memory(t *testing.T, pid int) (pss, rss int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Pss:":
			pss = n << 10
		case "Rss:":
			rss = n << 10
		}
	}
	return pss, rss
}

func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	n, _ := strconv.Atoi(f[1])
	return n
}

// TestPreloadSharesPages checks that preloaded workers are forks of one
// template and share the pages of the import: their total PSS is well
// below their total RSS.
func TestPreloadSharesPages(t *testing.T) {
	th := startHost(t, preloadConfig(appDir(t, "heavy", heavyApp), "heavy", 4, ""))
	tp := th.templatePid("app")
	pids := th.Pids("app")
	if tp == 0 || len(pids) != 4 {
		t.Fatalf("template %d, workers %v", tp, pids)
	}
	for range 8 {
		if code, _ := th.get("/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	var pss, rss int64
	for _, pid := range pids {
		if p := ppid(pid); p != tp {
			t.Errorf("worker %d has parent %d, want the template %d", pid, p, tp)
		}
		s, r := memory(t, pid)
		pss, rss = pss+s, rss+r
	}
	tpss, trss := memory(t, tp)
	t.Logf("4 workers: PSS %d MiB, RSS %d MiB; template PSS %d MiB, RSS %d MiB", pss>>20, rss>>20, tpss>>20, trss>>20)
	if pss*2 > rss {
		t.Errorf("workers' PSS %d MiB is not well below their RSS %d MiB: pages are not shared", pss>>20, rss>>20)
	}
}

// TestPreloadRefusesThreads checks that an app that leaves a thread
// running after its import is not forked: one clear error names the
// thread, and each worker imports the app itself and serves.
func TestPreloadRefusesThreads(t *testing.T) {
	th := startHost(t, preloadConfig(appDir(t, "threaded", threadedApp), "threaded", 2, ""))
	if code, _ := th.get("/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if tp := th.templatePid("app"); tp != 0 {
		t.Errorf("a template %d is kept", tp)
	}
	if n := strings.Count(th.Logs.String(), "preload refused"); n != 1 || !strings.Contains(th.Logs.String(), "metrics-flusher") {
		t.Errorf("%d refusals logged, want one naming metrics-flusher", n)
	}
	for _, pid := range th.Pids("app") {
		if p := ppid(pid); p != os.Getpid() {
			t.Errorf("worker %d has parent %d, want the host", pid, p)
		}
	}
}

// TestPreloadReplacesByFork checks that a worker that dies is replaced by
// a new fork of the same template, which serves.
func TestPreloadReplacesByFork(t *testing.T) {
	th := startHost(t, preloadConfig("{{apps}}", "basic", 1, ""))
	tp, before := th.templatePid("app"), th.Pids("app")
	if code, _ := th.get("/crash"); code != 502 {
		t.Errorf("request whose worker died: %d, want 502", code)
	}
	waitFor(t, func() bool {
		p := th.Pids("app")
		return len(p) == 1 && p[0] != before[0]
	}, "a new worker")
	after := th.Pids("app")[0]
	if code, body := th.get("/pid"); code != 200 || body != strconv.Itoa(after) {
		t.Errorf("after the crash: %d %q, want the new worker %d", code, body, after)
	}
	if ppid(after) != tp || th.templatePid("app") != tp {
		t.Errorf("the replacement's parent is %d, want the template %d", ppid(after), tp)
	}
}

// TestPreloadTemplateDies checks that when the template is killed its
// workers die with it, and a new template and workers serve.
func TestPreloadTemplateDies(t *testing.T) {
	th := startHost(t, preloadConfig("{{apps}}", "basic", 2, ""))
	tp, before := th.templatePid("app"), th.Pids("app")
	syscall.Kill(tp, syscall.SIGKILL)
	waitFor(t, func() bool {
		for _, pid := range before {
			if !worker.ProcessGone(pid) {
				return false
			}
		}
		return true
	}, "the template's workers to die with it")
	waitFor(t, func() bool { return len(th.Pids("app")) == 2 && th.templatePid("app") != tp }, "new workers from a new template")
	if code, _ := th.get("/pid"); code != 200 {
		t.Errorf("after the template died: %d", code)
	}
}

// TestPreloadReload checks that a changed preloaded app gets a new
// template, and that the old template and its workers go.
func TestPreloadReload(t *testing.T) {
	th := startHost(t, preloadConfig("{{apps}}", "basic", 2, ""))
	tp, before := th.templatePid("app"), th.Pids("app")
	gen := th.Generation()
	th.writeConfig(preloadConfig("{{apps}}", "basic", 2, ", env: {CHANGED: '1'}"), false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	th.waitGeneration(gen)
	ntp := th.templatePid("app")
	if ntp == 0 || ntp == tp {
		t.Fatalf("template after reload: %d (before %d)", ntp, tp)
	}
	if code, body := th.get("/pid"); code != 200 || ppid(atoi(body)) != ntp {
		t.Errorf("after reload: %d %q, want a fork of %d", code, body, ntp)
	}
	waitFor(t, func() bool {
		for _, pid := range append(before, tp) {
			if !worker.ProcessGone(pid) {
				return false
			}
		}
		return true
	}, "the old template and workers to exit")
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
