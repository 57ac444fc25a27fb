package worker

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

//go:embed worker.py
var program string

// Program returns the embedded Python worker program.
func Program() string { return program }

// bootstrap runs the program passed as argv[1] under a file name that
// tracebacks show, instead of "<string>".
const bootstrap = "import sys; exec(compile(sys.argv.pop(1), 'gowsgi-worker.py', 'exec'))"

// Spec says how to start worker processes for one app.
type Spec struct {
	// App is the app's name, for logs and errors.
	App string
	// Python is the interpreter command or path.
	Python string
	// Dir is the working directory, first on sys.path.
	Dir string
	// Module and Callable name the WSGI callable.
	Module, Callable string
	// Threads is how many requests one process runs at once.
	Threads int
	// Workers is how many processes the pool has (for wsgi.multiprocess).
	Workers int
	// Env is extra environment for the process.
	Env map[string]string
	// StartTimeout bounds the import of the app; 0 means 60s.
	StartTimeout time.Duration
	// Bodies is the app's shared body area, mapped by every worker of the
	// app; nil sends every body through the socket.
	Bodies *BodyArena
	// Log receives the process's stdout and stderr, line by line.
	Log zerolog.Logger
	// Context, if not nil, abandons a Start in progress when it ends: the
	// importing process is killed and Start returns the context's error.
	Context context.Context
}

// LoadError is an app that failed to load in its worker.
type LoadError struct {
	App       string
	Traceback string
}

// Reason is the last line of the traceback: the exception and its message.
func (e *LoadError) Reason() string {
	lines := strings.Split(strings.TrimSpace(e.Traceback), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("app %q failed to load: %s", e.App, e.Reason())
}

// ErrDied is returned for requests whose worker process went away while
// it may have been running them.
var ErrDied = errors.New("worker process died")

// ErrNotStarted is returned for requests that were sent to a worker that
// went away before it could have started them: they may be sent again.
var ErrNotStarted = errors.New("worker process died before starting the request")

// creditEvery is how many consumed response bytes the host acknowledges at once.
const creditEvery = 128 << 10

// Process is one running worker process and the connection to it.
type Process struct {
	spec *Spec
	cmd  *exec.Cmd
	conn *net.UnixConn
	// Pid is the worker's process id.
	Pid int

	wmu      sync.Mutex // guards the write state below
	wcond    *sync.Cond // signalled when flushing ends
	wbuf     []byte     // bytes queued for the worker
	wspare   []byte     // the other buffer, reused
	flushing bool       // a goroutine is writing to conn
	werr     error

	fds    *fdReader
	bodies *BodyArena // nil: bodies go through the socket

	mu     sync.Mutex
	calls  map[uint32]*Call
	order  []*Call // unfinished calls, oldest first
	nextID uint32
	dead   bool
	closed bool // Close was called: no new requests

	exited  chan struct{} // closed once the process has been waited for
	waitErr error
}

// Start starts a worker process and waits until its app is loaded. A
// failure to import the app is a *LoadError carrying the traceback.
func Start(spec *Spec) (*Process, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("app %q: socketpair: %w", spec.App, err)
	}
	hostFile := os.NewFile(uintptr(fds[0]), "gowsgi-host")
	childFile := os.NewFile(uintptr(fds[1]), "gowsgi-worker")
	fc, err := net.FileConn(hostFile)
	hostFile.Close()
	if err != nil {
		childFile.Close()
		return nil, fmt.Errorf("app %q: worker socket: %w", spec.App, err)
	}
	conn := fc.(*net.UnixConn)

	outR, outW, err := os.Pipe()
	if err != nil {
		conn.Close()
		childFile.Close()
		return nil, fmt.Errorf("app %q: pipe: %w", spec.App, err)
	}
	python := spec.Python
	if python == "" {
		python = "python3"
	}
	callable := spec.Callable
	if callable == "" {
		callable = "application"
	}
	cmd := exec.Command(python, "-u", "-c", bootstrap, program)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(),
		"GOWSGI_FD=3",
		"GOWSGI_MODULE="+spec.Module,
		"GOWSGI_CALLABLE="+callable,
		"GOWSGI_THREADS="+strconv.Itoa(max(spec.Threads, 1)),
		"GOWSGI_WORKERS="+strconv.Itoa(max(spec.Workers, 1)),
		"GOWSGI_APP="+spec.App,
	)
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.ExtraFiles = []*os.File{childFile}
	var bodies *BodyArena
	var bodiesFile *os.File
	if spec.Bodies != nil {
		// Without it (the app is being stopped) bodies go through the socket.
		f, err := spec.Bodies.dupFile()
		switch {
		case err == nil:
			bodies, bodiesFile = spec.Bodies, f
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
			cmd.Env = append(cmd.Env, "GOWSGI_BODY_FD=4", "GOWSGI_BODY_SIZE="+strconv.FormatInt(bodies.size(), 10))
		case !errors.Is(err, errBodiesClosed):
			spec.Log.Warn().Err(err).Str("app", spec.App).Msg("worker gets no shared body area; its request bodies go through the socket")
		}
	}
	cmd.Stdout = outW
	cmd.Stderr = outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	// Only the child keeps these ends, so that its exit is EOF here.
	outW.Close()
	childFile.Close()
	if bodiesFile != nil {
		bodiesFile.Close()
	}
	if err != nil {
		conn.Close()
		outR.Close()
		return nil, fmt.Errorf("app %q: start %s: %w", spec.App, python, err)
	}
	p := &Process{spec: spec, cmd: cmd, conn: conn, bodies: bodies, Pid: cmd.Process.Pid, calls: map[uint32]*Call{}, exited: make(chan struct{})}
	p.wcond = sync.NewCond(&p.wmu)
	log := spec.Log.With().Str("app", spec.App).Int("pid", p.Pid).Logger()
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			log.Info().Str("stream", "app").Msg(sc.Text())
		}
		outR.Close()
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	timeout := spec.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	conn.SetReadDeadline(time.Now().Add(timeout))
	fr := &fdReader{conn: conn, oob: make([]byte, syscall.CmsgSpace(4*8))}
	p.fds = fr
	br := bufio.NewReaderSize(fr, 64<<10)
	ctx := spec.Context
	if ctx == nil {
		ctx = context.Background()
	}
	abandon := context.AfterFunc(ctx, p.kill) // ends the read below
	f, err := ReadFrame(br)
	conn.SetReadDeadline(time.Time{})
	switch {
	case !abandon(): // ctx ended: the process is killed
		<-p.exited
		conn.Close()
		return nil, fmt.Errorf("app %q: start abandoned: %w", spec.App, ctx.Err())
	case err != nil:
		p.kill()
		<-p.exited
		conn.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("app %q: worker did not load the app within %s", spec.App, timeout)
		}
		return nil, fmt.Errorf("app %q: worker exited while loading the app (%v)", spec.App, p.waitErr)
	case f.Type == FrameFailed:
		p.kill()
		<-p.exited
		conn.Close()
		return nil, &LoadError{App: spec.App, Traceback: string(f.Payload)}
	case f.Type != FrameReady:
		p.kill()
		<-p.exited
		conn.Close()
		return nil, fmt.Errorf("app %q: worker sent frame %q before ready", spec.App, f.Type)
	}
	if !strings.HasSuffix(string(f.Payload), " bodies") {
		p.bodies = nil // it could not map the area (it said why on stderr)
	}
	go p.readLoop(br)
	return p, nil
}

// Attach speaks the protocol over conn to a worker that is already
// running and ready (no process is started or signalled): benchmarks use it
// with an in-process fake worker. Exited is closed when conn is done.
func Attach(spec *Spec, conn *net.UnixConn) *Process {
	p := &Process{spec: spec, conn: conn, calls: map[uint32]*Call{}, exited: make(chan struct{})}
	p.wcond = sync.NewCond(&p.wmu)
	p.fds = &fdReader{conn: conn, oob: make([]byte, syscall.CmsgSpace(4*8))}
	go func() {
		p.readLoop(bufio.NewReaderSize(p.fds, 64<<10))
		close(p.exited)
	}()
	return p
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is how the process ended; valid after Exited is closed.
func (p *Process) ExitErr() error { return p.waitErr }

// largeWrite is the size past which a request is written directly instead
// of being copied into the shared write buffer.
const largeWrite = 64 << 10

// Send starts a request: env from Environ.Bytes, and the whole body: in
// slot, a slot of the app's shared body area (Send holds it for the
// request; the caller still releases its own hold), or in memory (body),
// or, if bodyFile is not nil, in bodyFile from offset 0 with bodyLen
// bytes. onDone runs exactly once, from another goroutine, when the worker
// has finished the request (or died).
func (p *Process) Send(env, body []byte, slot *BodySlot, bodyFile *os.File, bodyLen int64, onDone func()) (*Call, error) {
	if slot != nil && slot.a != p.bodies {
		// This worker has not mapped the area: the body goes through the
		// socket (the caller's hold keeps the slot's memory meanwhile).
		body, slot = slot.Bytes(), nil
	}
	switch {
	case slot != nil:
		body, bodyFile, bodyLen = nil, nil, int64(slot.n)
	case bodyFile == nil:
		bodyLen = int64(len(body))
	}
	if 4+int64(len(env))+bodyLen > MaxPayload {
		return nil, fmt.Errorf("request of %d bytes is too large for a frame", bodyLen)
	}
	if slot == nil && bodyFile == nil && len(body) >= MinSharedBody && p.bodies != nil {
		// A large body goes into shared memory if there is room: copied
		// before the lock, since its place in the stream does not matter.
		if slot = p.bodies.Reserve(len(body)); slot != nil {
			copy(slot.Bytes(), body)
			defer slot.Release()
		}
	}
	var hdr [HeaderSize + 4]byte
	binary.LittleEndian.PutUint32(hdr[9:], uint32(len(env)))
	large := slot == nil && (bodyFile != nil || bodyLen > largeWrite)

	// The id, the place in p.order and the place of the bytes on the
	// socket are all decided under p.wmu, so the worker sees requests in
	// the order they were registered (which tells which ones it started).
	p.wmu.Lock()
	if large {
		for p.flushing {
			p.wcond.Wait()
		}
	}
	c, err := p.register(onDone, slot)
	if err != nil {
		p.wmu.Unlock()
		return nil, err
	}
	switch {
	case slot != nil:
		var loc [16]byte
		binary.LittleEndian.PutUint64(loc[:], uint64(slot.offset()))
		binary.LittleEndian.PutUint64(loc[8:], uint64(slot.n))
		PutHeader(hdr[:], FrameRequestMapped, c.ID, 4+len(env)+len(loc))
		body = loc[:]
	default:
		PutHeader(hdr[:], FrameRequest, c.ID, 4+len(env)+int(bodyLen))
	}
	if large {
		err = p.writeLargeLocked(net.Buffers{hdr[:], env, body}, bodyFile, bodyLen)
	} else {
		p.wbuf = append(append(append(p.wbuf, hdr[:]...), env...), body...)
		if p.flushing {
			p.wmu.Unlock()
			return c, nil
		}
		p.flushing = true
		err = p.flushLocked()
	}
	if err != nil {
		// A partial frame: the stream is unusable. The read loop sees the
		// connection die and finishes every call.
		p.conn.Close()
	}
	return c, nil
}

// register adds a call for a new request whose body is in the shared
// slot (or nil); the call holds the slot until the request ends.
func (p *Process) register(onDone func(), slot *BodySlot) (*Call, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead || p.closed {
		return nil, ErrNotStarted
	}
	p.nextID++
	if p.nextID == 0 {
		p.nextID = 1
	}
	c := &Call{ID: p.nextID, p: p, slot: slot, wake: make(chan struct{}, 1), onDone: onDone}
	c.q = c.qbuf[:0]
	if slot != nil {
		slot.hold()
	}
	p.calls[c.ID] = c
	p.order = append(p.order, c)
	if len(p.order) <= p.threads() {
		c.startedAt = time.Now()
	}
	return c, nil
}

// Dead reports whether the connection to the worker is gone.
func (p *Process) Dead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead
}

func (p *Process) threads() int { return max(p.spec.Threads, 1) }

// write queues bytes for the worker. Concurrent writers are coalesced:
// whoever finds no write in progress writes everything queued so far, so
// under load many requests go out in one system call.
func (p *Process) write(parts ...[]byte) error {
	p.wmu.Lock()
	for _, b := range parts {
		p.wbuf = append(p.wbuf, b...)
	}
	if p.flushing {
		err := p.werr
		p.wmu.Unlock()
		return err
	}
	p.flushing = true
	return p.flushLocked()
}

// writeLargeLocked writes a large request directly (with writev, and the
// body file with copy_file_range/sendfile where the kernel can), after
// what is queued, without copying it into the shared buffer. p.wmu is
// held, no flush is in progress; it is released on return.
func (p *Process) writeLargeLocked(bufs net.Buffers, file *os.File, n int64) error {
	p.flushing = true
	pending := p.wbuf
	p.wbuf = nil
	err := p.werr
	p.wmu.Unlock()
	if err == nil {
		all := append(net.Buffers{pending}, bufs...)
		_, err = all.WriteTo(p.conn)
	}
	if err == nil && file != nil {
		_, err = io.Copy(p.conn, io.NewSectionReader(file, 0, n))
	}
	p.wmu.Lock()
	if err != nil && p.werr == nil {
		p.werr = err
	}
	return p.flushLocked()
}

// flushLocked writes the queued bytes until none are left, then gives up
// the writer role. p.wmu is held on entry and released on return.
func (p *Process) flushLocked() error {
	for len(p.wbuf) > 0 && p.werr == nil {
		buf := p.wbuf
		p.wbuf = p.wspare[:0]
		p.wmu.Unlock()
		_, err := p.conn.Write(buf)
		p.wmu.Lock()
		if cap(buf) <= 1<<20 {
			p.wspare = buf[:0]
		} else {
			p.wspare = nil // too big to keep; never share it with wbuf
		}
		if err != nil {
			p.werr = err
		}
	}
	p.wbuf = p.wbuf[:0]
	p.flushing = false
	p.wcond.Broadcast()
	err := p.werr
	p.wmu.Unlock()
	return err
}

func (p *Process) credit(id uint32, n int) {
	var b [HeaderSize + 4]byte
	PutHeader(b[:], FrameCredit, id, 4)
	binary.LittleEndian.PutUint32(b[9:], uint32(n))
	p.write(b[:])
}

func (p *Process) cancel(id uint32) {
	var b [HeaderSize]byte
	PutHeader(b[:], FrameCancel, id, 0)
	p.write(b[:])
}

func (p *Process) readLoop(br *bufio.Reader) {
	var err error
	for {
		var f Frame
		f, err = readFrame(br, p.fds)
		if err != nil {
			break
		}
		if f.Type == FrameFile {
			fd, ok := p.fds.take()
			if !ok {
				err = fmt.Errorf("frame %q without a file descriptor", f.Type)
				break
			}
			f.File = os.NewFile(uintptr(fd), "response-body")
		}
		p.mu.Lock()
		c := p.calls[f.ID]
		if c != nil && (f.Type == FrameEnd || f.Type == FrameAbort) {
			delete(p.calls, f.ID)
			p.finishLocked(c)
			c.slot.Release() // the worker is done with the body
		}
		p.mu.Unlock()
		if c == nil {
			if f.File != nil {
				f.File.Close()
			}
			continue
		}
		c.push(f)
	}
	p.fds.closeAll()
	// Whatever ended the stream (the worker exiting, a protocol error, a
	// failed write), the process is of no more use: make sure it goes, so
	// that its slot is restarted. (Close stops it the graceful way.)
	p.mu.Lock()
	if !p.closed {
		p.kill()
	}
	p.dead = true
	calls := p.order
	p.calls, p.order = nil, nil
	p.mu.Unlock()
	// The worker takes requests in the order they were sent, Threads at a
	// time: only the oldest Threads unfinished ones can have started.
	for i, c := range calls {
		c.slot.Release()
		if i < max(p.spec.Threads, 1) {
			c.fail(ErrDied)
		} else {
			c.fail(ErrNotStarted)
		}
	}
	p.conn.Close()
}

// OldestStart returns when the oldest request the worker is running
// started, or zero if it is idle.
func (p *Process) OldestStart() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.order) == 0 {
		return time.Time{}
	}
	return p.order[0].startedAt
}

// finishLocked removes a finished call from the order of unfinished ones;
// the worker then starts the next: the oldest Threads calls are running.
func (p *Process) finishLocked(c *Call) {
	for i, x := range p.order {
		if x == c {
			copy(p.order[i:], p.order[i+1:])
			p.order[len(p.order)-1] = nil
			p.order = p.order[:len(p.order)-1]
			break
		}
	}
	now := time.Time{}
	for i := 0; i < len(p.order) && i < p.threads(); i++ {
		if p.order[i].startedAt.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			p.order[i].startedAt = now
		}
	}
}

// fdReader reads the worker's socket with recvmsg, keeping the file
// descriptors that come with the data (SCM_RIGHTS) for FrameFile frames,
// in the order they arrive.
type fdReader struct {
	conn *net.UnixConn
	oob  []byte
	mu   sync.Mutex
	fds  []int
}

func (r *fdReader) Read(b []byte) (int, error) {
	n, oobn, _, _, err := r.conn.ReadMsgUnix(b, r.oob)
	n = max(n, 0)
	if oobn > 0 {
		if msgs, perr := syscall.ParseSocketControlMessage(r.oob[:oobn]); perr == nil {
			for i := range msgs {
				if fds, perr := syscall.ParseUnixRights(&msgs[i]); perr == nil {
					r.mu.Lock()
					r.fds = append(r.fds, fds...)
					r.mu.Unlock()
				}
			}
		}
	}
	if n == 0 && err == nil && len(b) > 0 {
		err = io.EOF
	}
	return n, err
}

func (r *fdReader) take() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fds) == 0 {
		return -1, false
	}
	fd := r.fds[0]
	r.fds = r.fds[1:]
	return fd, true
}

func (r *fdReader) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range r.fds {
		syscall.Close(fd)
	}
	r.fds = nil
}

// Close stops the process: no new requests, its socket is shut for
// writing, and its process group gets SIGTERM (the worker exits through
// sys.exit, so the app's atexit handlers run); SIGKILL follows after grace.
// The host calls it once the worker's requests are done or overdue.
// Close returns when the process has exited.
func (p *Process) Close(grace time.Duration) {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.conn.CloseWrite()
	if p.cmd != nil {
		syscall.Kill(-p.Pid, syscall.SIGTERM)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		return
	case <-t.C:
	}
	p.kill()
	<-p.exited
}

func (p *Process) kill() {
	if p.cmd == nil { // attached: no process of ours to signal
		p.conn.Close()
		return
	}
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	p.cmd.Process.Kill()
}

// Kill ends the process at once (SIGKILL to its process group).
func (p *Process) Kill() { p.kill() }

// Call is one request in flight on a worker.
type Call struct {
	ID uint32
	p  *Process

	startedAt time.Time // when the worker could start it; guarded by p.mu
	slot      *BodySlot // the shared body slot it holds, or nil

	mu         sync.Mutex
	q          []Frame
	qbuf       [3]Frame // q's first backing array: Start, Body and End fit without allocating
	finished   bool     // the last frame was queued, or the worker died
	err        error    // ErrDied
	abandoned  bool
	uncredited int
	wake       chan struct{}
	onDone     func()
}

func (c *Call) push(f Frame) {
	c.mu.Lock()
	last := f.Type == FrameEnd || f.Type == FrameAbort
	if c.abandoned {
		if f.Type == FrameBody {
			c.uncredited += len(f.Payload)
		}
		if f.File != nil {
			f.File.Close()
		}
		n := c.takeCredit(last)
		c.finished = c.finished || last
		c.mu.Unlock()
		if last {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		if n > 0 {
			// Never write from the read loop: it must keep reading, or a
			// worker blocked writing to us would wait on it forever.
			go c.p.credit(c.ID, n)
		}
	} else {
		c.q = append(c.q, f)
		c.finished = last
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	if last {
		c.onDone()
	}
}

func (c *Call) fail(err error) {
	c.mu.Lock()
	c.finished = true
	c.err = err
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.onDone()
}

// takeCredit returns the credit to send now; c.mu is held.
func (c *Call) takeCredit(force bool) int {
	if c.uncredited >= creditEvery || (force && c.uncredited > 0) {
		n := c.uncredited
		c.uncredited = 0
		return n
	}
	return 0
}

// ErrWaitTimedOut is returned by Next when its timeout channel fires.
var ErrWaitTimedOut = errors.New("timed out waiting for the worker")

// ErrCanceled is returned by Next when its done channel is closed.
var ErrCanceled = errors.New("request canceled")

// StartedAt returns when the worker could start the request: when it was
// sent, or, if it was queued behind others on the worker, when its turn
// came. It is zero while the request waits its turn.
func (c *Call) StartedAt() time.Time {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.startedAt
}

// Next returns the request's next frame, waiting for it. After FrameEnd or
// FrameAbort there are no more. If the worker died first, it returns
// ErrDied, or ErrNotStarted for a request it had not started. A close of
// done (the client went away) returns ErrCanceled; timeout firing returns
// ErrWaitTimedOut.
func (c *Call) Next(done <-chan struct{}, timeout <-chan time.Time) (Frame, error) {
	for {
		c.mu.Lock()
		if len(c.q) > 0 {
			f := c.q[0]
			c.q[0] = Frame{}
			c.q = c.q[1:]
			var n int
			if f.Type == FrameBody {
				c.uncredited += len(f.Payload)
				n = c.takeCredit(false)
			}
			c.mu.Unlock()
			if n > 0 {
				c.p.credit(c.ID, n)
			}
			return f, nil
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
		case <-timeout:
			return Frame{}, ErrWaitTimedOut
		}
	}
}

// Pending reports whether a frame is queued and can be taken without waiting.
func (c *Call) Pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.q) > 0
}

// Abandon releases the call. If the worker is still producing the
// response, it is told to stop (FrameCancel); frames still to come are
// dropped and credited, so the worker is never blocked by a response
// nobody reads.
func (c *Call) Abandon() {
	c.mu.Lock()
	if c.abandoned {
		c.mu.Unlock()
		return
	}
	c.abandoned = true
	for _, f := range c.q {
		if f.Type == FrameBody {
			c.uncredited += len(f.Payload)
		}
		if f.File != nil {
			f.File.Close()
		}
	}
	c.q = nil
	c.qbuf = [3]Frame{}
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
