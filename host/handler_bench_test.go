package host

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/router"
	"github.com/gowsgi/gowsgi/worker"
)

// fakeWorker answers every request frame on conn with a 13-byte response,
// as worker.py would for a hello app, until conn is closed.
func fakeWorker(conn net.Conn) {
	br := bufio.NewReaderSize(conn, 64<<10)
	head := []byte("200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n")
	var out []byte
	for {
		f, err := worker.ReadFrame(br)
		if err != nil {
			return
		}
		if f.Type != worker.FrameRequest {
			continue
		}
		out = worker.AppendFrame(out[:0], worker.FrameStart, f.ID, head)
		out = worker.AppendFrame(out, worker.FrameBody, f.ID, []byte("Hello, World!"))
		out = worker.AppendFrame(out, worker.FrameEnd, f.ID, nil)
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

// BenchmarkHandler measures the whole host handler (routing, environ,
// dispatch, the protocol both ways, the response) against an in-process
// fake worker, without HTTP parsing or a network client.
func BenchmarkHandler(b *testing.B) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	hostEnd := fileConn(b, fds[0])
	workerEnd := fileConn(b, fds[1])
	go fakeWorker(workerEnd)
	defer workerEnd.Close()

	app := config.App{Name: "hello", Workers: 1, Threads: 1, Timeout: config.DefaultTimeout,
		Queue: config.DefaultQueue, QueueTimeout: config.DefaultQueueTimeout}
	spec := &worker.Spec{App: "hello", Threads: 1, Workers: 1}
	pl := newPool(spec, app, zerolog.Nop(), nil, func(string) {})
	pl.addSlot(worker.Attach(spec, hostEnd))
	defer pl.stop(0)

	h := New(zerolog.Nop())
	rt := &appRuntime{name: "hello", def: app, pool: pl, m: h.metrics.app("hello")}
	gen := *h.gen.Load()
	gen.routes = router.New([]router.Mount[*appRuntime]{{Prefix: "/hello", Target: rt}})
	gen.access = false
	h.gen.Store(&gen)

	req := httptest.NewRequest("GET", "http://localhost:8000/hello/world?x=1", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

func fileConn(b *testing.B, fd int) *net.UnixConn {
	f := os.NewFile(uintptr(fd), "bench")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		b.Fatal(err)
	}
	return c.(*net.UnixConn)
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = 200
	}
	return len(p), nil
}

// The deadlines a real connection has (net/http's response supports them).
func (d *discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (d *discardWriter) SetWriteDeadline(time.Time) error { return nil }

var _ io.Writer = (*discardWriter)(nil)
