package host

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gowsgi/gowsgi/internal/testcert"
)

// TestStaticFileSparesSteadyReaders: a static file that a client reads
// steadily for longer than send_timeout in all is not cut: its writes
// re-arm the deadline as the relay's do.
func TestStaticFileSparesSteadyReaders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16) // 8 MiB
	os.WriteFile(filepath.Join(dir, "big.bin"), want, 0o644)
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  assets: {static: `+dir+`}
mounts:
  "/": assets
limits: {send_timeout: 1s}
`)
	resp, err := http.Get(th.URL + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got int
	buf := make([]byte, 64<<10)
	start := time.Now()
	for {
		n, err := resp.Body.Read(buf)
		got += n
		if err != nil {
			if err != io.EOF {
				t.Errorf("steady reader (~2.5 MiB/s) cut after %v, %d of %d bytes: %v", time.Since(start), got, len(want), err)
			}
			break
		}
		time.Sleep(25 * time.Millisecond) // ~2.5 MiB/s: never stalls for anything near 1 s
	}
	if got != len(want) {
		t.Errorf("got %d of %d bytes", got, len(want))
	}
}

// smallBufListener accepts into limitedConn with a tiny send buffer.
type smallBufListener struct {
	net.Listener
	lim *connLimit
}

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c.(*net.TCPConn).SetWriteBuffer(4096)
	l.lim.acquire()
	return newLimitedConn(c, l.lim), nil
}

func dialSmallRcvbuf(addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
		return nil
	}}
	return d.Dial("tcp", addr)
}

// relayHandler writes body through the relay's own write (gathering),
// as relay.body does, with send_timeout d.
func relayHandler(d time.Duration, body []byte, errs chan<- error) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			io.WriteString(rw, "SECOND-RESPONSE")
			return
		}
		q := &request{r: r}
		q.w.ResponseWriter = rw
		q.conn = connOf(r)
		q.start = time.Now()
		q.send = deadline{w: &q.w, d: d, set: true, expires: q.start.Add(q.conn.writeTimeout)}
		rw.Header().Set("Content-Length", fmt.Sprint(len(body)))
		rw.WriteHeader(200)
		rl := relay{q: q}
		errs <- rl.write(body)
	})
}

// TestGatheredWriteErrorSticks: a gathered write that fails (the client
// stopped reading for longer than send_timeout) fails every later write
// of the connection, so that net/http closes it instead of sending the
// next pipelined response after the cut one.
func TestGatheredWriteErrorSticks(t *testing.T) {
	const d = 500 * time.Millisecond
	body := bytes.Repeat([]byte("x"), maxGather) // one gathered piece
	errs := make(chan error, 4)
	srv := &http.Server{Handler: relayHandler(d, body, errs), WriteTimeout: d + d/4}
	srv.ConnContext = connContext(srv)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	lim := &connLimit{}
	lim.init(100)
	go srv.Serve(smallBufListener{ln, lim})
	defer srv.Close()

	c, err := dialSmallRcvbuf(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(3 * d) // stop reading past send_timeout
	if err := <-errs; err == nil {
		t.Error("the relay's write to a client that reads nothing succeeded")
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	all, _ := io.ReadAll(bufio.NewReader(c))
	if i := bytes.Index(all, []byte("SECOND-RESPONSE")); i >= 0 {
		head := bytes.Index(all, []byte("\r\n\r\n")) + 4
		t.Errorf("after a truncated first response (%d of %d body bytes on the wire), the connection was reused: the second response follows at byte %d of the stream; a client reads it as the first response's body",
			bytes.Index(all[head:], []byte("HTTP/1.1 200")), len(body), i)
	}
}

// TestTLSCloseDuringGatheredWrite: closing a TLS server (the host's
// shutdown) whose clients stopped reading in the middle of a gathered
// write returns at once: its close_notify does not wait for the write.
func TestTLSCloseDuringGatheredWrite(t *testing.T) {
	const d = 8 * time.Second
	body := bytes.Repeat([]byte("x"), maxGather)
	errs := make(chan error, 4)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	testcert.Write(t, cf, kf, 1)
	cert, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	h := relayHandler(d, body, errs)
	srv := &http.Server{Handler: h, WriteTimeout: d + d/4,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}}
	srv.ConnContext = connContext(srv)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	lim := &connLimit{}
	lim.init(100)
	go srv.ServeTLS(smallBufListener{ln, lim}, "", "")
	const n = 2
	for i := 0; i < n; i++ {
		raw, err := dialSmallRcvbuf(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
		io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(d / 2):
		t.Errorf("Server.Close with %d stalled TLS clients still blocked after %v", n, time.Since(start))
		<-closed
	}
}

// TestQueuedRequestsKeepTheirAnswer: a request that waits for a busy
// worker longer than 5/4 send_timeout still gets its answer, the app's
// or the host's 503 on queue_timeout: the write deadline net/http armed
// at its arrival is cleared for the wait (on HTTP/2 it would reset the
// stream) and re-armed for the answer.
func TestQueuedRequestsKeepTheirAnswer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		queueTimeout string
		ahead        string // the slow request in front, seconds
		want         int
	}{
		{"20s", "3", http.StatusOK},
		{"2s", "4", http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		th := startHost(t, `
listeners: [{addr: "127.0.0.1:0", h2c: true}]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}, workers: {min: 1, max: 1}, queue_timeout: `+tc.queueTimeout+`}
mounts:
  "/": app
limits: {send_timeout: 1s}
`)
		for _, c := range []*http.Client{getClient, h2cClient()} {
			first := make(chan struct{})
			go func() {
				defer close(first)
				if resp, err := c.Get(th.URL + "/slow?s=" + tc.ahead); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			waitFor(t, func() bool { return th.inflight("app") == 1 }, "the slow request to start")
			// Past the pipeline window, the next request queues in the host
			// instead of riding along on the busy worker.
			time.Sleep(20 * pipelineWindow)
			resp, err := c.Get(th.URL + "/slow?s=0")
			if err != nil {
				t.Errorf("queue_timeout %s, queued behind %s s, send_timeout 1s: %v", tc.queueTimeout, tc.ahead, err)
			} else {
				_, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tc.want {
					t.Errorf("%s, queue_timeout %s: %d, body %v; want %d", resp.Proto, tc.queueTimeout, resp.StatusCode, err, tc.want)
				}
			}
			<-first
		}
	}
}
