package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// recordingConn is a net.Conn that records each Write it gets.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) ReadFrom(r io.Reader) (int64, error) {
	b, err := io.ReadAll(r)
	c.Write(b)
	return int64(len(b)), err
}

func (c *recordingConn) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, w := range c.writes {
		out = append(out, string(w))
	}
	return out
}

// TestGatheredWritesGoOutAsOne: between gather and flushGathered, the
// connection's writes reach the socket as one write, in order; outside,
// each write goes through at once; a sendfile (ReadFrom) first flushes
// what was gathered.
func TestGatheredWritesGoOutAsOne(t *testing.T) {
	rc := &recordingConn{}
	c := &limitedConn{Conn: rc}
	c.Write([]byte("before"))
	c.gather()
	c.Write([]byte("head,"))
	c.Write([]byte("record 1,"))
	c.Write([]byte("record 2"))
	if got := rc.got(); len(got) != 1 {
		t.Fatalf("writes reached the socket while gathering: %q", got)
	}
	if err := c.flushGathered(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("after"))
	c.gather()
	c.ReadFrom(strings.NewReader("file"))
	c.flushGathered()
	want := []string{"before", "head,record 1,record 2", "after", "file"}
	if got := rc.got(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("socket writes %q, want %q", got, want)
	}
	if err := c.flushGathered(); err != nil {
		t.Errorf("a flush with nothing gathered: %v", err)
	}
}

// TestConnContextFindsTheHostsLayer: the relay finds the host's own layer
// of a connection under TLS and the PROXY protocol, and the server's
// write timeout with it.
func TestConnContextFindsTheHostsLayer(t *testing.T) {
	lc := &limitedConn{Conn: &recordingConn{}}
	srv := &http.Server{WriteTimeout: 75 * time.Second}
	cases := []struct {
		name string
		conn net.Conn
	}{
		{"plain", lc},
		{"TLS", tls.Server(lc, &tls.Config{})},
		{"PROXY protocol", proxyproto.NewConn(lc)},
		{"TLS over the PROXY protocol", tls.Server(proxyproto.NewConn(lc), &tls.Config{})},
	}
	for _, tc := range cases {
		ctx := connContext(srv)(context.Background(), tc.conn)
		r := (&http.Request{}).WithContext(ctx)
		ci := connOf(r)
		if ci.conn != lc || ci.writeTimeout != srv.WriteTimeout {
			t.Errorf("%s: found %p with write timeout %v, want %p and %v", tc.name, ci.conn, ci.writeTimeout, lc, srv.WriteTimeout)
		}
	}
	if ci := connOf(&http.Request{}); ci.conn != nil || ci.writeTimeout != 0 {
		t.Errorf("a request without connection info: %+v", ci)
	}
}

// TestDeadlineArmsOnlyWhenDue: a response's write deadline, armed by the
// server at its request's arrival, is re-armed only once less than d of
// it is left, and the host may wait for the app until d/4 of it is left.
func TestDeadlineArmsOnlyWhenDue(t *testing.T) {
	const d = 4 * time.Second
	start := time.Unix(1000, 0)
	x := deadline{d: d, set: true, expires: start.Add(d + d/4)}
	steps := []struct {
		at       time.Duration // since start
		due      bool
		patience time.Duration
	}{
		{0, false, d},
		{500 * time.Millisecond, false, d - 500*time.Millisecond},
		{time.Second, false, d - time.Second}, // 4 s left: not yet
		{1100 * time.Millisecond, true, d},    // less: re-armed to 5 s from now
		{1500 * time.Millisecond, false, d - 400*time.Millisecond},
		{2*time.Second + 200*time.Millisecond, true, d},
	}
	for _, s := range steps {
		now := start.Add(s.at)
		if due := x.due(now); due != s.due {
			t.Errorf("at %v: due %v, want %v", s.at, due, s.due)
		}
		if p := x.patience(now); p != s.patience {
			t.Errorf("at %v: patience %v, want %v", s.at, p, s.patience)
		}
	}
	if x.patience(x.expires) != 0 {
		t.Error("no patience left at the deadline itself")
	}
	off := deadline{}
	if off.due(start) {
		t.Error("a deadline without d armed")
	}
	// A reload removed send_timeout; the connection's old server had armed one.
	removed := deadline{w: httptest.NewRecorder(), set: true, expires: start.Add(d)}
	if removed.keep(start); removed.set {
		t.Error("a deadline the server armed stays when send_timeout is gone")
	}
	// A wait longer than what is left clears it; a shorter one does not.
	x = deadline{w: httptest.NewRecorder(), d: d, set: true, expires: start.Add(d + d/4)}
	if x.keepFor(start, d/2); !x.set {
		t.Error("cleared for a wait that fits")
	}
	if x.keepFor(start, 2*d); x.set {
		t.Error("kept for a wait longer than what is left")
	}
}

// TestLimitedConnErrorsAsNetConn: the raw reads and writes of the host's
// layer fail as net.Conn's do: *net.OpError, a timeout that says so, and
// io.EOF as it is.
func TestLimitedConnErrorsAsNetConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := newLimitedConn(server, &connLimit{})
	defer c.Close()
	if c.raw == nil {
		t.Fatal("a TCP connection is not read raw")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var op *net.OpError
	var ne net.Error
	if !errors.As(err, &op) || op.Op != "read" || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %#v", err)
	}
	c.SetReadDeadline(time.Time{})
	client.Write([]byte("x"))
	client.Close()
	buf := make([]byte, 4)
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Errorf("read: %d, %v", n, err)
	}
	if _, err := c.Read(buf); err != io.EOF {
		t.Errorf("read at the end: %v, want io.EOF", err)
	}
}
