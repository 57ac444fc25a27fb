// Package rawio reads and writes a socket with raw system calls, through
// the runtime's poller (syscall.RawConn), so that they do not wake Go's
// system monitor.
//
// A system call made the usual way (syscall.Syscall, which net.Conn's
// Read and Write use) enters the runtime's entersyscall, and the first
// one after the process sat idle finds the system monitor (sysmon)
// sleeping deeply and wakes it; sysmon then polls every 20 µs until the
// process is idle again. The host idles whenever its Python workers are
// the slow part, so that is a cycle of wake-ups per request: with Flask,
// ~30% of the host's and worker's CPU per request on a 2-CPU machine
// (bench/RESULTS.md). A raw system call skips entersyscall. That is
// right only for calls that never block: here, reads and writes of
// non-blocking sockets, which return EAGAIN instead, when the poller
// waits for the socket as it does for net.Conn (with its deadlines).
package rawio

import (
	"io"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Of returns the raw connection of c (a *net.TCPConn, *net.UnixConn...),
// or nil if it has none.
func Of(c any) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// op is one Read or Write: its buffer and its outcome.
type op struct {
	p    []byte
	oob  []byte // RecvMsg's control buffer
	n    int
	oobn int
	err  error
}

// Read reads into p as net.Conn's Read does: at least one byte, or io.EOF,
// or an error (the poller's on a deadline or a closed connection).
func Read(rc syscall.RawConn, p []byte) (int, error) {
	n, _, err := RecvMsg(rc, p, nil)
	if n == 0 && err == nil && len(p) > 0 {
		err = io.EOF
	}
	return n, err
}

// call makes a raw system call again while a signal interrupts it
// (EINTR); done is false if the socket is not ready (EAGAIN).
func call(trap, a1, a2, a3 uintptr) (r uintptr, e unix.Errno, done bool) {
	for {
		r, _, e = unix.RawSyscall(trap, a1, a2, a3)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, e, false
		case 0:
			return r, 0, true
		}
		return 0, e, true
	}
}

// Write writes all of p, as net.Conn's Write does, waiting while the
// socket's buffer is full.
func Write(rc syscall.RawConn, p []byte) (int, error) {
	o := op{p: p}
	if err := rc.Write(o.write); err != nil {
		return o.n, err
	}
	return o.n, o.err
}

// write writes what the socket takes of o.p; false: it took all it could
// and more is left (EAGAIN).
func (o *op) write(fd uintptr) bool {
	for len(o.p) > 0 {
		r, e, done := call(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&o.p[0])), uintptr(len(o.p)))
		switch {
		case !done:
			return false
		case e != 0:
			o.err = e
			return true
		}
		o.n += int(r)
		o.p = o.p[r:]
	}
	return true
}

// RecvMsg reads into p, and the control messages that come with the
// bytes (file descriptors, SCM_RIGHTS, received close-on-exec) into oob
// (nil: none),
// as net.UnixConn's ReadMsgUnix does. At the end of the stream it returns
// 0 bytes and no error.
func RecvMsg(rc syscall.RawConn, p, oob []byte) (n, oobn int, err error) {
	if len(p) == 0 {
		return 0, 0, nil
	}
	o := op{p: p, oob: oob}
	if err := rc.Read(o.recvmsg); err != nil {
		return 0, 0, err
	}
	return o.n, o.oobn, o.err
}

// recvmsg is one try of RecvMsg; false: nothing yet (EAGAIN).
func (o *op) recvmsg(fd uintptr) bool {
	iov := unix.Iovec{Base: &o.p[0]}
	iov.SetLen(len(o.p))
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1}
	if len(o.oob) > 0 {
		msg.Control = &o.oob[0]
		msg.SetControllen(len(o.oob))
	}
	r, e, done := call(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC)
	switch {
	case !done:
		return false
	case e != 0:
		o.err = e
		return true
	}
	o.n, o.oobn = int(r), int(msg.Controllen)
	return true
}
