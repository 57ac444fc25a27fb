package worker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Template is a process that imported an app once (preload) and forks
// the app's workers on request: they share the pages of the import. The
// template is started like a worker (Pdeathsig: it dies with the host);
// each fork sets its own process group and dies with the template
// (PR_SET_PDEATHSIG), so that no worker outlives the host or its
// template. The template reaps its children and reports each exit, which
// closes the child's Exited.
type Template struct {
	proc *Process // the template process; its conn carries the template frames
	br   *bufio.Reader

	forkMu sync.Mutex // one fork request at a time

	mu       sync.Mutex
	pending  map[uint32]*forkReq
	children map[int]*Process
	reaped   map[int]int32 // exits reported before the fork's answer
	nextID   uint32
	forks    int
	gone     bool // the template's socket ended

	wg   sync.WaitGroup // the read loop and the waits for orphaned children
	done chan struct{}  // closed when the read loop has ended
}

type forkReq struct {
	p     *Process
	reply chan error // buffered 1
}

// ThreadsError is a template that will not fork because threads other
// than the main one run after the app's import: a fork would copy their
// locks in whatever state they are, and not the threads.
type ThreadsError struct {
	App     string
	Threads string
}

func (e *ThreadsError) Error() string {
	return fmt.Sprintf("app %q: preload refused: threads run after the import (%s); forking would copy their locks but not them, so each worker imports the app instead", e.App, e.Threads)
}

// errTemplateGone is a fork asked of a template that has exited.
var errTemplateGone = errors.New("the template process has exited")

// StartTemplate starts a template of spec's app and waits until it has
// imported the app. A failed import is a *LoadError; threads alive after
// the import a *ThreadsError.
func StartTemplate(spec *Spec) (*Template, error) {
	p, br, err := launch(spec, true)
	if err != nil {
		return nil, err
	}
	t := &Template{proc: p, br: br, pending: map[uint32]*forkReq{}, children: map[int]*Process{},
		reaped: map[int]int32{}, done: make(chan struct{})}
	t.wg.Add(1)
	go t.readLoop()
	return t, nil
}

// Pid is the template's process id.
func (t *Template) Pid() int { return t.proc.Pid }

// Exited is closed when the template has exited.
func (t *Template) Exited() <-chan struct{} { return t.proc.Exited() }

// Alive reports whether the template can still fork.
func (t *Template) Alive() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.gone
}

// Fork asks the template for a new worker of spec's app (spec gives the
// body area and the log; the app is the template's) and waits until it
// is ready, as Start does.
func (t *Template) Fork(spec *Spec) (*Process, error) {
	conn, child, err := socketPair(spec.App, "worker")
	if err != nil {
		return nil, err
	}
	ctl, childCtl, err := socketPair(spec.App, "control")
	if err != nil {
		conn.Close()
		child.Close()
		return nil, err
	}
	p := newProcess(spec, conn)
	p.ctl, p.tmpl = ctl, t
	files := []*os.File{child, childCtl}
	var bodySize int64
	if spec.Bodies != nil {
		if f, err := spec.Bodies.dupFile(); err == nil {
			files = append(files, f)
			p.bodies, bodySize = spec.Bodies, spec.Bodies.size()
		}
	}
	err = t.fork(p, files, bodySize)
	closeAll(files)
	if err != nil {
		conn.Close()
		ctl.Close()
		return nil, fmt.Errorf("app %q: fork: %w", spec.App, err)
	}
	br, err := p.awaitReady()
	if err != nil {
		return nil, err
	}
	p.run(br)
	return p, nil
}

// fork sends one fork request with files and waits for the child's pid,
// which the read loop sets in p.Pid.
func (t *Template) fork(p *Process, files []*os.File, bodySize int64) error {
	t.forkMu.Lock()
	defer t.forkMu.Unlock()
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return errTemplateGone
	}
	t.nextID++
	t.forks++
	id, n := t.nextID, t.forks
	req := &forkReq{p: p, reply: make(chan error, 1)}
	t.pending[id] = req
	t.mu.Unlock()
	var msg [HeaderSize + 12]byte
	PutHeader(msg[:], FrameFork, id, 12)
	binary.LittleEndian.PutUint32(msg[HeaderSize:], uint32(n))
	binary.LittleEndian.PutUint64(msg[HeaderSize+4:], uint64(bodySize))
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	uc := t.proc.conn.(*net.UnixConn)
	if _, _, err := uc.WriteMsgUnix(msg[:], syscall.UnixRights(fds...), nil); err != nil {
		t.mu.Lock()
		delete(t.pending, id)
		t.mu.Unlock()
		return fmt.Errorf("send the fork request: %w", err)
	}
	return <-req.reply // the read loop answers every pending request, at the latest when it ends
}

// readLoop applies the template's answers and exit reports until its
// socket ends; then the template is gone and so are its children.
func (t *Template) readLoop() {
	defer t.wg.Done()
	defer close(t.done)
	for {
		f, err := ReadFrame(t.br)
		if err != nil {
			break
		}
		switch f.Type {
		case FrameForked:
			t.forked(f.ID, f.Payload)
		case FrameReaped:
			if len(f.Payload) >= 4 {
				t.exit(int(f.ID), int32(binary.LittleEndian.Uint32(f.Payload)))
			}
		}
	}
	t.orphan()
}

// forked registers the child of fork request id, from the template's
// answer: "pid", or "pid pidfd" with the pidfd attached.
func (t *Template) forked(id uint32, answer []byte) {
	s, withFd := strings.CutSuffix(string(answer), " pidfd")
	var pidfd *os.File
	if withFd {
		if fd, ok := t.proc.fds.take(); ok {
			pidfd = os.NewFile(uintptr(fd), "pidfd")
		}
	}
	pid, perr := strconv.Atoi(s)
	t.mu.Lock()
	req := t.pending[id]
	delete(t.pending, id)
	if req == nil || perr != nil {
		t.mu.Unlock()
		if pidfd != nil {
			pidfd.Close()
		}
		if req != nil {
			req.reply <- fmt.Errorf("bad answer from the template: %w", perr)
		}
		return
	}
	req.p.Pid, req.p.pidfd = pid, pidfd
	status, early := t.reaped[pid]
	delete(t.reaped, pid)
	if !early {
		t.children[pid] = req.p
	}
	t.mu.Unlock()
	if early {
		req.p.exitWith(waitError(status))
	}
	req.reply <- nil
}

// exit records the exit of the child pid.
func (t *Template) exit(pid int, status int32) {
	t.mu.Lock()
	p := t.children[pid]
	delete(t.children, pid)
	if p == nil {
		t.reaped[pid] = status
	}
	t.mu.Unlock()
	if p != nil {
		p.exitWith(waitError(status))
	}
}

// orphan ends the template's bookkeeping once it is gone: pending forks
// fail, and each child (which its PR_SET_PDEATHSIG kills) is killed
// again and waited for by polling, since it is no child of ours.
func (t *Template) orphan() {
	t.mu.Lock()
	t.gone = true
	pending, children := t.pending, t.children
	t.pending, t.children = nil, nil
	t.mu.Unlock()
	for _, req := range pending {
		req.reply <- errTemplateGone
	}
	for pid, p := range children {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			for !ProcessGone(pid) {
				time.Sleep(5 * time.Millisecond)
			}
			p.exitWith(fmt.Errorf("killed with its template (pid %d)", t.proc.Pid))
		}()
	}
}

// ProcessGone reports whether pid has exited: no such process, or a
// zombie (reparented children are reaped by whatever init there is).
func ProcessGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// exitWith marks a forked process exited, once.
func (p *Process) exitWith(err error) {
	p.exitOnce.Do(func() {
		p.sigMu.Lock()
		if p.pidfd != nil {
			p.pidfd.Close()
			p.pidfd = nil
		}
		p.sigMu.Unlock()
		p.waitErr = err
		close(p.exited)
	})
}

// waitError describes a wait status as exec does (nil for exit status 0).
func waitError(status int32) error {
	ws := syscall.WaitStatus(status)
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	}
	return fmt.Errorf("wait status %#x", status)
}

// Close stops the template (its workers, if any are left, die with it)
// and waits for it and its bookkeeping to end.
func (t *Template) Close(grace time.Duration) {
	t.proc.Close(grace)
	t.proc.conn.Close()
	t.proc.ctl.Close()
	<-t.done
	t.wg.Wait()
}

// Kill ends the template at once (tests: a template that dies).
func (t *Template) Kill() { t.proc.kill() }
