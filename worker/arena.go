package worker

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// BodySlotSize is the largest request body that goes through a worker's
// shared body area; larger ones go through the socket.
const BodySlotSize = 1 << 20

// bodyArena is memory shared with one worker process (a memfd the worker
// maps read-only, the host read-write), cut into slots of BodySlotSize. A
// request body of more than largeWrite bytes is copied into a free slot
// (a memmove: no system call, no lock on the file), and the
// request frame carries its place (FrameRequestMapped): the body does not
// cross the socket, where it would be copied twice and, with the kernel's
// default socket buffer of ~200 KiB, wake both sides several times.
// A slot is freed when its request ends; the file's pages are only
// allocated once used.
type bodyArena struct {
	f     *os.File
	slots int

	mu   sync.Mutex
	free []int // free slot numbers

	mapMu sync.RWMutex // held for reading while copying into mem
	mem   []byte       // the host's mapping; nil once closed
}

func newBodyArena(app string, slots int) (*bodyArena, error) {
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
	a := &bodyArena{f: f, slots: slots, mem: mem}
	for i := slots - 1; i >= 0; i-- {
		a.free = append(a.free, i)
	}
	return a, nil
}

// size is the length of the shared file.
func (a *bodyArena) size() int64 { return int64(a.slots) * BodySlotSize }

// put copies body into a free slot and returns the slot and its offset;
// slot is -1 if none is free or the area is closed (the caller then sends
// the body through the socket).
func (a *bodyArena) put(body []byte) (slot int, off int64) {
	a.mu.Lock()
	if len(a.free) == 0 {
		a.mu.Unlock()
		return -1, 0
	}
	slot = a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	a.mu.Unlock()
	off = int64(slot) * BodySlotSize
	a.mapMu.RLock()
	ok := a.mem != nil
	if ok {
		copy(a.mem[off:off+BodySlotSize], body)
	}
	a.mapMu.RUnlock()
	if !ok {
		a.release(slot)
		return -1, 0
	}
	return slot, off
}

// release frees a slot once the worker is done with its request.
func (a *bodyArena) release(slot int) {
	if slot < 0 {
		return
	}
	a.mu.Lock()
	a.free = append(a.free, slot)
	a.mu.Unlock()
}

// close unmaps the area (once no copy is in progress) and closes the file.
func (a *bodyArena) close() {
	a.mapMu.Lock()
	defer a.mapMu.Unlock()
	if a.mem != nil {
		unix.Munmap(a.mem)
		a.mem = nil
		a.f.Close()
	}
}
