package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// getOK fetches url, reads the body, and fails unless the status is 200.
func getOK(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// background runs requests against path until the test ends and fails the
// test if any of them did not get 200: the bystander app that must not
// notice what happens to its neighbour.
func (th *testHost) background(path string) {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var n, failed atomic.Int64
	var first atomic.Value
	client := &http.Client{Transport: &http.Transport{}}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := getOK(client, th.URL+path)
				n.Add(1)
				if err == nil {
					continue
				}
				failed.Add(1)
				first.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	th.t.Cleanup(func() {
		stop()
		wg.Wait()
		client.CloseIdleConnections()
		if failed.Load() > 0 {
			th.t.Errorf("bystander %s: %d of %d requests failed; first: %v", path, failed.Load(), n.Load(), first.Load())
		}
		if n.Load() == 0 {
			th.t.Errorf("bystander %s: no request completed", path)
		}
	})
}

const superviseConfig = `
listeners: ["127.0.0.1:0"]
apps:
  victim: {module: basic, dir: {{apps}}, python: {{python}}, timeout: 1s}
  bystander: {module: basic, dir: {{apps}}, python: {{python}}, workers: 2}
mounts:
  "/": victim
  "/other": bystander
`

func TestCrashedWorkerIsReplaced(t *testing.T) {
	th := startHost(t, superviseConfig)
	th.background("/other/pid")
	before := th.Pids("victim")
	if code, _ := th.get("/crash"); code != 502 {
		t.Errorf("request whose worker died: %d, want 502", code)
	}
	waitFor(t, func() bool {
		p := th.Pids("victim")
		return len(p) == 1 && p[0] != before[0]
	}, "a new worker")
	if code, body := th.get("/pid"); code != 200 || body == fmt.Sprint(before[0]) {
		t.Errorf("after the crash: %d %q", code, body)
	}
	if !strings.Contains(th.Logs.String(), "worker died; restarting it") {
		t.Error("the crash is not in the log")
	}
}

// crashLoop is an app module that loads fine the first time, then dies at
// every import (exit status 3); each request kills its worker.
const crashLoop = `
import os
marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "started")
if os.path.exists(marker):
    os._exit(3)
open(marker, "w").close()
def application(environ, start_response):
    os._exit(1)
`

func TestCrashLoopAnswers503(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "flaky.py"), []byte(crashLoop), 0o644)
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  flaky: {module: flaky, dir: `+dir+`, python: {{python}}}
  bystander: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": flaky
  "/other": bystander
`)
	th.background("/other/pid")
	if code, _ := th.get("/"); code != 502 {
		t.Errorf("crashing request: %d, want 502", code)
	}
	var code int
	var body string
	waitFor(t, func() bool { code, body = th.get("/"); return code == 503 }, "503 while the app crash-loops")
	if !strings.Contains(body, "keeps crashing") {
		t.Errorf("503 body %q", body)
	}
	if !strings.Contains(th.Logs.String(), "waiting before the next start") {
		t.Error("the back-off is not logged")
	}
}

func TestTimeout504(t *testing.T) {
	th := startHost(t, superviseConfig)
	th.background("/other/pid")
	before := th.Pids("victim")
	code, _ := th.get("/hang")
	if code != 504 {
		t.Errorf("hanging request: %d, want 504", code)
	}
	logs := th.Logs.String()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "request timed out") {
			line = l
		}
	}
	for _, want := range []string{`"app":"victim"`, `"method":"GET"`, `"path":"/hang"`, fmt.Sprintf(`"pid":%d`, before[0]), `"running":`, `"response_started":false`} {
		if !strings.Contains(line, want) {
			t.Errorf("timeout log line lacks %s: %s", want, line)
		}
	}
	waitFor(t, func() bool { p := th.Pids("victim"); return len(p) == 1 && p[0] != before[0] }, "the hung worker to be replaced")
	if code, _ := th.get("/pid"); code != 200 {
		t.Errorf("after the timeout: %d", code)
	}
}

func TestMaxRequestsRecycles(t *testing.T) {
	th := startHost(t, oneApp("max_requests: 3"))
	pids := map[string]int{}
	for range 9 {
		code, body := th.get("/pid")
		if code != 200 {
			t.Fatalf("GET /pid = %d during recycling", code)
		}
		pids[body]++
	}
	if len(pids) != 3 {
		t.Errorf("9 requests with max_requests 3 were served by %d workers: %v", len(pids), pids)
	}
	for pid, n := range pids {
		if n != 3 {
			t.Errorf("worker %s served %d requests", pid, n)
		}
	}
	if !strings.Contains(th.Logs.String(), `"reason":"max_requests"`) {
		t.Error("recycling is not logged")
	}
}

func TestMaxRSSRecycles(t *testing.T) {
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}, max_rss: 100MiB}
  bystander: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": app
  "/other": bystander
`)
	th.background("/other/pid")
	before := th.Pids("app")
	if code, body := th.get("/leak?mb=20"); code != 200 {
		t.Fatalf("small leak: %d %q", code, body)
	}
	if p := th.Pids("app"); p[0] != before[0] {
		t.Fatalf("recycled below max_rss")
	}
	if code, body := th.get("/leak?mb=150"); code != 200 {
		t.Errorf("the request that passed max_rss must still succeed: %d %q", code, body)
	}
	waitFor(t, func() bool { p := th.Pids("app"); return len(p) == 1 && p[0] != before[0] }, "the leaking worker to be recycled")
	if !strings.Contains(th.Logs.String(), `"reason":"max_rss"`) {
		t.Error("max_rss recycling is not logged")
	}
}

// setPipelineWindow sets pipelineWindow for one test.
func setPipelineWindow(t *testing.T, d time.Duration) {
	old := pipelineWindow
	pipelineWindow = d
	t.Cleanup(func() { pipelineWindow = old })
}

func TestQueueFullAndTimeout(t *testing.T) {
	setPipelineWindow(t, 0) // nothing is pipelined onto the busy worker
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  one: {module: basic, dir: {{apps}}, python: {{python}}, queue: 1, queue_timeout: 30s}
  quick: {module: basic, dir: {{apps}}, python: {{python}}, queue: 5, queue_timeout: 200ms}
mounts:
  "/": one
  "/quick": quick
`)
	for _, c := range []struct {
		prefix   string
		queued   bool // a second request waits (queue: 1) instead of timing out
		fullCode int
	}{{"", true, 503}, {"/quick", false, 0}} {
		meet := t.TempDir()
		held := make(chan string, 1)
		go func() {
			_, body := th.get(c.prefix + "/rendezvous?dir=" + meet + "&me=a&peer=b")
			held <- body
		}()
		waitFor(t, func() bool { _, err := os.Stat(filepath.Join(meet, "a")); return err == nil }, "the worker to be busy")
		if c.queued {
			second := make(chan int, 1)
			go func() { code, _ := th.get("/pid"); second <- code }()
			waitFor(t, func() bool { return th.queued("one") == 1 }, "the second request to queue")
			resp, err := http.Get(th.URL + "/pid")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("beyond the queue: %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			os.WriteFile(filepath.Join(meet, "b"), nil, 0o644)
			if code := <-second; code != 200 {
				t.Errorf("queued request: %d, want 200", code)
			}
		} else {
			code, body := th.get(c.prefix + "/pid")
			if code != 503 || !strings.Contains(body, "timed out waiting") {
				t.Errorf("after queue_timeout: %d %q", code, body)
			}
			os.WriteFile(filepath.Join(meet, "b"), nil, 0o644)
		}
		if body := <-held; !strings.HasPrefix(body, "met") {
			t.Errorf("held request: %q", body)
		}
	}
}

// queued counts the requests waiting for a worker of app.
func (th *testHost) queued(app string) int {
	pl := th.pool(app)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.waiters)
}

// pool is app's worker pool in the current generation.
func (th *testHost) pool(app string) *pool {
	th.mu.Lock()
	defer th.mu.Unlock()
	return th.apps[app].pool
}

func TestBadInput(t *testing.T) {
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": app
limits:
  max_body: 1KiB
  max_header_bytes: 4KiB
`)
	addr := strings.TrimPrefix(th.URL, "http://")
	raw := func(req string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line)
	}
	tests := []struct{ name, req, status string }{
		{"malformed request line", "GARBAGE\r\n\r\n", "HTTP/1.1 400"},
		{"bad header", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", "HTTP/1.1 400"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", "HTTP/1.1 431"},
		{"declared body too large", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n", "HTTP/1.1 413"},
		{"chunked body too large", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("b", 2048) + "\r\n0\r\n\r\n", "HTTP/1.1 413"},
		{"body within the limit", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("c", 1024), "HTTP/1.1 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := raw(tt.req); !strings.HasPrefix(got, tt.status) {
				t.Errorf("got %q, want %s", got, tt.status)
			}
		})
	}
	// Only the one good request reached a worker: only its access line has
	// a pid. (The client may read the status line before the host logs the
	// request, and hangs up after it, which can cancel the request before
	// the worker's end frame is read: no "request done" line then.)
	reached := func() (n int) {
		for _, m := range th.accessLines() {
			if m["pid"] != nil {
				n++
			}
		}
		return n
	}
	waitFor(t, func() bool { return reached() >= 1 }, "the good request to end")
	if n := reached(); n != 1 {
		t.Errorf("%d requests reached the app, want 1", n)
	}
	if strings.Contains(th.Logs.String(), `"level":"error"`) {
		t.Errorf("bad input logged as an error:\n%s", th.Logs.String())
	}
}

// TestClientGoneFreesWorker: a client that leaves during a long streaming
// response frees its worker (the app's iterable is closed) for the next
// request, whether it leaves in the middle of the stream or before its
// first chunk (the worker then sees the cancel at a later chunk).
func TestClientGoneFreesWorker(t *testing.T) {
	tests := []struct {
		name, query string
		// left waits until the moment the client should leave.
		left func(t *testing.T, th *testHost, br *bufio.Reader)
	}{
		{"mid-stream", "n=100000&delay=0.01", func(t *testing.T, th *testHost, br *bufio.Reader) {
			if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Fatalf("stream: %q", line)
			}
		}},
		{"before the first chunk", "n=100000&delay=0.01&first=0.3", func(t *testing.T, th *testHost, br *bufio.Reader) {
			waitFor(t, func() bool { return th.pool("app").snapshot().inFlight == 1 }, "the stream to start")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := startHost(t, oneApp("timeout: 1h"))
			c, err := net.Dial("tcp", strings.TrimPrefix(th.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /stream?"+tt.query+" HTTP/1.1\r\nHost: x\r\n\r\n")
			tt.left(t, th, bufio.NewReader(c))
			c.Close()
			// With one worker, this is only served once the stream has stopped.
			if code, _ := th.get("/pid"); code != 200 {
				t.Errorf("after the client left: %d", code)
			}
		})
	}
}

// TestSlowloris: hundreds of connections trickling their headers do not
// stop a normal client from being served.
func TestSlowloris(t *testing.T) {
	th := startHost(t, oneApp(""))
	addr := strings.TrimPrefix(th.URL, "http://")
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			for i := 0; ctx.Err() == nil && i < 1000; i++ {
				if _, err := fmt.Fprintf(c, "X-%d: y\r\n", i); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	time.Sleep(200 * time.Millisecond) // let the trickling connections open
	for i := range 20 {
		if code, body := th.get("/"); code != 200 || body != "basic ok" {
			t.Fatalf("normal request %d beside slowloris: %d %q", i, code, body)
		}
	}
}

// TestPipelinedRequestsSurviveACrash: requests sent to a worker behind the
// one it is running have not started when the worker dies; they are served
// by its replacement, and only the running one gets 502. Their bodies are
// large enough to wait in the app's shared body area, and must come
// through the retry intact.
func TestPipelinedRequestsSurviveACrash(t *testing.T) {
	setPipelineWindow(t, time.Hour) // always pipeline onto the busy worker
	th := startHost(t, oneApp(""))
	meet := t.TempDir()
	first := make(chan int, 1)
	go func() {
		code, _ := th.get("/crash-when?dir=" + meet)
		first <- code
	}()
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(meet, "waiting")); return err == nil }, "the first request to run")
	const n = 3
	codes := make(chan string, n)
	for i := range n {
		go func() {
			body := patterned(300_000+i, uint64(i))
			resp, err := http.Post(th.URL+"/echo", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				codes <- err.Error()
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes <- fmt.Sprint(resp.StatusCode, " same body: ", bytes.Equal(got, body))
		}()
	}
	waitFor(t, func() bool { return th.inflight("app") == 1+n }, "the requests to be pipelined")
	os.WriteFile(filepath.Join(meet, "go"), nil, 0o644)
	if code := <-first; code != 502 {
		t.Errorf("the request that crashed its worker: %d, want 502", code)
	}
	for range n {
		if got := <-codes; got != "200 same body: true" {
			t.Errorf("pipelined request behind the crash: %s, want 200 from the new worker", got)
		}
	}
}

// TestPipeliningUnderLoad: many concurrent short requests on one worker
// all succeed, in order per connection, with pipelining on.
func TestPipeliningUnderLoad(t *testing.T) {
	setPipelineWindow(t, time.Hour)
	th := startHost(t, oneApp(""))
	var wg sync.WaitGroup
	var bad atomic.Int64
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := fmt.Sprintf("c%d-%d", c, i)
				resp, err := http.Post(th.URL+"/echo", "text/plain", strings.NewReader(want))
				if err != nil {
					bad.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != want {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of 800 pipelined requests failed or got another's response", bad.Load())
	}
}

// inflight counts the requests sent to app's workers and not finished.
func (th *testHost) inflight(app string) int {
	pl := th.pool(app)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := 0
	for _, s := range pl.slots {
		if s.cur != nil {
			n += s.cur.inflight
		}
	}
	return n
}

// TestNothingGrowsUnderOverload: after a burst of overload (queue full,
// clients that leave mid-request, bodies spooled to temp files), the
// host's goroutines and file descriptors go back to where they were.
func TestNothingGrowsUnderOverload(t *testing.T) {
	setPipelineWindow(t, 0)
	th := startHost(t, oneApp("queue: 4, queue_timeout: 100ms"))
	th.get("/") // warm up
	http.DefaultClient.CloseIdleConnections()
	baseG, baseFD := runtime.NumGoroutine(), openFDs()
	var wg sync.WaitGroup
	big := strings.Repeat("x", 2<<20) // spooled past 1 MiB
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 300 * time.Millisecond}
			var resp *http.Response
			var err error
			switch i % 3 {
			case 0:
				resp, err = client.Get(th.URL + "/slow?s=0.05")
			case 1:
				resp, err = client.Post(th.URL+"/echo", "application/octet-stream", strings.NewReader(big))
			default:
				resp, err = client.Get(th.URL + "/stream?n=1000&delay=0.01") // cut by the client timeout
			}
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool {
		return runtime.NumGoroutine() <= baseG+2 && openFDs() <= baseFD+2
	}, fmt.Sprintf("goroutines (%d, was %d) and fds (%d, was %d) to settle", runtime.NumGoroutine(), baseG, openFDs(), baseFD))
	if code, _ := th.get("/pid"); code != 200 {
		t.Errorf("after the burst: %d", code)
	}
}

func openFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// oneApp is a config serving the basic test app alone at "/", with extra
// app settings (e.g. "max_requests: 3").
func oneApp(settings string) string {
	if settings != "" {
		settings = ", " + settings
	}
	return `
listeners: ["127.0.0.1:0"]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}` + settings + `}
mounts:
  "/": app
`
}

// TestPipelinedResponseNotHeldBack: a response the worker has finished is
// sent before it starts the next pipelined request, so a fast request is
// never held back by a slow one queued behind it on the same worker.
func TestPipelinedResponseNotHeldBack(t *testing.T) {
	setPipelineWindow(t, time.Hour)
	th := startHost(t, oneApp(""))
	gate, slow := t.TempDir(), t.TempDir()
	first := make(chan string, 1)
	go func() { _, b := th.get("/rendezvous?dir=" + gate + "&me=a&peer=b"); first <- b }()
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(gate, "a")); return err == nil }, "the worker to be busy")
	fast := make(chan int, 1)
	go func() { code, _ := th.get("/pid"); fast <- code }()
	waitFor(t, func() bool { return th.inflight("app") == 2 }, "the fast request to be pipelined")
	go th.get("/rendezvous?dir=" + slow + "&me=c&peer=d") // a list response that waits for "d"
	waitFor(t, func() bool { return th.inflight("app") == 3 }, "the slow request to be pipelined")
	os.WriteFile(filepath.Join(gate, "b"), nil, 0o644) // the worker now reads both at once
	<-first
	awaitOK(t, fast, "the fast request (held back behind the slow one?)")
	os.WriteFile(filepath.Join(slow, "d"), nil, 0o644)
}

// TestTimeoutAfterClientLeft: a request whose client went away still has
// its timeout: a hung app's worker is killed and replaced.
func TestTimeoutAfterClientLeft(t *testing.T) {
	th := startHost(t, oneApp("timeout: 1s"))
	before := th.Pids("app")
	client := &http.Client{Timeout: 200 * time.Millisecond}
	if _, err := client.Get(th.URL + "/hang"); err == nil {
		t.Fatal("the hanging request answered")
	}
	waitFor(t, func() bool { p := th.Pids("app"); return len(p) == 1 && p[0] != before[0] }, "the hung worker to be killed and replaced")
	if code, _ := th.get("/pid"); code != 200 {
		t.Errorf("after the kill: %d", code)
	}
}
