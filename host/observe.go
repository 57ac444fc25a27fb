package host

import (
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// accessWriter is the ResponseWriter the handler writes through: it
// records the status and the body bytes for the access line and the
// metrics. It keeps http.Flusher and io.ReaderFrom (so that file
// responses still go out with sendfile), and Unwrap gives
// http.ResponseController the writer underneath.
type accessWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	pid    int // worker that served the request; 0: the host itself
}

func (a *accessWriter) WriteHeader(code int) {
	if a.status == 0 && code >= 200 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *accessWriter) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := a.ResponseWriter.Write(p)
	a.bytes += int64(n)
	return n, err
}

// ReadFrom copies r to the client, with the underlying writer's ReadFrom
// (sendfile on plain HTTP/1.1) when it has one.
func (a *accessWriter) ReadFrom(r io.Reader) (int64, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := a.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{a.ResponseWriter}, r)
	}
	a.bytes += n
	return n, err
}

// writerOnly hides every method but Write, so io.Copy does not loop back
// into ReadFrom.
type writerOnly struct{ io.Writer }

func (a *accessWriter) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		if a.status == 0 {
			a.status = http.StatusOK
		}
		f.Flush()
	}
}

func (a *accessWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// requestIDHeader is the request and response header carrying the request id.
const requestIDHeader = "X-Request-Id"

// requestID returns the id of a request: the X-Request-ID it came with if
// its peer is trusted (the listener's forwarded_allow_ips) and the value
// is reasonable, else a new one.
func requestID(r *http.Request, trusted bool) string {
	if v := r.Header[requestIDHeader]; trusted && len(v) == 1 && validRequestID(v[0]) {
		return v[0]
	}
	return newRequestID()
}

// validRequestID accepts 1 to 200 printable ASCII characters.
func validRequestID(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// newRequestID returns 16 random hex digits (math/rand/v2: per-thread
// state, no lock, no system call).
func newRequestID() string {
	var b [16]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// logAccess writes the access line of a request and counts it in the
// metrics. app is nil for requests no mount matched.
func (h *Host) logAccess(q *request) {
	d := time.Since(q.start)
	r, app := q.r, q.app
	status := q.w.status
	// A request whose connection ended while it ran was cut by the host
	// if the shutdown timeout had passed (the connections still open are
	// closed then), else the client went away.
	cut := h.cutting.Load() && r.Context().Err() != nil
	if status == 0 {
		// Nothing was written: the client went away, the host cut the
		// connection, or the handler aborted; net/http sends 200 for an
		// empty handler.
		switch {
		case cut:
			status = http.StatusServiceUnavailable
		case r.Context().Err() != nil:
			status = 499 // as nginx logs a client that closed the connection
		default:
			status = http.StatusOK
		}
	}
	m := h.metrics.unrouted
	if app != nil {
		m = app.m
	}
	m.observe(status, d)
	if !q.gen.access {
		return
	}
	if q.gen.combined {
		h.logCombined(q, status)
		return
	}
	ev := h.log.Info()
	if ev == nil {
		return
	}
	name := ""
	if app != nil {
		name = app.name
	}
	ev = ev.Str("app", name).Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).
		Int64("bytes", q.w.bytes).Dur("duration", d)
	if q.w.pid != 0 {
		ev = ev.Int("pid", q.w.pid)
	}
	if cut {
		ev = ev.Str("cut", "shutdown")
	}
	ev.Str("remote", q.client.remoteAddr).Str("request_id", q.id).Msg("access")
}

// logCombined writes q's access line in the Combined Log Format of Apache
// and nginx, which goaccess, fail2ban and the like read unchanged:
//
//	remote - - [02/Jan/2006:15:04:05 -0700] "GET /path HTTP/1.1" 200 1234 "referer" "user agent"
func (h *Host) logCombined(q *request, status int) {
	r := q.r
	remote := q.client.remoteAddr
	if remote == "" {
		remote = "-"
	}
	size := "-"
	if q.w.bytes > 0 {
		size = strconv.FormatInt(q.w.bytes, 10)
	}
	b := make([]byte, 0, 256)
	b = append(b, remote...)
	b = append(b, " - - ["...)
	b = q.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, r.Method+" "+r.RequestURI+" "+r.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, size...)
	b = append(b, " \""...)
	b = appendEscaped(b, orDash(r.Header.Get("Referer")))
	b = append(b, "\" \""...)
	b = appendEscaped(b, orDash(r.Header.Get("User-Agent")))
	b = append(b, "\"\n"...)
	h.accessMu.Lock()
	h.accessOut.Write(b)
	h.accessMu.Unlock()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendEscaped appends s with quotes, backslashes and bytes outside
// printable ASCII escaped as \xHH, as nginx escapes log values, so that a
// client cannot forge a line or a field.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c > 0x7e {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
