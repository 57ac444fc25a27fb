package host

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests of clients that are slow or hostile: none of them may hold a
// Python worker or the host's memory.

// stalledGet sends a GET on a new connection with a small receive buffer
// and never reads the response.
func (th *testHost) stalledGet(path string) net.Conn {
	th.t.Helper()
	// The buffer is made small before connecting, so that the window the
	// client advertises is small from the start.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", th.tcpAddr())
	if err != nil {
		th.t.Fatal(err)
	}
	th.t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		th.t.Fatal(err)
	}
	return c
}

// TestSlowReaderDoesNotHoldWorker: clients that ask for large responses
// and never read them leave the app's workers free (the host spools the
// responses), so every other request is served.
func TestSlowReaderDoesNotHoldWorker(t *testing.T) {
	th := startHost(t, oneApp("workers: 2, timeout: 5s"))
	th.stalledGet("/big?n=10485760")        // one 10 MiB chunk
	th.stalledGet("/big-stream?n=33554432") // 32 MiB in 64 KiB chunks
	// Both responses go to temporary files, the one-chunk one too (a slow
	// client holds no more than SpoolMemory of the host's memory), and
	// the workers are free while the clients read nothing.
	waitFor(t, func() bool { return openFiles("gowsgi-response-") >= 2 }, "both responses to be spooled")
	waitFor(t, func() bool { return th.inflight("app") == 0 }, "the workers to be free while their clients read nothing")
	for i := range 4 {
		if code, _ := th.get("/pid"); code != 200 {
			t.Fatalf("request %d beside the stalled clients: %d", i, code)
		}
	}
	if strings.Contains(th.Logs.String(), "timed out") {
		t.Error("a worker waiting for nobody was timed out")
	}
}

// TestSpooledResponseArrivesWhole: a response spooled to a temporary
// file while its client reads slowly arrives byte for byte.
func TestSpooledResponseArrivesWhole(t *testing.T) {
	th := startHost(t, oneApp(""))
	const n = 8 << 20
	c := th.stalledGet(fmt.Sprintf("/big-stream?n=%d", n))
	waitFor(t, func() bool { return openFiles("gowsgi-response-") > 0 }, "the response to be spooled")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, pattern(n)) {
		t.Fatalf("spooled body: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, pattern(n)), err)
	}
}

// pattern is the test app's big body: bytes(i % 251 for i in range(n)).
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestTimeoutTimesTheApp: timeout bounds the app's pauses, not the whole
// response: a stream whose chunks come more often than the timeout
// completes however long it lasts, and so does a response the client
// reads slowly while the worker waits for it (the spool kept small).
func TestTimeoutTimesTheApp(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp("timeout: 1s, threads: 2")+"limits: {max_spool: 0}\n")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, body := th.get("/stream?n=5&delay=0.5") // 2.5 s in all, 0.5 s apart
		if code != 200 || strings.Count(body, "chunk") != 5 {
			t.Errorf("stream: %d %q", code, body)
		}
	}()
	const n = 4 << 20
	c := th.stalledGet(fmt.Sprintf("/big-stream?n=%d", n))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for start := time.Now(); ; {
		m, err := resp.Body.Read(buf)
		got = append(got, buf[:m]...)
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // about 3 MB/s: over a second for the whole
		if time.Since(start) > time.Minute {
			t.Fatal("slow read did not end")
		}
	}
	if !bytes.Equal(got, pattern(n)) {
		t.Errorf("slowly read body: %d bytes, want %d intact", len(got), n)
	}
	wg.Wait()
	if strings.Contains(th.Logs.String(), "timed out") {
		t.Errorf("a healthy response was timed out:\n%s", th.Logs.String())
	}
}

// TestMaxRequestTime: the whole-request cap cuts a stream that never
// pauses long, and logs the request.
func TestMaxRequestTime(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp("timeout: 10s, max_request_time: 1s"))
	before := th.Pids("app")
	resp, err := getClient.Get(th.URL + "/stream?n=20&delay=0.2")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || strings.Count(string(body), "chunk") >= 20 {
		t.Errorf("stream past max_request_time: %d chunks, err %v; want it cut", strings.Count(string(body), "chunk"), err)
	}
	waitFor(t, func() bool { p := th.Pids("app"); return len(p) == 1 && p[0] != before[0] }, "the worker to be replaced")
	var line string
	for _, l := range strings.Split(th.Logs.String(), "\n") {
		if strings.Contains(l, "request timed out") {
			line = l
		}
	}
	for _, want := range []string{`"path":"/stream"`, `"response_started":true`, `"body_bytes":`, `"running":`} {
		if !strings.Contains(line, want) {
			t.Errorf("the cut request's log line lacks %s: %s", want, line)
		}
	}
}

// TestSendTimeout: a client that reads nothing of its response for
// send_timeout is dropped.
func TestSendTimeout(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp("")+"limits: {send_timeout: 1s}\n")
	c := th.stalledGet("/big-stream?n=33554432")
	waitFor(t, func() bool { return strings.Contains(th.Logs.String(), `"path":"/big-stream"`) }, "the stalled response to be dropped")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c) // EOF or a reset: either way, cut short
	if n >= 32<<20 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("dropped client read %d bytes (err %v); want the connection closed early", n, err)
	}
}

// TestBodyTimeout: a client that stops sending its body gets 408 after
// body_timeout, and its connection is closed; the app never sees it.
func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp("")+"limits: {body_timeout: 1s}\n")
	rc := th.dial()
	rc.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
	resp, _, err := rc.response("POST")
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %v %v, want 408", resp, err)
	}
	if _, err := rc.br.ReadByte(); err == nil {
		t.Error("the connection stayed open after 408")
	}
	if th.pool("app").snapshot().workers[0].Requests != 0 {
		t.Error("the app saw the request")
	}
}

// TestConnectionLimit: past max_connections, new connections wait until
// one closes, and are then served.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	th := startHost(t, `
listeners: [{addr: "127.0.0.1:0", max_connections: 2}]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": app
`)
	a, b := th.dial(), th.dial()
	for _, rc := range []*rawConn{a, b} {
		rc.send("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _, err := rc.response("GET"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("within the limit: %v %v", resp, err)
		}
	}
	third := th.dial()
	third.send("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
	third.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection answered past the limit: %v", err)
	}
	third.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	a.c.Close()
	if resp, _, err := third.response("GET"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a place freed: %v %v", resp, err)
	}
}

// TestTricklingBodiesBoundedMemory: bodies trickled by many clients go to
// temporary files once the host's body memory is used, so the heap stays
// small, and other clients are served meanwhile.
func TestTricklingBodiesBoundedMemory(t *testing.T) {
	th := startHost(t, oneApp("")+"limits: {body_memory: 8MiB, body_timeout: 30s}\n")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const conns = 300
	var open []net.Conn
	for range conns {
		c, err := net.Dial("tcp", th.tcpAddr())
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\n%s", strings.Repeat("a", 1000))
	}
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	waitFor(t, func() bool { return th.openBodyFiles() >= conns-20 }, "the bodies beyond the budget to go to files")
	if used := th.bodyMem.used.Load(); used > 8<<20 {
		t.Errorf("body memory %d, over the 8 MiB limit", used)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("heap grew %d MiB for %d trickling bodies", grew>>20, conns)
	}
	if code, _ := th.get("/pid"); code != 200 {
		t.Errorf("beside the trickling clients: %d", code)
	}
}

// openBodyFiles counts this process's open (unlinked) request body files.
func (th *testHost) openBodyFiles() int { return openFiles("gowsgi-body-") }

// openFiles counts this process's open files whose path contains name.
func openFiles(name string) int {
	entries, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.Contains(target, name) {
			n++
		}
	}
	return n
}

// TestDeadWorkerNotHandedOut: requests queued for a one-worker app whose
// worker is killed wait for its replacement and are served.
func TestDeadWorkerNotHandedOut(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp(""))
	pid := th.Pids("app")[0]
	gate := t.TempDir()
	go th.get("/rendezvous?dir=" + gate + "&me=a&peer=b") // holds the worker
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(gate, "a")); return err == nil }, "the worker to be busy")
	const n = 16
	codes := make(chan int, n)
	for range n {
		go func() { code, _ := th.get("/pid"); codes <- code }()
	}
	waitFor(t, func() bool { return th.inflight("app")+th.queued("app") >= n+1 }, "the requests to queue")
	syscall.Kill(pid, syscall.SIGKILL)
	for range n {
		if code := <-codes; code != 200 {
			t.Errorf("queued request: %d, want 200", code)
		}
	}
}

// TestKilledWorkersReplacedAtOnce: a worker that served and is then
// killed from outside is replaced without back-off, however often it
// happens, so the app keeps answering.
func TestKilledWorkersReplacedAtOnce(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp(""))
	for round := range 4 {
		if code, _ := th.get("/pid"); code != 200 {
			t.Fatalf("round %d: %d", round, code)
		}
		pid := th.Pids("app")[0]
		syscall.Kill(pid, syscall.SIGKILL)
		waitFor(t, func() bool { p := th.Pids("app"); return len(p) == 1 && p[0] != pid }, "the worker to be replaced")
	}
	if strings.Contains(th.Logs.String(), "waiting before the next start") {
		t.Error("workers killed after serving were replaced with back-off")
	}
}

// TestNoHeadOfLineBlocking: a request pipelined onto a worker behind a
// long one moves to another worker as soon as that one is idle.
func TestNoHeadOfLineBlocking(t *testing.T) {
	setPipelineWindow(t, time.Hour) // always pipeline onto a busy worker
	th := startHost(t, oneApp("workers: 2"))
	long, short := t.TempDir(), t.TempDir()
	go th.get("/stream-wait?dir=" + long) // holds the first worker until "go"
	waitFor(t, func() bool { return th.inflight("app") == 1 }, "the long request to start")
	shortDone := make(chan struct{})
	go func() { th.get("/stream-wait?dir=" + short); close(shortDone) }()
	waitFor(t, func() bool { return th.inflight("app") == 2 }, "the short request to start")
	got := make(chan int, 1)
	go func() { code, _ := th.get("/pid"); got <- code }()
	waitFor(t, func() bool { return th.inflight("app") == 3 }, "a request to be pipelined")
	os.WriteFile(filepath.Join(short, "go"), nil, 0o644)
	<-shortDone
	awaitOK(t, got, "the pipelined request (it waited behind the long one while a worker was idle)")
	os.WriteFile(filepath.Join(long, "go"), nil, 0o644)
}

// TestRefusalsAreSampled: a flood of refused requests logs a few lines
// with a count of the rest, not one line each.
func TestRefusalsAreSampled(t *testing.T) {
	setPipelineWindow(t, 0) // never pipeline: the busy worker takes nothing more
	th := startHost(t, oneApp("queue: 0"))
	gate := t.TempDir()
	go th.get("/rendezvous?dir=" + gate + "&me=a&peer=b")
	waitFor(t, func() bool { return th.inflight("app") == 1 }, "the worker to be busy")
	const n = 300
	for i := range n {
		if code, _ := th.get("/pid"); code != 503 {
			t.Fatalf("request %d with the queue full: %d", i, code)
		}
	}
	logged := strings.Count(th.Logs.String(), "no worker for the request")
	if logged >= n/2 {
		t.Errorf("%d refusal lines for %d refusals", logged, n)
	}
	// The count of those left out comes with the next line of the kind
	// let through (the next second's first).
	waitFor(t, func() bool {
		th.get("/pid")
		return strings.Contains(th.Logs.String(), `"suppressed":`)
	}, "a count of the refusals left out of the log")
	os.WriteFile(filepath.Join(gate, "b"), nil, 0o644)
}

// h2Frame encodes one HTTP/2 frame.
func h2Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	b := make([]byte, 9, 9+len(payload))
	b[0], b[1], b[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	b[3], b[4] = typ, flags
	binary.BigEndian.PutUint32(b[5:], stream)
	return append(b, payload...)
}

// h2Get opens an HTTP/2 (prior knowledge) connection whose streams have
// a flow-control window of zero, and asks for path on stream 1.
func h2Get(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	hdr := []byte{0x82, 0x86, 0x44, byte(len(path))} // GET, http, :path (literal)
	hdr = append(append(hdr, path...), 0x41, 1, 'x') // :authority x
	var out []byte
	out = append(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"...)
	out = append(out, h2Frame(0x4, 0, 0, []byte{0, 4, 0, 0, 0, 0})...) // SETTINGS_INITIAL_WINDOW_SIZE 0
	out = append(out, h2Frame(0x1, 0x5, 1, hdr)...)                    // HEADERS, END_STREAM|END_HEADERS
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// h2Until reads frames, acknowledging SETTINGS, until one of type typ on
// stream; it reports whether one came before the connection ended.
func h2Until(c net.Conn, br *bufio.Reader, typ byte, stream uint32) bool {
	var h [9]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return false
		}
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		if _, err := br.Discard(n); err != nil {
			return false
		}
		id := binary.BigEndian.Uint32(h[5:]) & 0x7fffffff
		if h[3] == 0x4 && h[4]&1 == 0 {
			c.Write(h2Frame(0x4, 1, 0, nil))
		}
		if h[3] == typ && id == stream {
			return true
		}
	}
}

// h2cApp is a config of the basic app on a listener that also speaks
// HTTP/2 without TLS, with send_timeout sendTimeout.
func h2cApp(sendTimeout string) string {
	return `
listeners: [{addr: "127.0.0.1:0", h2c: true}]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": app
limits: {send_timeout: ` + sendTimeout + "}\n"
}

// TestH2ZeroWindow: an HTTP/2 stream whose window stays closed does not
// hold the worker, and is reset after send_timeout.
func TestH2ZeroWindow(t *testing.T) {
	t.Parallel()
	th := startHost(t, h2cApp("2s"))
	c, br := h2Get(t, th.tcpAddr(), "/big-stream?n=10485760")
	waitFor(t, func() bool { return th.inflight("app") == 0 }, "the worker to be free while the stream's window is closed")
	if code, _ := th.get("/pid"); code != 200 {
		t.Errorf("beside the closed stream: %d", code)
	}
	if !h2Until(c, br, 0x3, 1) { // RST_STREAM
		t.Error("the stream was not reset after send_timeout")
	}
}

// TestSendTimeoutSparesSilentApps: send_timeout bounds the client, not the
// app: a stream whose app pauses longer than send_timeout between pieces
// completes, over HTTP/1.1 and HTTP/2 (where an expired deadline would
// reset the stream even with nothing to write).
func TestSendTimeoutSparesSilentApps(t *testing.T) {
	t.Parallel()
	th := startHost(t, `
listeners: [{addr: "127.0.0.1:0", h2c: true}]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}, threads: 2}
mounts:
  "/": app
limits: {send_timeout: 1s}
`)
	for _, c := range []*http.Client{getClient, h2cClient()} {
		resp, err := c.Get(th.URL + "/stream?n=3&delay=2")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || strings.Count(string(body), "chunk") != 3 {
			t.Errorf("%s stream with pauses past send_timeout: %q %v", resp.Proto, body, err)
		}
	}
}

// awaitOK waits up to 10 s for a status on got and wants 200.
func awaitOK(t *testing.T, got <-chan int, what string) {
	t.Helper()
	select {
	case code := <-got:
		if code != 200 {
			t.Errorf("%s: %d", what, code)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: no answer in 10 s", what)
	}
}

// slowRead reads all of r, 64 KiB every 10 ms (about 6 MB/s).
func slowRead(r io.Reader) ([]byte, error) {
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		m, err := r.Read(buf)
		got = append(got, buf[:m]...)
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return got, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSendTimeoutSparesSteadyReaders: a client that keeps reading is
// never cut by send_timeout, however long its response takes: a response
// that comes as one large chunk is written in pieces, each with its own
// deadline.
func TestSendTimeoutSparesSteadyReaders(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp("")+"limits: {send_timeout: 1s}\n")
	const n = 32 << 20 // seconds at the reader's pace, past what the kernel buffers
	resp, err := getClient.Get(fmt.Sprintf("%s/big?n=%d", th.URL, n))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := slowRead(resp.Body)
	if err != nil || !bytes.Equal(got, pattern(n)) {
		t.Errorf("steady reader of one 32 MiB chunk: %d bytes, err %v", len(got), err)
	}
}

// TestSpoolClosedWhenCut: a spooled response that the app ends with an
// exception is cut, and its temporary file is closed with it.
func TestSpoolClosedWhenCut(t *testing.T) {
	th := startHost(t, oneApp(""))
	c := th.stalledGet("/big-raise?n=8388608")
	waitFor(t, func() bool { return openFiles("gowsgi-response-") > 0 }, "the response to be spooled")
	waitFor(t, func() bool { return th.inflight("app") == 0 }, "the app to end it")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slowRead(resp.Body); err == nil {
		t.Error("a response the app broke off arrived as if whole")
	}
	waitFor(t, func() bool { return openFiles("gowsgi-response-") == 0 }, "the spool file to be closed")
}

// TestLargeBodyNotPipelined: a request with a large body waits for an
// idle worker instead of being queued behind a running request, where
// its body would hold it until that request ends.
func TestLargeBodyNotPipelined(t *testing.T) {
	setPipelineWindow(t, time.Hour) // small requests would be pipelined onto a busy worker
	th := startHost(t, oneApp("workers: 2"))
	long, short := t.TempDir(), t.TempDir()
	go th.get("/stream-wait?dir=" + long)
	waitFor(t, func() bool { return th.inflight("app") == 1 }, "the long request to start")
	shortDone := make(chan struct{})
	go func() { th.get("/stream-wait?dir=" + short); close(shortDone) }()
	waitFor(t, func() bool { return th.inflight("app") == 2 }, "the short request to start")
	got := make(chan int, 1)
	go func() {
		resp, err := getClient.Post(th.URL+"/echo", "application/octet-stream", bytes.NewReader(pattern(3<<20)))
		if err != nil {
			got <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	waitFor(t, func() bool { return th.queued("app") == 1 }, "the large request to wait for an idle worker")
	os.WriteFile(filepath.Join(short, "go"), nil, 0o644)
	<-shortDone
	awaitOK(t, got, "the large request (it waited behind the long one while a worker was idle)")
	os.WriteFile(filepath.Join(long, "go"), nil, 0o644)
}

// TestSpoolTotalBounded: the spool files of all responses together stay
// within limits.max_spool_total; past it the workers wait for their
// clients instead.
func TestSpoolTotalBounded(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp("workers: 3")+"limits: {max_spool_total: 1MiB}\n")
	for range 3 {
		th.stalledGet("/big-stream?n=8388608")
	}
	waitFor(t, func() bool { return th.spoolDisk.Used() > 0 }, "responses to be spooled")
	waitFor(t, func() bool { return th.inflight("app") == 3 }, "the three responses to run")
	for range 20 { // the workers keep producing while their clients read nothing
		if used := th.spoolDisk.Used(); used > 1<<20 {
			t.Fatalf("spool files hold %d bytes, over max_spool_total (1 MiB)", used)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if th.inflight("app") != 3 {
		t.Error("a worker finished: its response went somewhere past the bound")
	}
}

// trickle is a request body that comes in pieces, pause apart.
type trickle struct {
	pieces [][]byte
	pause  time.Duration
}

func (tr *trickle) Read(p []byte) (int, error) {
	if len(tr.pieces) == 0 {
		return 0, io.EOF
	}
	time.Sleep(tr.pause)
	n := copy(p, tr.pieces[0])
	tr.pieces[0] = tr.pieces[0][n:]
	if len(tr.pieces[0]) == 0 {
		tr.pieces = tr.pieces[1:]
	}
	return n, nil
}

// TestSendTimeoutSparesSlowUploads: the write deadline that every
// response starts with (the server's WriteTimeout) is kept from running
// out while a slow client uploads its body for longer than send_timeout:
// over HTTP/2 it would reset the stream before the response began.
func TestSendTimeoutSparesSlowUploads(t *testing.T) {
	t.Parallel()
	th := startHost(t, h2cApp("1s"))
	want := pattern(6 << 10)
	for _, c := range []*http.Client{getClient, h2cClient()} {
		body := &trickle{pause: 500 * time.Millisecond}
		for p := want; len(p) > 0; p = p[1<<10:] {
			body.pieces = append(body.pieces, p[:1<<10])
		}
		req, _ := http.NewRequest("POST", th.URL+"/echo", body)
		req.ContentLength = int64(len(want))
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("upload of 3 s with send_timeout 1s: %v", err)
			continue
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s upload of 3 s with send_timeout 1s: %d, %d bytes, %v", resp.Proto, resp.StatusCode, len(got), err)
		}
	}
}
