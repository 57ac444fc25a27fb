package host

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gowsgi/gowsgi/worker"
)

// Version is reported in SERVER_SOFTWARE.
var Version = "0.1.0"

var envPool = sync.Pool{New: func() any { return new(worker.Environ) }}

// request is one request on its way through the host, from ServeHTTP to
// its access line: what routing, the worker, the relay and the log need to
// know of it. One per request, from the host's pool (the host's own, so
// that its timer never serves two hosts: tests run hosts in synctest
// bubbles, whose timers must stay in them).
type request struct {
	w      accessWriter // what the handler writes through: status, bytes, pid
	r      *http.Request
	id     string     // the request ID (X-Request-Id)
	start  time.Time  // when it arrived
	client clientView // the client as the connection or a trusted proxy tells it

	gen              *generation // the generation that routed it
	app              *appRuntime // nil until a mount matched
	query            string      // QUERY_STRING
	scriptName, path string      // SCRIPT_NAME and PATH_INFO
	body             requestBody
	conn             *connInfo
	send             deadline    // limits.send_timeout between two writes
	wait             *time.Timer // times the waits for the app (relay.next); kept with the pooled object
}

// ServeHTTP routes a request to its app's worker pool and relays the
// response, then writes the access line.
func (h *Host) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	q, _ := h.requests.Get().(*request)
	if q == nil {
		q = new(request)
	}
	q.r, q.start, q.client, q.gen = r, time.Now(), viewRequest(r), h.gen.Load()
	q.id = requestID(r, q.client.trusted)
	q.w.ResponseWriter = rw
	q.conn = connOf(r)
	q.send = deadline{w: &q.w, d: q.gen.limits.SendTimeout}
	if t := q.conn.writeTimeout; t > 0 {
		q.send.set, q.send.expires = true, q.start.Add(t)
	}
	rw.Header()[requestIDHeader] = []string{q.id}
	defer h.finish(q)
	if err := h.serve(q); err != nil {
		h.answer(q, err)
	}
}

// finish writes the access line, also when the handler panicked (to cut
// the connection), and recycles the request.
func (h *Host) finish(q *request) {
	h.logAccess(q)
	q.body.Close()
	*q = request{wait: q.wait}
	h.requests.Put(q)
}

// serve routes q and serves it; an error is what the client is answered.
func (h *Host) serve(q *request) error {
	r := q.r
	if r.Method == http.MethodConnect {
		return errConnect
	}
	tgt, err := parseTarget(r)
	if err != nil {
		return &httpError{code: http.StatusBadRequest, msg: err.Error(), close: true}
	}
	q.query = tgt.query
	if !r.ProtoAtLeast(1, 1) && r.Header["Content-Length"] == nil &&
		(r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		// HTTP/1.0 POST and PUT need a Content-Length (RFC 1945 section
		// 7.2.2). net/http ignores Transfer-Encoding on HTTP/1.0: without
		// this, the app would get an empty body, and with keep-alive the
		// chunked body would be read as the next request.
		return errLengthRequired
	}
	if len(r.TransferEncoding) > 0 {
		// Content-Length may have come with it (net/http drops it): RFC
		// 9112 section 6.1 says to close the connection after the response.
		q.w.Header().Set("Connection", "close")
	}
	if !h.route(q, tgt.path) {
		return errNoMount
	}
	app := q.app
	switch {
	case app.static != nil:
		app.static.serve(&keepingWriter{&q.w, &q.send}, r, q.path)
		return nil
	case app.pool == nil:
		return errAppFailed
	}
	defer app.pool.leave()
	return h.serveApp(q)
}

// route finds q's app in the current generation and enters its pool.
func (h *Host) route(q *request, path string) bool {
	for {
		q.gen = h.gen.Load()
		m, ok := q.gen.routes.Lookup(q.r.Host, path)
		if !ok {
			return false
		}
		q.app, q.scriptName, q.path = m.Target, m.ScriptName, m.PathInfo
		if q.app.pool == nil || q.app.pool.enter() {
			return true
		}
		// The pool is draining for a reload: the new generation is published.
	}
}

// serveApp reads q's body, sends q to a worker of its app and relays the
// response; a request the worker gave back unstarted goes to another.
func (h *Host) serveApp(q *request) error {
	lim, app := q.gen.limits, q.app
	if q.r.ContentLength > lim.MaxBody {
		return errBodyTooLarge
	}
	if err := h.readBody(q); err != nil {
		return err
	}
	env := envPool.Get().(*worker.Environ)
	defer envPool.Put(env)
	env.Reset()
	buildEnviron(env, q)
	req := worker.Request{Env: env.Bytes(), Body: q.body.Body, Method: q.r.Method, Path: q.r.URL.Path, MaxSpool: lim.MaxSpool,
		SpoolBudget: &h.spoolDisk}
	for attempt := 0; ; attempt++ {
		if attempt == 10 || q.r.Context().Err() != nil {
			return errNoWorker
		}
		q.send.keepFor(time.Now(), app.def.QueueTimeout) // a busy app is not the client's fault
		pr, err := app.pool.acquire(q.r.Context().Done(), q.body.pipelinable())
		if err != nil {
			return err
		}
		req.OnDone = func(completed bool) { app.pool.release(pr, completed) }
		call, err := pr.p.Send(req)
		if err != nil {
			app.pool.release(pr, false)
			if errors.Is(err, worker.ErrNotStarted) {
				continue
			}
			return fmt.Errorf("%w: %w", errSend, err)
		}
		q.w.pid = pr.p.Pid
		rl := relay{h: h, q: q, call: call, pr: pr}
		retry := rl.run()
		call.Abandon()
		if !retry {
			return nil
		}
	}
}

// target is a parsed request target.
type target struct {
	path  string // percent-decoded
	query string // raw, without the fragment
}

// errBadTarget is a request target the host refuses with 400.
var errBadTarget = errors.New("invalid request target")

// parseTarget splits the request target into the percent-decoded path and
// the raw query, keeping "//" and dot segments as sent and dropping a
// fragment. Origin form ("/path?q") and absolute form with an http or
// https URL are accepted; other forms are errBadTarget.
func parseTarget(r *http.Request) (target, error) {
	uri := r.RequestURI
	if i := strings.IndexByte(uri, '#'); i >= 0 {
		uri = uri[:i]
	}
	var rawPath, query string
	switch {
	case strings.HasPrefix(uri, "/"):
		rawPath, query, _ = strings.Cut(uri, "?")
	case (r.URL.Scheme == "http" || r.URL.Scheme == "https") && r.URL.Host != "":
		rawPath = r.URL.EscapedPath()
		if rawPath == "" {
			rawPath = "/"
		}
		query, _, _ = strings.Cut(r.URL.RawQuery, "#")
	default:
		return target{}, errBadTarget
	}
	t := target{path: rawPath, query: query}
	if strings.IndexByte(rawPath, '%') >= 0 {
		p, err := url.PathUnescape(rawPath)
		if err != nil {
			return target{}, errors.New("bad percent-encoding in the path")
		}
		t.path = p
	}
	return t, nil
}

// buildEnviron fills env with the CGI and WSGI variables of q.
func buildEnviron(env *worker.Environ, q *request) {
	r, cv := q.r, q.client
	env.Str("REQUEST_METHOD", r.Method)
	env.Str("SCRIPT_NAME", q.scriptName)
	env.Str("PATH_INFO", q.path)
	env.Str("QUERY_STRING", q.query)
	env.Str("RAW_URI", r.RequestURI)
	env.Str("REQUEST_URI", r.RequestURI)
	env.Str("SERVER_PROTOCOL", r.Proto)
	env.Str("SERVER_SOFTWARE", "gowsgi/"+Version)
	scheme := cv.scheme
	env.Str("wsgi.url_scheme", scheme)
	env.Bool("wsgi.input_terminated", true)

	env.Str("REMOTE_ADDR", cv.remoteAddr)
	env.Str("REMOTE_PORT", cv.remotePort)

	serverName, serverPort := serverAddr(r, cv.host, scheme)
	env.Str("SERVER_NAME", serverName)
	env.Str("SERVER_PORT", serverPort)

	if ct, ok := r.Header["Content-Type"]; ok && len(ct) > 0 {
		env.Str("CONTENT_TYPE", ct[0])
	}
	// The host has read the whole body: its size is known even when the
	// request did not say it (chunked, or HTTP/2 without content-length),
	// and Transfer-Encoding, which no longer applies, is not passed on
	// (as waitress does). No body and no Content-Length: no CONTENT_LENGTH
	// (RFC 3875 section 4.1.2).
	if r.ContentLength != 0 || r.Header["Content-Length"] != nil {
		env.Str("CONTENT_LENGTH", strconv.FormatInt(q.body.Len, 10))
	}
	if cv.host != "" {
		env.Str("HTTP_HOST", cv.host)
	}
	if len(r.Trailer) > 0 && r.Header["Trailer"] == nil {
		// net/http moves the announced trailer names out of r.Header.
		env.Str("HTTP_TRAILER", trailerNames(r.Trailer))
	}
	env.Str("HTTP_X_REQUEST_ID", q.id)
	var keyBuf []byte
	for name, values := range r.Header {
		if name == "Content-Type" || name == "Content-Length" || name == requestIDHeader || strings.IndexByte(name, '_') >= 0 {
			continue
		}
		keyBuf = append(keyBuf[:0], "HTTP_"...)
		for i := 0; i < len(name); i++ {
			c := name[i]
			switch {
			case c == '-':
				c = '_'
			case 'a' <= c && c <= 'z':
				c -= 'a' - 'A'
			}
			keyBuf = append(keyBuf, c)
		}
		sep := ","
		if name == "Cookie" {
			sep = "; "
		}
		value := values[0]
		if len(values) > 1 {
			value = strings.Join(values, sep)
		}
		env.Str(string(keyBuf), value)
	}
}

// trailerNames lists the names of a request's trailers, sorted.
func trailerNames(t http.Header) string {
	names := make([]string, 0, len(t))
	for k := range t {
		i := len(names)
		names = append(names, k)
		for ; i > 0 && names[i-1] > k; i-- {
			names[i] = names[i-1]
		}
		names[i] = k
	}
	return strings.Join(names, ", ")
}

// serverAddr returns SERVER_NAME and SERVER_PORT: from host (HTTP_HOST),
// else from the address the connection came in on, the port defaulting to
// the scheme's. An IPv6 literal keeps its brackets, with a port or without
// (RFC 3875 section 4.1.14).
func serverAddr(r *http.Request, host, scheme string) (name, port string) {
	name = host
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	if name == "" {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if h, p, err := net.SplitHostPort(la.String()); err == nil {
				name, port = h, p
			} else {
				name = "localhost"
			}
		}
	}
	if strings.IndexByte(name, ':') >= 0 && !strings.HasPrefix(name, "[") {
		name = "[" + name + "]"
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return name, port
}

// timer returns q's timer, set to fire after d.
func (q *request) timer(d time.Duration) *time.Timer {
	if q.wait == nil {
		q.wait = time.NewTimer(d)
	} else {
		q.wait.Reset(d)
	}
	return q.wait
}
