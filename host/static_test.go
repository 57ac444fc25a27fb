package host

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStaticFiles(t *testing.T) {
	base := t.TempDir()
	pub := filepath.Join(base, "public")
	os.MkdirAll(filepath.Join(pub, "css"), 0o755)
	os.MkdirAll(filepath.Join(pub, "docs"), 0o755)
	os.MkdirAll(filepath.Join(pub, ".git"), 0o755)
	os.MkdirAll(filepath.Join(pub, ".well-known", "acme-challenge"), 0o755)
	os.MkdirAll(filepath.Join(pub, "docs", ".well-known"), 0o755)
	os.WriteFile(filepath.Join(pub, ".well-known", "acme-challenge", "tok3n"), []byte("tok3n.key"), 0o644)
	os.WriteFile(filepath.Join(pub, ".well-known", "security.txt"), []byte("Contact: x"), 0o644)
	os.WriteFile(filepath.Join(pub, ".well-known", ".secret"), []byte("hidden"), 0o644)
	os.WriteFile(filepath.Join(pub, "docs", ".well-known", "security.txt"), []byte("nested"), 0o644)
	os.WriteFile(filepath.Join(pub, "index.html"), []byte("<h1>home</h1>"), 0o644)
	os.WriteFile(filepath.Join(pub, "css", "site.css"), []byte("body{}"), 0o644)
	os.WriteFile(filepath.Join(pub, "big.txt"), []byte("0123456789"), 0o644)
	os.WriteFile(filepath.Join(pub, "empty.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(pub, ".env"), []byte("SECRET=1"), 0o644)
	os.WriteFile(filepath.Join(pub, ".git", "config"), []byte("[core]"), 0o644)
	os.WriteFile(filepath.Join(base, "secret.txt"), []byte("outside"), 0o644)
	os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(pub, "escape.txt"))
	os.Symlink("css/site.css", filepath.Join(pub, "inside.css"))
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(pub, "big.txt"), mtime, mtime)

	s, err := newStaticFiles(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	do := func(method, p string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://x"+(&url.URL{Path: p}).EscapedPath(), nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		s.serve(w, r, p)
		return w
	}
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		code               int
		body, ctype        string
	}{
		{"index of the root", "GET", "/", nil, 200, "<h1>home</h1>", "text/html; charset=utf-8"},
		{"css type", "GET", "/css/site.css", nil, 200, "body{}", "text/css; charset=utf-8"},
		{"folder without index: no listing", "GET", "/docs/", nil, 404, "", ""},
		{"folder without index, no slash", "GET", "/css", nil, 404, "", ""},
		{"missing", "GET", "/nope.txt", nil, 404, "", ""},
		{"dotdot stays inside", "GET", "/../secret.txt", nil, 404, "", ""},
		{"decoded dots stay inside", "GET", "/css/../../secret.txt", nil, 404, "", ""},
		{"symlink out of the root", "GET", "/escape.txt", nil, 404, "", ""},
		{"symlink inside the root", "GET", "/inside.css", nil, 200, "body{}", "text/css; charset=utf-8"},
		{"dotfile", "GET", "/.env", nil, 404, "", ""},
		{"dot folder", "GET", "/.git/config", nil, 404, "", ""},
		{"acme challenge", "GET", "/.well-known/acme-challenge/tok3n", nil, 200, "tok3n.key", ""},
		{"security.txt", "GET", "/.well-known/security.txt", nil, 200, "Contact: x", "text/plain; charset=utf-8"},
		{"dotfile in .well-known", "GET", "/.well-known/.secret", nil, 404, "", ""},
		{".well-known below the top", "GET", "/docs/.well-known/security.txt", nil, 404, "", ""},
		{".well-known reached through ..", "GET", "/docs/../.well-known/security.txt", nil, 200, "Contact: x", ""},
		{"range", "GET", "/big.txt", map[string]string{"Range": "bytes=2-4"}, 206, "234", ""},
		{"suffix range", "GET", "/big.txt", map[string]string{"Range": "bytes=-3"}, 206, "789", ""},
		{"unsatisfiable range", "GET", "/big.txt", map[string]string{"Range": "bytes=50-60"}, 416, "", ""},
		{"empty suffix range", "GET", "/big.txt", map[string]string{"Range": "bytes=-0"}, 416, "", ""},
		{"empty suffix ranges", "GET", "/big.txt", map[string]string{"Range": "bytes= -0 , -00"}, 416, "", ""},
		{"empty suffix beside a range", "GET", "/big.txt", map[string]string{"Range": "bytes=-0, 1-2"}, 206, "12", ""},
		// net/http ignores any Range on an empty file (not 206 "bytes 0--1/0").
		{"suffix range of an empty file", "GET", "/empty.txt", map[string]string{"Range": "bytes=-5"}, 200, "", ""},
		{"NUL in the path", "GET", "/big.txt\x00.png", nil, 400, "", ""},
		{"NUL in a folder name", "GET", "/css\x00/site.css", nil, 400, "", ""},
		{"if-modified-since", "GET", "/big.txt", map[string]string{"If-Modified-Since": mtime.Format(http.TimeFormat)}, 304, "", ""},
		{"modified since", "GET", "/big.txt", map[string]string{"If-Modified-Since": mtime.Add(-time.Hour).Format(http.TimeFormat)}, 200, "0123456789", ""},
		{"head", "HEAD", "/big.txt", nil, 200, "", "text/plain; charset=utf-8"},
		{"post refused", "POST", "/big.txt", nil, 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(tt.method, tt.path, tt.hdr)
			if w.Code != tt.code {
				t.Fatalf("%s %s: %d, want %d (%q)", tt.method, tt.path, w.Code, tt.code, w.Body.String())
			}
			if tt.code == 404 && strings.Contains(w.Body.String(), "outside") {
				t.Errorf("leaked a file outside the root")
			}
			if tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("body %q, want %q", w.Body.String(), tt.body)
			}
			if tt.ctype != "" && w.Header().Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tt.ctype)
			}
		})
	}
	if cr := do("GET", "/big.txt", map[string]string{"Range": "bytes=-0"}).Header().Get("Content-Range"); cr != "bytes */10" {
		t.Errorf("bytes=-0: Content-Range %q, want \"bytes */10\"", cr)
	}
	// ETag round trip.
	w := do("GET", "/big.txt", nil)
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Last-Modified") != mtime.Format(http.TimeFormat) {
		t.Fatalf("validators: ETag %q Last-Modified %q", etag, w.Header().Get("Last-Modified"))
	}
	if w := do("GET", "/big.txt", map[string]string{"If-None-Match": etag}); w.Code != 304 {
		t.Errorf("If-None-Match with the ETag: %d, want 304", w.Code)
	}
	if w := do("GET", "/big.txt", map[string]string{"If-None-Match": `W/"other"`}); w.Code != 200 {
		b, _ := io.ReadAll(w.Body)
		t.Errorf("If-None-Match with another ETag: %d %q", w.Code, b)
	}
}

// TestStaticCacheControl: cache_control goes out with the files served
// (200, 206 and 304), never with errors such as a 404, which a long
// max-age would keep in caches.
func TestStaticCacheControl(t *testing.T) {
	pub := t.TempDir()
	os.WriteFile(filepath.Join(pub, "app.css"), []byte("p{}"), 0o644)
	const cc = "public, max-age=31536000, immutable"
	tests := []struct {
		name, cacheControl, method, path string
		hdr                              map[string]string
		code                             int
		want                             string
	}{
		{"file", cc, "GET", "/app.css", nil, 200, cc},
		{"head", cc, "HEAD", "/app.css", nil, 200, cc},
		{"range", cc, "GET", "/app.css", map[string]string{"Range": "bytes=0-0"}, 206, cc},
		{"not modified", cc, "GET", "/app.css", map[string]string{"If-Modified-Since": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, 304, cc},
		{"missing", cc, "GET", "/nope.css", nil, 404, ""},
		{"unsatisfiable range", cc, "GET", "/app.css", map[string]string{"Range": "bytes=9-"}, 416, ""},
		{"not GET", cc, "POST", "/app.css", nil, 405, ""},
		{"unset", "", "GET", "/app.css", nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newStaticFiles(pub, tt.cacheControl)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := httptest.NewRequest(tt.method, "http://x"+tt.path, nil)
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			s.serve(w, r, tt.path)
			if w.Code != tt.code {
				t.Errorf("%d, want %d", w.Code, tt.code)
			}
			if got, ok := w.Header()["Cache-Control"]; tt.want == "" && ok || tt.want != "" && (len(got) != 1 || got[0] != tt.want) {
				t.Errorf("Cache-Control %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStaticAppMounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.css"), []byte("p{}"), 0o644)
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}}
  assets: {static: `+dir+`, cache_control: "public, max-age=60"}
mounts:
  "/": basic
  "/static": assets
`)
	resp, err := http.Get(th.URL + "/static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "p{}" || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Cache-Control") != "public, max-age=60" {
		t.Errorf("GET /static/app.css: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if code, _ := th.get("/static/%2e%2e/%2e%2e/etc/passwd"); code != 404 {
		t.Errorf("encoded dots: %d, want 404", code)
	}
	if code, _ := th.get("/static/app.css%00.png"); code != 400 {
		t.Errorf("%%00 in the path: %d, want 400", code)
	}
	if code, body := th.get("/"); code != 200 || body != "basic ok" {
		t.Errorf("app beside the static mount: %d %q", code, body)
	}
}

// TestStaticPrecompressed: a file's fresh .br/.zst/.gz sibling is served
// to a client that accepts it, with the file's type; a stale one is not.
func TestStaticPrecompressed(t *testing.T) {
	pub := t.TempDir()
	write := func(name, body string, age time.Duration) {
		p := filepath.Join(pub, name)
		os.WriteFile(p, []byte(body), 0o644)
		when := time.Now().Add(-age)
		os.Chtimes(p, when, when)
	}
	write("app.js", "console.log(1)", time.Hour)
	write("app.js.br", "BROTLI", 0)               // fresh
	write("app.js.gz", "GZIP-STALE", 2*time.Hour) // older than app.js
	write("plain.js", "x", 0)
	s, err := newStaticFiles(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name, path, accept, body, coding string
		vary                             bool
	}{
		{"fresh sibling accepted", "/app.js", "gzip, br", "BROTLI", "br", true},
		{"stale sibling not used", "/app.js", "gzip", "console.log(1)", "", true},
		{"not accepted", "/app.js", "", "console.log(1)", "", true},
		{"no siblings", "/plain.js", "br", "x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://x"+tt.path, nil)
			if tt.accept != "" {
				r.Header.Set("Accept-Encoding", tt.accept)
			}
			w := httptest.NewRecorder()
			s.serve(w, r, tt.path)
			h := w.Header()
			if w.Body.String() != tt.body || h.Get("Content-Encoding") != tt.coding || (h.Get("Vary") == "Accept-Encoding") != tt.vary {
				t.Errorf("got %q, Content-Encoding %q, Vary %q", w.Body.String(), h.Get("Content-Encoding"), h.Get("Vary"))
			}
			if ct := h.Get("Content-Type"); !strings.Contains(ct, "javascript") {
				t.Errorf("Content-Type %q, want the file's", ct)
			}
		})
	}
}
