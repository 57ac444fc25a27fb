package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

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
	for _, n := range []int{1, 4095, 4096, 4097, 65536, 100000, 1 << 20, 4096<<20 + 1} {
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
