package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gowsgi/gowsgi/internal/testpython"
)

// TestEnvironDecodesInPython checks the marshal encoding with Python's own
// marshal.loads: every str comes back as the latin-1 decoding of the bytes.
func TestEnvironDecodesInPython(t *testing.T) {
	entries := []struct{ k, v string }{
		{"EMPTY", ""},
		{"ASCII", "hello world"},
		{"LONG", strings.Repeat("x", 300)},
		{"LATIN1", "caf\xc3\xa9 \xff\x80"},
		{"LONG_LATIN1", strings.Repeat("\xe9", 70000)},
		{"NUL", "a\x00b"},
	}
	var e Environ
	for _, en := range entries {
		e.Str(en.k, en.v)
	}
	e.Bool("T", true)
	e.Bool("F", false)
	cmd := exec.Command(testpython.Path(), "-c", `
import json, marshal, sys
d = marshal.loads(sys.stdin.buffer.read())
json.dump({k: (v.encode("latin-1").hex() if isinstance(v, str) else v) for k, v in d.items()}, sys.stdout)
`)
	cmd.Stdin = bytes.NewReader(e.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if want := []byte(en.v); got[en.k] != bytesHex(want) {
			t.Errorf("%s: python decoded %v, want the bytes %x", en.k, got[en.k], want)
		}
	}
	if got["T"] != true || got["F"] != false {
		t.Errorf("bools: %v %v", got["T"], got["F"])
	}
	if len(got) != len(entries)+2 {
		t.Errorf("python saw %d keys, want %d", len(got), len(entries)+2)
	}
}

func bytesHex(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func TestEmptyEnviron(t *testing.T) {
	var e Environ
	if got := e.Bytes(); string(got) != "{0" {
		t.Errorf("empty environ = %q", got)
	}
}

func TestFrames(t *testing.T) {
	tests := []struct {
		name    string
		wire    []byte
		want    Frame
		wantErr error
	}{
		{"empty payload", AppendFrame(nil, FrameEnd, 7, nil), Frame{Type: FrameEnd, ID: 7}, nil},
		{"body", AppendFrame(nil, FrameBody, 1<<31, []byte("abc")), Frame{Type: FrameBody, ID: 1 << 31, Payload: []byte("abc")}, nil},
		{"truncated header", []byte{'B', 1, 0}, Frame{}, io.ErrUnexpectedEOF},
		{"truncated payload", AppendFrame(nil, FrameBody, 1, []byte("abcdef"))[:HeaderSize+2], Frame{}, io.ErrUnexpectedEOF},
		{"nothing", nil, Frame{}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ReadFrame(bytes.NewReader(tt.wire))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if f.Type != tt.want.Type || f.ID != tt.want.ID || !bytes.Equal(f.Payload, tt.want.Payload) {
				t.Errorf("frame = %+v, want %+v", f, tt.want)
			}
		})
	}
	var big [HeaderSize]byte
	PutHeader(big[:], FrameBody, 1, MaxPayload+1)
	if _, err := ReadFrame(bytes.NewReader(big[:])); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("oversized frame: %v", err)
	}
}

// TestLoadError checks that a worker whose app fails to import reports the
// traceback, and that the reason is its last line.
func TestLoadError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/bad.py", []byte("import no_such_module_xyz\n"), 0o644)
	_, err := Start(&Spec{App: "bad", Python: testpython.Path(), Dir: dir, Module: "bad"})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want *LoadError", err)
	}
	if !strings.Contains(le.Traceback, "Traceback") || le.Reason() != "ModuleNotFoundError: No module named 'no_such_module_xyz'" {
		t.Errorf("reason %q, traceback:\n%s", le.Reason(), le.Traceback)
	}
}

// TestStartAbandoned checks that ending Spec.Context during an import
// kills the importing process and makes Start return at once.
func TestStartAbandoned(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/slow.py", []byte("import os, time\nopen('importing', 'w').close()\ntime.sleep(60)\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, err := os.Stat(dir + "/importing"); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	p, err := Start(&Spec{App: "slow", Python: testpython.Path(), Dir: dir, Module: "slow", Context: ctx})
	if p != nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("Start = %v, %v; want the start abandoned", p, err)
	}
}

func BenchmarkEnviron(b *testing.B) {
	var e Environ
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		e.Str("REQUEST_METHOD", "GET")
		e.Str("SCRIPT_NAME", "/app")
		e.Str("PATH_INFO", "/users/42")
		e.Str("QUERY_STRING", "a=1&b=2")
		e.Str("SERVER_PROTOCOL", "HTTP/1.1")
		e.Str("HTTP_HOST", "localhost:8000")
		e.Str("HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)")
		e.Str("HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		e.Str("HTTP_COOKIE", "session=0123456789abcdef; theme=dark")
		e.Bool("wsgi.input_terminated", true)
		e.Bytes()
	}
}

func BenchmarkReadFrame(b *testing.B) {
	wire := AppendFrame(nil, FrameBody, 1, bytes.Repeat([]byte("x"), 512))
	r := bytes.NewReader(wire)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(wire)
		ReadFrame(r)
	}
}

func TestBufferPool(t *testing.T) {
	// Past the largest class (4 GiB) buffers are allocated on their own:
	// asked, not allocated, here.
	for n, want := range map[int]bool{4095: false, 4096: true, maxPooled: true, maxPooled + 1: false} {
		if pooled(n) != want {
			t.Errorf("pooled(%d) = %v, want %v", n, !want, want)
		}
	}
	if c := bufClass(maxPooled); c != len(bufPools)-1 {
		t.Errorf("bufClass(%d) = %d, want the last pool, %d", maxPooled, c, len(bufPools)-1)
	}
	for _, n := range []int{1, 4095, 4096, 4097, 65536, 100000, 1 << 20} {
		b := getBuffer(n)
		if len(b) != n {
			t.Fatalf("getBuffer(%d) has length %d", n, len(b))
		}
		PutBuffer(b)
		if b2 := getBuffer(n); len(b2) != n {
			t.Fatalf("second getBuffer(%d) has length %d", n, len(b2))
		}
	}
	PutBuffer(make([]byte, 5000)) // not a pool size: ignored
	if b := getBuffer(4500); cap(b) != 8192 {
		t.Errorf("getBuffer(4500) capacity %d, want the 8 KiB class", cap(b))
	}
}

// TestReadFrameDirect reads frames of every size through a small bufio
// buffer over a connection that returns data in odd pieces: large payloads
// bypass the buffer, and every frame must come out whole and in order.
func TestReadFrameDirect(t *testing.T) {
	sizes := []int{0, 1, 9, 4095, 4096, 4097, 8191, 100_000, 3, 70_000, 0, 5000}
	var wire []byte
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i*7 + j)
		}
		wire = AppendFrame(wire, FrameBody, uint32(i+1), p)
	}
	for _, piece := range []int{1, 5, 4096, 10_000, 1 << 20} {
		raw := &pieceReader{data: wire, piece: piece}
		br := bufio.NewReaderSize(raw, 4096)
		for i, n := range sizes {
			f, err := readFrame(br, raw)
			if err != nil {
				t.Fatalf("pieces of %d: frame %d: %v", piece, i, err)
			}
			if f.ID != uint32(i+1) || len(f.Payload) != n {
				t.Fatalf("pieces of %d: frame %d: id %d, %d bytes; want id %d, %d bytes", piece, i, f.ID, len(f.Payload), i+1, n)
			}
			for j, c := range f.Payload {
				if c != byte(i*7+j) {
					t.Fatalf("pieces of %d: frame %d: byte %d is %d", piece, i, j, c)
				}
			}
		}
		if _, err := readFrame(br, raw); err != io.EOF {
			t.Errorf("pieces of %d: after the last frame: %v, want EOF", piece, err)
		}
	}
}

// pieceReader returns its data at most piece bytes per Read.
type pieceReader struct {
	data  []byte
	piece int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.piece)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestHeaderChecksRemembered runs worker.py's header validation twice on
// each header list: the second time may come from its caches, and must
// give the same verdict and the same encoded head.
func TestHeaderChecksRemembered(t *testing.T) {
	script := `
import json, sys
g = {"__name__": "gowsgi_worker"}
exec(compile(sys.stdin.read(), "worker.py", "exec"), g)
class S(str): pass
class Liar(str):
    def isprintable(self): return True
    def isascii(self): return True
class CI(str):
    def __eq__(self, other): return str.lower(self) == str.lower(other)
    def __hash__(self): return hash(str.lower(self))
class NoHash(str):
    def __eq__(self, other): return True
    __hash__ = None
ok_list = [("Content-Type", "text/plain"), ("Content-Length", "5")]
cases = [
    ok_list,
    [("Content-Type", "text/plain")],
    [("X", "a\nb")],
    [("Bad Name", "v")],
    [("Content-Length", "5"), ("content-length", "5")],
    [("Content-Length", "five")],
    [["X", "v"]],
    [("X", b"v")],
    [("X", "v")],
    [(S("X"), "v")],
    [("Y", S("w"))],
    list(ok_list[:1]) + [("X", "\x00")],
    [("X", Liar("a\r\nSet-Cookie: x=1"))],
    [("X-Token", "abc")],
    [("X-Token", CI("ABC"))],
    [("Z", NoHash("z"))],
]
out = []
for headers in cases:
    for attempt in range(2):
        try:
            r = g["Response"](1, [], None)
            r.start_response("200 OK", headers)
            out.append([attempt, "ok", r.has_length, r.head().decode("latin-1")])
        except g["WSGIError"] as e:
            out.append([attempt, "error", str(e)])
# One-off header lists do not grow the caches past their bound, and a list
# used after them is remembered again.
for i in range(1500):
    r = g["Response"](1, [], None)
    r.start_response("200 OK", [("X-Id", str(i))])
    r.head()
r = g["Response"](1, [], None)
r.start_response("200 OK", ok_list)
r.head()
sizes = [len(g["_good_lists"]), len(g["_heads"]), len(g["_good_names"])]
out.append(["caches", max(sizes) <= g["CACHE_SIZE"], tuple(ok_list) in g["_good_lists"]])
json.dump(out, sys.stdout)
`
	var got [][]any
	runWithProgram(t, script, &got)
	want := []string{
		"ok true 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n",
		"ok false 200 OK\r\nContent-Type: text/plain\r\n",
		"error",
		"error",
		"error",
		"error",
		"error",
		"error",
		"ok false 200 OK\r\nX: v\r\n",
		"ok false 200 OK\r\nX: v\r\n", // a str subclass is a str
		"ok false 200 OK\r\nY: w\r\n",
		"error",
		"error", // its own isprintable does not let CR LF through
		"ok false 200 OK\r\nX-Token: abc\r\n",
		"ok false 200 OK\r\nX-Token: ABC\r\n", // not the head of the equal-by-its-__eq__ list
		"ok false 200 OK\r\nZ: z\r\n",
	}
	if len(got) != 2*len(want)+1 {
		t.Fatalf("got %d results, want %d: %v", len(got), 2*len(want)+1, got)
	}
	if last := got[len(got)-1]; last[1] != true || last[2] != true {
		t.Errorf("caches: bounded %v, recurring list remembered %v", last[1], last[2])
	}
	for i, w := range want {
		for attempt := range 2 {
			r := got[2*i+attempt]
			var s string
			if r[1] == "ok" {
				s = fmt.Sprintf("ok %v %v", r[2], r[3])
			} else {
				s = "error"
			}
			if s != w {
				t.Errorf("case %d, attempt %d: %q (%v), want %q", i, attempt+1, s, r, w)
			}
		}
	}
}

// TestWithdrawVerdicts: the worker gives back (FrameWithdrawn) only a
// request that has not begun; not one running, and not one that ended
// (its frames may still be on their way: an answer would overtake them
// and have the host run it twice); a request given back is skipped when
// it arrives.
func TestWithdrawVerdicts(t *testing.T) {
	script := `
import json, sys
g = {"__name__": "gowsgi_worker"}
exec(compile(sys.stdin.read(), "worker.py", "exec"), g)
sent = []
class Sock:
    def sendall(self, b): sent.append(bytes(b))
    def sendmsg(self, bufs): n = sum(len(b) for b in bufs); sent.append(b"".join(bytes(b) for b in bufs)); return n
conn = g["Conn"](Sock())
def answered(rid):
    return any(s[:1] == b"N" and int.from_bytes(s[1:5], "little") == rid for s in sent)
out = {}
conn.begin(1)                      # running
conn.withdraw(1); out["running"] = answered(1)
conn.begin(2); conn.finish(2)      # ended, frames maybe unsent
conn.withdraw(2); out["ended"] = answered(2)
conn.withdraw(3); out["not begun"] = answered(3)
out["skipped when it arrives"] = conn.begin(3) == g["WITHDRAWN"]
json.dump(out, sys.stdout)
`
	var got map[string]bool
	runWithProgram(t, script, &got)
	want := map[string]bool{"running": false, "ended": false, "not begun": true, "skipped when it arrives": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// runWithProgram runs a Python script that reads the worker program from
// stdin (and executes it), and decodes the JSON it prints into out.
func runWithProgram(t *testing.T, script string, out any) {
	t.Helper()
	cmd := exec.Command(testpython.Path(), "-c", script)
	cmd.Stdin = strings.NewReader(Program())
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}
