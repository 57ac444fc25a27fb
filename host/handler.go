package host

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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

// ServeHTTP routes a request to its app's worker pool and relays the response.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, err := requestPath(r)
	if err != nil {
		http.Error(w, "400 Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	var app *appRuntime
	var scriptName, pathInfo string
	for {
		m, ok := h.gen.Load().routes.Lookup(r.Host, path)
		if !ok {
			http.Error(w, "404 Not Found: no app is mounted here", http.StatusNotFound)
			return
		}
		app, scriptName, pathInfo = m.Target, m.ScriptName, m.PathInfo
		if app.pool == nil || app.pool.enter() {
			break
		}
		// The pool is draining for a reload: the new generation is published.
	}
	if app.pool == nil {
		http.Error(w, "503 Service Unavailable: "+app.failReason, http.StatusServiceUnavailable)
		return
	}
	defer app.pool.leave()
	h.serveApp(w, r, app, scriptName, pathInfo)
}

func (h *Host) serveApp(w http.ResponseWriter, r *http.Request, app *appRuntime, scriptName, pathInfo string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		h.log.Debug().Err(err).Str("app", app.name).Msg("reading request body")
		http.Error(w, "400 Bad Request: could not read the body", http.StatusBadRequest)
		return
	}
	env := envPool.Get().(*worker.Environ)
	defer envPool.Put(env)
	env.Reset()
	buildEnviron(env, r, scriptName, pathInfo, len(body))

	pr, err := app.pool.acquire(r.Context().Done())
	if err != nil {
		if r.Context().Err() == nil {
			http.Error(w, "503 Service Unavailable: "+err.Error(), http.StatusServiceUnavailable)
		}
		return
	}
	start := time.Now()
	call, err := pr.p.Send(env.Bytes(), body, func() { app.pool.release(pr) })
	if err != nil {
		app.pool.release(pr)
		http.Error(w, "502 Bad Gateway: the worker is gone", http.StatusBadGateway)
		return
	}
	defer call.Abandon()
	relay(h, w, r, app, call, pr.p.Pid, start)
}

// relay copies the worker's response frames to the client.
func relay(h *Host, w http.ResponseWriter, r *http.Request, app *appRuntime, call *worker.Call, pid int, start time.Time) {
	started := false
	head := r.Method == http.MethodHead
	flusher, _ := w.(http.Flusher)
	for {
		f, err := call.Next(r.Context().Done())
		if err != nil {
			if r.Context().Err() != nil {
				return // the client went away
			}
			h.log.Error().Str("app", app.name).Int("pid", pid).Str("request", r.Method+" "+r.RequestURI).
				Msg("worker died while serving the request")
			if !started {
				http.Error(w, "502 Bad Gateway: the worker died", http.StatusBadGateway)
				return
			}
			panic(http.ErrAbortHandler)
		}
		switch f.Type {
		case worker.FrameStart:
			code, err := writeHeader(w, f.Payload)
			if err != nil {
				h.log.Error().Err(err).Str("app", app.name).Msg("bad response header from worker")
				http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
				return
			}
			w.WriteHeader(code)
			started = true
		case worker.FrameBody:
			if head {
				continue
			}
			if _, err := w.Write(f.Payload); err != nil {
				if errors.Is(err, http.ErrContentLength) {
					h.log.Warn().Str("app", app.name).Str("request", r.Method+" "+r.RequestURI).
						Msg("app sent more body than its Content-Length; cut to it")
					continue
				}
				return
			}
			if flusher != nil && !call.Pending() {
				flusher.Flush()
			}
		case worker.FrameEnd:
			h.log.Debug().Str("app", app.name).Int("pid", pid).Dur("took", time.Since(start)).Msg("request done")
			return
		case worker.FrameAbort:
			h.log.Error().Str("app", app.name).Int("pid", pid).Str("request", r.Method+" "+r.RequestURI).
				Str("traceback", string(f.Payload)).Msg("app raised an exception")
			if !started {
				http.Error(w, "500 Internal Server Error: the app raised an exception; see the server log", http.StatusInternalServerError)
				return
			}
			panic(http.ErrAbortHandler)
		}
	}
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
	line, rest, _ := bytes.Cut(p, []byte("\r\n"))
	if len(line) < 3 {
		return 0, fmt.Errorf("malformed status %q", line)
	}
	code, err := strconv.Atoi(string(line[:3]))
	if err != nil || code < 100 || code > 999 {
		return 0, fmt.Errorf("malformed status %q", line)
	}
	hdr := w.Header()
	for len(rest) > 0 {
		var kv []byte
		kv, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(kv) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(kv, []byte(": "))
		if !ok {
			return 0, fmt.Errorf("malformed header %q", kv)
		}
		name := http.CanonicalHeaderKey(string(k))
		if hopByHop[name] {
			if name == "Connection" && strings.EqualFold(strings.TrimSpace(string(v)), "close") {
				hdr.Set("Connection", "close")
			}
			continue
		}
		hdr[name] = append(hdr[name], string(v))
	}
	return code, nil
}

// requestPath returns the percent-decoded path of the request target, with
// "//" and dot segments kept as sent.
func requestPath(r *http.Request) (string, error) {
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		// Absolute form, "*", or HTTP/2 where RequestURI is rebuilt.
		if r.URL.Path == "" && uri == "*" {
			return "*", nil
		}
		return r.URL.Path, nil
	}
	raw, _, _ := strings.Cut(uri, "?")
	if !strings.Contains(raw, "%") {
		return raw, nil
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("bad percent-encoding in path")
	}
	return p, nil
}

// buildEnviron fills env with the CGI and WSGI variables of a request.
func buildEnviron(env *worker.Environ, r *http.Request, scriptName, pathInfo string, bodyLen int) {
	env.Str("REQUEST_METHOD", r.Method)
	env.Str("SCRIPT_NAME", scriptName)
	env.Str("PATH_INFO", pathInfo)
	env.Str("QUERY_STRING", r.URL.RawQuery)
	env.Str("RAW_URI", r.RequestURI)
	env.Str("REQUEST_URI", r.RequestURI)
	env.Str("SERVER_PROTOCOL", r.Proto)
	env.Str("SERVER_SOFTWARE", "gowsgi/"+Version)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	env.Str("wsgi.url_scheme", scheme)
	env.Bool("wsgi.input_terminated", true)

	remoteHost, remotePort, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remoteHost, remotePort = "", ""
	}
	env.Str("REMOTE_ADDR", remoteHost)
	env.Str("REMOTE_PORT", remotePort)

	serverName, serverPort := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		serverName, serverPort = h, p
	}
	if serverName == "" {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if h, p, err := net.SplitHostPort(la.String()); err == nil {
				serverName, serverPort = h, p
			} else {
				serverName = "localhost"
			}
		}
	}
	if serverPort == "" {
		serverPort = "80"
		if scheme == "https" {
			serverPort = "443"
		}
	}
	env.Str("SERVER_NAME", serverName)
	env.Str("SERVER_PORT", serverPort)

	if ct, ok := r.Header["Content-Type"]; ok && len(ct) > 0 {
		env.Str("CONTENT_TYPE", ct[0])
	}
	if r.ContentLength >= 0 && len(r.TransferEncoding) == 0 {
		env.Str("CONTENT_LENGTH", strconv.Itoa(bodyLen))
	}
	if r.Host != "" {
		env.Str("HTTP_HOST", r.Host)
	}
	var keyBuf []byte
	for name, values := range r.Header {
		if name == "Content-Type" || name == "Content-Length" || strings.IndexByte(name, '_') >= 0 {
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
