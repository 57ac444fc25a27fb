package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/internal/testpython"
)

const basicConfig = `
listeners: ["127.0.0.1:0"]
apps:
  basic:
    module: basic
    dir: {{apps}}
    python: {{python}}
  validated:
    module: validated
    dir: {{apps}}
    python: {{python}}
  env:
    module: basic
    dir: {{apps}}
    python: {{python}}
    workers: 2
    threads: 3
    env: {GOWSGI_TEST_CLOSE_LOG: "close.log"}
mounts:
  "/": basic
  "/v": validated
  "/env/sub": env
`

func TestFrameworks(t *testing.T) {
	t.Parallel()
	testpython.Require(t, "flask", "django", "bottle", "falcon", "pyramid")
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  hello: {module: "hello:application", dir: "{{examples}}/hello", python: {{python}}}
  flask: {module: "flask_app:application", dir: "{{examples}}/flask_app", python: {{python}}}
  django: {module: "django_app", dir: "{{examples}}/django_app", python: {{python}}}
  bottle: {module: "bottle_app", dir: "{{examples}}/bottle_app", python: {{python}}}
  falcon: {module: "falcon_app", dir: "{{examples}}/falcon_app", python: {{python}}}
  pyramid: {module: "pyramid_app", dir: "{{examples}}/pyramid_app", python: {{python}}}
mounts:
  "/": hello
  "/flask": flask
  "/django": django
  "/bottle": bottle
  "/falcon": falcon
  "/apps/pyramid": pyramid
`)
	if code, body := th.get("/"); code != 200 || body != "Hello from gowsgi!\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	for _, fw := range []struct{ name, mount string }{
		{"flask", "/flask"}, {"django", "/django"}, {"bottle", "/bottle"}, {"falcon", "/falcon"}, {"pyramid", "/apps/pyramid"},
	} {
		t.Run(fw.name, func(t *testing.T) {
			code, body := th.get(fw.mount + "/")
			if code != 200 || !strings.HasPrefix(body, fw.name+":") || !strings.Contains(body, "url="+fw.mount+"/") {
				t.Errorf("GET %s/ = %d %q; want the app to see %s as its script root", fw.mount, code, body, fw.mount)
			}
			code, body = th.get(fw.mount + "/hello/bob")
			if code != 200 || strings.TrimSpace(body) != fw.name+" hello bob" {
				t.Errorf("GET %s/hello/bob = %d %q", fw.mount, code, body)
			}
		})
	}
}

func TestValidatedApp(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	for _, path := range []string{"/v/", "/v/environ", "/v/write", "/v/stream?delay=0", "/v/empty-chunks", "/v/close", "/v/big?n=300000"} {
		code, body := th.get(path)
		if code != 200 {
			t.Errorf("GET %s through wsgiref.validate: %d %q", path, code, body)
		}
	}
	resp, err := http.Post(th.URL+"/v/echo-sized", "application/octet-stream", strings.NewReader("validated body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "validated body" {
		t.Errorf("POST /v/echo-sized = %d %q", resp.StatusCode, b)
	}
	if strings.Contains(th.Logs.String(), "AssertionError") {
		t.Errorf("wsgiref.validate complained:\n%s", th.Logs.String())
	}
}

func TestEnviron(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	req, _ := http.NewRequest("POST", th.URL+"/env/sub/environ/caf%C3%A9/x%2Fy?a=1&b=%20#frag", strings.NewReader("12345"))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("X-Custom", "one")
	req.Header.Add("X-Custom", "two")
	req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(th.URL, "http://"))
	want := map[string]any{
		"REQUEST_METHOD":        "POST",
		"SCRIPT_NAME":           "/env/sub",
		"PATH_INFO":             "/environ/caf\u00c3\u00a9/x/y", // UTF-8 bytes as latin-1 code points
		"QUERY_STRING":          "a=1&b=%20",
		"RAW_URI":               "/env/sub/environ/caf%C3%A9/x%2Fy?a=1&b=%20",
		"REQUEST_URI":           "/env/sub/environ/caf%C3%A9/x%2Fy?a=1&b=%20",
		"CONTENT_TYPE":          "text/plain",
		"CONTENT_LENGTH":        "5",
		"SERVER_PROTOCOL":       "HTTP/1.1",
		"SERVER_NAME":           "127.0.0.1",
		"SERVER_PORT":           port,
		"REMOTE_ADDR":           "127.0.0.1",
		"HTTP_HOST":             "127.0.0.1:" + port,
		"HTTP_X_CUSTOM":         "one,two",
		"HTTP_X_FORWARDED_FOR":  "1.2.3.4",
		"wsgi.url_scheme":       "https"[:4],
		"wsgi.version":          []any{1.0, 0.0},
		"wsgi.multithread":      true,
		"wsgi.multiprocess":     true,
		"wsgi.run_once":         false,
		"wsgi.input_terminated": true,
		"body_len":              5.0,
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("environ[%q] = %#v, want %#v", k, got, v)
		}
	}
	for _, k := range []string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_X_FORWARDED_FOR_"} {
		if _, ok := env[k]; ok {
			t.Errorf("environ has %s", k)
		}
	}
	for k := range env {
		if strings.Contains(k, "6.6.6.6") || env[k] == "6.6.6.6" {
			t.Errorf("header with underscore reached the app as %s", k)
		}
	}
	if !strings.HasPrefix(fmt.Sprint(env["SERVER_SOFTWARE"]), "gowsgi/") {
		t.Errorf("SERVER_SOFTWARE = %v", env["SERVER_SOFTWARE"])
	}
	if env["REMOTE_PORT"] == "" {
		t.Error("REMOTE_PORT empty")
	}

	// A single-threaded, single-process app says so.
	code, body := th.get("/environ")
	if code != 200 || !strings.Contains(body, `"wsgi.multithread": false`) || !strings.Contains(body, `"wsgi.multiprocess": false`) ||
		!strings.Contains(body, `"SCRIPT_NAME": ""`) || !strings.Contains(body, `"PATH_INFO": "/environ"`) {
		t.Errorf("GET /environ = %d %s", code, body)
	}
}

func TestBodiesBothWays(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	body := make([]byte, 5<<20+17)
	rand.Read(body)
	resp, err := http.Post(th.URL+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Errorf("POST 5 MiB /echo: status %d, %d bytes back, equal=%v", resp.StatusCode, len(got), bytes.Equal(got, body))
	}

	// Chunked request body (unknown length): the app reads until b"".
	resp, err = http.Post(th.URL+"/echo-sized", "application/octet-stream", io.MultiReader(bytes.NewReader(body[:3<<20]), strings.NewReader("end")))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := append(append([]byte{}, body[:3<<20]...), "end"...); !bytes.Equal(got, want) {
		t.Errorf("chunked POST: %d bytes back, want %d", len(got), len(want))
	}

	const n = 6<<20 + 5
	code, big := th.get(fmt.Sprintf("/big?n=%d", n))
	if code != 200 || len(big) != n {
		t.Fatalf("GET /big: %d, %d bytes", code, len(big))
	}
	for i := 0; i < n; i++ {
		if big[i] != byte(i%251) {
			t.Fatalf("GET /big: byte %d = %d, want %d", i, big[i], i%251)
		}
	}

	lines := "one\ntwo\n\nthree without newline"
	for _, p := range []string{"/echo-lines", "/echo-iter", "/echo-readlines"} {
		resp, err := http.Post(th.URL+p, "text/plain", strings.NewReader(lines))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != lines {
			t.Errorf("POST %s = %q, want %q", p, got, lines)
		}
	}
}

func TestResponses(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	tests := []struct {
		path     string
		code     int
		body     string
		header   string // header that must be present
		noHeader string // header that must be absent
	}{
		{path: "/write", code: 200, body: "part1-part2"},
		{path: "/exc-info", code: 500, body: "replaced", header: "X-Replaced", noHeader: "X-First"},
		{path: "/raise", code: 500},
		{path: "/bad-header", code: 500, noHeader: "Injected"},
		{path: "/bad-header-name", code: 500},
		{path: "/bad-status", code: 500},
		{path: "/two-lengths", code: 500},
		{path: "/empty-chunks", code: 200, body: "data"},
		{path: "/nothing-here", code: 404, body: "not found: /nothing-here"},
		{path: "/", code: 200, body: "basic ok", header: "Content-Length"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(th.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || (tt.body != "" && string(b) != tt.body) {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, resp.StatusCode, b, tt.code, tt.body)
			}
			if tt.header != "" && resp.Header.Get(tt.header) == "" && !(tt.header == "Content-Length" && resp.ContentLength >= 0) {
				t.Errorf("GET %s: no %s header", tt.path, tt.header)
			}
			if tt.noHeader != "" && resp.Header.Get(tt.noHeader) != "" {
				t.Errorf("GET %s: has %s header", tt.path, tt.noHeader)
			}
		})
	}
	// The traceback goes to the log with the app name and the request line.
	logs := th.Logs.String()
	if !strings.Contains(logs, `"app":"basic"`) || !strings.Contains(logs, `"request":"GET /raise"`) || !strings.Contains(logs, "boom from basic app") {
		t.Errorf("no traceback for /raise in the log:\n%s", logs)
	}
	if !strings.Contains(logs, "malformed value for response header") {
		t.Errorf("bad header not explained in the log")
	}
}

// TestAbortAfterStart: an app that fails once its body has started cuts the
// connection: the client never sees a complete, well-formed response.
func TestAbortAfterStart(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	for _, path := range []string{"/raise-after-start", "/exc-info-after-body"} {
		resp, err := http.Get(th.URL + path)
		if err != nil {
			continue // cut before the headers arrived: fine
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("GET %s: complete response %d %q, want a cut connection", path, resp.StatusCode, b)
		}
	}
	// The worker keeps serving after every kind of failure, in the same process.
	_, pid1 := th.get("/pid")
	th.get("/raise")
	_, pid2 := th.get("/pid")
	if pid1 != pid2 {
		t.Errorf("worker changed after an exception: %s -> %s", pid1, pid2)
	}
}

func TestCloseIsCalled(t *testing.T) {
	t.Parallel()
	// The env app logs each close() to GOWSGI_TEST_CLOSE_LOG: a file of
	// this test's own, not close.log in the shared apps folder.
	logPath := filepath.Join(t.TempDir(), "close.log")
	th := startHost(t, strings.Replace(basicConfig, `"close.log"`, fmt.Sprintf("%q", logPath), 1))
	for _, p := range []string{"/env/sub/close?plain", "/env/sub/close-raise?raising"} {
		resp, err := http.Get(th.URL + p)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "plain\nraising\n" {
		t.Errorf("close() log = %q, want both requests", b)
	}
}

func TestAppOutputIsLogged(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	if code, _ := th.get("/stderr"); code != 200 {
		t.Fatal(code)
	}
	// The lines arrive from the worker's pipe asynchronously: poll.
	waitFor(t, func() bool {
		l := th.Logs.String()
		return strings.Contains(l, `"message":"hello to wsgi.errors"`) && strings.Contains(l, `"message":"hello to stdout"`)
	}, "app output in the host log")
	for _, line := range strings.Split(th.Logs.String(), "\n") {
		if strings.Contains(line, "hello to wsgi.errors") && !strings.Contains(line, `"app":"basic"`) {
			t.Errorf("app output not tagged with the app: %s", line)
		}
	}
}

// appFailedBody is what a client gets from an app that failed to load:
// nothing of the reason, which may show paths and code.
const appFailedBody = "503 Service Unavailable: the app failed to load; see the server log\n"

func TestImportFailureBesideWorkingApps(t *testing.T) {
	t.Parallel()
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}}
  broken: {module: broken, dir: {{apps}}, python: {{python}}}
  syntax: {module: syntax_error, dir: {{apps}}, python: {{python}}}
  nocallable: {module: no_callable, dir: {{apps}}, python: {{python}}}
  nopython: {module: basic, dir: {{apps}}, python: /nonexistent/python3}
mounts:
  "/": basic
  "/broken": broken
  "/syntax": syntax
  "/nocallable": nocallable
  "/nopython": nopython
`)
	// Clients get a plain 503; the reason is for the log and /status only.
	reasons := map[string]string{}
	for _, a := range th.Status().Apps {
		reasons[a.Name] = a.Error
	}
	for _, tt := range []struct{ path, app, reason string }{
		{"/broken/x", "broken", "ImportError: broken on purpose"},
		{"/syntax", "syntax", "SyntaxError"},
		{"/nocallable/", "nocallable", "AttributeError"},
		{"/nopython/", "nopython", "/nonexistent/python3"},
	} {
		code, body := th.get(tt.path)
		if code != 503 || body != appFailedBody {
			t.Errorf("GET %s = %d %q, want 503 %q", tt.path, code, body, appFailedBody)
		}
		if !strings.Contains(reasons[tt.app], tt.reason) {
			t.Errorf("/status error of %s = %q, want it to contain %q", tt.app, reasons[tt.app], tt.reason)
		}
	}
	if code, body := th.get("/"); code != 200 || body != "basic ok" {
		t.Errorf("working app beside broken ones: %d %q", code, body)
	}
	if !strings.Contains(th.Logs.String(), "Traceback (most recent call last)") {
		t.Error("no traceback in the log for the broken app")
	}
}

func TestTwoWorkersServeAtOnce(t *testing.T) {
	t.Parallel()
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  slow: {module: basic, dir: {{apps}}, python: {{python}}, workers: 2}
mounts:
  "/": slow
`)
	dir := t.TempDir()
	var wg sync.WaitGroup
	bodies := make([]string, 2)
	for i, me := range []string{"a", "b"} {
		peer := map[string]string{"a": "b", "b": "a"}[me]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, bodies[i] = th.get(fmt.Sprintf("/rendezvous?dir=%s&me=%s&peer=%s", dir, me, peer))
		}()
	}
	wg.Wait()
	if !strings.HasPrefix(bodies[0], "met ") || !strings.HasPrefix(bodies[1], "met ") || bodies[0] == bodies[1] {
		t.Errorf("two requests did not run at once in two workers: %q, %q", bodies[0], bodies[1])
	}
}

func TestNoMount(t *testing.T) {
	t.Parallel()
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/only": basic
  "example.com/": basic
`)
	if code, _ := th.get("/"); code != 404 {
		t.Errorf("GET / = %d, want 404", code)
	}
	if code, _ := th.get("/onlyx"); code != 404 {
		t.Errorf("GET /onlyx = %d, want 404", code)
	}
	if code, body := th.get("/only"); code != 200 || body != "basic ok" {
		t.Errorf("GET /only = %d %q", code, body)
	}
	req, _ := http.NewRequest("GET", th.URL+"/pid", nil)
	req.Host = "Example.COM:1234"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("host mount: %d", resp.StatusCode)
	}
}

// TestDemoConfig serves the repo's gowsgi.yaml (on an ephemeral port): the
// stdlib apps answer; each framework app answers or, where its package is
// missing for the interpreter, answers 503 and /status says why.
func TestDemoConfig(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../gowsgi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners[0].Address = "127.0.0.1:0"
	if cfg.Admin == nil || cfg.Admin.Address != "127.0.0.1:9191" {
		t.Errorf("demo admin listener: %+v", cfg.Admin)
	}
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Listeners = cfg.Listeners[:1]
	logs := &syncBuffer{}
	h := New(zerolog.New(logs))
	if err := h.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	var url string
	for _, a := range h.Addrs() {
		url = "http://" + a.String()
	}
	th := &testHost{Host: h, t: t, URL: url, Logs: logs}
	if code, body := th.get("/"); code != 200 || body != "Hello from gowsgi!\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	if code, body := th.get("/echo/x?y=1"); code != 200 || !strings.Contains(body, `"PATH_INFO": "/x"`) {
		t.Errorf("GET /echo/x = %d %q", code, body)
	}
	reasons := map[string]string{}
	for _, a := range h.Status().Apps {
		reasons[a.Name] = a.Error
	}
	for _, fw := range []string{"flask", "django", "bottle", "falcon", "pyramid"} {
		code, body := th.get("/" + fw + "/")
		switch {
		case code == 200 && strings.Contains(body, "url=/"+fw+"/"):
		case code == 503 && body == appFailedBody && strings.Contains(reasons[fw], "No module named"):
		default:
			t.Errorf("GET /%s/ = %d %q (/status error %q)", fw, code, body, reasons[fw])
		}
	}
}
