package host

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/gowsgi/gowsgi/worker"
)

// memThreshold is the largest request body kept in memory (or in a slot
// of the app's shared body area); larger ones go to a temporary file.
const memThreshold = 1 << 20

// unknownChunk is how much of a body of unknown length (chunked, or
// HTTP/2 without content-length) is read into memory before it goes to a
// temporary file.
const unknownChunk = 64 << 10

// bodyBudget bounds the memory that request bodies use across the host
// (limits.body_memory): a body that does not fit goes to a temporary file,
// so that clients trickling many bodies cannot fill the host's memory.
type bodyBudget struct{ used atomic.Int64 }

// take reserves n bytes if the total stays within max.
func (b *bodyBudget) take(n, max int64) bool {
	if b.used.Add(n) > max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *bodyBudget) give(n int64) { b.used.Add(-n) }

// requestBody is a request body read in full, and what to give back
// when the request is done.
type requestBody struct {
	worker.Body
	pooled bool // Mem came from worker.GetBuffer
	budget *bodyBudget
	taken  int64 // bytes of budget held
}

// pipelinable reports whether the request may wait behind a running one
// on a worker: its body goes to the worker in the same small write as its
// environ (under 64 KiB, or in shared memory).
func (b *requestBody) pipelinable() bool {
	return b.File == nil && (b.Slot != nil || len(b.Mem) < worker.MinSharedBody)
}

// Close gives back what the body holds; the zero requestBody holds nothing.
func (b *requestBody) Close() {
	if b.File != nil {
		b.File.Close()
	}
	if b.pooled {
		worker.PutBuffer(b.Mem)
	}
	b.Slot.Release()
	if b.taken > 0 {
		b.budget.give(b.taken)
	}
	*b = requestBody{}
}

// errBodyTimeout is a client that sent nothing of its body for
// limits.body_timeout.
var errBodyTimeout = errors.New("the client sent nothing of the body for too long")

// errReadBody is a body that could not be read (the client broke the
// framing or went away).
var errReadBody = errors.New("reading the request body")

// readBody reads q's whole body into q.body, at most lim.MaxBody bytes,
// waiting at most lim.BodyTimeout between two reads. A body of known
// length up to memThreshold goes straight into a slot of the app's shared
// body area or a pooled buffer, if the host's body memory allows;
// anything else to an unlinked temporary file.
func (h *Host) readBody(q *request) error {
	b := &q.body
	b.budget = &h.bodyMem
	n, lim := q.r.ContentLength, q.gen.limits
	if n == 0 {
		return nil
	}
	rd := &timedReader{r: http.MaxBytesReader(q.w.ResponseWriter, q.r.Body, lim.MaxBody),
		dl: deadline{w: q.w.ResponseWriter, d: lim.BodyTimeout}, send: &q.send}
	var err error
	switch {
	case n > 0 && n <= memThreshold && h.bodyMem.take(n, lim.BodyMemory):
		b.taken = n
		err = b.readKnown(rd, int(n), q.app.pool.spec.Bodies)
	case n < 0 && h.bodyMem.take(unknownChunk, lim.BodyMemory):
		b.taken = unknownChunk
		err = b.readUnknown(rd)
	default:
		err = b.spool(nil, rd)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errBodyTimeout
	case errors.As(err, &tooLarge):
		return err
	}
	return fmt.Errorf("%w: %w", errReadBody, err)
}

// readKnown reads a body of n bytes into a slot of bodies if one is free
// and the body is large enough to be worth it, else into a pooled buffer.
func (b *requestBody) readKnown(rd io.Reader, n int, bodies *worker.BodyArena) error {
	b.Len = int64(n)
	if n >= worker.MinSharedBody && n <= worker.BodySlotSize {
		if slot := bodies.Reserve(n); slot != nil {
			b.Slot = slot
			_, err := io.ReadFull(rd, slot.Bytes())
			return err
		}
	}
	b.Mem, b.pooled = worker.GetBuffer(n), true
	_, err := io.ReadFull(rd, b.Mem)
	return err
}

// readUnknown reads a body of unknown length: into memory if it is at
// most unknownChunk, else into a temporary file.
func (b *requestBody) readUnknown(rd io.Reader) error {
	buf := worker.GetBuffer(unknownChunk + 1)
	got, err := io.ReadFull(rd, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		b.Mem, b.pooled, b.Len = buf[:got], true, int64(got)
		return nil
	case err != nil:
		worker.PutBuffer(buf)
		return err
	}
	err = b.spool(buf, rd)
	worker.PutBuffer(buf)
	b.budget.give(b.taken)
	b.taken = 0
	return err
}

// spool writes head and then the rest of rd to an unlinked temporary file.
func (b *requestBody) spool(head []byte, rd io.Reader) error {
	f, err := os.CreateTemp("", "gowsgi-body-*")
	if err != nil {
		return fmt.Errorf("spool request body: %w", err)
	}
	os.Remove(f.Name()) // gone from the folder at once; freed when closed
	b.File = f
	if _, err := f.Write(head); err != nil {
		return fmt.Errorf("spool request body: %w", err)
	}
	n, err := io.Copy(f, rd)
	b.Len = int64(len(head)) + n
	return err
}

// timedReader reads a request body, re-arming the read deadline as the
// client makes progress, and keeping the response's write deadline (send)
// from running out during a long upload: on HTTP/2 an expired write
// deadline resets the stream even with no write pending.
type timedReader struct {
	r    io.Reader
	dl   deadline
	send *deadline
}

func (t *timedReader) Read(p []byte) (int, error) {
	now := time.Now()
	t.dl.read(now)
	t.send.keep(now)
	return t.r.Read(p)
}

// deadline keeps a read or write deadline on a request's connection (on
// HTTP/2, its stream) while the host reads or writes: at least d after
// the last progress, and at most 5d/4. It re-arms only when less than d
// is left, since on HTTP/2 each arming is a message to the connection's
// goroutine.
//
// A response's write deadline (limits.send_timeout) starts armed: the
// listener's http.Server has WriteTimeout 5d/4, which net/http arms when
// it reads a request's head (HTTP/1.x) or opens its stream (HTTP/2)
// without a message to anyone. So a response that is written within d of
// its request's arrival arms nothing itself. While the host waits for the
// app, the write deadline is cleared (idle) before it can run out: the
// client's time is bounded, not the app's.
type deadline struct {
	w       http.ResponseWriter // through http.ResponseController, made where used so that it does not escape
	d       time.Duration       // 0: no deadline
	set     bool                // a deadline is armed
	expires time.Time           // when it runs out, if set
}

// due reports whether the deadline must be re-armed at now, and notes that
// it is.
func (x *deadline) due(now time.Time) bool {
	if x.d <= 0 || (x.set && x.expires.Sub(now) >= x.d) {
		return false
	}
	x.set, x.expires = true, now.Add(x.d+x.d/4)
	return true
}

// read notes progress of the request body at now.
func (x *deadline) read(now time.Time) {
	if x.due(now) {
		http.NewResponseController(x.w).SetReadDeadline(x.expires)
	}
}

// keep notes that a write of the response begins at now (or that the
// request is still being read). With no send_timeout (a reload removed it
// while the connection stays on a server that had one) it clears what the
// server armed.
func (x *deadline) keep(now time.Time) {
	if x.d <= 0 {
		x.idle()
		return
	}
	if x.due(now) {
		http.NewResponseController(x.w).SetWriteDeadline(x.expires)
	}
}

// keepFor notes that the host is about to wait up to wait (for a
// worker): if the deadline could run out meanwhile, it is cleared.
func (x *deadline) keepFor(now time.Time, wait time.Duration) {
	if x.set && x.patience(now) < wait {
		x.idle()
	}
}

// patience is how long, from now, the host may wait for the app before
// the write deadline must be cleared (idle); 0: at once. It keeps d/4 to
// spare.
func (x *deadline) patience(now time.Time) time.Duration {
	return max(x.expires.Sub(now)-x.d/4, 0)
}

// idle clears the write deadline while the host waits for the app.
func (x *deadline) idle() {
	if x.set {
		x.set = false
		http.NewResponseController(x.w).SetWriteDeadline(time.Time{})
	}
}
