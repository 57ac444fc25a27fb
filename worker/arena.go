package worker

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// BodySlotSize is the largest request body that goes through a shared
// body area; larger ones go through the socket.
const BodySlotSize = 1 << 20

// MinSharedBody is the smallest request body that goes through a shared
// body area; smaller ones ride in the request frame.
const MinSharedBody = largeWrite + 1

// BodyArena is memory the host shares with the workers of one app: a
// memfd that every worker maps read-only and the host read-write, cut into
// slots of BodySlotSize. The host reads a large request body from the
// client straight into a slot (or copies it there), and the request frame
// carries the slot's place (FrameRequestMapped): the body does not cross
// the socket, where it would be copied twice more and, with the kernel's
// default socket buffer of ~200 KiB, wake both sides several times. Any
// worker of the app can take the request, so a request sent again after a
// worker died keeps its slot. The file's pages are only allocated once used.
type BodyArena struct {
	f     *os.File
	slots int

	mu      sync.Mutex
	free    []int  // free slot numbers
	held    int    // slots reserved and not yet released
	closing bool   // Close was called: unmap when held reaches 0
	mem     []byte // the host's mapping; nil once unmapped
}

// NewBodyArena creates a shared body area of slots slots for app.
func NewBodyArena(app string, slots int) (*BodyArena, error) {
	fd, err := unix.MemfdCreate("gowsgi-bodies-"+app, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gowsgi-bodies")
	if err := f.Truncate(int64(slots) * BodySlotSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("size the body area: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, slots*BodySlotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map the body area: %w", err)
	}
	a := &BodyArena{f: f, slots: slots, mem: mem}
	for i := slots - 1; i >= 0; i-- {
		a.free = append(a.free, i)
	}
	return a, nil
}

// errBodiesClosed is dupFile's error once the app is being stopped.
var errBodiesClosed = errors.New("body area closed")

// dupFile returns a new descriptor of the shared file for a worker to
// inherit, or an error once the area is closed.
func (a *BodyArena) dupFile() (*os.File, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing || a.mem == nil {
		return nil, errBodiesClosed
	}
	fd, err := unix.FcntlInt(a.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup the body area: %w", err)
	}
	return os.NewFile(uintptr(fd), "gowsgi-bodies"), nil
}

// size is the length of the shared file.
func (a *BodyArena) size() int64 { return int64(a.slots) * BodySlotSize }

// Reserve takes a free slot for a body of n bytes. It returns nil if n is
// more than BodySlotSize, no slot is free or the area is closed: the body
// then goes through the socket.
func (a *BodyArena) Reserve(n int) *BodySlot {
	if a == nil || n > BodySlotSize {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing || len(a.free) == 0 {
		return nil
	}
	s := &BodySlot{a: a, idx: a.free[len(a.free)-1], n: n}
	a.free = a.free[:len(a.free)-1]
	a.held++
	s.refs.Store(1)
	return s
}

// Close releases the area once no slot is held: it is unmapped and the
// file closed (workers keep their own mappings until they exit).
func (a *BodyArena) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closing = true
	a.unmapLocked()
}

func (a *BodyArena) unmapLocked() {
	if a.closing && a.held == 0 && a.mem != nil {
		unix.Munmap(a.mem)
		a.mem = nil
		a.f.Close()
	}
}

// BodySlot is one reserved slot. It is held by whoever reserved it and by
// every request sent to a worker with it, and free when all let go.
type BodySlot struct {
	a    *BodyArena
	idx  int
	n    int
	refs atomic.Int32
}

// Bytes is the slot's memory, n bytes long; valid until Release.
func (s *BodySlot) Bytes() []byte {
	off := s.idx * BodySlotSize
	return s.a.mem[off : off+s.n : off+s.n]
}

// offset is the slot's place in the shared file.
func (s *BodySlot) offset() int64 { return int64(s.idx) * BodySlotSize }

func (s *BodySlot) hold() { s.refs.Add(1) }

// Release lets go of the slot.
func (s *BodySlot) Release() {
	if s == nil || s.refs.Add(-1) != 0 {
		return
	}
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free = append(a.free, s.idx)
	a.held--
	a.unmapLocked()
}
