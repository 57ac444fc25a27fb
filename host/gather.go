package host

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// gatherPool holds the buffers of connections while they gather writes.
var gatherPool = sync.Pool{New: func() any { return new([]byte) }}

// maxGather is the largest piece of a response whose writes are gathered:
// it bounds the copy each connection holds while its flush waits for a
// slow client. Larger pieces are written as they come.
const maxGather = 64 << 10

// maxPooledGather is the largest gathering buffer kept for reuse (a
// piece of maxGather with its TLS records' overhead fits).
const maxPooledGather = 2 * maxGather

// errFlushing is the error of a write that another goroutine makes while
// the connection writes what it gathered: only a TLS close_notify on
// shutdown does, and it is best effort.
var errFlushing = errors.New("the connection is writing a response")

// gather makes the writes of c, until flushGathered, land in one buffer
// that flushGathered writes with one system call. The relay gathers each
// piece of an HTTP/1.x response of up to maxGather bytes: net/http writes
// the head (with the start of the body, from its 4 KiB buffer) and the
// rest of the body separately, and crypto/tls writes each TLS record of at
// most 16 KiB separately, so a 64 KiB response over TLS took five writes
// to the socket, each one a trip through the kernel's TCP stack and, on
// loopback, a wake-up of the client; gathered, it takes one.
func (c *limitedConn) gather() {
	c.mu.Lock()
	if !c.gathering {
		c.gathering = true
		c.buf = gatherPool.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// flushGathered writes what was gathered and stops gathering. The lock is
// not held while it writes, so that a Close from another goroutine never
// waits for a client that does not read. A failed write sticks: every
// later write fails with it, so that net/http and crypto/tls never take a
// cut response for a whole one.
func (c *limitedConn) flushGathered() error {
	c.mu.Lock()
	if !c.gathering {
		err := c.werr
		c.mu.Unlock()
		return err
	}
	c.gathering, c.flushing = false, true
	buf, err := c.buf, c.werr
	c.buf = nil
	c.mu.Unlock()
	if b := *buf; len(b) > 0 && err == nil {
		_, err = c.write(b)
	}
	if cap(*buf) <= maxPooledGather {
		*buf = (*buf)[:0]
		gatherPool.Put(buf)
	}
	c.mu.Lock()
	c.flushing = false
	if err != nil && c.werr == nil {
		c.werr = err
	}
	err = c.werr
	c.mu.Unlock()
	return err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	switch {
	case c.werr != nil:
		err := c.werr
		c.mu.Unlock()
		return 0, err
	case c.flushing:
		c.mu.Unlock()
		return 0, errFlushing
	case c.gathering:
		*c.buf = append(*c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	n, err := c.write(p)
	if err != nil {
		c.mu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// connKey is the context key of a connection's *connInfo.
type connKey struct{}

// connInfo is what the handler needs to know of a request's connection.
type connInfo struct {
	conn *limitedConn // the host's own layer of it, under TLS and the PROXY protocol
	// writeTimeout is its server's WriteTimeout, which net/http arms for
	// each request (see deadline).
	writeTimeout time.Duration
}

// connContext returns the ConnContext of srv: it puts a connInfo in the
// context of the connection's requests.
func connContext(srv *http.Server) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		ci := &connInfo{writeTimeout: srv.WriteTimeout}
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		if pc, ok := c.(*proxyproto.Conn); ok {
			c = pc.Raw()
		}
		ci.conn, _ = c.(*limitedConn)
		return context.WithValue(ctx, connKey{}, ci)
	}
}

// connOf returns what is known of r's connection; never nil.
func connOf(r *http.Request) *connInfo {
	if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		return ci
	}
	return &noConnInfo
}

// noConnInfo stands for a connection the host did not accept (tests).
var noConnInfo connInfo
