package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns the two ends of a connected unix stream socket pair.
func pair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

func TestReadWrite(t *testing.T) {
	a, b := pair(t)
	ra, rb := Of(a), Of(b)
	if n, err := Write(ra, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	buf := make([]byte, 16)
	if n, err := Read(rb, buf); string(buf[:n]) != "hello" || err != nil {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	if n, err := Read(rb, nil); n != 0 || err != nil {
		t.Errorf("Read of nothing: %d, %v", n, err)
	}
	a.Close()
	if n, err := Read(rb, buf); n != 0 || err != io.EOF {
		t.Errorf("Read after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

// TestWriteWaitsForRoom: a write larger than the socket's buffers goes
// out whole, waiting (in the poller) while the reader is slow.
func TestWriteWaitsForRoom(t *testing.T) {
	a, b := pair(t)
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	got := make(chan []byte)
	go func() {
		var all []byte
		buf := make([]byte, 64<<10)
		for len(all) < len(want) {
			time.Sleep(time.Millisecond)
			n, err := Read(Of(b), buf)
			if err != nil {
				break
			}
			all = append(all, buf[:n]...)
		}
		got <- all
	}()
	if n, err := Write(Of(a), want); n != len(want) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if !bytes.Equal(<-got, want) {
		t.Error("the reader got other bytes than were written")
	}
}

// TestReadDeadline: the connection's read deadline applies, with the
// error net.Conn gives.
func TestReadDeadline(t *testing.T) {
	_, b := pair(t)
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := Read(Of(b), make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
}

// TestRecvMsgPassesFiles: a descriptor sent with the bytes arrives in
// oob, close-on-exec, as with net.UnixConn.ReadMsgUnix.
func TestRecvMsgPassesFiles(t *testing.T) {
	a, b := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, _, err := a.WriteMsgUnix([]byte("file"), syscall.UnixRights(int(w.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, syscall.CmsgSpace(4))
	n, oobn, err := RecvMsg(Of(b), buf, oob)
	if err != nil || string(buf[:n]) != "file" || oobn == 0 {
		t.Fatalf("RecvMsg: %q, oob %d, %v", buf[:n], oobn, err)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages: %v, %v", msgs, err)
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v, %v", fds, err)
	}
	defer syscall.Close(fds[0])
	flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("the received descriptor is not close-on-exec: flags %#x, %v", flags, err)
	}
	a.Close()
	if n, _, err := RecvMsg(Of(b), buf, oob); n != 0 || err != nil {
		t.Errorf("RecvMsg at the end of the stream: %d, %v; want 0, nil", n, err)
	}
}
