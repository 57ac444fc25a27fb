package host

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gowsgi/gowsgi/internal/testcert"
)

// tlsConfig is basicApps behind one TLS listener with these files.
func tlsConfig(certFile, keyFile string) string {
	return fmt.Sprintf(`
listeners:
  - addr: "127.0.0.1:0"
    tls: {cert: %q, key: %q}
`, certFile, keyFile) + basicApps
}

// testCerts makes a folder with server.crt and server.key (serial 1) and
// returns their paths and the certificate.
func testCerts(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	return certFile, keyFile, testcert.Write(t, certFile, keyFile, 1)
}

const basicApps = `
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": basic
`

// tlsClient trusts only cert; http2 false restricts it to HTTP/1.1.
func tlsClient(cert *x509.Certificate, http2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: http2}
	if !http2 {
		var p http.Protocols
		p.SetHTTP1(true)
		tr.Protocols = &p
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// getEnviron fetches url (an /environ route) with c and returns the
// response (body closed) and the environ.
func getEnviron(t *testing.T, c *http.Client, url string, header http.Header) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return doEnviron(t, c, req)
}

// doEnviron sends req (to an /environ route) with c and returns the
// response (body closed) and the environ.
func doEnviron(t *testing.T, c *http.Client, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	what := req.Method + " " + req.URL.String()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", what, resp.StatusCode, b)
	}
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s: %v in %s", what, err, b)
	}
	return resp, env
}

// checkEnv checks environ values (compared as printed).
func checkEnv(t *testing.T, what string, env map[string]any, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := env[k]; !ok && v != "<absent>" || ok && fmt.Sprint(got) != v {
			t.Errorf("%s: environ[%s] = %#v, want %q", what, k, got, v)
		}
	}
}

func TestTLSListener(t *testing.T) {
	t.Parallel()
	certFile, keyFile, cert := testCerts(t)
	th := startHost(t, tlsConfig(certFile, keyFile))
	addr := th.tcpAddr()
	_, port, _ := net.SplitHostPort(addr)
	url := "https://" + addr + "/environ"

	resp, env := getEnviron(t, tlsClient(cert, true), url, nil)
	if resp.Proto != "HTTP/2.0" || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Errorf("HTTP/2 client: proto %s, ALPN %v", resp.Proto, resp.TLS)
	}
	checkEnv(t, "HTTP/2", env, map[string]string{
		"wsgi.url_scheme": "https", "SERVER_PROTOCOL": "HTTP/2.0", "SERVER_PORT": port,
		"SERVER_NAME": "127.0.0.1", "HTTP_HOST": addr, "REMOTE_ADDR": "127.0.0.1",
	})

	resp, env = getEnviron(t, tlsClient(cert, false), url, nil)
	if resp.Proto != "HTTP/1.1" {
		t.Errorf("HTTP/1.1-only client: proto %s", resp.Proto)
	}
	checkEnv(t, "HTTP/1.1", env, map[string]string{"wsgi.url_scheme": "https", "SERVER_PROTOCOL": "HTTP/1.1"})

	// TLS 1.1 and older are refused.
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS 1.1 client was served")
	}
	// Plain HTTP on the TLS port gets net/http's 400, not an app.
	if resp, err := http.Get("http://" + addr + "/environ"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %d", resp.StatusCode)
		}
	}
}

// TestTLSCertificateReload: new certificate files, then a reload: new
// connections get the new certificate on the same socket, while a
// keep-alive connection made before goes on.
func TestTLSCertificateReload(t *testing.T) {
	t.Parallel()
	certFile, keyFile, cert1 := testCerts(t)
	th := startHost(t, tlsConfig(certFile, keyFile))
	addr := th.tcpAddr()
	url := "https://" + addr + "/environ"
	for _, http2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("http2=%v", http2), func(t *testing.T) {
			// Each round starts from certificate 1 (again).
			if cert1 == nil {
				cert1 = testcert.Write(t, certFile, keyFile, 1)
				if err := th.ReloadFile(th.path); err != nil {
					t.Fatal(err)
				}
			}
			oldClient := tlsClient(cert1, http2)
			resp, _ := getEnviron(t, oldClient, url, nil)
			if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 1 {
				t.Fatalf("serial %d, want 1", got)
			}

			cert2 := testcert.Write(t, certFile, keyFile, 2)
			gen := th.Generation()
			if err := th.ReloadFile(th.path); err != nil {
				t.Fatalf("reload: %v", err)
			}
			if th.Generation() == gen {
				t.Fatal("no new generation")
			}
			if th.tcpAddr() != addr {
				t.Fatalf("address changed: %s -> %s", addr, th.tcpAddr())
			}
			resp, _ = getEnviron(t, tlsClient(cert2, http2), url, nil)
			if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 2 {
				t.Errorf("new connection after the reload: serial %d, want 2", got)
			}

			// The old connection is still open and serves.
			var reused bool
			req, _ := http.NewRequest("GET", url, nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
			}))
			resp, err := oldClient.Do(req)
			if err != nil {
				t.Fatalf("old keep-alive connection: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !reused || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
				t.Errorf("old connection: status %d, reused %v, serial %d; want 200 on the same connection",
					resp.StatusCode, reused, resp.TLS.PeerCertificates[0].SerialNumber.Int64())
			}
			cert1 = nil
		})
	}
	if !strings.Contains(th.Logs.String(), `"listeners_updated":["127.0.0.1:0 (certificate)"]`) {
		t.Errorf("the reload did not log the certificate change")
	}

	// A broken key is refused by the reload; the certificate stays.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := th.ReloadFile(th.path); err == nil || !strings.Contains(err.Error(), "do not load as a pair") {
		t.Errorf("reload with a broken key: %v", err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Errorf("after a refused reload: serial %d, want 2", got)
	}
}

// h2cClient speaks HTTP/2 without TLS, by prior knowledge.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
}

func TestH2CListener(t *testing.T) {
	t.Parallel()
	th := startHost(t, `
listeners:
  - {addr: "127.0.0.1:0", h2c: true}
`+basicApps)
	addr := th.tcpAddr()
	url := "http://" + addr + "/environ"
	resp, env := getEnviron(t, h2cClient(), url, nil)
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("h2c client: proto %s", resp.Proto)
	}
	checkEnv(t, "h2c", env, map[string]string{"wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/2.0", "HTTP_HOST": addr})
	resp, env = getEnviron(t, http.DefaultClient, url, nil)
	if resp.Proto != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 client on the h2c listener: proto %s", resp.Proto)
	}
	checkEnv(t, "HTTP/1.1", env, map[string]string{"SERVER_PROTOCOL": "HTTP/1.1"})

	t.Run("upgrade", func(t *testing.T) { testH2CUpgrade(t, addr) })
	t.Run("curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("no curl")
		}
		if out, _ := exec.Command(curl, "-V").Output(); !strings.Contains(string(out), "HTTP2") {
			t.Skip("curl without HTTP/2")
		}
		// --http2 on an http:// URL asks for Upgrade: h2c, and gets HTTP/1.1.
		out, err := exec.Command(curl, "-sS", "--http2", "-w", "\n%{http_version} %{http_code}", url).CombinedOutput()
		if err != nil || !strings.HasSuffix(string(out), "\n1.1 200") || !strings.Contains(string(out), `"SERVER_PROTOCOL": "HTTP/1.1"`) {
			t.Errorf("curl --http2: %v\n%s", err, out)
		}
		out, err = exec.Command(curl, "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", url).CombinedOutput()
		if err != nil || !strings.HasSuffix(string(out), "\n2 200") {
			t.Errorf("curl --http2-prior-knowledge: %v\n%s", err, out)
		}
	})

	// h2c off by a reload: a new server on the same socket, HTTP/1.1 only.
	th.writeConfig(`
listeners: ["127.0.0.1:0"]
`+basicApps, false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	if th.tcpAddr() != addr {
		t.Fatalf("address changed: %s -> %s", addr, th.tcpAddr())
	}
	if resp, err := h2cClient().Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("h2c after turning it off: %s %d", resp.Proto, resp.StatusCode)
	}
	if resp, _ := getEnviron(t, http.DefaultClient, url, nil); resp.Proto != "HTTP/1.1" {
		t.Errorf("after turning h2c off: %s", resp.Proto)
	}
}

// testH2CUpgrade: a request asking for "Upgrade: h2c" (RFC 7540 section
// 3.2, which RFC 9113 deprecated) is served as HTTP/1.1, with or without a
// body, and the connection goes on as HTTP/1.1.
func testH2CUpgrade(t *testing.T, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	const upgrade = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
	fmt.Fprintf(c, "GET /environ?upgrade HTTP/1.1\r\nHost: %s\r\n%s\r\n", addr, upgrade)
	fmt.Fprintf(c, "POST /environ?body HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 3\r\n\r\nabc", addr, upgrade)
	fmt.Fprintf(c, "GET /environ?after HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	br := bufio.NewReader(c)
	for _, query := range []string{"upgrade", "body", "after"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" || resp.Header.Get("Upgrade") != "" {
			t.Errorf("%s: %s %d, Upgrade %q; want HTTP/1.1 200 without Upgrade", query, resp.Proto, resp.StatusCode, resp.Header.Get("Upgrade"))
		}
		var env map[string]any
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s: %v in %s", query, err, b)
		}
		checkEnv(t, query, env, map[string]string{"SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": query})
	}
}

func TestUnixListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "g.sock")
	// A stale socket file, as a killed host leaves.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}

	th := startHost(t, fmt.Sprintf(`
listeners:
  - "127.0.0.1:0"
  - {addr: "unix:%s", mode: "0600", forwarded_allow_ips: "*"}
`, sock)+basicApps)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file mode %v, want a socket with 0600", fi.Mode())
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	// "*" on a unix listener trusts the peer; the client is the
	// right-most X-Forwarded-For address.
	_, env := getEnviron(t, client, "http://gowsgi/environ", http.Header{
		"X-Forwarded-For": {"198.51.100.1, 203.0.113.5"}, "X-Forwarded-Proto": {"https"}})
	checkEnv(t, "unix", env, map[string]string{"REMOTE_ADDR": "203.0.113.5", "wsgi.url_scheme": "https", "HTTP_HOST": "gowsgi"})

	// A live socket is not taken over.
	if ln, err := listenUnix(sock, 0o600); err == nil {
		ln.Close()
		t.Error("listenUnix took over a live socket")
	} else if !strings.Contains(err.Error(), "another server is listening") {
		t.Errorf("listenUnix on a live socket: %v", err)
	}

	// An abstract socket has no file: nothing to replace or chmod.
	abs, err := listenUnix(fmt.Sprintf("@gowsgi-test-%d", os.Getpid()), 0o600)
	if err != nil {
		t.Errorf("abstract socket: %v", err)
	} else {
		abs.Close()
	}

	// A new mode is applied to the same socket file, without a new bind.
	th.writeConfig(fmt.Sprintf(`
listeners:
  - "127.0.0.1:0"
  - {addr: "unix:%s", mode: "0640"}
`, sock)+basicApps, false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	fi2, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi2.Mode().Perm() != 0o640 || !os.SameFile(fi, fi2) {
		t.Errorf("after the reload: mode %v, same file %v; want 0640 on the same socket", fi2.Mode(), os.SameFile(fi, fi2))
	}
	_, env = getEnviron(t, client, "http://gowsgi/environ", http.Header{"X-Forwarded-For": {"203.0.113.5"}})
	checkEnv(t, "unix, no longer trusted", env, map[string]string{"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "203.0.113.5"})
}
