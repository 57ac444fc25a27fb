package host

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/worker"
)

// Version is reported in SERVER_SOFTWARE.
var Version = "0.1.0"

var envPool = sync.Pool{New: func() any { return new(worker.Environ) }}

// reqState is what the access line needs to know of a request's routing.
type reqState struct {
	gen *generation
	app *appRuntime // nil until a mount matched
}

// ServeHTTP routes a request to its app's worker pool and relays the
// response, then writes the access line.
func (h *Host) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r)
	rw.Header()[requestIDHeader] = []string{id}
	w := accessPool.Get().(*accessWriter)
	w.ResponseWriter = rw
	rs := reqState{gen: h.gen.Load()}
	defer h.finish(w, r, &rs, id, start)
	h.serve(w, r, &rs, id)
}

// finish writes the access line, also when the handler panicked (to cut
// the connection), and recycles the writer.
func (h *Host) finish(w *accessWriter, r *http.Request, rs *reqState, id string, start time.Time) {
	h.logAccess(rs.gen, w, r, rs.app, id, start)
	*w = accessWriter{}
	accessPool.Put(w)
}

func (h *Host) serve(w *accessWriter, r *http.Request, rs *reqState, id string) {
	if r.Method == http.MethodConnect {
		w.Header().Set("Connection", "close")
		http.Error(w, "405 Method Not Allowed: CONNECT is not served", http.StatusMethodNotAllowed)
		return
	}
	tgt, err := parseTarget(r)
	if err != nil {
		w.Header().Set("Connection", "close")
		http.Error(w, "400 Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !r.ProtoAtLeast(1, 1) && r.Header["Content-Length"] == nil &&
		(r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		// HTTP/1.0 POST and PUT need a Content-Length (RFC 1945 section
		// 7.2.2). net/http ignores Transfer-Encoding on HTTP/1.0: without
		// this, the app would get an empty body, and with keep-alive the
		// chunked body would be read as the next request.
		w.Header().Set("Connection", "close")
		http.Error(w, "411 Length Required", http.StatusLengthRequired)
		return
	}
	if len(r.TransferEncoding) > 0 {
		// Content-Length may have come with it (net/http drops it): RFC
		// 9112 section 6.1 says to close the connection after the response.
		w.Header().Set("Connection", "close")
	}
	path := tgt.path
	var app *appRuntime
	var scriptName, pathInfo string
	var lim config.Limits
	for {
		gen := h.gen.Load()
		rs.gen = gen
		lim = gen.limits
		m, ok := gen.routes.Lookup(r.Host, path)
		if !ok {
			http.Error(w, "404 Not Found: no app is mounted here", http.StatusNotFound)
			return
		}
		app, scriptName, pathInfo = m.Target, m.ScriptName, m.PathInfo
		rs.app = app
		if app.pool == nil || app.pool.enter() {
			break
		}
		// The pool is draining for a reload: the new generation is published.
	}
	if app.static != nil {
		app.static.serve(w, r, pathInfo)
		return
	}
	if app.pool == nil {
		http.Error(w, "503 Service Unavailable: the app failed to load; see the server log", http.StatusServiceUnavailable)
		return
	}
	defer app.pool.leave()
	h.serveApp(w, r, app, tgt.query, scriptName, pathInfo, lim, id)
}

func (h *Host) serveApp(w *accessWriter, r *http.Request, app *appRuntime, query, scriptName, pathInfo string, lim config.Limits, id string) {
	if r.ContentLength > lim.MaxBody {
		h.log.Debug().Str("app", app.name).Int64("content_length", r.ContentLength).Msg("request body too large")
		w.Header().Set("Connection", "close")
		http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := h.readBody(w.ResponseWriter, r, lim, app.pool.spec.Bodies)
	if err != nil {
		h.badBody(w, r, app, err)
		return
	}
	defer body.Close()
	env := envPool.Get().(*worker.Environ)
	defer envPool.Put(env)
	env.Reset()
	w.remote = buildEnviron(env, r, query, scriptName, pathInfo, body.Len, id)
	req := worker.Request{Env: env.Bytes(), Body: body.Body, Method: r.Method, Path: r.URL.Path, MaxSpool: lim.MaxSpool}
	send := deadline{rc: http.NewResponseController(w), d: lim.SendTimeout}
	began := time.Now()
	for attempt := 0; ; attempt++ {
		if attempt == 10 || r.Context().Err() != nil {
			h.unavailable(w, r, app, errNoWorker)
			return
		}
		pr, err := app.pool.acquire(r.Context().Done())
		if err != nil {
			h.unavailable(w, r, app, err)
			return
		}
		req.OnDone = func() { app.pool.release(pr) }
		call, err := pr.p.Send(req)
		if err != nil {
			app.pool.release(pr)
			if errors.Is(err, worker.ErrNotStarted) {
				continue
			}
			h.log.Error().Err(err).Str("app", app.name).Msg("sending the request to the worker")
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
			return
		}
		w.pid = pr.p.Pid
		rl := relay{h: h, w: w, r: r, app: app, call: call, pr: pr, send: send, began: began}
		retry := rl.run()
		call.Abandon()
		if !retry {
			return
		}
	}
}

// badBody answers a request whose body could not be read.
func (h *Host) badBody(w http.ResponseWriter, r *http.Request, app *appRuntime, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		h.log.Debug().Str("app", app.name).Msg("request body too large")
		http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
	case errors.Is(err, errBodyTimeout):
		h.sampled(&h.clientWarnings, h.log.Info()).Str("app", app.name).Str("request", r.Method+" "+r.URL.Path).
			Msg("request body timed out (limits.body_timeout)")
		w.Header().Set("Connection", "close")
		http.Error(w, "408 Request Timeout: the body did not arrive in time", http.StatusRequestTimeout)
	default:
		h.log.Debug().Err(err).Str("app", app.name).Msg("reading request body")
		if r.ProtoMajor == 1 {
			// On HTTP/2 this would shut down the whole connection.
			w.Header().Set("Connection", "close")
		}
		http.Error(w, "400 Bad Request: could not read the body", http.StatusBadRequest)
	}
}

// unavailable answers a request that got no worker.
func (h *Host) unavailable(w http.ResponseWriter, r *http.Request, app *appRuntime, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	h.sampled(&h.refusals, h.log.Warn()).Err(err).Str("app", app.name).Str("method", r.Method).Str("path", r.URL.Path).
		Msg("no worker for the request")
	w.Header().Set("Retry-After", "1")
	http.Error(w, "503 Service Unavailable: "+err.Error(), http.StatusServiceUnavailable)
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

// buildEnviron fills env with the CGI and WSGI variables of a request,
// HTTP_X_REQUEST_ID being id, and returns REMOTE_ADDR.
func buildEnviron(env *worker.Environ, r *http.Request, query, scriptName, pathInfo string, bodyLen int64, id string) string {
	env.Str("REQUEST_METHOD", r.Method)
	env.Str("SCRIPT_NAME", scriptName)
	env.Str("PATH_INFO", pathInfo)
	env.Str("QUERY_STRING", query)
	env.Str("RAW_URI", r.RequestURI)
	env.Str("REQUEST_URI", r.RequestURI)
	env.Str("SERVER_PROTOCOL", r.Proto)
	env.Str("SERVER_SOFTWARE", "gowsgi/"+Version)
	cv := viewRequest(r) // the client as the connection or a trusted proxy tells it
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
		env.Str("CONTENT_LENGTH", strconv.FormatInt(bodyLen, 10))
	}
	if cv.host != "" {
		env.Str("HTTP_HOST", cv.host)
	}
	if len(r.Trailer) > 0 && r.Header["Trailer"] == nil {
		// net/http moves the announced trailer names out of r.Header.
		env.Str("HTTP_TRAILER", trailerNames(r.Trailer))
	}
	env.Str("HTTP_X_REQUEST_ID", id)
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
	return cv.remoteAddr
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
