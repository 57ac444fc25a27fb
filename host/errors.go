package host

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// httpError is a request the host answers itself, with code and a short
// text; close ends the connection after it (HTTP/1).
type httpError struct {
	code  int
	msg   string
	close bool
}

func (e *httpError) Error() string {
	return strconv.Itoa(e.code) + " " + http.StatusText(e.code) + ": " + e.msg
}

// Requests the host answers itself.
var (
	errConnect        = &httpError{code: http.StatusMethodNotAllowed, msg: "CONNECT is not served", close: true}
	errLengthRequired = &httpError{code: http.StatusLengthRequired, close: true}
	errNoMount        = &httpError{code: http.StatusNotFound, msg: "no app is mounted here"}
	errAppFailed      = &httpError{code: http.StatusServiceUnavailable, msg: "the app failed to load; see the server log"}
	errBodyTooLarge   = &httpError{code: http.StatusRequestEntityTooLarge, close: true}
	// errSend is a request that could not be written to its worker.
	errSend = errors.New("sending the request to the worker")
)

// answer turns the error that ended a request into its response and log
// line: the one place where that is decided.
func (h *Host) answer(q *request, err error) {
	he := h.httpErrorOf(q, err)
	if he == nil {
		return
	}
	w := q.w.Header()
	if he.close && q.r.ProtoMajor == 1 {
		w.Set("Connection", "close") // on HTTP/2 this would end the whole connection
	}
	if he.code == http.StatusServiceUnavailable && he != errAppFailed {
		w.Set("Retry-After", "1")
	}
	text := strconv.Itoa(he.code) + " " + http.StatusText(he.code)
	if he.msg != "" {
		text += ": " + he.msg
	}
	q.send.keep(time.Now()) // the wait (for a worker, say) may have used up the deadline
	http.Error(&q.w, text, he.code)
}

// httpErrorOf returns the response for err (nil: none, the client left),
// logging what deserves it:
// refusals and client faults sampled (a flood of them must not fill a
// disk), the host's own failures in full.
func (h *Host) httpErrorOf(q *request, err error) *httpError {
	var he *httpError
	var tooLarge *http.MaxBytesError
	app := ""
	if q.app != nil {
		app = q.app.name
	}
	switch {
	case errors.As(err, &he):
		if he.code == http.StatusRequestEntityTooLarge {
			h.log.Debug().Str("app", app).Int64("content_length", q.r.ContentLength).Msg("request body too large")
		}
		return he
	case errors.As(err, &tooLarge):
		h.log.Debug().Str("app", app).Msg("request body too large")
		return errBodyTooLarge
	case errors.Is(err, errBodyTimeout):
		h.sampled(&h.clientWarnings, h.log.Info()).Str("app", app).Str("request", q.r.Method+" "+q.r.URL.Path).
			Msg("request body timed out (limits.body_timeout)")
		return &httpError{code: http.StatusRequestTimeout, msg: "the body did not arrive in time", close: true}
	case errors.Is(err, errReadBody):
		h.log.Debug().Err(err).Str("app", app).Msg("reading request body")
		return &httpError{code: http.StatusBadRequest, msg: "could not read the body", close: true}
	case errors.Is(err, errSend):
		h.log.Error().Err(err).Str("app", app).Msg("sending the request to the worker")
		return &httpError{code: http.StatusBadGateway}
	}
	// The pool's refusals: no worker for the request.
	if q.r.Context().Err() != nil {
		return nil // the client went away while it waited: nobody to answer
	}
	h.sampled(&h.refusals, h.log.Warn()).Err(err).Str("app", app).Str("method", q.r.Method).Str("path", q.r.URL.Path).
		Msg("no worker for the request")
	return &httpError{code: http.StatusServiceUnavailable, msg: err.Error()}
}
