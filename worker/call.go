package worker

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one request for a worker: its environ (Environ.Bytes), its
// whole body, and what the host wants of its response.
type Request struct {
	Env  []byte
	Body Body
	// Method and Path name the request in logs.
	Method, Path string
	// MaxSpool bounds how many response bytes the host keeps in a
	// temporary file for a client that reads slower than the app writes;
	// past it the worker waits for the client. 0: memory only (SpoolMemory).
	MaxSpool int64
	// SpoolBudget, if not nil, bounds the spool files of all requests.
	SpoolBudget *SpoolBudget
	// OnDone runs exactly once, from another goroutine, when the worker
	// has finished the request (completed: its last frame came), or died,
	// or gave it back (not completed).
	OnDone func(completed bool)
}

// Body is a request body read in full, in one of three places: a slot of
// the app's shared body area (Send holds it for the request; the caller
// still releases its own hold), memory, or a file from offset 0. The zero
// Body is empty.
type Body struct {
	Slot *BodySlot
	Mem  []byte
	File *os.File
	// Len is the body's length (for a file; Mem and Slot know their own).
	Len int64
}

// size returns the body's length.
func (b Body) size() int64 {
	switch {
	case b.Slot != nil:
		return int64(b.Slot.n)
	case b.File != nil:
		return b.Len
	}
	return int64(len(b.Mem))
}

// SpoolMemory is how many response bytes of one request the host keeps in
// memory for a client that has not taken them yet; more go to a temporary
// file (up to Request.MaxSpool).
const SpoolMemory = 128 << 10

// spoolRead is the most a spilled chunk is read back from the file at once.
const spoolRead = 64 << 10

// Call is one request in flight on a worker.
//
// The worker's response frames are queued here as they arrive, and the
// worker is credited for them at once: the app never waits for a slow
// client while the response fits in memory (SpoolMemory) or in the
// request's temporary spool file (MaxSpool). Past that, credit is held
// back until the client takes the bytes, so the worker waits (flow
// control). Next hands the frames to the host's writer in order.
type Call struct {
	ID     uint32
	p      *Process
	method string
	path   string

	startedAt   time.Time // when the worker could start it; guarded by p.mu
	withdrawing bool      // Withdraw asked the worker for it back; guarded by p.mu
	slot        *BodySlot // the shared body slot it holds, or nil

	mu        sync.Mutex
	q         []entry
	qbuf      [3]entry // q's first backing array: Start, Body and End fit without allocating
	finished  bool     // the last frame was queued, or the worker died
	err       error    // ErrDied or ErrNotStarted
	abandoned bool
	wake      chan struct{}
	onDone    func(completed bool)

	spool    spool
	memBytes int       // body bytes queued in memory
	owed     int       // body bytes received and accepted, not yet credited
	deferred int       // body bytes received but not accepted: credited when taken
	progress time.Time // when the worker last sent a frame of this response
	started  bool      // FrameStart (or FrameFile's start) arrived
	received int64     // body bytes the worker sent
}

// entry is one queued frame. A body chunk that was spilled to the spool
// file has no payload: its n bytes are at off in the file.
type entry struct {
	f   Frame
	off int64
	n   int64
}

func (e *entry) spilled() bool { return e.f.Type == FrameBody && e.f.Payload == nil && e.n > 0 }

// spool is a call's temporary file for response bytes the client has not
// taken yet; nothing of it exists until the first spill.
type spool struct {
	file   *os.File
	max    int64
	budget *SpoolBudget // the host's, shared by every spool; nil: none
	size   int64        // the file's size, taken from budget
	wr, rd int64        // write and read offsets
	broken bool         // creating or writing the file failed: spill no more
}

// SpoolBudget bounds the disk that the spool files of all responses use
// together (limits.max_spool_total): past it responses spill no more and
// their workers wait for their clients.
type SpoolBudget struct {
	used atomic.Int64
	max  atomic.Int64
}

// SetMax sets the bound (0: nothing is spooled).
func (b *SpoolBudget) SetMax(n int64) { b.max.Store(n) }

// Used returns the bytes the spool files use now.
func (b *SpoolBudget) Used() int64 { return b.used.Load() }

func (b *SpoolBudget) take(n int64) bool {
	if b == nil {
		return true
	}
	if b.used.Add(n) > b.max.Load() {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *SpoolBudget) give(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}

// len returns the bytes in the file not read yet.
func (s *spool) len() int64 { return s.wr - s.rd }

// write appends b to the file, creating it (unlinked) at first use.
// The file's growth is taken from the host's budget first.
func (s *spool) write(b []byte) (off int64, ok bool) {
	end := s.wr + int64(len(b))
	grow := max(end-s.size, 0)
	if s.broken || s.len()+int64(len(b)) > s.max || !s.budget.take(grow) {
		return 0, false
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "gowsgi-response-*")
		if err != nil {
			s.broken = true
			s.budget.give(grow)
			return 0, false
		}
		os.Remove(f.Name()) // gone from the folder at once; freed when closed
		s.file = f
	}
	if _, err := s.file.WriteAt(b, s.wr); err != nil {
		s.broken = true
		s.budget.give(grow)
		return 0, false
	}
	s.size += grow
	off = s.wr
	s.wr = end
	return off, true
}

// read reads n bytes at off into a pooled buffer.
func (s *spool) read(off int64, n int) ([]byte, error) {
	b := getBuffer(n)
	if _, err := s.file.ReadAt(b, off); err != nil {
		PutBuffer(b)
		return nil, err
	}
	s.rd = off + int64(n)
	if s.rd == s.wr {
		// Empty: free its disk and reuse the file from its start.
		s.rd, s.wr = 0, 0
		if s.file.Truncate(0) == nil {
			s.budget.give(s.size)
			s.size = 0
		}
	}
	return b, nil
}

func (s *spool) close() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.budget.give(s.size)
	s.rd, s.wr, s.size = 0, 0, 0
}

// push queues a frame from the worker (the process's read loop calls it).
func (c *Call) push(f Frame) {
	last := f.Type == FrameEnd || f.Type == FrameAbort
	c.mu.Lock()
	c.progress = time.Now()
	if f.Type == FrameStart || f.Type == FrameFile {
		c.started = true
	}
	credit := 0
	if c.abandoned {
		credit = c.drop(f, last)
	} else {
		credit = c.accept(f)
		c.finished = last
	}
	c.mu.Unlock()
	if credit > 0 {
		c.p.creditLater(c.ID, credit)
	}
	c.signal()
	if last {
		c.onDone(true)
	}
}

// drop discards a frame of an abandoned call and returns the credit to
// send for it now. c.mu is held.
func (c *Call) drop(f Frame, last bool) int {
	if f.Type == FrameBody {
		c.owed += len(f.Payload)
		PutBuffer(f.Payload)
	}
	if f.File != nil {
		f.File.Close()
	}
	c.finished = c.finished || last
	return c.takeCredit(last)
}

// accept queues a frame: a body chunk in memory while little is queued,
// else in the spool file, else (the spool full or failing) in memory
// without crediting it, so that the worker waits. It returns the credit to
// send now. c.mu is held.
func (c *Call) accept(f Frame) int {
	if f.Type != FrameBody {
		c.q = append(c.q, entry{f: f})
		return 0
	}
	n := len(f.Payload)
	c.received += int64(n)
	switch {
	case c.memBytes == 0 && n > SpoolMemory && c.spillTail(f):
		// A large chunk (a list response comes whole): its head stays in
		// memory, the rest goes to the file.
		c.owed += n
	case c.memBytes == 0 || c.memBytes+n <= SpoolMemory:
		c.q = append(c.q, entry{f: f})
		c.memBytes += n
		c.owed += n
	default:
		if off, ok := c.spool.write(f.Payload); ok {
			PutBuffer(f.Payload)
			c.q = append(c.q, entry{f: Frame{Type: FrameBody, ID: f.ID}, off: off, n: int64(n)})
			c.owed += n
			break
		}
		c.q = append(c.q, entry{f: f})
		c.memBytes += n
		c.deferred += n
	}
	return c.takeCredit(false)
}

// spillTail queues f's first SpoolMemory bytes in memory (copied, so that
// the large payload is freed) and writes the rest to the spool file; false
// (nothing queued) if the spool cannot take it. c.mu is held.
func (c *Call) spillTail(f Frame) bool {
	off, ok := c.spool.write(f.Payload[SpoolMemory:])
	if !ok {
		return false
	}
	head := getBuffer(SpoolMemory)
	copy(head, f.Payload)
	PutBuffer(f.Payload)
	tail := int64(len(f.Payload) - SpoolMemory)
	c.q = append(c.q, entry{f: Frame{Type: FrameBody, ID: f.ID, Payload: head}},
		entry{f: Frame{Type: FrameBody, ID: f.ID}, off: off, n: tail})
	c.memBytes += SpoolMemory
	return true
}

// signal wakes a Next waiting for a frame.
func (c *Call) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Call) fail(err error) {
	c.mu.Lock()
	c.finished = true
	c.err = err
	c.mu.Unlock()
	c.signal()
	c.onDone(false)
}

// takeCredit returns the credit to send now: what is owed, once it is
// creditEvery or more, or when force is set. c.mu is held.
func (c *Call) takeCredit(force bool) int {
	if c.owed >= creditEvery || (force && c.owed > 0) {
		n := c.owed
		c.owed = 0
		return n
	}
	return 0
}

// ErrCanceled is returned by Next when its done channel is closed.
var ErrCanceled = errors.New("request canceled")

// ErrWaitExpired is returned by NextWithin when its timer fires first.
var ErrWaitExpired = errors.New("no frame within the wait")

// Next returns the request's next frame, waiting for it. After FrameEnd or
// FrameAbort there are no more. If the worker died first, it returns
// ErrDied, or ErrNotStarted for a request it had not started. A close of
// done (the client went away) returns ErrCanceled. (The app's time limits
// are the pool's: Process.Stalled.)
func (c *Call) Next(done <-chan struct{}) (Frame, error) {
	return c.NextWithin(done, nil)
}

// NextWithin is Next, but returns ErrWaitExpired if expired (a timer's
// channel; nil: never) fires before a frame is queued.
func (c *Call) NextWithin(done <-chan struct{}, expired <-chan time.Time) (Frame, error) {
	for {
		c.mu.Lock()
		if len(c.q) > 0 {
			f, credit, err := c.take()
			c.mu.Unlock()
			if credit > 0 {
				c.p.credit(c.ID, credit)
			}
			return f, err
		}
		if c.finished {
			err := c.err
			c.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return Frame{}, err
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-done:
			return Frame{}, ErrCanceled
		case <-expired:
			return Frame{}, ErrWaitExpired
		}
	}
}

// take removes the first queued frame (or the first part of a spilled
// chunk, read back from the file) and returns it with the credit to send
// now. c.mu is held and the queue is not empty.
func (c *Call) take() (Frame, int, error) {
	e := &c.q[0]
	var f Frame
	if e.spilled() {
		n := int(min(e.n, spoolRead))
		b, err := c.spool.read(e.off, n)
		if err != nil {
			return Frame{}, 0, errors.Join(ErrDied, err)
		}
		e.off += int64(n)
		e.n -= int64(n)
		f = Frame{Type: FrameBody, ID: c.ID, Payload: b}
		if e.n > 0 {
			return f, c.payDeferred(), nil
		}
	} else {
		f = e.f
		if f.Type == FrameBody {
			c.memBytes -= len(f.Payload)
		}
	}
	c.q[0] = entry{}
	c.q = c.q[1:]
	return f, c.payDeferred(), nil
}

// payDeferred credits, once the client has taken something, the bytes
// held back while the spool was full, and returns the credit to send now.
// c.mu is held.
func (c *Call) payDeferred() int {
	if c.deferred > 0 {
		c.owed += c.deferred
		c.deferred = 0
		return c.takeCredit(true)
	}
	return c.takeCredit(false)
}

// Pending reports whether a frame is queued and can be taken without waiting.
func (c *Call) Pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.q) > 0
}

// Abandon releases the call. If the worker is still producing the
// response, it is told to stop (FrameCancel); what is queued or spooled is
// dropped, and frames still to come are dropped and credited, so the
// worker is never blocked by a response nobody reads.
func (c *Call) Abandon() {
	c.mu.Lock()
	if c.abandoned {
		c.mu.Unlock()
		return
	}
	c.abandoned = true
	for i := range c.q {
		f := c.q[i].f
		if f.Type == FrameBody && f.Payload != nil {
			PutBuffer(f.Payload)
		}
		if f.File != nil {
			f.File.Close()
		}
	}
	c.q = nil
	c.qbuf = [3]entry{}
	c.memBytes = 0
	c.owed += c.deferred
	c.deferred = 0
	c.spool.close()
	running := !c.finished
	n := c.takeCredit(running)
	c.mu.Unlock()
	if running {
		c.p.cancel(c.ID)
	}
	if n > 0 {
		c.p.credit(c.ID, n)
	}
}

// CallState is what a request on a worker has got so far, for logs.
type CallState struct {
	Method  string
	Path    string
	Started bool          // the response's head arrived
	Bytes   int64         // body bytes the worker sent
	Running time.Duration // since the worker could start it
	Stalled time.Duration // since the worker last sent anything for it
	// WaitingForClient: credit is held back because the client is slow,
	// so the worker may be waiting for the client, not running the app.
	WaitingForClient bool
}

// Late reports whether the request broke idle (0: none), the longest the
// app may go without sending anything while not waiting for the client,
// or whole (0: none), the longest a request may run.
func (st CallState) Late(idle, whole time.Duration) bool {
	return (whole > 0 && st.Running >= whole) || (idle > 0 && !st.WaitingForClient && st.Stalled >= idle)
}

// state returns the call's state at now; c.p.mu is held.
func (c *Call) state(now time.Time) CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.progress
	if last.Before(c.startedAt) {
		last = c.startedAt
	}
	return CallState{Method: c.method, Path: c.path, Started: c.started, Bytes: c.received,
		Running: now.Sub(c.startedAt), Stalled: now.Sub(last), WaitingForClient: c.deferred > 0}
}
