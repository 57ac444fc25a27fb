package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
)

// listener is one bound socket. One accept loop hands its connections to
// the current HTTP server; a reload that changes server settings installs a
// new server without touching the socket, and the old server finishes the
// connections it has. What can change without a new server does so in
// place: the certificate (new handshakes get the new one), who forwarded
// headers are believed from (every request reads it), the socket's mode.
type listener struct {
	key, addr string
	ln        net.Listener
	path      string // unix socket file; "" for tcp and abstract sockets

	cert  atomic.Pointer[tls.Certificate] // what TLS handshakes present
	trust atomic.Pointer[forwardTrust]    // nil: forwarded headers are never believed

	limit connLimit      // listeners[].max_connections
	proxy atomic.Bool    // listeners[].proxy_protocol
	loop  sync.WaitGroup // the accept loop

	mu       sync.Mutex
	cur      *serverLn
	settings serverSettings // what cur was built with
	certSum  [32]byte       // fingerprint of cert's files
	mode     os.FileMode    // of the socket file
}

// serverSettings are what a listener's http.Server is built from: when
// they change, a new server takes the socket's new connections.
type serverSettings struct {
	limits config.Limits
	tls    bool // HTTPS, HTTP/2 by ALPN
	h2c    bool // HTTP/2 without TLS beside HTTP/1.1
}

func settingsOf(lc config.Listener, lim config.Limits) serverSettings {
	return serverSettings{limits: lim, tls: lc.TLS != nil, h2c: lc.H2C}
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

// openListener binds the socket of lc. It serves nothing until update and
// setServer are called.
func openListener(key string, lc config.Listener) (*listener, error) {
	ln, inherited, err := listenSocket(lc, false)
	if err != nil {
		return nil, err
	}
	l := &listener{key: key, addr: lc.Addr, ln: ln}
	l.limit.init(lc.MaxConnections)
	if lc.Network == "unix" && !strings.HasPrefix(lc.Address, "@") && !inherited {
		l.path, l.mode = lc.Address, socketMode(lc)
	}
	return l, nil
}

func socketMode(lc config.Listener) os.FileMode {
	if lc.Mode == 0 {
		return config.DefaultSocketMode
	}
	return lc.Mode
}

// listenSocket returns the socket for lc: one systemd passed (socket
// activation), one the gowsgi this one upgrades handed over, or a new
// one. inherited reports the first two (their file and mode are kept).
func listenSocket(lc config.Listener, admin bool) (ln net.Listener, inherited bool, err error) {
	if ln := takeActivated(lc); ln != nil {
		return ln, true, nil
	}
	if ln := takeHandedOver(lc, admin); ln != nil {
		return ln, true, nil
	}
	if lc.Network == "unix" {
		ln, err = listenUnix(lc.Address, socketMode(lc))
	} else {
		ln, err = net.Listen("tcp", lc.Address)
	}
	return ln, false, err
}

// update applies the settings of lc that need no new server: the
// certificate, who forwarded headers are believed from, and the socket
// file's mode. It returns what changed, for the log.
func (l *listener) update(lc config.Listener, log zerolog.Logger) (changed []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.TLS != nil && (l.cert.Load() == nil || lc.TLS.Fingerprint != l.certSum) {
		if l.cert.Load() != nil {
			changed = append(changed, "certificate")
		}
		l.cert.Store(lc.TLS.Certificate)
		l.certSum = lc.TLS.Fingerprint
		logCertificate(log, l.addr, lc.TLS)
	}
	if l.proxy.Swap(lc.ProxyProtocol) != lc.ProxyProtocol {
		changed = append(changed, fmt.Sprintf("proxy_protocol %v", lc.ProxyProtocol))
	}
	if l.limit.setMax(lc.MaxConnections) {
		changed = append(changed, fmt.Sprintf("max_connections %d", lc.MaxConnections))
	}
	next := newForwardTrust(lc)
	if prev := l.trust.Load(); !prev.equal(next) {
		if prev != nil || next != nil {
			changed = append(changed, "forwarded_allow_ips")
		}
		l.trust.Store(next)
	}
	if mode := lc.Mode; l.path != "" && mode != 0 && mode != l.mode {
		if err := os.Chmod(l.path, mode); err != nil {
			log.Error().Err(err).Str("listener", l.addr).Msg("cannot change the socket's mode")
		} else {
			l.mode = mode
			changed = append(changed, fmt.Sprintf("mode %04o", mode))
		}
	}
	return changed
}

// logCertificate logs what a listener's certificate is for and until when,
// warning when it is not valid now.
func logCertificate(log zerolog.Logger, addr string, t *config.TLSConfig) {
	leaf := t.Certificate.Leaf
	if leaf == nil {
		return
	}
	ev := log.Info()
	msg := "certificate loaded"
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		ev, msg = log.Warn(), "certificate loaded, but it has expired"
	case now.Before(leaf.NotBefore):
		ev, msg = log.Warn(), "certificate loaded, but it is not valid yet"
	}
	ev.Str("listener", addr).Str("cert", t.Cert).Str("subject", leaf.Subject.String()).
		Strs("dns_names", leaf.DNSNames).Time("not_after", leaf.NotAfter).Msg(msg)
}

// getCertificate gives TLS handshakes the listener's current certificate.
func (l *listener) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := l.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no certificate")
}

// readAheadSlop is what net/http adds to Server.MaxHeaderBytes when it
// reads a request's head: it stops reading from the connection after
// MaxHeaderBytes + 4096 bytes (initialReadLimitSize in net/http's
// server.go) and answers 431 if the head has not ended by then.
const readAheadSlop = 4096

// serverMaxHeaderBytes is the http.Server.MaxHeaderBytes that makes the
// HTTP/1.1 limit on a request's line and headers exactly limit bytes from
// 8 KiB (2 * readAheadSlop) up. Server.MaxHeaderBytes also sets the HTTP/2
// header list limit (to MaxHeaderBytes + 320), which it must not cut to a
// few hundred bytes: below 8 KiB, MaxHeaderBytes stays at least min(limit,
// 4096), so that a small limit is never looser than net/http alone makes
// it, nor HTTP/2 tighter; the HTTP/1.1 limit is then min(limit + 4096, 8 KiB).
func serverMaxHeaderBytes(limit int) int {
	return max(limit-readAheadSlop, min(limit, readAheadSlop))
}

// newServer returns an HTTP server for listener l with the given settings.
// Its requests carry l in their context (see viewRequest).
func (h *Host) newServer(l *listener, st serverSettings) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: st.limits.ReadHeaderTimeout,
		IdleTimeout:       st.limits.IdleTimeout,
		MaxHeaderBytes:    serverMaxHeaderBytes(st.limits.MaxHeaderBytes),
		ErrorLog:          log.New(debugWriter{h.log}, "", 0),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), listenerKey{}, l)
		},
	}
	if d := st.limits.SendTimeout; d > 0 {
		// Every response starts with its write deadline armed (see deadline).
		srv.WriteTimeout = d + d/4
	}
	srv.ConnContext = connContext(srv)
	if st.tls {
		protos.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
			GetCertificate: l.getCertificate,
		}
	}
	if st.h2c {
		// Prior knowledge only: a request asking for "Upgrade: h2c" (RFC
		// 7540 section 3.2, deprecated by RFC 9113) is served as HTTP/1.1.
		protos.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &protos
	return srv
}

// setServer makes srv the listener's server and starts it; it returns the
// previous one (nil at first), which no longer gets new connections.
func (l *listener) setServer(srv *http.Server, settings serverSettings) *serverLn {
	s := &serverLn{srv: srv, addr: l.ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	if settings.tls {
		go srv.ServeTLS(s, "", "")
	} else {
		go srv.Serve(s)
	}
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
		if !l.limit.acquire() {
			return // the listener is closing
		}
		c, err := l.ln.Accept()
		if err != nil {
			l.limit.release()
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
		l.dispatch(l.wrap(newLimitedConn(c, &l.limit)))
	}
}

// wrap reads, on a proxy_protocol listener, the PROXY header of a
// trusted peer (forwarded_allow_ips): the connection's RemoteAddr is then
// the client the header names. An untrusted peer that sends one is cut
// off. The header is read on the connection's first use, in its server's
// goroutine, within proxyproto's header timeout (10 s).
func (l *listener) wrap(c net.Conn) net.Conn {
	if !l.proxy.Load() {
		return c
	}
	policy := proxyproto.REJECT
	if t := l.trust.Load(); t != nil && (t.anyPeer || t.trustsAddr(c.RemoteAddr())) {
		policy = proxyproto.USE
	}
	return proxyproto.NewConn(c, proxyproto.WithPolicy(policy))
}

// dispatch hands a connection to the current server, or closes it if the
// listener is closing.
func (l *listener) dispatch(c net.Conn) {
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
		return
	}
}

// start runs the accept loop until closeSocket.
func (l *listener) start(log zerolog.Logger) {
	l.loop.Add(1)
	go func() {
		defer l.loop.Done()
		l.acceptLoop(log)
	}()
}

// closeSocket stops accepting: the accept loop ends (l.loop.Wait waits
// for it), the server keeps the connections it has.
func (l *listener) closeSocket() {
	l.limit.close()
	l.ln.Close()
}

// close stops accepting on the socket, then lets the server finish its
// connections for up to timeout.
func (l *listener) close(timeout time.Duration) {
	l.closeSocket()
	shutdownServer(l.server(), timeout)
	l.loop.Wait()
}

func shutdownServer(s *serverLn, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// listenUnix listens on a unix socket, replacing a stale socket file left
// by a killed host but refusing one that a live server answers on, and
// gives the socket file the mode. Abstract sockets ("@name") have no file.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	abstract := strings.HasPrefix(path, "@")
	if fi, err := os.Lstat(path); err == nil && !abstract {
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
	if abstract {
		return ln, nil
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
