package host

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"testing"

	"github.com/gowsgi/gowsgi/config"
)

// requestVia returns a request from peer (host:port) on a listener that
// trusts allow (nil: no allow list) with the given headers.
func requestVia(peer string, network string, allow []string, header http.Header) *http.Request {
	lc := config.Listener{Network: network}
	for _, a := range allow {
		if a == "*" {
			lc.ForwardedAllow = append(lc.ForwardedAllow, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			p = netip.PrefixFrom(netip.MustParseAddr(a), netip.MustParseAddr(a).BitLen())
		}
		lc.ForwardedAllow = append(lc.ForwardedAllow, p)
	}
	l := &listener{}
	l.trust.Store(newForwardTrust(lc))
	r, _ := http.NewRequestWithContext(context.WithValue(context.Background(), listenerKey{}, l), "GET", "/", nil)
	r.RemoteAddr = peer
	r.Host = "backend:8000"
	r.Header = header
	return r
}

func TestViewRequest(t *testing.T) {
	conn := clientView{scheme: "http", remoteAddr: "127.0.0.1", remotePort: "5555", host: "backend:8000"}
	with := func(addr, port, scheme, host string) clientView {
		v := conn
		if addr != "-" {
			v.remoteAddr, v.remotePort = addr, port
		}
		if scheme != "" {
			v.scheme = scheme
		}
		if host != "" {
			v.host = host
		}
		return v
	}
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hd.Add(kv[i], kv[i+1])
		}
		return hd
	}
	lo := []string{"127.0.0.1"}
	lan := []string{"127.0.0.1", "10.0.0.0/8", "fd00::/8"}
	tests := []struct {
		name   string
		peer   string
		allow  []string
		header http.Header
		want   clientView
	}{
		{"no allow list", "127.0.0.1:5555", nil, h("X-Forwarded-For", "1.2.3.4", "X-Forwarded-Proto", "https"), conn},
		{"untrusted peer", "127.0.0.1:5555", []string{"10.0.0.0/8"}, h("X-Forwarded-For", "1.2.3.4", "X-Forwarded-Host", "evil"), conn},
		{"no headers", "127.0.0.1:5555", lo, h(), conn},
		{"one address", "127.0.0.1:5555", lo, h("X-Forwarded-For", "1.2.3.4"), with("1.2.3.4", "", "", "")},
		{"right-most untrusted", "127.0.0.1:5555", lan,
			h("X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.7", "X-Forwarded-For", "10.9.9.9"), with("1.2.3.4", "", "", "")},
		{"right-most, not left-most", "127.0.0.1:5555", lo, h("X-Forwarded-For", "6.6.6.6,1.2.3.4"), with("1.2.3.4", "", "", "")},
		{"all trusted: left-most", "127.0.0.1:5555", lan, h("X-Forwarded-For", "10.1.1.1, 10.2.2.2"), with("10.1.1.1", "", "", "")},
		{"star trusts all", "127.0.0.1:5555", []string{"*"}, h("X-Forwarded-For", "6.6.6.6, 1.2.3.4"), with("6.6.6.6", "", "", "")},
		{"with port", "127.0.0.1:5555", lo, h("X-Forwarded-For", "1.2.3.4:4711"), with("1.2.3.4", "4711", "", "")},
		{"IPv6", "127.0.0.1:5555", lo, h("X-Forwarded-For", "2001:db8::1"), with("2001:db8::1", "", "", "")},
		{"IPv6 bracketed with port", "127.0.0.1:5555", lo, h("X-Forwarded-For", "[2001:db8::1]:80"), with("2001:db8::1", "80", "", "")},
		{"IPv6 trusted hop", "127.0.0.1:5555", lan, h("X-Forwarded-For", "2001:db8::1, fd00::5"), with("2001:db8::1", "", "", "")},
		{"IPv6 peer", "[::1]:5555", []string{"::1"}, h("X-Forwarded-For", "1.2.3.4"),
			clientView{"http", "1.2.3.4", "", "backend:8000", false}},
		{"IPv4-mapped peer", "[::ffff:127.0.0.1]:5555", lo, h("X-Forwarded-For", "1.2.3.4"),
			clientView{"http", "1.2.3.4", "", "backend:8000", false}},
		{"bad port dropped", "127.0.0.1:5555", lo, h("X-Forwarded-For", "1.2.3.4:99999"), with("1.2.3.4", "", "", "")},
		{"garbage", "127.0.0.1:5555", lo, h("X-Forwarded-For", "not an address"), conn},
		{"unknown", "127.0.0.1:5555", lo, h("X-Forwarded-For", "unknown"), conn},
		{"empty", "127.0.0.1:5555", lo, h("X-Forwarded-For", ""), conn},
		{"garbage left of untrusted", "127.0.0.1:5555", lo, h("X-Forwarded-For", "junk, 1.2.3.4"), with("1.2.3.4", "", "", "")},
		{"garbage behind trusted hop", "127.0.0.1:5555", lan, h("X-Forwarded-For", "junk, 10.0.0.2"), with("10.0.0.2", "", "", "")},
		{"proto and host", "127.0.0.1:5555", lo,
			h("X-Forwarded-Proto", "HTTPS", "X-Forwarded-Host", "example.com"), with("-", "", "https", "example.com")},
		{"right-most proto and host", "127.0.0.1:5555", lo,
			h("X-Forwarded-Proto", "http, https", "X-Forwarded-Host", "evil.example, example.com:8443"), with("-", "", "https", "example.com:8443")},
		{"bad proto and host ignored", "127.0.0.1:5555", lo,
			h("X-Forwarded-Proto", "ftp", "X-Forwarded-Host", "a b/c"), conn},
		{"X-Forwarded beats Forwarded", "127.0.0.1:5555", lo,
			h("X-Forwarded-For", "1.2.3.4", "Forwarded", "for=5.6.7.8;proto=https;host=evil"), with("1.2.3.4", "", "", "")},
		{"Forwarded", "127.0.0.1:5555", lo,
			h("Forwarded", "for=192.0.2.60;proto=https;host=example.com"), with("192.0.2.60", "", "https", "example.com")},
		{"Forwarded quoted IPv6 and port", "127.0.0.1:5555", lo,
			h("Forwarded", `For="[2001:db8:cafe::17]:4711";Proto=https;Host="example.com:8443"`), with("2001:db8:cafe::17", "4711", "https", "example.com:8443")},
		{"Forwarded walk", "127.0.0.1:5555", lan,
			h("Forwarded", `for=6.6.6.6;host=evil, for=192.0.2.1;proto=https;host=example.com`, "Forwarded", `for=10.1.2.3;proto=http;host=lb.internal`),
			with("192.0.2.1", "", "https", "example.com")},
		{"Forwarded unknown for", "127.0.0.1:5555", lo,
			h("Forwarded", "for=unknown;proto=https;host=example.com"), with("-", "", "https", "example.com")},
		{"Forwarded obfuscated behind trusted", "127.0.0.1:5555", lan,
			h("Forwarded", `for=_hidden;proto=https, for=10.0.0.9;proto=http`), with("10.0.0.9", "", "https", "")},
		{"Forwarded obfuscated port", "127.0.0.1:5555", lo,
			h("Forwarded", `for="192.0.2.1:_p"`), with("192.0.2.1", "", "", "")},
		{"Forwarded escaped quote", "127.0.0.1:5555", lo,
			h("Forwarded", `for=192.0.2.1;ext="a\"b;c,d";host=example.com`), with("192.0.2.1", "", "", "example.com")},
		{"Forwarded by and empty pairs", "127.0.0.1:5555", lo,
			h("Forwarded", `by=10.0.0.1;;for=192.0.2.1 ; proto=https`), with("192.0.2.1", "", "https", "")},
		{"Forwarded empty last element", "127.0.0.1:5555", lo,
			h("Forwarded", `for=192.0.2.1;proto=https,`), conn},
		{"Forwarded unterminated quote", "127.0.0.1:5555", lo, h("Forwarded", `for="192.0.2.1`), conn},
		{"Forwarded garbage", "127.0.0.1:5555", lo, h("Forwarded", `192.0.2.1`), conn},
		{"Forwarded bad second line", "127.0.0.1:5555", lo, h("Forwarded", "for=192.0.2.1", "Forwarded", "for=1.2.3.4 x"), conn},
		{"Forwarded repeated parameter", "127.0.0.1:5555", lo, h("Forwarded", "for=192.0.2.1;for=1.2.3.4"), conn},
		{"Forwarded untrusted peer", "127.0.0.1:5555", []string{"10.0.0.0/8"}, h("Forwarded", "for=192.0.2.1;proto=https"), conn},
		{"unix peer, star", "", []string{"*"}, h("X-Forwarded-For", "6.6.6.6, 1.2.3.4", "X-Forwarded-Proto", "https"),
			clientView{"https", "1.2.3.4", "", "backend:8000", false}},
		{"unix peer, no allow list", "", nil, h("X-Forwarded-For", "1.2.3.4"), clientView{"http", "", "", "backend:8000", false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network := "tcp"
			if tt.peer == "" {
				network = "unix"
			}
			got := viewRequest(requestVia(tt.peer, network, tt.allow, tt.header))
			got.trusted = false // TestViewRequestTrusted
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestViewRequestTLSAndNoListener(t *testing.T) {
	r, _ := http.NewRequest("GET", "/", nil)
	r.RemoteAddr, r.Host, r.TLS = "192.0.2.9:1234", "example.com", &tls.ConnectionState{}
	r.Header.Set("X-Forwarded-Proto", "http")
	if got, want := viewRequest(r), (clientView{"https", "192.0.2.9", "1234", "example.com", false}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestViewRequestTrusted: the view says whether the peer is a proxy the
// listener believes, which decides whether its X-Request-ID is kept.
func TestViewRequestTrusted(t *testing.T) {
	tests := []struct {
		peer  string
		allow []string
		want  bool
	}{
		{"127.0.0.1:5555", []string{"127.0.0.1"}, true},
		{"127.0.0.1:5555", []string{"*"}, true},
		{"127.0.0.1:5555", []string{"10.0.0.0/8"}, false},
		{"127.0.0.1:5555", nil, false},
	}
	for _, tt := range tests {
		r := requestVia(tt.peer, "tcp", tt.allow, http.Header{"X-Request-Id": {"abc"}})
		if got := viewRequest(r).trusted; got != tt.want {
			t.Errorf("peer %s, allow %v: trusted %v, want %v", tt.peer, tt.allow, got, tt.want)
		}
	}
}

// TestViewRequestAllocs: with no allow list, and from an untrusted peer,
// the view costs no allocation.
func TestViewRequestAllocs(t *testing.T) {
	for _, allow := range [][]string{nil, {"10.0.0.0/8"}} {
		r := requestVia("127.0.0.1:5555", "tcp", allow, http.Header{"X-Forwarded-For": {"1.2.3.4"}})
		if n := testing.AllocsPerRun(100, func() { viewRequest(r) }); n != 0 {
			t.Errorf("allow %v: %v allocations per request", allow, n)
		}
	}
}

func TestParseForwarded(t *testing.T) {
	tests := []struct {
		line string
		want []fwdElement
		ok   bool
	}{
		{"for=1.2.3.4", []fwdElement{{forNode: "1.2.3.4"}}, true},
		{`for="[::1]:80";proto=https;host="a:1", For=5.6.7.8`, []fwdElement{{"[::1]:80", "https", "a:1"}, {forNode: "5.6.7.8"}}, true},
		{`for=a , for=b`, []fwdElement{{forNode: "a"}, {forNode: "b"}}, true},
		{`for="a\\b\"c"`, []fwdElement{{forNode: `a\b"c`}}, true},
		{`by=x;secret="y"`, []fwdElement{{}}, true},
		{"", []fwdElement{{}}, true},
		{"for=", nil, false},
		{"=x", nil, false},
		{"for=a b", nil, false},
		{`for="x`, nil, false},
		{"for=a;for=b", nil, false},
		{"for=a;;proto=http", []fwdElement{{forNode: "a", proto: "http"}}, true},
	}
	for _, tt := range tests {
		got, ok := parseForwarded(nil, tt.line)
		if ok != tt.ok || ok && fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%q: got %+v %v, want %+v %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestForwardedHeaders: a real host believes X-Forwarded-* and Forwarded
// from trusted peers only; a reload changes who is trusted in place, even
// for a keep-alive connection made before.
func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	const cfg = `
listeners:
  - {addr: "127.0.0.1:0", forwarded_allow_ips: %s}
` + basicApps
	th := startHost(t, fmt.Sprintf(cfg, `["10.0.0.0/8"]`))
	addr := th.tcpAddr()
	_, port, _ := net.SplitHostPort(addr)
	url := "http://" + addr + "/environ"
	client := &http.Client{Transport: &http.Transport{}}
	xf := http.Header{
		"X-Forwarded-For":   {"198.51.100.7, 10.1.2.3"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"www.example.com"},
	}
	fwd := http.Header{"Forwarded": {`for="[2001:db8::17]:4711";proto=https;host="example.org:8443", for=10.1.2.3;proto=http;host=lb`}}
	unchanged := map[string]string{
		"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "HTTP_HOST": addr,
		"SERVER_NAME": "127.0.0.1", "SERVER_PORT": port,
	}

	// 127.0.0.1 is not trusted: the headers only pass through.
	_, env := getEnviron(t, client, url, xf)
	checkEnv(t, "untrusted, X-Forwarded", env, unchanged)
	checkEnv(t, "untrusted, X-Forwarded", env, map[string]string{
		"HTTP_X_FORWARDED_FOR": "198.51.100.7, 10.1.2.3", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "www.example.com"})
	_, env = getEnviron(t, client, url, fwd)
	checkEnv(t, "untrusted, Forwarded", env, unchanged)

	// Trusted from now on, on the same connection.
	var conns int
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if !info.Reused {
			conns++
		}
	}}
	th.writeConfig(fmt.Sprintf(cfg, `["127.0.0.1", "10.0.0.0/8"]`), false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	if th.tcpAddr() != addr {
		t.Fatalf("address changed: %s -> %s", addr, th.tcpAddr())
	}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
	req.Header = xf
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var envX map[string]any
	json.NewDecoder(resp.Body).Decode(&envX)
	resp.Body.Close()
	checkEnv(t, "trusted, X-Forwarded", envX, map[string]string{
		"REMOTE_ADDR": "198.51.100.7", "REMOTE_PORT": "", "wsgi.url_scheme": "https", "HTTP_HOST": "www.example.com",
		"SERVER_NAME": "www.example.com", "SERVER_PORT": "443", "HTTP_X_FORWARDED_FOR": "198.51.100.7, 10.1.2.3",
	})
	if conns != 0 {
		t.Errorf("the reload cost the keep-alive connection")
	}
	_, env = getEnviron(t, client, url, fwd)
	checkEnv(t, "trusted, Forwarded", env, map[string]string{
		"REMOTE_ADDR": "2001:db8::17", "REMOTE_PORT": "4711", "wsgi.url_scheme": "https", "HTTP_HOST": "example.org:8443",
		"SERVER_NAME": "example.org", "SERVER_PORT": "8443", "HTTP_FORWARDED": fwd["Forwarded"][0],
	})
	_, env = getEnviron(t, client, url, nil)
	checkEnv(t, "trusted, no headers", env, map[string]string{"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "HTTP_HOST": addr})
	if !strings.Contains(th.Logs.String(), `"listeners_updated":["127.0.0.1:0 (forwarded_allow_ips)"]`) {
		t.Errorf("the reload did not log the change")
	}
}
