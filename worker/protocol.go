// Package worker runs Python WSGI worker processes for the host and speaks
// the framed protocol between them. The Python side is worker.py, embedded
// in the binary and started with the app's interpreter.
//
// Every frame is a 9-byte header, then the payload:
//
//	type    uint8   one of the Frame* constants
//	id      uint32  request id (little endian); 0 for worker-wide frames
//	length  uint32  payload length (little endian)
//
// Host to worker: FrameRequest (uint32 environ length, the environ as a
// Python marshal dict, then the whole body), FrameRequestMapped (the same,
// but a large body is in memory shared with the worker and the frame
// gives its offset and length), FrameCredit (uint32 count of
// response bytes the host has passed on to the client, reopening the
// request's flow-control window) and FrameCancel (the client went away: the
// worker stops iterating the response, calls its close() and ends it). Worker to host: FrameReady or FrameFailed
// once after start, then per request FrameStart, FrameBody..., and FrameEnd
// or FrameAbort. A response body may instead come as FrameFile: the
// worker passes the open file itself (SCM_RIGHTS) and the host sends the
// range with sendfile, so the bytes never pass through Python. A worker
// may have several requests in flight; their frames
// interleave and carry their ids.
package worker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
)

// Frame types.
const (
	FrameRequest byte = 'R' // host: a request (environ and body)
	// FrameRequestMapped is a request whose body is in the worker's shared
	// body area: uint32 environ length, environ, uint64 offset, uint64 length.
	FrameRequestMapped byte = 'M'
	FrameCredit        byte = 'C' // host: uint32 bytes of response passed on
	FrameCancel        byte = 'K' // host: the client went away; stop the response
	FrameReady         byte = 'H' // worker: the app loaded; payload is "pid", or "pid bodies" with the body area mapped
	FrameFailed        byte = 'F' // worker: the app failed to load; payload is the traceback
	FrameStart         byte = 'S' // worker: "status\r\nName: value\r\n..."
	FrameBody          byte = 'B' // worker: a chunk of response body
	FrameFile          byte = 'D' // worker: uint64 offset, uint64 length of a file whose descriptor came with the frame
	FrameEnd           byte = 'E' // worker: the response is complete
	FrameAbort         byte = 'X' // worker: the app failed; payload is the request line and traceback
	// FrameWithdraw (host, on the control socket) asks for a pipelined
	// request back; the worker answers FrameWithdrawn if it had not
	// started it, and ignores it otherwise.
	FrameWithdraw  byte = 'W'
	FrameWithdrawn byte = 'N' // worker: the request was not run; the host sends it elsewhere

	// The template's frames (preload; see template.go and worker.py).
	FrameFork    byte = 'Q' // host: fork a worker; its sockets ride along (SCM_RIGHTS)
	FrameForked  byte = 'P' // template: the child's pid, answering FrameFork of the same id
	FrameReaped  byte = 'Z' // template: a child (id: its pid) exited; int32 wait status
	FrameThreads byte = 'T' // template: threads run after the import, so it will not fork; their names
)

// HeaderSize is the length of a frame header.
const HeaderSize = 9

// MaxPayload bounds a frame's payload the host accepts from a worker.
const MaxPayload = 1 << 30

// Frame is one decoded frame.
type Frame struct {
	Type    byte
	ID      uint32
	Payload []byte
	// File is the open file of a FrameFile (its receiver closes it).
	File *os.File
}

// FileRange decodes a FrameFile payload.
func (f Frame) FileRange() (offset, length int64) {
	if len(f.Payload) < 16 {
		return 0, 0
	}
	return int64(binary.LittleEndian.Uint64(f.Payload)), int64(binary.LittleEndian.Uint64(f.Payload[8:]))
}

// PutHeader writes a frame header into b, which must hold HeaderSize bytes.
func PutHeader(b []byte, typ byte, id uint32, length int) {
	b[0] = typ
	binary.LittleEndian.PutUint32(b[1:5], id)
	binary.LittleEndian.PutUint32(b[5:9], uint32(length))
}

// AppendFrame appends a whole frame to b.
func AppendFrame(b []byte, typ byte, id uint32, payload []byte) []byte {
	var h [HeaderSize]byte
	PutHeader(h[:], typ, id, len(payload))
	return append(append(b, h[:]...), payload...)
}

// ReadFrame reads one frame from r. A payload of 4 KiB or more comes from
// the buffer pools (see PutBuffer).
func ReadFrame(r io.Reader) (Frame, error) {
	return readFrame(r, nil)
}

// directRead is the size past which the rest of a payload that a
// bufio.Reader has not buffered yet is read from the connection straight
// into the payload, instead of through the buffer (one copy less).
const directRead = 16 << 10

// readFrame reads one frame from r. If direct is not nil, r is a
// *bufio.Reader over direct.
func readFrame(r io.Reader, direct io.Reader) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Type: h[0], ID: binary.LittleEndian.Uint32(h[1:5])}
	n := binary.LittleEndian.Uint32(h[5:9])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("frame %q for request %d: payload of %d bytes is too large", f.Type, f.ID, n)
	}
	if n > 0 {
		f.Payload = getBuffer(int(n))
		p := f.Payload
		if br, ok := r.(*bufio.Reader); ok && direct != nil && len(p)-br.Buffered() >= directRead {
			got, _ := br.Read(p[:br.Buffered()]) // no system call: only what is buffered
			p = p[got:]
			r = direct
		}
		if _, err := io.ReadFull(r, p); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
	}
	return f, nil
}

// Payload buffers of 4 KiB and more come from pools by power-of-two size,
// so that large response bodies are not allocated (and zeroed, and
// scanned) per frame. The consumer of a FrameBody returns its payload
// with PutBuffer once written.
var bufPools [21]sync.Pool // 4 KiB << i

// maxPooled is the largest buffer the pools hold (4 GiB).
const maxPooled = 4096 << (len(bufPools) - 1)

func bufClass(n int) int {
	c := 0
	for size := 4096; size < n; size <<= 1 {
		c++
	}
	return c
}

// pooled reports whether a buffer of n bytes comes from the pools.
func pooled(n int) bool { return n >= 4096 && n <= maxPooled }

// GetBuffer returns a buffer of length n, from the pools when n is large;
// give it back with PutBuffer.
func GetBuffer(n int) []byte { return getBuffer(n) }

func getBuffer(n int) []byte {
	if !pooled(n) {
		return make([]byte, n)
	}
	c := bufClass(n)
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 4096<<c)
}

// PutBuffer gives back a frame payload obtained from ReadFrame; the
// caller must not use it afterwards.
func PutBuffer(b []byte) {
	c := cap(b)
	if !pooled(c) || c&(c-1) != 0 {
		return
	}
	b = b[:c]
	bufPools[bufClass(c)].Put(&b)
}
