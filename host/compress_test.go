package host

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestNegotiate(t *testing.T) {
	tests := []struct{ accept, want string }{
		{"gzip", "gzip"},
		{"gzip, deflate, br, zstd", "br"},
		{"br;q=0.5, gzip;q=0.9", "gzip"},
		{"zstd", "zstd"},
		{"GZIP", "gzip"},
		{"*", "br"},
		{"*;q=0.1, gzip;q=0", "br"},
		{"gzip;q=0", ""},
		{"identity", ""},
		{"", ""},
		{"gzip;q=nonsense", ""},
	}
	for _, tt := range tests {
		got := ""
		if e := negotiate([]string{tt.accept}); e != nil {
			got = e.name
		}
		if got != tt.want {
			t.Errorf("Accept-Encoding %q: %q, want %q", tt.accept, got, tt.want)
		}
	}
}

const compressConfig = `
listeners: ["127.0.0.1:0"]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}}
  plain: {module: basic, dir: {{apps}}, python: {{python}}, compress: false}
mounts:
  "/": app
  "/plain": plain
compress: true
`

// decode undoes a Content-Encoding.
func decode(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch coding {
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(body))
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(body))
		if err == nil {
			defer d.Close()
			r = d
		}
	default:
		return body
	}
	if err != nil {
		t.Fatalf("%s: %v", coding, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return out
}

// rawGet sends a GET (or HEAD) with headers and returns the response with
// its body as sent (not decoded by the client).
func (th *testHost) rawGet(method, path string, header map[string]string) (*http.Response, []byte) {
	th.t.Helper()
	req, _ := http.NewRequest(method, th.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		th.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestCompression: responses are compressed as the client accepts,
// decode to the app's bytes, and are left alone where they must be.
func TestCompression(t *testing.T) {
	t.Parallel()
	th := startHost(t, compressConfig)
	tests := []struct {
		name, method, path, accept, coding string
	}{
		{"gzip", "GET", "/text?n=5000&etag=%22abc%22", "gzip", "gzip"},
		{"brotli preferred", "GET", "/text?n=5000", "gzip, deflate, br, zstd", "br"},
		{"zstd", "GET", "/text?n=5000", "zstd", "zstd"},
		{"q-values", "GET", "/text?n=5000", "br;q=0.2, gzip;q=0.8", "gzip"},
		{"not accepted", "GET", "/text?n=5000", "identity", ""},
		{"no Accept-Encoding", "GET", "/text?n=5000", "", ""},
		{"too small", "GET", "/text?n=500", "gzip", ""},
		{"not a compressible type", "GET", "/text?n=5000&type=image/png", "gzip", ""},
		{"the app's own encoding", "GET", "/text?n=5000&ce=identity", "gzip", "identity"},
		{"no-transform", "GET", "/text?n=5000&cc=no-transform", "gzip", ""},
		{"a partial response", "GET", "/text?n=5000&code=206", "gzip", ""},
		{"an app with compress: false", "GET", "/plain/text?n=5000", "gzip", ""},
		{"HEAD", "HEAD", "/text?n=5000", "gzip", "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := th.rawGet(tt.method, tt.path, map[string]string{"Accept-Encoding": tt.accept})
			if got := resp.Header.Get("Content-Encoding"); got != tt.coding {
				t.Fatalf("Content-Encoding %q, want %q", got, tt.coding)
			}
			if tt.method == "HEAD" {
				if len(body) != 0 || resp.Header.Get("Content-Length") != "" {
					t.Errorf("HEAD: %d body bytes, Content-Length %q", len(body), resp.Header.Get("Content-Length"))
				}
				return
			}
			if tt.coding != "" && tt.coding != "identity" {
				cl := resp.Header.Get("Content-Length") // net/http's framing of the compressed bytes, if any
				if (cl != "" && cl != strconv.Itoa(len(body))) || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
					t.Errorf("compressed response headers: %v", resp.Header)
				}
				if et := resp.Header.Get("Etag"); strings.Contains(tt.path, "etag") && et != `W/"abc"` {
					t.Errorf("ETag %q, want it weakened", et)
				}
			}
			_, plain := th.rawGet("GET", tt.path, nil) // what the app sends
			if got := decode(t, tt.coding, body); !bytes.Equal(got, plain) || len(plain) == 0 {
				t.Errorf("decoded body: %d bytes, want the app's %d", len(got), len(plain))
			}
		})
	}
}

// TestCompressedStreamFlushes: a streamed response is compressed chunk by
// chunk: the client decodes the first chunk while the app waits.
func TestCompressedStreamFlushes(t *testing.T) {
	t.Parallel()
	th := startHost(t, compressConfig)
	dir := t.TempDir()
	rc := th.dial()
	rc.send("GET /stream-wait?dir=" + dir + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("streamed response not compressed: %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(zr).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk while the app waits: %q %v", line, err)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
}
