package worker

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gowsgi/gowsgi/internal/testpython"
)

// echoPid answers every request with the worker's pid.
const echoPid = "import os\n" +
	"def application(environ, start_response):\n" +
	"    body = str(os.getpid()).encode() + environ['wsgi.input'].read()\n" +
	"    start_response('200 OK', [('Content-Length', str(len(body)))])\n" +
	"    return [body]\n"

func writeApp(t *testing.T, name, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name+".py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// roundTrip sends one request with body and returns the response body.
func roundTrip(t *testing.T, p *Process, body []byte) string {
	t.Helper()
	var env Environ
	env.Str("REQUEST_METHOD", "POST")
	c, err := p.Send(Request{Env: env.Bytes(), Body: Body{Mem: body}, OnDone: func(bool) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abandon()
	return string(readBody(t, c))
}

// readBody reads a call's response to its end and returns the body.
func readBody(t *testing.T, c *Call) []byte {
	t.Helper()
	var got []byte
	for {
		f, err := c.Next(nil)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		switch f.Type {
		case FrameBody:
			got = append(got, f.Payload...)
		case FrameAbort:
			t.Fatalf("app failed: %s", f.Payload)
		case FrameEnd:
			return got
		}
	}
}

// TestTemplateForks checks that forked workers serve (bodies through the
// shared area too), each its own process in its own group, that a killed
// one's exit is reported by the template, and that closing the template
// leaves no worker behind.
func TestTemplateForks(t *testing.T) {
	dir := writeApp(t, "echo", echoPid)
	bodies, err := NewBodyArena("echo", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer bodies.Close()
	spec := &Spec{App: "echo", Python: testpython.Path(), Dir: dir, Module: "echo", Bodies: bodies, Preload: true}
	tmpl, err := StartTemplate(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tmpl.Close(time.Second)
	a, err := tmpl.Fork(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tmpl.Fork(spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Pid == b.Pid || a.Pid == tmpl.Pid() {
		t.Fatalf("pids: template %d, workers %d and %d", tmpl.Pid(), a.Pid, b.Pid)
	}
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err == nil {
		unix.Close(fd)
		if a.pidfd == nil {
			t.Error("the kernel has pidfds, but the fork came without one")
		}
	}
	if a.bodies != bodies {
		t.Errorf("the fork did not map the body area")
	}
	big := bytes.Repeat([]byte("x"), 200_000)
	if got := roundTrip(t, a, big); got != itoa(a.Pid)+string(big) {
		t.Errorf("worker a answered %d bytes starting %.20q", len(got), got)
	}
	if got := roundTrip(t, b, []byte("!")); got != itoa(b.Pid)+"!" {
		t.Errorf("worker b answered %q", got)
	}
	if pgid, _ := syscall.Getpgid(a.Pid); pgid != a.Pid {
		t.Errorf("worker's process group %d, want its own (%d)", pgid, a.Pid)
	}
	if err := exec.Command(testpython.Path(), "-c", "import setproctitle").Run(); err == nil {
		if cmd, _ := os.ReadFile("/proc/" + itoa(a.Pid) + "/cmdline"); !strings.HasPrefix(string(cmd), "gowsgi-worker echo #") {
			t.Errorf("worker's title %q", cmd)
		}
	}
	a.Kill()
	select {
	case <-a.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the killed fork's exit was not reported")
	}
	if err := a.ExitErr(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("exit of the killed fork: %v", err)
	}
	tmpl.Kill()
	select {
	case <-b.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("a fork outlived its template")
	}
	if _, err := tmpl.Fork(spec); err == nil {
		t.Error("a dead template forked")
	}
}

// TestTemplateRefusesThreads checks that a template whose app left a
// thread running refuses to fork, naming the thread.
func TestTemplateRefusesThreads(t *testing.T) {
	dir := writeApp(t, "threaded", "import threading, time\n"+
		"threading.Thread(target=time.sleep, args=(60,), name='poller', daemon=True).start()\n"+
		"def application(environ, start_response):\n"+
		"    start_response('200 OK', [])\n"+
		"    return [b'ok']\n")
	_, err := StartTemplate(&Spec{App: "threaded", Python: testpython.Path(), Dir: dir, Module: "threaded", Preload: true})
	var te *ThreadsError
	if !errors.As(err, &te) || !strings.Contains(te.Threads, "poller") {
		t.Fatalf("err = %v, want a *ThreadsError naming poller", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
