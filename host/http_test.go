package host

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const httpConfig = `
listeners: ["127.0.0.1:0"]
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": basic
`

// rawConn is a client connection that speaks HTTP/1.x by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (th *testHost) dial() *rawConn {
	th.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(th.URL, "http://"))
	if err != nil {
		th.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	th.t.Cleanup(func() { c.Close() })
	return &rawConn{t: th.t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// response reads one response (to a request with method) and its whole body.
func (rc *rawConn) response(method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func TestStreamingReachesClientAsYielded(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	dir := t.TempDir()
	rc := th.dial()
	rc.send("GET /stream-wait?dir=" + dir + " HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if te := resp.TransferEncoding; len(te) != 1 || te[0] != "chunked" {
		t.Errorf("streamed HTTP/1.1 response: Transfer-Encoding %v, want chunked", te)
	}
	// The app is now waiting for "go": the first chunk must already be here.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk while the app waits: %q %v", line, err)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	rest, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(rest), "second") {
		t.Errorf("second chunk: %q", rest)
	}
}

func TestResponseLength(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	// A single-item list gets a Content-Length; a generator is chunked on
	// HTTP/1.1 and close-delimited on HTTP/1.0.
	rc := th.dial()
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /generator HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body, err := rc.response("GET")
	if err != nil || resp.ContentLength != int64(len("basic ok")) || body != "basic ok" {
		t.Errorf("list response: %v %q %v", resp.ContentLength, body, err)
	}
	resp, body, err = rc.response("GET")
	if err != nil || len(resp.TransferEncoding) == 0 || body != "generated" {
		t.Errorf("generator on HTTP/1.1: TE %v %q %v", resp.TransferEncoding, body, err)
	}
	rc = th.dial()
	rc.send("GET /generator HTTP/1.0\r\n\r\n")
	all, _ := io.ReadAll(rc.br)
	if !strings.HasSuffix(string(all), "\r\n\r\ngenerated") || strings.Contains(string(all), "Transfer-Encoding") {
		t.Errorf("generator on HTTP/1.0: %q", all)
	}

	// Shorter than declared: the connection is closed, the client sees the
	// body end early. Longer: cut to the declared length (and logged).
	rc = th.dial()
	rc.send("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body, err := rc.response("GET"); err == nil {
		t.Errorf("short body: got %q without error, want the connection cut", body)
	}
	rc = th.dial()
	rc.send("GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body, err := rc.response("GET"); err != nil || body != "abc" {
		t.Errorf("long body: %q %v, want it cut to \"abc\"", body, err)
	}
	waitFor(t, func() bool { return strings.Contains(th.Logs.String(), "more body than its Content-Length") }, "the cut in the log")
	if _, body, err := rc.response("GET"); err != nil || body != "basic ok" {
		t.Errorf("request after the cut body on the same connection: %q %v", body, err)
	}
}

// TestOverlongBodyCutToLength: a body longer than its Content-Length goes
// out cut to exactly that length, as one chunk or across chunks, and the
// connection serves the next request.
func TestOverlongBodyCutToLength(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	tests := []struct{ name, query, want string }{
		{"one chunk", "cl=5&parts=abcdefgh", "abcde"},
		{"the chunk that crosses", "cl=4&parts=ab,cdefg,hij", "abcd"},
		{"a length in characters, UTF-8 bytes sent", "cl=4&parts=h%C3%A9l%C3%A0", "h\u00e9l"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := th.dial()
			rc.send("GET /overlong?" + tt.query + " HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, body, err := rc.response("GET"); err != nil || body != tt.want {
				t.Errorf("overlong body: %q %v, want %q", body, err, tt.want)
			}
			if _, body, err := rc.response("GET"); err != nil || body != "basic ok" {
				t.Errorf("next request on the connection: %q %v", body, err)
			}
		})
	}
}

// TestNoContentTypeGuessed: a response without Content-Type goes out
// without one, whatever its body looks like.
func TestNoContentTypeGuessed(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	for _, body := range []string{"<html><body>hi</body></html>", `{"a": 1}`} {
		resp, err := http.Get(th.URL + "/untyped?body=" + url.QueryEscape(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct, ok := resp.Header["Content-Type"]; ok || string(got) != body {
			t.Errorf("untyped %q: Content-Type %q added (body %q)", body, ct, got)
		}
	}
}

func TestHeadAndBodilessStatuses(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	rc := th.dial()
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\nGET /status?code=304 HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
	get, _, err := rc.response("GET")
	if err != nil {
		t.Fatal(err)
	}
	head, body, err := rc.response("HEAD")
	if err != nil || body != "" || head.Header.Get("Content-Length") != get.Header.Get("Content-Length") ||
		head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
		t.Errorf("HEAD: %v %q %v, want GET's headers and no body", head.Header, body, err)
	}
	for _, code := range []int{204, 304} {
		resp, body, err := rc.response("GET")
		if err != nil || resp.StatusCode != code || body != "" || resp.Header.Get("X-Code") == "" {
			t.Errorf("%d: %v %q %v", code, resp, body, err)
		}
	}
	// The connection is still in sync: the last response is the pid's.
	if resp, body, err := rc.response("GET"); err != nil || resp.StatusCode != 200 || body == "" {
		t.Errorf("after bodiless responses: %v %q %v", resp, body, err)
	}
}

func TestRequestFeatures(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	t.Run("expect 100-continue", func(t *testing.T) {
		rc := th.dial()
		rc.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		line, _ := rc.br.ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("want 100 Continue before sending the body, got %q", line)
		}
		rc.br.ReadString('\n') // blank line
		rc.send("hello")
		if resp, body, err := rc.response("POST"); err != nil || resp.StatusCode != 200 || body != "hello" {
			t.Errorf("after 100-continue: %v %q %v", resp, body, err)
		}
	})
	t.Run("pipelined requests in order", func(t *testing.T) {
		rc := th.dial()
		var reqs strings.Builder
		for i := range 5 {
			fmt.Fprintf(&reqs, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nr%d", i)
		}
		rc.send(reqs.String())
		for i := range 5 {
			if _, body, err := rc.response("POST"); err != nil || body != fmt.Sprintf("r%d", i) {
				t.Errorf("pipelined response %d: %q %v", i, body, err)
			}
		}
	})
	t.Run("chunked request body", func(t *testing.T) {
		rc := th.dial()
		rc.send("POST /environ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
		_, body, err := rc.response("POST")
		if err != nil || !strings.Contains(body, `"body_len": 5`) || !strings.Contains(body, `"wsgi.input_terminated": true`) ||
			!strings.Contains(body, `"CONTENT_LENGTH": "5"`) || strings.Contains(body, `"HTTP_TRANSFER_ENCODING"`) {
			t.Errorf("chunked body: %s %v", body, err)
		}
	})
	t.Run("absolute-form target and double slashes", func(t *testing.T) {
		rc := th.dial()
		rc.send("GET http://example.com:8080/environ//x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
		_, body, err := rc.response("GET")
		if err != nil || !strings.Contains(body, `"PATH_INFO": "/environ//x"`) || !strings.Contains(body, `"QUERY_STRING": "q=1"`) ||
			!strings.Contains(body, `"HTTP_HOST": "example.com:8080"`) {
			t.Errorf("absolute form: %s %v", body, err)
		}
		rc.send("GET //environ/a//b/../c HTTP/1.1\r\nHost: x\r\n\r\n")
		_, body, err = rc.response("GET")
		if err != nil || !strings.Contains(body, `"not found: //environ/a//b/../c"`) && !strings.Contains(body, `not found: //environ/a//b/../c`) {
			t.Errorf("// path: %s %v", body, err)
		}
	})
}

func TestFileWrapper(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	data := make([]byte, 3<<20+7)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(th.URL + "/file?offset=100&path=" + path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data[100:]) || resp.ContentLength != int64(len(data)-100) {
		t.Errorf("file_wrapper: %d bytes (Content-Length %d), want %d and equal", len(got), resp.ContentLength, len(data)-100)
	}
	if !strings.Contains(th.Logs.String(), "response body sent from the file") {
		t.Error("the file did not come as a file descriptor (no sendfile)")
	}
	// HEAD of a file response: headers only, and the file is not leaked.
	req, _ := http.NewRequest("HEAD", th.URL+"/file?path="+path, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD file: %v %v", resp, err)
	}
	// A file-like that is not a real file is read in blocks.
	code, body := th.get("/filelike")
	if code != 200 || body != strings.Repeat("0123456789", 1000) {
		t.Errorf("filelike: %d, %d bytes", code, len(body))
	}
}
