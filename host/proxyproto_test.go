package host

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// proxyConfig serves the basic app on a proxy_protocol listener whose
// trusted peers are allow.
func proxyConfig(allow string) string {
	return `
listeners: [{addr: "127.0.0.1:0", proxy_protocol: true, forwarded_allow_ips: [` + allow + `]}]
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": app
`
}

// environVia sends header (a PROXY header, or nil), then GET /environ, and
// returns the app's environ, or nil if the host refused the request.
func environVia(t *testing.T, addr string, header *proxyproto.Header) map[string]any {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if header != nil {
		if _, err := header.WriteTo(c); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(c, "GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil // refused by the host (400 for a header it may not believe)
	}
	var env map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("environ: %v (status %d)", err, resp.StatusCode)
	}
	return env
}

// TestProxyProtocol: a trusted peer's PROXY header (v1 or v2) gives the
// client's address; an untrusted peer that sends one is refused, and
// one that sends none is served as itself.
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	client := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 5555}
	server := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80}
	trusted := startHost(t, proxyConfig(`"127.0.0.1"`))
	for _, version := range []byte{1, 2} {
		env := environVia(t, trusted.tcpAddr(), proxyproto.HeaderProxyFromAddrs(version, client, server))
		if env == nil || env["REMOTE_ADDR"] != "203.0.113.7" || env["REMOTE_PORT"] != "5555" {
			t.Errorf("v%d from a trusted peer: REMOTE_ADDR %v, REMOTE_PORT %v", version, env["REMOTE_ADDR"], env["REMOTE_PORT"])
		}
	}
	untrusted := startHost(t, proxyConfig(`"10.0.0.0/8"`))
	if env := environVia(t, untrusted.tcpAddr(), proxyproto.HeaderProxyFromAddrs(1, client, server)); env != nil {
		t.Errorf("a PROXY header from an untrusted peer was served: REMOTE_ADDR %v", env["REMOTE_ADDR"])
	}
	if env := environVia(t, untrusted.tcpAddr(), nil); env == nil || env["REMOTE_ADDR"] != "127.0.0.1" {
		t.Errorf("an untrusted peer without a header: %v", env)
	}
}
