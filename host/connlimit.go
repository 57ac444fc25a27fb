package host

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/gowsgi/gowsgi/internal/rawio"
)

// connLimit bounds a listener's open connections (max_connections): the
// accept loop takes a place before it accepts, so that past the limit new
// connections wait in the kernel's backlog, and a connection gives its
// place back when it is closed.
type connLimit struct {
	mu     sync.Mutex
	cond   sync.Cond
	open   int
	max    int
	closed bool
}

func (cl *connLimit) init(max int) {
	cl.cond.L = &cl.mu
	cl.max = max
}

// setMax changes the limit, reporting whether it changed.
func (cl *connLimit) setMax(max int) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if max == cl.max {
		return false
	}
	cl.max = max
	cl.cond.Broadcast()
	return true
}

// acquire waits for a place; false once the limit is closed.
func (cl *connLimit) acquire() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for cl.open >= cl.max && !cl.closed {
		cl.cond.Wait()
	}
	if cl.closed {
		return false
	}
	cl.open++
	return true
}

func (cl *connLimit) release() {
	cl.mu.Lock()
	cl.open--
	cl.cond.Signal()
	cl.mu.Unlock()
}

// close wakes an accept loop waiting for a place, for good.
func (cl *connLimit) close() {
	cl.mu.Lock()
	cl.closed = true
	cl.cond.Broadcast()
	cl.mu.Unlock()
}

// limitedConn is the host's own layer of every accepted connection. It
// gives its place in its listener's limit back when closed, gathers a
// response's writes into one (gather.go), and reads and writes with raw
// system calls (rawio: they do not wake Go's system monitor). It keeps the
// interfaces net/http looks for on a connection: ReadFrom (sendfile) and
// CloseWrite.
type limitedConn struct {
	net.Conn
	limit *connLimit
	once  sync.Once
	raw   syscall.RawConn // nil: through Conn

	mu        sync.Mutex
	gathering bool    // Write appends to buf
	flushing  bool    // flushGathered is writing (without mu)
	buf       *[]byte // from gatherPool while gathering
	werr      error   // a write failed: every later one fails with it
}

// newLimitedConn wraps c, which holds a place in limit.
func newLimitedConn(c net.Conn, limit *connLimit) *limitedConn {
	return &limitedConn{Conn: c, limit: limit, raw: rawio.Of(c)}
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Read(p)
	}
	n, err := rawio.Read(c.raw, p)
	return n, c.opError("read", err)
}

// write writes p to the connection.
func (c *limitedConn) write(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Write(p)
	}
	n, err := rawio.Write(c.raw, p)
	return n, c.opError("write", err)
}

// opError wraps an error of a raw read or write as net.Conn's own are
// (net/http and crypto/tls look into them); io.EOF stays as it is.
func (c *limitedConn) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

func (c *limitedConn) Close() error {
	c.once.Do(c.limit.release)
	return c.Conn.Close()
}

func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.flushGathered(); err != nil {
		return 0, err
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
