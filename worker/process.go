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
	"golang.org/x/sys/unix"

	"github.com/gowsgi/gowsgi/internal/rawio"
)

//go:embed worker.py
var program string

// Program returns the embedded Python worker program.
func Program() string { return program }

// programMemfd is the worker program in a memfd, made once per host
// process (again after a failure) and inherited by every worker, which
// runs it by path: its command line then names the app instead of holding
// the whole program, and tracebacks show the program's lines. The host
// never closes it.
var programMemfd struct {
	mu sync.Mutex
	f  *os.File
}

func programFile() (*os.File, error) {
	programMemfd.mu.Lock()
	defer programMemfd.mu.Unlock()
	if programMemfd.f == nil {
		f, err := newProgramFile()
		if err != nil {
			return nil, fmt.Errorf("worker program: %w", err)
		}
		programMemfd.f = f
	}
	return programMemfd.f, nil
}

// newProgramFile writes the program into a new memfd and seals it, so that
// no worker (nor its app) can change what the next one runs.
func newProgramFile() (*os.File, error) {
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("gowsgi-worker.py", flags|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) { // MFD_NOEXEC_SEAL is Linux 6.3+
		fd, err = unix.MemfdCreate("gowsgi-worker.py", flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gowsgi-worker.py")
	if _, err := io.WriteString(f, program); err != nil {
		f.Close()
		return nil, fmt.Errorf("write: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal: %w", err)
	}
	return f, nil
}

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
	// Preload imports the app once in a template process (StartTemplate)
	// and forks the workers from it (Template.Fork); Start ignores it.
	Preload bool
	// UID and GID, if set, are who the workers run as.
	UID, GID *uint32
	// Umask (if 0 or more), MaxOpenFiles and MaxAddressSpace (if above
	// 0) are applied in the worker before it imports the app.
	Umask                         int
	MaxOpenFiles, MaxAddressSpace int64
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
	tmpl *Template // the template that forked it (then cmd is nil)
	// pidfd is a fork's pidfd, from its template (nil: none, or closed
	// once it exited): it is signalled without a pid race. Under sigMu.
	pidfd *os.File
	sigMu sync.Mutex
	conn  net.Conn // a *net.UnixConn, but for an attached fake worker
	// Pid is the worker's process id.
	Pid int

	wmu      sync.Mutex // guards the write state below
	wcond    *sync.Cond // signalled when flushing ends
	wbuf     []byte     // bytes queued for the worker
	wspare   []byte     // the other buffer, reused
	flushing bool       // a goroutine is writing to conn
	werr     error

	fds    *fdReader
	bodies *BodyArena    // nil: bodies go through the socket
	ctl    *net.UnixConn // the worker's control socket (FrameWithdraw); nil when attached

	mu     sync.Mutex
	calls  map[uint32]*Call
	order  []*Call // unfinished calls, oldest first
	nextID uint32
	dead   bool
	closed bool // Close was called: no new requests

	kick     chan struct{} // asks flushLoop to write (buffered 1)
	readDone chan struct{} // closed when the read loop has ended

	exited   chan struct{} // closed once the process has been waited for
	exitOnce sync.Once     // closes exited, for a forked process (exitWith)
	waitErr  error
}

// newProcess returns a Process speaking over conn; run starts its loops.
func newProcess(spec *Spec, conn net.Conn) *Process {
	p := &Process{spec: spec, conn: conn, calls: map[uint32]*Call{}, exited: make(chan struct{}),
		kick: make(chan struct{}, 1), readDone: make(chan struct{})}
	p.wcond = sync.NewCond(&p.wmu)
	p.fds = &fdReader{conn: conn, raw: rawio.Of(conn), oob: make([]byte, syscall.CmsgSpace(4*8))}
	return p
}

// run starts the read loop over br and the credit flusher; both end when
// the connection does.
func (p *Process) run(br *bufio.Reader) {
	go p.readLoop(br)
	go p.flushLoop()
}

// Start starts a worker process and waits until its app is loaded. A
// failure to import the app is a *LoadError carrying the traceback.
func Start(spec *Spec) (*Process, error) {
	p, br, err := launch(spec, false)
	if err != nil {
		return nil, err
	}
	p.run(br)
	return p, nil
}

// launch starts a worker process, or a template if template is set, and
// waits for its ready frame; it returns the reader of what follows.
func launch(spec *Spec, template bool) (*Process, *bufio.Reader, error) {
	prog, err := programFile()
	if err != nil {
		return nil, nil, fmt.Errorf("app %q: %w", spec.App, err)
	}
	conn, child, err := socketPair(spec.App, "worker")
	if err != nil {
		return nil, nil, err
	}
	ctl, childCtl, err := socketPair(spec.App, "control")
	if err != nil {
		conn.Close()
		child.Close()
		return nil, nil, err
	}
	cmd := command(spec, child, childCtl, prog)
	var bodies *BodyArena
	var bodiesFile *os.File
	if template {
		cmd.Env = append(cmd.Env, "GOWSGI_TEMPLATE=1")
	} else {
		bodies, bodiesFile = shareBodies(spec, cmd)
	}
	p := newProcess(spec, conn)
	p.cmd, p.bodies, p.ctl = cmd, bodies, ctl
	// The host's copies of the worker's own files (not the shared program).
	files := []*os.File{child, childCtl}
	if bodiesFile != nil {
		files = append(files, bodiesFile)
	}
	if err = p.start(files); err != nil {
		conn.Close()
		ctl.Close()
		return nil, nil, err
	}
	br, err := p.awaitReady()
	if err != nil {
		return nil, nil, err
	}
	return p, br, nil
}

// socketPair returns the host's end of a new socket pair and the file of
// the other end, for a worker to inherit.
func socketPair(app, what string) (*net.UnixConn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("app %q: %s socketpair: %w", app, what, err)
	}
	hostFile := os.NewFile(uintptr(fds[0]), "gowsgi-host")
	childFile := os.NewFile(uintptr(fds[1]), "gowsgi-"+what)
	fc, err := net.FileConn(hostFile)
	hostFile.Close()
	if err != nil {
		childFile.Close()
		return nil, nil, fmt.Errorf("app %q: %s socket: %w", app, what, err)
	}
	return fc.(*net.UnixConn), childFile, nil
}

// command returns the worker's command for spec: the interpreter runs the
// program from its inherited memfd, by path, with the app's name as its
// argument (so ps shows "python3 -u /proc/self/fd/5 APP", and
// "gowsgi-worker APP" once the worker has set its title), and inherits the
// two sockets. Any further file goes through addFile.
func command(spec *Spec, conn, ctl, prog *os.File) *exec.Cmd {
	python := spec.Python
	if python == "" {
		python = "python3"
	}
	callable := spec.Callable
	if callable == "" {
		callable = "application"
	}
	cmd := exec.Command(python)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(),
		"GOWSGI_FD="+addFile(cmd, conn),
		"GOWSGI_CTL_FD="+addFile(cmd, ctl),
		"GOWSGI_MODULE="+spec.Module,
		"GOWSGI_CALLABLE="+callable,
		"GOWSGI_THREADS="+strconv.Itoa(max(spec.Threads, 1)),
		"GOWSGI_WORKERS="+strconv.Itoa(max(spec.Workers, 1)),
		"GOWSGI_APP="+spec.App,
	)
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Args = append(cmd.Args, "-u", "/proc/self/fd/"+addFile(cmd, prog), spec.App)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: spec.credential()}
	cmd.Env = append(cmd.Env, spec.limitsEnv()...)
	return cmd
}

// credential is who the worker runs as: nil for the host's identity.
func (spec *Spec) credential() *syscall.Credential {
	if spec.UID == nil && spec.GID == nil {
		return nil
	}
	c := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: []uint32{}}
	if spec.UID != nil {
		c.Uid = *spec.UID
	}
	if spec.GID != nil {
		c.Gid = *spec.GID
	}
	return c
}

// limitsEnv tells worker.py the umask and resource limits to apply before
// it imports the app (forks of a template inherit them).
func (spec *Spec) limitsEnv() []string {
	var env []string
	if spec.Umask >= 0 {
		env = append(env, "GOWSGI_UMASK="+strconv.Itoa(spec.Umask))
	}
	if spec.MaxOpenFiles > 0 {
		env = append(env, "GOWSGI_RLIMIT_NOFILE="+strconv.FormatInt(spec.MaxOpenFiles, 10))
	}
	if spec.MaxAddressSpace > 0 {
		env = append(env, "GOWSGI_RLIMIT_AS="+strconv.FormatInt(spec.MaxAddressSpace, 10))
	}
	return env
}

// addFile adds f to the files the worker inherits and returns its
// descriptor number there: ExtraFiles[i] is fd 3+i.
func addFile(cmd *exec.Cmd, f *os.File) string {
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	return strconv.Itoa(2 + len(cmd.ExtraFiles))
}

// shareBodies adds the app's shared body area to the worker's files, if
// the app has one that is not closed; it returns the area and the file to
// close once the worker has started. Without it, bodies go through the
// socket.
func shareBodies(spec *Spec, cmd *exec.Cmd) (*BodyArena, *os.File) {
	if spec.Bodies == nil {
		return nil, nil
	}
	f, err := spec.Bodies.dupFile()
	if err != nil {
		if !errors.Is(err, errBodiesClosed) {
			spec.Log.Warn().Err(err).Str("app", spec.App).Msg("worker gets no shared body area; its request bodies go through the socket")
		}
		return nil, nil
	}
	cmd.Env = append(cmd.Env, "GOWSGI_BODY_FD="+addFile(cmd, f), "GOWSGI_BODY_SIZE="+strconv.FormatInt(spec.Bodies.size(), 10))
	return spec.Bodies, f
}

// start starts the process, closing the host's copies of the files it
// inherits, and the goroutines that log its output and wait for it.
func (p *Process) start(files []*os.File) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(files)
		return fmt.Errorf("app %q: pipe: %w", p.spec.App, err)
	}
	p.cmd.Stdout, p.cmd.Stderr = outW, outW
	err = p.cmd.Start()
	// Only the child keeps these ends, so that its exit is EOF here.
	outW.Close()
	closeAll(files)
	if err != nil {
		outR.Close()
		return fmt.Errorf("app %q: start %s: %w", p.spec.App, p.cmd.Path, err)
	}
	p.Pid = p.cmd.Process.Pid
	log := p.spec.Log.With().Str("app", p.spec.App).Int("pid", p.Pid).Logger()
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			log.Info().Str("stream", "app").Msg(sc.Text())
		}
		outR.Close()
	}()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// awaitReady waits for the worker's first frame: ready, or the traceback
// of the app's failed import (or a template's refusal to fork). On failure
// the process is stopped. It returns the reader of the frames that follow.
func (p *Process) awaitReady() (*bufio.Reader, error) {
	spec := p.spec
	timeout := spec.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	p.conn.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(p.fds, 64<<10)
	ctx := spec.Context
	if ctx == nil {
		ctx = context.Background()
	}
	abandon := context.AfterFunc(ctx, p.kill) // ends the read below
	f, err := ReadFrame(br)
	p.conn.SetReadDeadline(time.Time{})
	exited := false
	switch {
	case !abandon(): // ctx ended: the process is being killed
		err = fmt.Errorf("app %q: start abandoned: %w", spec.App, ctx.Err())
	case err == nil && f.Type == FrameReady:
		if !strings.HasSuffix(string(f.Payload), " bodies") {
			p.bodies = nil // it could not map the area (it said why on stderr)
		}
		return br, nil
	case err == nil && f.Type == FrameFailed:
		err = &LoadError{App: spec.App, Traceback: string(f.Payload)}
	case err == nil && f.Type == FrameThreads:
		err = &ThreadsError{App: spec.App, Threads: string(f.Payload)}
	case err == nil:
		err = fmt.Errorf("app %q: worker sent frame %q before ready", spec.App, f.Type)
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("app %q: worker did not load the app within %s", spec.App, timeout)
	default:
		exited = true
	}
	p.kill()
	<-p.exited
	p.conn.Close()
	p.ctl.Close()
	if exited {
		err = fmt.Errorf("app %q: worker exited while loading the app (%v)", spec.App, p.waitErr)
	}
	return nil, err
}

// Attach speaks the protocol over conn to a worker that is already
// running and ready (no process is started or signalled): benchmarks use it
// with an in-process fake worker. Exited is closed when conn is done.
func Attach(spec *Spec, conn net.Conn) *Process {
	p := newProcess(spec, conn)
	p.run(bufio.NewReaderSize(p.fds, 64<<10))
	go func() {
		<-p.readDone
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

// Send starts a request on the worker. If the worker has not mapped the
// app's shared body area, a body in a slot goes through the socket (the
// caller's hold keeps the slot's memory meanwhile); a large body in memory
// goes into a free slot if the worker has the area.
func (p *Process) Send(req Request) (*Call, error) {
	body := req.Body
	if body.Slot != nil && body.Slot.a != p.bodies {
		body = Body{Mem: body.Slot.Bytes()}
	}
	bodyLen := body.size()
	if 4+int64(len(req.Env))+bodyLen > MaxPayload {
		return nil, fmt.Errorf("request of %d bytes is too large for a frame", bodyLen)
	}
	if body.Slot == nil && body.File == nil && len(body.Mem) >= MinSharedBody && p.bodies != nil {
		// Copied before the lock, since its place in the stream does not matter.
		if slot := p.bodies.Reserve(len(body.Mem)); slot != nil {
			copy(slot.Bytes(), body.Mem)
			defer slot.Release()
			body = Body{Slot: slot}
		}
	}
	large := body.Slot == nil && (body.File != nil || bodyLen > largeWrite)

	// The id, the place in p.order and the place of the bytes on the
	// socket are all decided under p.wmu, so the worker sees requests in
	// the order they were registered (which tells which ones it started).
	p.wmu.Lock()
	if large {
		for p.flushing {
			p.wcond.Wait()
		}
	}
	c, err := p.register(req, body.Slot)
	if err != nil {
		p.wmu.Unlock()
		return nil, err
	}
	var hdr [HeaderSize + 4]byte
	binary.LittleEndian.PutUint32(hdr[9:], uint32(len(req.Env)))
	tail := body.Mem
	if body.Slot != nil {
		var loc [16]byte
		binary.LittleEndian.PutUint64(loc[:], uint64(body.Slot.offset()))
		binary.LittleEndian.PutUint64(loc[8:], uint64(body.Slot.n))
		PutHeader(hdr[:], FrameRequestMapped, c.ID, 4+len(req.Env)+len(loc))
		tail = loc[:]
	} else {
		PutHeader(hdr[:], FrameRequest, c.ID, 4+len(req.Env)+int(bodyLen))
	}
	if large {
		err = p.writeLargeLocked(net.Buffers{hdr[:], req.Env, tail}, body.File, bodyLen)
	} else {
		p.wbuf = append(append(append(p.wbuf, hdr[:]...), req.Env...), tail...)
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
func (p *Process) register(req Request, slot *BodySlot) (*Call, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead || p.closed {
		return nil, ErrNotStarted
	}
	p.nextID++
	if p.nextID == 0 {
		p.nextID = 1
	}
	c := &Call{ID: p.nextID, p: p, method: req.Method, path: req.Path, slot: slot, wake: make(chan struct{}, 1), onDone: req.OnDone}
	c.q = c.qbuf[:0]
	c.spool.max, c.spool.budget = req.MaxSpool, req.SpoolBudget
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

// writeConn writes b to the worker's socket, with raw system calls
// (rawio: they do not wake Go's system monitor) where it can.
func (p *Process) writeConn(b []byte) (int, error) {
	if p.fds.raw != nil {
		return rawio.Write(p.fds.raw, b)
	}
	return p.conn.Write(b)
}

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
		_, err := p.writeConn(buf)
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

// creditLater queues a credit without waiting for the socket: the read
// loop calls it, and must keep reading, or a worker blocked writing to us
// would wait on it forever. The write is left to whoever is flushing, or
// to the process's flusher goroutine.
func (p *Process) creditLater(id uint32, n int) {
	var b [HeaderSize + 4]byte
	PutHeader(b[:], FrameCredit, id, 4)
	binary.LittleEndian.PutUint32(b[9:], uint32(n))
	p.wmu.Lock()
	p.wbuf = append(p.wbuf, b[:]...)
	if p.flushing {
		p.wmu.Unlock()
		return
	}
	p.flushing = true
	p.wmu.Unlock()
	p.kick <- struct{}{} // buffered 1 and only sent by whoever set flushing: never blocks
}

// flushLoop writes what creditLater queued. It returns once the read loop
// has ended and every write it was asked for is done.
func (p *Process) flushLoop() {
	for {
		select {
		case <-p.kick:
			p.wmu.Lock()
			p.flushLocked()
		case <-p.readDone:
			select {
			case <-p.kick: // a last request: its flush fails fast on the closed socket
				p.wmu.Lock()
				p.flushLocked()
			default:
			}
			return
		}
	}
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
		last := f.Type == FrameEnd || f.Type == FrameAbort || f.Type == FrameWithdrawn
		if c != nil && last {
			delete(p.calls, f.ID)
			p.finishLocked(c)
			c.slot.Release() // the worker is done with the body
		}
		p.mu.Unlock()
		switch {
		case c == nil:
			if f.File != nil {
				f.File.Close()
			}
		case f.Type == FrameWithdrawn:
			c.fail(ErrNotStarted) // to be sent to another worker
		default:
			c.push(f)
		}
	}
	p.fds.closeAll()
	p.logEnd(err)
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
	if p.ctl != nil {
		p.ctl.Close()
	}
	close(p.readDone)
}

// Withdraw takes back up to n requests that wait on the worker behind
// others (pipelined, not started), oldest first, so that an idle worker
// can run them: the worker answers each with FrameWithdrawn if it has not
// started it (its Next then returns ErrNotStarted), or runs it as usual.
// It returns how many it asked for.
func (p *Process) Withdraw(n int) int {
	if p.ctl == nil || n <= 0 {
		return 0
	}
	var frames []byte
	asked := 0
	p.mu.Lock()
	for i := p.threads(); i < len(p.order) && asked < n; i++ {
		c := p.order[i]
		if c.withdrawing || !c.startedAt.IsZero() {
			continue
		}
		c.withdrawing = true
		frames = AppendFrame(frames, FrameWithdraw, c.ID, nil)
		asked++
	}
	dead := p.dead
	p.mu.Unlock()
	if asked > 0 && !dead {
		// The worker's control thread always reads: this never waits long.
		p.ctl.Write(frames)
	}
	return asked
}

// logEnd says why the connection to the worker ended, unless the worker
// simply exited or the host closed it.
func (p *Process) logEnd(err error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	ev := p.spec.Log.Debug()
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		ev = p.spec.Log.Error() // a protocol error: the worker broke the stream
	}
	ev.Err(err).Str("app", p.spec.App).Int("pid", p.Pid).Msg("connection to the worker ended")
}

// Stalled reports on the requests the worker is running, at now: whether
// one broke the app's time limits, and then the state of each, so that
// every request is logged with what it got. idle (0: none) is the longest
// the app may go without sending anything for a request, not counting
// time it waits for the client to take the response; whole (0: none) is
// the longest a request may run. next is how long until one could break
// them.
func (p *Process) Stalled(now time.Time, idle, whole time.Duration) (running []CallState, late bool, next time.Duration) {
	next = time.Hour
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.order {
		if i >= p.threads() || c.startedAt.IsZero() {
			break
		}
		st := c.state(now)
		running = append(running, st)
		late = late || st.Late(idle, whole)
		if whole > 0 {
			next = min(next, whole-st.Running)
		}
		if idle > 0 && !st.WaitingForClient {
			next = min(next, idle-st.Stalled)
		}
	}
	for _, d := range []time.Duration{idle, whole} {
		if d > 0 {
			next = min(next, d) // a request may start right after this
		}
	}
	return running, late, max(next, time.Millisecond)
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
	conn net.Conn        // file descriptors come only over a *net.UnixConn
	raw  syscall.RawConn // conn's, read with raw system calls (rawio); nil: none
	oob  []byte
	mu   sync.Mutex
	fds  []int
}

func (r *fdReader) Read(b []byte) (int, error) {
	if r.raw == nil {
		return r.conn.Read(b)
	}
	n, oobn, err := rawio.RecvMsg(r.raw, b, r.oob)
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
	if cw, ok := p.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if p.cmd != nil || p.tmpl != nil {
		p.signal(syscall.SIGTERM)
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
	if p.cmd == nil && p.tmpl == nil { // attached: no process of ours to signal
		p.conn.Close()
		return
	}
	p.signal(syscall.SIGKILL)
	if p.cmd != nil {
		p.cmd.Process.Kill()
	}
}

// signal sends sig to the process's group, or to the process if it has
// no group of its own yet (a fork before its setpgid), unless it has
// exited (and its pid may be another's).
func (p *Process) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	if p.signalPidfd(sig) {
		return
	}
	if syscall.Kill(-p.Pid, sig) != nil {
		syscall.Kill(p.Pid, sig)
	}
}

// signalPidfd signals a fork through its pidfd, and its group while it
// has not been reaped (its pid, which names the group, is then still its
// own). It reports whether the process has a pidfd.
func (p *Process) signalPidfd(sig syscall.Signal) bool {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if p.pidfd == nil {
		return false
	}
	fd := int(p.pidfd.Fd())
	if unix.PidfdSendSignal(fd, 0, nil, 0) == nil {
		syscall.Kill(-p.Pid, sig)
	}
	unix.PidfdSendSignal(fd, sig, nil, 0)
	return true
}

// Kill ends the process at once (SIGKILL to its process group).
func (p *Process) Kill() { p.kill() }
