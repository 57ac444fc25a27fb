package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
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
	var ln net.Listener
	var err error
	mode := lc.Mode
	if mode == 0 {
		mode = config.DefaultSocketMode
	}
	if lc.Network == "unix" {
		ln, err = listenUnix(lc.Address, mode)
	} else {
		ln, err = net.Listen("tcp", lc.Address)
	}
	if err != nil {
		return nil, err
	}
	l := &listener{key: key, addr: lc.Addr, ln: ln}
	l.limit.init(lc.MaxConnections)
	if lc.Network == "unix" && !strings.HasPrefix(lc.Address, "@") {
		l.path, l.mode = lc.Address, mode
	}
	return l, nil
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

// exactHeaderLimit is the smallest limits.max_header_bytes enforced to the
// byte over HTTP/1.1. Server.MaxHeaderBytes also sets the HTTP/2 header
// list limit (to MaxHeaderBytes + 320), which it must not cut to a few
// hundred bytes: below this, MaxHeaderBytes stays at least min(limit,
// 4096), so that a small limit is never looser than net/http alone makes
// it, nor HTTP/2 tighter.
const exactHeaderLimit = 2 * readAheadSlop

// serverMaxHeaderBytes is the http.Server.MaxHeaderBytes that makes the
// HTTP/1.1 limit on a request's line and headers exactly limit bytes from
// exactHeaderLimit up; below, min(limit + 4096, exactHeaderLimit).
func serverMaxHeaderBytes(limit int) int {
	return max(limit-readAheadSlop, min(limit, readAheadSlop))
}

// newServer returns an HTTP server for listener l with the given settings.
// Its requests carry l in their context (see viewRequest).
func (h *Host) newServer(l *listener, st serverSettings) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	var handler http.Handler = h
	srv := &http.Server{
		ReadHeaderTimeout: st.limits.ReadHeaderTimeout,
		IdleTimeout:       st.limits.IdleTimeout,
		MaxHeaderBytes:    serverMaxHeaderBytes(st.limits.MaxHeaderBytes),
		ErrorLog:          log.New(debugWriter{h.log}, "", 0),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), listenerKey{}, l)
		},
	}
	if st.tls {
		protos.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
			GetCertificate: l.getCertificate,
		}
	}
	if st.h2c {
		protos.SetUnencryptedHTTP2(true)
		handler = h2cUpgrade{next: h, l: l}
	}
	srv.Protocols = &protos
	srv.Handler = handler
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
		l.dispatch(l.wrap(&limitedConn{Conn: c, limit: &l.limit}))
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

// h2cUpgrade serves "Upgrade: h2c" (RFC 7540 section 3.2) on h2c
// listeners, since net/http does HTTP/2 without TLS by prior knowledge
// only. A request that asks for it, and has no body, is answered "101
// Switching Protocols"; the connection then goes back to the listener's
// server as a new one, where it starts with the client's HTTP/2 preface.
// The request itself is put into what the server reads, as stream 1,
// right after the client's first SETTINGS frame, so that the HTTP/2
// server answers it on stream 1 as the client expects. Other requests go
// to next.
type h2cUpgrade struct {
	next http.Handler
	l    *listener
}

func (u h2cUpgrade) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !wantsH2C(r) {
		u.next.ServeHTTP(w, r)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		u.next.ServeHTTP(w, r)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if err := brw.Flush(); err != nil {
		c.Close()
		return
	}
	// What the client sent after the request is already in brw's buffer.
	pre, _ := brw.Reader.Peek(brw.Reader.Buffered())
	u.l.dispatch(&upgradedConn{Conn: c, r: io.MultiReader(bytes.NewReader(slices.Clone(pre)), c), frames: upgradeFrames(r)})
}

// wantsH2C reports whether r is an HTTP/1.1 request without a body that
// asks to switch to h2c with exactly one valid HTTP2-Settings header.
func wantsH2C(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Method == http.MethodConnect ||
		r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return false
	}
	if !hasToken(r.Header["Upgrade"], "h2c") || !hasToken(r.Header["Connection"], "upgrade") ||
		!hasToken(r.Header["Connection"], "http2-settings") {
		return false
	}
	s := r.Header["Http2-Settings"]
	if len(s) != 1 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s[0], "="))
	return err == nil && len(b)%6 == 0
}

// hasToken reports whether the comma-separated header values hold token,
// case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// h2cDropHeaders are not forwarded into stream 1: connection-specific
// fields (RFC 9113 section 8.2.2) and Host, which becomes :authority.
var h2cDropHeaders = map[string]bool{
	"Connection": true, "Upgrade": true, "Http2-Settings": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Transfer-Encoding": true, "Host": true,
}

// upgradeFrames encodes r as the HEADERS (and CONTINUATION) frames of
// stream 1, ending the stream. The header block uses only literals
// without indexing, so it leaves the HPACK state that the client's own
// frames rely on as it was.
func upgradeFrames(r *http.Request) []byte {
	path := r.RequestURI
	if path == "" || path[0] != '/' && path != "*" {
		path = r.URL.RequestURI() // absolute form
	}
	var block []byte
	block = hpackLiteral(block, ":method", r.Method)
	block = hpackLiteral(block, ":scheme", "http")
	block = hpackLiteral(block, ":authority", r.Host)
	block = hpackLiteral(block, ":path", path)
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if h2cDropHeaders[name] || strings.EqualFold(name, "te") && !hasOnly(r.Header[name], "trailers") {
			continue
		}
		lower := strings.ToLower(name)
		for _, v := range r.Header[name] {
			block = hpackLiteral(block, lower, v)
		}
	}
	const maxFrame = 16384 // SETTINGS_MAX_FRAME_SIZE's initial value
	var out []byte
	typ, flags := byte(0x1), byte(0x1) // HEADERS, END_STREAM
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= 0x4 // END_HEADERS
		}
		var hdr [9]byte
		hdr[0], hdr[1], hdr[2] = byte(n>>16), byte(n>>8), byte(n)
		hdr[3], hdr[4] = typ, f
		binary.BigEndian.PutUint32(hdr[5:], 1)
		out = append(append(out, hdr[:]...), block[:n]...)
		block = block[n:]
		typ, flags = 0x9, 0 // CONTINUATION
	}
	return out
}

func hasOnly(values []string, token string) bool {
	return len(values) == 1 && strings.EqualFold(strings.TrimSpace(values[0]), token)
}

// hpackLiteral appends a "literal header field without indexing — new
// name" (RFC 7541 section 6.2.2) with plain (not Huffman) strings.
func hpackLiteral(b []byte, name, value string) []byte {
	b = append(b, 0)
	b = hpackString(b, name)
	return hpackString(b, value)
}

func hpackString(b []byte, s string) []byte {
	// Length as an integer with a 7-bit prefix (RFC 7541 section 5.1), H=0.
	n := uint64(len(s))
	if n < 127 {
		b = append(b, byte(n))
	} else {
		b = append(b, 127)
		n -= 127
		for n >= 128 {
			b = append(b, byte(n%128+128))
			n /= 128
		}
		b = append(b, byte(n))
	}
	return append(b, s...)
}

// upgradedConn is a connection switched to h2c by an upgrade: its reads
// give the client's preface and first frame (its SETTINGS), then frames,
// then the rest of what the client sends.
type upgradedConn struct {
	net.Conn
	r      io.Reader
	frames []byte // stream 1, not yet put in
	out    []byte // to give before reading more
	done   bool   // frames are in
}

// h2Preface is what an HTTP/2 client sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func (c *upgradedConn) Read(p []byte) (int, error) {
	if !c.done {
		c.done = true
		c.out = c.withFrames()
		c.frames = nil
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	return c.r.Read(p)
}

// withFrames reads the client's preface and first frame and returns them
// followed by c.frames; if they are not a preface and a SETTINGS frame, or
// the reading fails, what was read, which the server will refuse.
func (c *upgradedConn) withFrames() []byte {
	const p = len(h2Preface)
	head := make([]byte, p+9)
	if n, err := io.ReadFull(c.r, head); err != nil {
		return head[:n]
	}
	size := int(head[p])<<16 | int(head[p+1])<<8 | int(head[p+2])
	if string(head[:p]) != h2Preface || head[p+3] != 0x4 || size > 16384 {
		return head
	}
	frame := make([]byte, p+9+size, p+9+size+len(c.frames))
	copy(frame, head)
	if n, err := io.ReadFull(c.r, frame[p+9:]); err != nil {
		return frame[:p+9+n]
	}
	return append(frame, c.frames...)
}
