package host

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
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

// spoolThreshold is the request body size past which the host keeps the
// body in a temporary file instead of memory.
const spoolThreshold = 1 << 20

func (h *Host) serveApp(w *accessWriter, r *http.Request, app *appRuntime, query, scriptName, pathInfo string, lim config.Limits, id string) {
	if r.ContentLength > lim.MaxBody {
		h.log.Debug().Str("app", app.name).Int64("content_length", r.ContentLength).Msg("request body too large")
		w.Header().Set("Connection", "close")
		http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := readBody(w.ResponseWriter, r, lim.MaxBody, app.pool.spec.Bodies)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.log.Debug().Str("app", app.name).Msg("request body too large")
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		h.log.Debug().Err(err).Str("app", app.name).Msg("reading request body")
		if r.ProtoMajor == 1 {
			// On HTTP/2 this would shut down the whole connection.
			w.Header().Set("Connection", "close")
		}
		http.Error(w, "400 Bad Request: could not read the body", http.StatusBadRequest)
		return
	}
	defer body.Close()
	env := envPool.Get().(*worker.Environ)
	defer envPool.Put(env)
	env.Reset()
	w.remote = buildEnviron(env, r, query, scriptName, pathInfo, body.n, id)
	envBytes := env.Bytes()

	start := time.Now()
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
		call, err := pr.p.Send(envBytes, body.mem, body.slot, body.file, body.n, func() { app.pool.release(pr) })
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
		retry := h.relay(w, r, app, call, pr, start)
		call.Abandon()
		if !retry {
			return
		}
	}
}

// unavailable answers a request that got no worker.
func (h *Host) unavailable(w http.ResponseWriter, r *http.Request, app *appRuntime, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	h.log.Warn().Err(err).Str("app", app.name).Str("method", r.Method).Str("path", r.URL.Path).Msg("no worker for the request")
	w.Header().Set("Retry-After", "1")
	http.Error(w, "503 Service Unavailable: "+err.Error(), http.StatusServiceUnavailable)
}

// requestBody is a request body read in full: in a slot of the app's
// shared body area, in memory, or spooled to an unlinked temporary file.
type requestBody struct {
	slot   *worker.BodySlot
	mem    []byte
	pooled bool // mem came from worker.GetBuffer
	file   *os.File
	n      int64
}

func (b *requestBody) Close() {
	if b.file != nil {
		b.file.Close()
	}
	if b.pooled {
		worker.PutBuffer(b.mem)
	}
	b.slot.Release()
}

// readBody reads the whole body, at most max bytes: straight into a slot
// of bodies (the app's shared body area) if its length is known and one is
// free, else into memory, spooling it to a temp file past spoolThreshold
// so that a large upload does not sit in memory.
func readBody(w http.ResponseWriter, r *http.Request, max int64, bodies *worker.BodyArena) (*requestBody, error) {
	rd := http.MaxBytesReader(w, r.Body, max)
	if r.ContentLength == 0 {
		return &requestBody{}, nil
	}
	if r.ContentLength >= worker.MinSharedBody && r.ContentLength <= worker.BodySlotSize {
		if slot := bodies.Reserve(int(r.ContentLength)); slot != nil {
			if _, err := io.ReadFull(rd, slot.Bytes()); err != nil {
				slot.Release()
				return nil, err
			}
			return &requestBody{slot: slot, n: r.ContentLength}, nil
		}
	}
	if r.ContentLength > 0 && r.ContentLength <= spoolThreshold {
		// The usual case: a known length, read into a pooled buffer.
		b := worker.GetBuffer(int(r.ContentLength))
		if _, err := io.ReadFull(rd, b); err != nil {
			worker.PutBuffer(b)
			return nil, err
		}
		return &requestBody{mem: b, pooled: true, n: r.ContentLength}, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, spoolThreshold)) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(rd, spoolThreshold+1)); err != nil {
		return nil, err
	}
	if buf.Len() <= spoolThreshold {
		return &requestBody{mem: buf.Bytes(), n: int64(buf.Len())}, nil
	}
	f, err := os.CreateTemp("", "gowsgi-body-*")
	if err != nil {
		return nil, fmt.Errorf("spool request body: %w", err)
	}
	os.Remove(f.Name()) // gone from the folder at once; freed when closed
	n, err := io.Copy(f, io.MultiReader(&buf, rd))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &requestBody{file: f, n: n}, nil
}

// relay copies the worker's response frames to the client. It reports
// whether the request never started and should be sent to another worker.
func (h *Host) relay(w http.ResponseWriter, r *http.Request, app *appRuntime, call *worker.Call, pr *proc, start time.Time) (retry bool) {
	p := pr.p
	started := false
	head := r.Method == http.MethodHead
	flusher, _ := w.(http.Flusher)
	streamed := false // no Content-Length: chunked on HTTP/1.1, from the first chunk
	timeout := app.def.Timeout
	timer := getTimer(timeout)
	defer putTimer(timer)
	for {
		f, err := call.Next(r.Context().Done(), timer.C)
		if errors.Is(err, worker.ErrWaitTimedOut) && !expired(call, timer, timeout) {
			continue
		}
		if err != nil {
			switch {
			case errors.Is(err, worker.ErrNotStarted):
				return true
			case errors.Is(err, worker.ErrCanceled):
				// The client went away. The worker is told to stop; should
				// the app not stop, the timeout still applies.
				call.Abandon()
				go h.watchdog(app, call, pr, r.Method, r.URL.Path)
				return false
			case errors.Is(err, worker.ErrWaitTimedOut):
				h.log.Error().Str("app", app.name).Str("method", r.Method).Str("path", r.URL.Path).Int("pid", p.Pid).
					Dur("duration", time.Since(call.StartedAt())).Dur("timeout", timeout).
					Msg("request timed out; killing the worker")
				pr.timedOut.Store(true)
				p.Kill()
				if !started {
					http.Error(w, "504 Gateway Timeout: the app did not answer in time", http.StatusGatewayTimeout)
					return false
				}
				panic(http.ErrAbortHandler)
			}
			h.log.Error().Str("app", app.name).Int("pid", p.Pid).Str("request", r.Method+" "+r.RequestURI).
				Msg("worker died while serving the request")
			if !started {
				http.Error(w, "502 Bad Gateway: the worker died", http.StatusBadGateway)
				return false
			}
			panic(http.ErrAbortHandler)
		}
		switch f.Type {
		case worker.FrameStart:
			code, err := writeHeader(w, f.Payload)
			if err != nil {
				h.log.Error().Err(err).Str("app", app.name).Msg("bad response header from worker")
				http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
				return false
			}
			w.WriteHeader(code)
			started = true
			streamed = w.Header().Get("Content-Length") == ""
		case worker.FrameBody:
			if head {
				continue
			}
			_, err := w.Write(f.Payload)
			worker.PutBuffer(f.Payload)
			if err != nil {
				if errors.Is(err, http.ErrContentLength) {
					h.log.Warn().Str("app", app.name).Str("request", r.Method+" "+r.RequestURI).
						Msg("app sent more body than its Content-Length; cut to it")
					continue
				}
				return false
			}
			if flusher != nil && (streamed || !call.Pending()) {
				flusher.Flush()
				streamed = false
			}
		case worker.FrameFile:
			if !head {
				if err := sendFile(w, f); err != nil {
					f.File.Close()
					h.log.Debug().Err(err).Str("app", app.name).Msg("sending a file response")
					call.Abandon()
					panic(http.ErrAbortHandler) // never a silently short body
				} else {
					h.log.Debug().Str("app", app.name).Msg("response body sent from the file")
				}
			}
			f.File.Close()
		case worker.FrameEnd:
			h.log.Debug().Str("app", app.name).Int("pid", p.Pid).Dur("took", time.Since(start)).Msg("request done")
			return false
		case worker.FrameAbort:
			h.log.Error().Str("app", app.name).Int("pid", p.Pid).Str("request", r.Method+" "+r.RequestURI).
				Str("traceback", string(f.Payload)).Msg("app raised an exception")
			if !started {
				http.Error(w, "500 Internal Server Error: the app raised an exception; see the server log", http.StatusInternalServerError)
				return false
			}
			panic(http.ErrAbortHandler)
		}
	}
}

// timers holds stopped timers for reuse: one per request otherwise costs
// allocations on the hot path.
var timers sync.Pool

// getTimer returns a timer that fires after d.
func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// putTimer stops t and keeps it for reuse. (Since Go 1.23 a stopped
// timer's channel holds no stale value, so a reused timer fires only for
// its new time.)
func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

// expired reports whether a request has run for timeout since the worker
// could start it (not since it was queued behind others on the worker);
// if not, it re-arms timer for the rest.
func expired(call *worker.Call, timer *time.Timer, timeout time.Duration) bool {
	at := call.StartedAt()
	if !at.IsZero() && time.Since(at) >= timeout {
		return true
	}
	if at.IsZero() {
		at = time.Now()
	}
	timer.Reset(timeout - time.Since(at))
	return false
}

// watchdog enforces the timeout of a request whose client went away: it
// waits for the worker to finish it and kills the worker if it overruns.
func (h *Host) watchdog(app *appRuntime, call *worker.Call, pr *proc, method, path string) {
	timeout := app.def.Timeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		_, err := call.Next(nil, timer.C)
		switch {
		case err == nil:
			continue
		case errors.Is(err, worker.ErrWaitTimedOut):
			if !expired(call, timer, timeout) {
				continue
			}
			h.log.Error().Str("app", app.name).Str("method", method).Str("path", path).Int("pid", pr.p.Pid).
				Dur("timeout", timeout).Msg("request of a client that left timed out; killing the worker")
			pr.timedOut.Store(true)
			pr.p.Kill()
		}
		return
	}
}

// sendFile copies a FrameFile's range to the client; over plain HTTP/1.1
// net/http hands it to the kernel's sendfile. A declared Content-Length
// bounds it.
func sendFile(w http.ResponseWriter, f worker.Frame) error {
	off, n := f.FileRange()
	if cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && cl < n {
		n = cl
	}
	if _, err := f.File.Seek(off, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, io.LimitReader(f.File, n))
	return err
}

// hopByHop lists response headers that belong to the connection, not the
// app; the host sets them itself.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailers": true, "Transfer-Encoding": true, "Upgrade": true,
}

// writeHeader sets the status and headers from a FrameStart payload:
// "200 OK\r\nName: value\r\n...".
func writeHeader(w http.ResponseWriter, p []byte) (int, error) {
	// One string for the whole head, and one array for the values of all
	// its headers: names and values are slices of the one, each header's
	// []string a one-element slice of the other.
	head := string(p)
	line, rest, _ := strings.Cut(head, "\r\n")
	if len(line) < 3 {
		return 0, fmt.Errorf("malformed status %q", line)
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil || code < 100 || code > 999 {
		return 0, fmt.Errorf("malformed status %q", line)
	}
	hdr := w.Header()
	values := make([]string, 0, strings.Count(rest, "\r\n")+1)
	for len(rest) > 0 {
		var kv string
		kv, rest, _ = strings.Cut(rest, "\r\n")
		if len(kv) == 0 {
			continue
		}
		k, v, ok := strings.Cut(kv, ": ")
		if !ok {
			return 0, fmt.Errorf("malformed header %q", kv)
		}
		name := http.CanonicalHeaderKey(k)
		if name == requestIDHeader {
			continue // the host's, set before
		}
		if hopByHop[name] {
			if name == "Connection" && strings.EqualFold(strings.TrimSpace(v), "close") {
				hdr.Set("Connection", "close")
			}
			continue
		}
		if old := hdr[name]; old != nil {
			hdr[name] = append(old, v)
			continue
		}
		values = append(values, v)
		hdr[name] = values[len(values)-1 : len(values) : len(values)]
	}
	return code, nil
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
