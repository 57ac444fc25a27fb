package host

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gowsgi/gowsgi/worker"
)

// relay is the copying of one response from a worker's frames to the
// client. The worker's frames are queued (and spooled) by its Call as they
// arrive, so the worker is never held by a slow client; relay only writes.
type relay struct {
	h    *Host
	q    *request
	call *worker.Call
	pr   *proc

	started   bool        // the head was written
	streamed  bool        // no Content-Length: flush the first chunk at once
	remaining int64       // body bytes the declared Content-Length still allows; -1: none declared
	overlong  bool        // the app sent more than its Content-Length (logged once)
	comp      *compressor // nil unless the host compresses the response
}

// run copies the response. It reports whether the request never started
// and should be sent to another worker.
func (rl *relay) run() (retry bool) {
	done := rl.q.r.Context().Done()
	for {
		f, err := rl.next(done)
		if err != nil {
			return rl.failed(err)
		}
		switch f.Type {
		case worker.FrameStart:
			if !rl.start(f.Payload) {
				return false
			}
		case worker.FrameBody:
			rl.body(f.Payload)
		case worker.FrameFile:
			rl.file(f)
		case worker.FrameEnd:
			rl.end()
			rl.h.log.Debug().Str("app", rl.q.app.name).Int("pid", rl.pr.p.Pid).Dur("took", time.Since(rl.q.start)).Msg("request done")
			return false
		case worker.FrameAbort:
			rl.aborted(f.Payload)
			return false
		}
	}
}

// failed handles a call that ended without FrameEnd.
func (rl *relay) failed(err error) (retry bool) {
	switch {
	case errors.Is(err, worker.ErrNotStarted):
		return true
	case errors.Is(err, worker.ErrCanceled):
		// The client went away. The worker is told to stop; should the app
		// not stop, its worker's timeout still applies.
		return false
	case rl.pr.timedOut.Load():
		// The pool killed the worker and logged every request it ran.
		rl.cut(http.StatusGatewayTimeout, "504 Gateway Timeout: the app did not answer in time")
	default:
		rl.h.log.Error().Str("app", rl.q.app.name).Int("pid", rl.pr.p.Pid).Str("request", rl.q.r.Method+" "+rl.q.r.RequestURI).
			Err(err).Msg("worker died while serving the request")
		rl.cut(http.StatusBadGateway, "502 Bad Gateway: the worker died")
	}
	return false
}

// cut answers with code and msg if nothing was sent yet, else cuts the
// connection: never a silently short response.
func (rl *relay) cut(code int, msg string) {
	if !rl.started {
		rl.q.send.keep(time.Now())
		http.Error(&rl.q.w, msg, code)
		return
	}
	rl.abort()
}

// abort cuts the connection (on HTTP/2, resets the stream) after the
// head was sent.
func (rl *relay) abort() {
	rl.call.Abandon() // its spool goes now: the panic skips the caller's Abandon
	panic(http.ErrAbortHandler)
}

// start writes the status and headers of a FrameStart payload.
func (rl *relay) start(p []byte) bool {
	code, err := writeHeader(&rl.q.w, p)
	if err != nil {
		rl.h.log.Error().Err(err).Str("app", rl.q.app.name).Msg("bad response header from worker")
		http.Error(&rl.q.w, "500 Internal Server Error", http.StatusInternalServerError)
		return false
	}
	rl.remaining = -1
	if cl := rl.q.w.Header()["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil {
			rl.remaining = n
		}
	}
	rl.compress(code)
	rl.q.send.keep(time.Now())
	rl.q.w.WriteHeader(code)
	rl.started = true
	rl.streamed = rl.remaining < 0
	return true
}

// body writes a chunk of body, cut to what the declared Content-Length
// still allows, and flushes it if it streams or nothing more is queued.
// If the client cannot be written to, it cuts the connection.
func (rl *relay) body(p []byte) {
	defer worker.PutBuffer(p)
	if rl.q.r.Method == http.MethodHead {
		return
	}
	if rl.remaining >= 0 {
		if int64(len(p)) > rl.remaining {
			rl.tooLong()
			p = p[:rl.remaining]
		}
		rl.remaining -= int64(len(p))
		if len(p) == 0 {
			return
		}
	}
	if err := rl.write(p); err != nil {
		if errors.Is(err, http.ErrBodyNotAllowed) {
			return // a body for 204 or 304: net/http drops it, the connection is fine
		}
		rl.h.log.Debug().Err(err).Str("app", rl.q.app.name).Msg("writing the response to the client")
		rl.abort() // never a connection that goes on after a cut response
	}
	if rl.streamed || !rl.call.Pending() {
		if rl.comp != nil {
			rl.comp.enc.Flush() // every piece the app yields reaches the client as it comes
		}
		rl.q.w.Flush()
		rl.streamed = false
	}
}

// writePiece is the most written to the client under one arming of the
// send deadline: a client reading steadily, however large the response,
// is never cut by send_timeout.
const writePiece = 256 << 10

// gatherMin is the smallest piece whose writes to an HTTP/1.x connection
// are gathered into one (gather.go); net/http buffers smaller ones itself.
const gatherMin = 4 << 10

// write writes p to the client (or the compressor) in pieces, re-arming
// the send deadline before each.
func (rl *relay) write(p []byte) error {
	out := rl.out()
	for len(p) > 0 {
		n := min(len(p), writePiece)
		rl.q.send.keep(time.Now())
		if err := rl.writeGathered(out, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// writeGathered writes p to out. On HTTP/1.x, what a piece of up to
// maxGather bytes makes the connection write goes out in one system call
// (also if the writing panics).
func (rl *relay) writeGathered(out io.Writer, p []byte) (err error) {
	gc := rl.gatherer(len(p))
	if gc == nil {
		_, err = out.Write(p)
		return err
	}
	gc.gather()
	defer func() {
		if ferr := gc.flushGathered(); err == nil {
			err = ferr
		}
	}()
	_, err = out.Write(p)
	return err
}

// gatherer returns the connection whose writes of a piece of n bytes are
// to be gathered, or nil: only on HTTP/1.x, where the handler's writes
// are the connection's (HTTP/2's belong to the connection's goroutine).
func (rl *relay) gatherer(n int) *limitedConn {
	if n < gatherMin || n > maxGather || rl.q.r.ProtoMajor != 1 {
		return nil
	}
	return rl.q.conn.conn
}

// next returns the app's next frame. The app's pauses are not the
// client's: the write deadline is cleared (idle) if the app takes so long
// that it could run out. Clearing it is a message to the connection's
// goroutine on HTTP/2, so it is not done for an app that answers in time.
func (rl *relay) next(done <-chan struct{}) (worker.Frame, error) {
	send := &rl.q.send
	if !send.set || rl.call.Pending() {
		return rl.call.Next(done)
	}
	wait := send.patience(time.Now())
	if wait == 0 {
		send.idle()
		return rl.call.Next(done)
	}
	t := rl.q.timer(wait)
	f, err := rl.call.NextWithin(done, t.C)
	t.Stop()
	if errors.Is(err, worker.ErrWaitExpired) {
		send.idle()
		return rl.call.Next(done)
	}
	return f, err
}

// out is where body bytes go: the client, or the compressor in front of it.
func (rl *relay) out() io.Writer {
	if rl.comp != nil {
		return rl.comp
	}
	return &rl.q.w
}

// compress decides, from the app's headers and the request's
// Accept-Encoding, whether the host compresses the response, and sets the
// headers for it. The app's Content-Length still bounds the app's bytes.
func (rl *relay) compress(code int) {
	cfg := rl.q.gen.compress
	if on := rl.q.app.def.Compress; on != nil {
		cfg.Enabled = *on
	}
	h := rl.q.w.Header()
	if !compressWanted(cfg, code, h) {
		return
	}
	addVary(h) // the response depends on Accept-Encoding, compressed or not
	enc := negotiate(rl.q.r.Header["Accept-Encoding"])
	if enc == nil {
		return
	}
	startCompression(h, enc)
	if rl.q.r.Method != http.MethodHead {
		rl.comp = &compressor{enc: enc.get(&rl.q.w), from: enc}
	}
}

// end finishes the response: the compressed stream's last bytes.
func (rl *relay) end() {
	if rl.comp != nil {
		if err := rl.comp.close(); err != nil {
			rl.h.log.Debug().Err(err).Str("app", rl.q.app.name).Msg("ending the compressed response")
		}
		rl.comp = nil
	}
}

// tooLong logs, once per response, a body that goes past its
// Content-Length: the excess is dropped and the framing kept.
func (rl *relay) tooLong() {
	if rl.overlong {
		return
	}
	rl.overlong = true
	rl.h.sampled(&rl.h.appWarnings, rl.h.log.Warn()).Str("app", rl.q.app.name).Str("request", rl.q.r.Method+" "+rl.q.r.RequestURI).
		Msg("app sent more body than its Content-Length; sent exactly Content-Length bytes")
}

// file sends a FrameFile's range (with sendfile over plain HTTP/1.1),
// bounded by a declared Content-Length.
func (rl *relay) file(f worker.Frame) {
	defer f.File.Close()
	if rl.q.r.Method == http.MethodHead {
		return
	}
	off, n := f.FileRange()
	if rl.remaining >= 0 && rl.remaining < n {
		n = rl.remaining
	}
	_, err := f.File.Seek(off, io.SeekStart)
	if err == nil {
		var sent int64
		sent, err = rl.copyFile(f.File, n)
		if err == nil && sent < n {
			err = fmt.Errorf("file ended after %d of %d bytes", sent, n)
		}
		if rl.remaining >= 0 {
			rl.remaining -= sent
		}
	}
	if err != nil {
		rl.h.log.Debug().Err(err).Str("app", rl.q.app.name).Msg("sending a file response")
		rl.call.Abandon()
		panic(http.ErrAbortHandler) // never a silently short body
	}
	rl.h.log.Debug().Str("app", rl.q.app.name).Msg("response body sent from the file")
}

// copyFile sends n bytes of file from its offset (with sendfile over
// plain HTTP/1.1 when not compressed).
func (rl *relay) copyFile(file io.Reader, n int64) (int64, error) {
	return copyKeeping(rl.out(), file, n, &rl.q.send)
}

// copyKeeping copies n bytes of src (n < 0: all of it) to dst in pieces
// of 4 × writePiece, re-arming send before each, so that a client
// reading steadily is never cut by send_timeout. Each piece goes through
// io.Copy, so dst's ReadFrom (sendfile) still sees the file under its
// one limit.
func copyKeeping(dst io.Writer, src io.Reader, n int64, send *deadline) (sent int64, err error) {
	for n < 0 || sent < n {
		piece := int64(4 * writePiece)
		if n >= 0 {
			piece = min(piece, n-sent)
		}
		send.keep(time.Now())
		m, err := io.Copy(dst, io.LimitReader(src, piece))
		sent += m
		if err != nil || m < piece {
			return sent, err
		}
	}
	return sent, nil
}

// aborted handles FrameAbort: the app raised an exception.
func (rl *relay) aborted(traceback []byte) {
	rl.h.log.Error().Str("app", rl.q.app.name).Int("pid", rl.pr.p.Pid).Str("request", rl.q.r.Method+" "+rl.q.r.RequestURI).
		Str("traceback", string(traceback)).Msg("app raised an exception")
	rl.cut(http.StatusInternalServerError, "500 Internal Server Error: the app raised an exception; see the server log")
}

// hopByHop lists response headers that belong to the connection, not the
// app; the host sets them itself.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailers": true, "Transfer-Encoding": true, "Upgrade": true,
}

// writeHeader sets the status and headers from a FrameStart payload:
// "200 OK\r\nName: value\r\n...". A response without Content-Type gets
// none (net/http would otherwise guess one from the body).
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
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // present but empty: net/http sniffs no type
	}
	return code, nil
}
