// Package logbatch writes log lines in batches: each write of a line is
// a system call, and on the host's request path a system call made after
// the process sat idle wakes Go's system monitor (see internal/rawio),
// which the access line of every request did. Batched, lines reach their
// file at most Delay after they are logged, many to one write; warnings
// and errors (zerolog's WriteLevel) go out at once, with the lines before
// them.
package logbatch

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Delay is how long a logged line may wait before it is written.
const Delay = 10 * time.Millisecond

// maxBatch is the most a batch holds before it is written at once.
const maxBatch = 64 << 10

// Writer batches the lines written to it for out. Its flusher goroutine
// runs until Close.
type Writer struct {
	out   io.Writer
	delay time.Duration
	kick  chan struct{} // a line waits: the flusher schedules a write
	quit  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	buf    []byte
	armed  bool // the flusher was kicked for what buf holds
	closed bool // Close was called: writes go straight out
}

// New returns a Writer for out that writes a batch delay after its first
// line.
func New(out io.Writer, delay time.Duration) *Writer {
	w := &Writer{out: out, delay: delay, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	w.wg.Go(w.run)
	return w
}

// Write adds p, whole lines, to the batch.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > maxBatch {
		w.flushLocked()
	}
	w.buf = append(w.buf, p...)
	if !w.armed {
		w.armed = true
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// WriteLevel is zerolog's LevelWriter: lines below warnings are batched;
// others are written at once, after the batch.
func (w *Writer) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level < zerolog.WarnLevel {
		return w.Write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	w.flushLocked()
	return len(p), nil
}

// flushLocked writes the batch. w.mu is held.
func (w *Writer) flushLocked() {
	if len(w.buf) > 0 {
		w.out.Write(w.buf) // a log that cannot be written has nowhere to say so
		w.buf = w.buf[:0]
	}
	if cap(w.buf) > maxBatch {
		w.buf = nil
	}
	w.armed = false
}

// run writes each batch delay after its first line, until Close.
func (w *Writer) run() {
	t := time.NewTimer(w.delay)
	t.Stop()
	for {
		select {
		case <-w.kick:
		case <-w.quit:
			return
		}
		t.Reset(w.delay)
		select {
		case <-t.C:
		case <-w.quit:
			t.Stop()
			return
		}
		w.mu.Lock()
		w.flushLocked()
		w.mu.Unlock()
	}
}

// Close stops the flusher, writes what is batched, and makes later writes
// go straight out.
func (w *Writer) Close() error {
	close(w.quit)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.flushLocked()
	return nil
}
