package host

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// gatherPool holds the buffers of connections while they gather writes.
var gatherPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledGather is the largest gathering buffer kept for reuse.
const maxPooledGather = 2 * writePiece

// gather makes the writes of c, until flushGathered, land in one buffer
// that flushGathered writes with one system call. The relay gathers each
// piece of a large HTTP/1.1 response it writes: net/http writes the head
// (with the start of the body, from its 4 KiB buffer) and the rest of the
// body separately, and crypto/tls writes each TLS record of at most
// 16 KiB separately, so a 64 KiB response over TLS took five writes to the
// socket, each one a trip through the kernel's TCP stack and, on loopback,
// a wake-up of the client; gathered, it takes one.
func (c *limitedConn) gather() {
	c.mu.Lock()
	if !c.gathering {
		c.gathering = true
		c.buf = gatherPool.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// flushGathered writes what was gathered and stops gathering.
func (c *limitedConn) flushGathered() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gathering {
		return nil
	}
	c.gathering = false
	var err error
	if b := *c.buf; len(b) > 0 {
		_, err = c.write(b)
	}
	if cap(*c.buf) <= maxPooledGather {
		*c.buf = (*c.buf)[:0]
		gatherPool.Put(c.buf)
	}
	c.buf = nil
	return err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.gathering {
		*c.buf = append(*c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.write(p)
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
