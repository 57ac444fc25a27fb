package worker

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gowsgi/gowsgi/internal/testpython"
)

func TestBodyArenaSlots(t *testing.T) {
	a, err := NewBodyArena("test", 2)
	if err != nil {
		t.Fatal(err)
	}
	if s := a.Reserve(BodySlotSize + 1); s != nil {
		t.Errorf("Reserve(BodySlotSize+1) = slot %d, want none", s.idx)
	}
	s1, s2 := a.Reserve(10), a.Reserve(BodySlotSize)
	if s1 == nil || s2 == nil || s1.idx == s2.idx {
		t.Fatalf("two slots of two: %v %v", s1, s2)
	}
	if len(s1.Bytes()) != 10 || len(s2.Bytes()) != BodySlotSize || cap(s1.Bytes()) != 10 {
		t.Errorf("slot lengths %d, %d (cap %d)", len(s1.Bytes()), len(s2.Bytes()), cap(s1.Bytes()))
	}
	copy(s1.Bytes(), "0123456789")
	if s := a.Reserve(1); s != nil {
		t.Errorf("a third slot of two")
	}

	// A slot held by a request too stays taken until both let go.
	s1.hold()
	s1.Release()
	if s := a.Reserve(1); s != nil {
		t.Errorf("slot reused while a request holds it")
	}
	s1.Release()
	s3 := a.Reserve(5)
	if s3 == nil || s3.idx != s1.idx {
		t.Fatalf("released slot not reused: %v", s3)
	}
	if string(s3.Bytes()) != "01234" {
		t.Errorf("slot memory %q", s3.Bytes())
	}

	// Close waits for the held slots before unmapping.
	a.Close()
	if s := a.Reserve(1); s != nil {
		t.Errorf("Reserve after Close gave a slot")
	}
	s3.Bytes()[0] = 'x' // still mapped: s3 is held
	s3.Release()
	if a.mem == nil {
		t.Errorf("unmapped while a slot is held")
	}
	s2.Release()
	if a.mem != nil {
		t.Errorf("still mapped after Close and the last release")
	}
	var nilSlot *BodySlot
	nilSlot.Release() // no body slot: nothing to do
	var nilArena *BodyArena
	if s := nilArena.Reserve(1); s != nil {
		t.Errorf("a nil arena gave a slot")
	}
}

// TestSendBodyWays sends a body every way Send knows to a real worker
// whose app echoes wsgi.input, and checks what comes back.
func TestSendBodyWays(t *testing.T) {
	dir := t.TempDir()
	app := "def application(environ, start_response):\n" +
		"    body = environ['wsgi.input'].read()\n" +
		"    start_response('200 OK', [('Content-Length', str(len(body)))])\n" +
		"    return [body]\n"
	if err := os.WriteFile(filepath.Join(dir, "echo.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	bodies, err := NewBodyArena("echo", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer bodies.Close()
	other, err := NewBodyArena("other", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A worker that cannot map the area (here mmap fails on purpose) says
	// so when ready, and is sent bodies through the socket.
	failing := t.TempDir()
	if err := os.WriteFile(filepath.Join(failing, "sitecustomize.py"), []byte(
		"import mmap\ndef _fail(*a, **k):\n    raise OSError(12, 'no memory (test)')\nmmap.mmap = _fail\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(b *BodyArena, env ...string) *Process {
		spec := &Spec{App: "echo", Python: testpython.Path(), Dir: dir, Module: "echo", Bodies: b}
		if len(env) == 2 {
			spec.Env = map[string]string{env[0]: env[1]}
		}
		p, err := Start(spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(time.Second) })
		return p
	}
	mapped, unmapped := start(bodies), start(nil)
	cannotMap := start(bodies, "PYTHONPATH", failing)
	if mapped.bodies != bodies || cannotMap.bodies != nil {
		t.Fatalf("body areas: %p and %p, want %p and nil", mapped.bodies, cannotMap.bodies, bodies)
	}
	body := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 31 / 7)
		}
		return b
	}
	inSlot := func(a *BodyArena, n int) *BodySlot {
		s := a.Reserve(n)
		if s == nil {
			t.Fatal("no free slot")
		}
		copy(s.Bytes(), body(n))
		return s
	}
	tests := []struct {
		name string
		p    *Process
		mem  []byte
		slot *BodySlot
		n    int
	}{
		{"small, in the frame", mapped, body(1000), nil, 1000},
		{"large, copied into the area", mapped, body(300_000), nil, 300_000},
		{"large, read into a slot", mapped, nil, inSlot(bodies, BodySlotSize), BodySlotSize},
		{"slot, worker without the area", unmapped, nil, inSlot(bodies, 200_000), 200_000},
		{"slot of another area", mapped, nil, inSlot(other, 70_000), 70_000},
		{"slot, worker that could not map the area", cannotMap, nil, inSlot(bodies, 100_000), 100_000},
		{"large, worker that could not map the area", cannotMap, body(500_000), nil, 500_000},
		{"large, no area", unmapped, body(2 << 20), nil, 2 << 20},
	}
	var env Environ
	env.Str("REQUEST_METHOD", "POST")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			c, err := tt.p.Send(Request{Env: env.Bytes(), Body: Body{Mem: tt.mem, Slot: tt.slot}, OnDone: func(bool) { close(done) }})
			tt.slot.Release() // the caller's hold; the call keeps its own
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abandon()
			got := readBody(t, c)
			<-done
			if !bytes.Equal(got, body(tt.n)) {
				t.Errorf("echoed %d bytes, want %d (equal: false)", len(got), tt.n)
			}
		})
	}
	// Every slot is free again.
	for range 4 {
		if bodies.Reserve(1) == nil {
			t.Fatal("a slot was not released")
		}
	}
}
