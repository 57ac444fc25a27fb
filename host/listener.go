package host

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
)

// listener is one bound socket. One accept loop hands its connections to
// the current HTTP server; a reload that changes server settings installs a
// new server without touching the socket, and the old server finishes the
// connections it has.
type listener struct {
	key, addr string
	ln        net.Listener
	path      string // unix socket file

	mu       sync.Mutex
	cur      *serverLn
	settings config.Limits // what cur was built with
}

// serverLn is the net.Listener one http.Server serves: connections come
// from the socket's accept loop; Close retires the server, not the socket.
type serverLn struct {
	srv   *http.Server
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (s *serverLn) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *serverLn) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *serverLn) Addr() net.Addr { return s.addr }

func openListener(key string, lc config.Listener) (*listener, error) {
	var ln net.Listener
	var err error
	if lc.Network == "unix" {
		ln, err = listenUnix(lc.Address)
	} else {
		ln, err = net.Listen("tcp", lc.Address)
	}
	if err != nil {
		return nil, err
	}
	l := &listener{key: key, addr: lc.Addr, ln: ln}
	if lc.Network == "unix" {
		l.path = lc.Address
	}
	return l, nil
}

// newServer returns an HTTP server for the host with the given limits.
func (h *Host) newServer(lim config.Limits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          log.New(debugWriter{h.log}, "", 0),
	}
}

// setServer makes srv the listener's server and starts it; it returns the
// previous one (nil at first), which no longer gets new connections.
func (l *listener) setServer(srv *http.Server, settings config.Limits) *serverLn {
	s := &serverLn{srv: srv, addr: l.ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	go srv.Serve(s)
	l.mu.Lock()
	old := l.cur
	l.cur, l.settings = s, settings
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return old
}

func (l *listener) server() *serverLn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// acceptLoop accepts connections until the socket is closed and hands each
// to the current server.
func (l *listener) acceptLoop(log zerolog.Logger) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn().Err(err).Str("listener", l.addr).Dur("retry_in", delay).Msg("accept failed")
			time.Sleep(delay)
			continue
		}
		delay = 0
		for {
			s := l.server()
			select {
			case s.conns <- c:
			case <-s.done:
				if l.server() != s {
					continue // retired while we waited: hand it to the new one
				}
				c.Close() // the listener is closing
			}
			break
		}
	}
}

// close stops accepting on the socket, then lets the server finish its
// connections for up to timeout.
func (l *listener) close(timeout time.Duration) {
	l.ln.Close()
	shutdownServer(l.server(), timeout)
}

func shutdownServer(s *serverLn, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// listenUnix listens on a unix socket, replacing a stale socket file left
// by a killed host but refusing one that a live server answers on.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another server is listening there", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
