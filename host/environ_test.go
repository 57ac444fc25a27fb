package host

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/gowsgi/gowsgi/internal/testpython"
)

// rawEnviron sends req (a whole HTTP/1.1 request to /environ) on a new
// connection and returns the environ the basic app saw.
func (th *testHost) rawEnviron(req string) map[string]any {
	th.t.Helper()
	rc := th.dial()
	rc.send(req)
	resp, body, err := rc.response("POST")
	if err != nil || resp.StatusCode != 200 {
		th.t.Fatalf("%q: %v %v %s", req, resp, err, body)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		th.t.Fatalf("%q: %v in %s", req, err, body)
	}
	return env
}

// unknownLength hides the length of a reader, so that net/http's client
// sends the body chunked (HTTP/1.1) or without content-length (HTTP/2).
type unknownLength struct{ io.Reader }

// TestEnvironContentLength: CONTENT_LENGTH is the size of the body the host
// read, also when the request had no length (chunked, or HTTP/2 without
// content-length), and absent when the request has neither a body nor a
// Content-Length (RFC 3875 4.1.2); Transfer-Encoding never reaches the app.
func TestEnvironContentLength(t *testing.T) {
	t.Parallel()
	th := startHost(t, "listeners:\n  - {addr: \"127.0.0.1:0\", h2c: true}\n"+basicApps)
	tests := []struct {
		name, req string
		length    string // "<absent>": unset
		bodyLen   float64
	}{
		{"chunked", "POST /environ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "5", 5},
		{"chunked, empty", "POST /environ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "0", 0},
		{"Content-Length: 0", "POST /environ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "0", 0},
		{"Content-Length: 3", "POST /environ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "3", 3},
		{"no body, no length", "GET /environ HTTP/1.1\r\nHost: x\r\n\r\n", "<absent>", 0},
		{"HTTP/1.0 without length", "GET /environ HTTP/1.0\r\nHost: x\r\n\r\n", "<absent>", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := th.rawEnviron(tt.req)
			checkEnv(t, tt.name, env, map[string]string{"CONTENT_LENGTH": tt.length, "HTTP_TRANSFER_ENCODING": "<absent>"})
			if env["body_len"] != tt.bodyLen {
				t.Errorf("body_len %v, want %v", env["body_len"], tt.bodyLen)
			}
		})
	}
	t.Run("HTTP/2 without content-length", func(t *testing.T) {
		req, _ := http.NewRequest("POST", th.URL+"/environ", unknownLength{strings.NewReader("hello h2")})
		_, env := doEnviron(t, h2cClient(), req)
		checkEnv(t, "h2", env, map[string]string{"SERVER_PROTOCOL": "HTTP/2.0", "CONTENT_LENGTH": "8", "body_len": "8"})
		if _, ok := env["HTTP_CONTENT_LENGTH"]; ok {
			t.Error("HTTP_CONTENT_LENGTH in the environ")
		}
	})
	t.Run("HTTP/2 without a body", func(t *testing.T) {
		_, env := getEnviron(t, h2cClient(), th.URL+"/environ", nil)
		checkEnv(t, "h2 GET", env, map[string]string{"SERVER_PROTOCOL": "HTTP/2.0", "CONTENT_LENGTH": "<absent>"})
	})
}

// TestEnvironTrailer: the Trailer header reaches the app as HTTP_TRAILER,
// as gunicorn, uWSGI and waitress pass it (net/http moves it out of the
// request's headers).
func TestEnvironTrailer(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	env := th.rawEnviron("POST /environ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, x-other\r\n\r\n" +
		"3\r\nabc\r\n0\r\nX-Checksum: 123\r\nX-Other: 4\r\n\r\n")
	checkEnv(t, "chunked with trailers", env, map[string]string{"HTTP_TRAILER": "X-Checksum, X-Other", "CONTENT_LENGTH": "3"})
	env = th.rawEnviron("GET /environ HTTP/1.1\r\nHost: x\r\n\r\n")
	checkEnv(t, "no trailers", env, map[string]string{"HTTP_TRAILER": "<absent>"})
}

// TestEnvironIPv6ServerName: SERVER_NAME of an IPv6 literal keeps its
// brackets, with a port in Host or without (RFC 3875 4.1.14).
func TestEnvironIPv6ServerName(t *testing.T) {
	t.Parallel()
	th := startHost(t, httpConfig)
	for _, tt := range []struct{ host, name, port string }{
		{"[::1]:8080", "[::1]", "8080"},
		{"[::1]", "[::1]", "80"},
		{"[fe80::1%25eth0]:81", "[fe80::1%25eth0]", "81"}, // the zone as sent (RFC 6874)
		{"127.0.0.1:8080", "127.0.0.1", "8080"},
		{"example.com", "example.com", "80"},
	} {
		env := th.rawEnviron("GET /environ HTTP/1.1\r\nHost: " + tt.host + "\r\n\r\n")
		checkEnv(t, "Host: "+tt.host, env, map[string]string{"SERVER_NAME": tt.name, "SERVER_PORT": tt.port, "HTTP_HOST": tt.host})
	}
}

// TestUnknownLengthBodyInFrameworks: a form and a file upload sent chunked
// (HTTP/1.1) or without content-length (HTTP/2) reach Bottle and Django
// whole; Bottle used to de-chunk the body again (400) and Django to see an
// empty POST.
func TestUnknownLengthBodyInFrameworks(t *testing.T) {
	t.Parallel()
	testpython.Require(t, "bottle", "django")
	th := startHost(t, `
listeners:
  - {addr: "127.0.0.1:0", h2c: true}
apps:
  bottle: {module: bottle_forms, dir: {{apps}}, python: {{python}}}
  django: {module: django_forms, dir: {{apps}}, python: {{python}}}
mounts:
  "/bottle": bottle
  "/django": django
`)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("name", "ada")
	fw, _ := mw.CreateFormFile("file", "notes.txt")
	fw.Write(bytes.Repeat([]byte("x"), 70000))
	mw.Close()
	for _, c := range []struct {
		proto  string
		client *http.Client
	}{{"HTTP/1.1", http.DefaultClient}, {"HTTP/2.0", h2cClient()}} {
		for _, fw := range []string{"bottle", "django"} {
			t.Run(fw+" "+c.proto, func(t *testing.T) {
				req, _ := http.NewRequest("POST", th.URL+"/"+fw+"/form", unknownLength{bytes.NewReader(form.Bytes())})
				req.Header.Set("Content-Type", mw.FormDataContentType())
				resp, err := c.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Proto != c.proto {
					t.Errorf("proto %s, want %s", resp.Proto, c.proto)
				}
				if want := fmt.Sprintf("%s name=ada file=notes.txt:70000\n", fw); resp.StatusCode != 200 || string(b) != want {
					t.Errorf("POST %s/form = %d %q, want 200 %q", fw, resp.StatusCode, b, want)
				}
			})
		}
	}
}
