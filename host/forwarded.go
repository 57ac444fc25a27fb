package host

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/gowsgi/gowsgi/config"
)

// listenerKey is the context key under which a listener's servers put the
// listener (a *listener) in every request's context.
type listenerKey struct{}

// forwardTrust is who a listener believes forwarded headers from.
type forwardTrust struct {
	// prefixes are the trusted addresses: of the peer, and of the proxies
	// named in X-Forwarded-For and Forwarded.
	prefixes []netip.Prefix
	// anyPeer trusts the peer whatever its address: a unix listener's
	// peers have none ("*" is the only allow list a unix listener takes).
	// Addresses in the headers are then checked against prefixes (none).
	anyPeer bool
}

// newForwardTrust returns whom lc believes forwarded headers from, or nil
// for nobody.
func newForwardTrust(lc config.Listener) *forwardTrust {
	if len(lc.ForwardedAllow) == 0 {
		return nil
	}
	if lc.Network == "unix" {
		return &forwardTrust{anyPeer: true}
	}
	return &forwardTrust{prefixes: slices.Clone(lc.ForwardedAllow)}
}

func (t *forwardTrust) equal(u *forwardTrust) bool {
	if t == nil || u == nil {
		return t == u
	}
	return t.anyPeer == u.anyPeer && slices.Equal(t.prefixes, u.prefixes)
}

// trusts reports whether a is a trusted proxy's address.
// trustsAddr reports whether a connection's peer address is trusted.
func (t *forwardTrust) trustsAddr(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && t.trusts(ap.Addr())
}

func (t *forwardTrust) trusts(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientView is what the app is told about the client and about the
// address it asked for.
type clientView struct {
	scheme     string // wsgi.url_scheme: "http" or "https"
	remoteAddr string // REMOTE_ADDR
	remotePort string // REMOTE_PORT
	host       string // HTTP_HOST, which SERVER_NAME and SERVER_PORT come from
	trusted    bool   // the peer is a proxy the listener believes (forwarded_allow_ips)
}

// viewRequest returns what the connection itself says about the client,
// or, when the peer is a proxy the request's listener trusts, what the
// proxy's headers say:
//
//   - X-Forwarded-For: the client is the right-most address that is not
//     trusted, walking leftwards past trusted proxies (as nginx's
//     real_ip_recursive does); if every address is trusted, the
//     left-most. A value that is not an IP address ("unknown", garbage)
//     ends the walk: the client is then the last address walked past (or
//     the peer). "1.2.3.4:5678" and "[::1]:5678" give REMOTE_PORT; an
//     address without a port gives REMOTE_PORT "".
//   - X-Forwarded-Proto ("http" or "https", any case) sets wsgi.url_scheme
//     and X-Forwarded-Host sets HTTP_HOST (so SERVER_NAME and SERVER_PORT);
//     of a list, the right-most value counts: the one the nearest proxy set.
//   - Forwarded (RFC 7239), used only when the request has none of the
//     three X-Forwarded headers: the same walk over the for= of its
//     elements; proto= and host= come from the element the walk ends on,
//     which a trusted proxy wrote. A Forwarded header that does not parse
//     is ignored whole.
//
// Headers from peers that are not trusted change nothing. The headers
// reach the app as HTTP_* either way. With no allow list on the listener
// this costs one context lookup and allocates nothing.
func viewRequest(r *http.Request) clientView {
	v := clientView{scheme: "http", host: r.Host}
	if r.TLS != nil {
		v.scheme = "https"
	}
	var err error
	if v.remoteAddr, v.remotePort, err = net.SplitHostPort(r.RemoteAddr); err != nil {
		v.remoteAddr, v.remotePort = "", ""
	}
	l, _ := r.Context().Value(listenerKey{}).(*listener)
	if l == nil {
		return v
	}
	t := l.trust.Load()
	if t == nil {
		return v
	}
	if !t.anyPeer {
		peer, err := netip.ParseAddr(v.remoteAddr)
		if err != nil || !t.trusts(peer) {
			return v
		}
	}
	v.trusted = true
	xff, xfp, xfh := r.Header["X-Forwarded-For"], r.Header["X-Forwarded-Proto"], r.Header["X-Forwarded-Host"]
	if xff != nil || xfp != nil || xfh != nil {
		applyXForwarded(&v, t, xff, xfp, xfh)
	} else if fwd := r.Header["Forwarded"]; fwd != nil {
		applyForwarded(&v, t, fwd)
	}
	return v
}

// applyXForwarded sets v from X-Forwarded-For, -Proto and -Host values.
func applyXForwarded(v *clientView, t *forwardTrust, xff, xfp, xfh []string) {
	var nodes []string
	for _, line := range xff {
		for s := range strings.SplitSeq(line, ",") {
			nodes = append(nodes, s)
		}
	}
	if client, _ := walk(len(nodes), func(i int) string { return nodes[i] }, t); client >= 0 {
		v.remoteAddr, v.remotePort, _ = parseNode(nodes[client])
	}
	if p, ok := lastValue(xfp); ok {
		if s, ok := schemeOf(p); ok {
			v.scheme = s
		}
	}
	if h, ok := lastValue(xfh); ok && validHost(h) {
		v.host = h
	}
}

// applyForwarded sets v from the lines of an RFC 7239 Forwarded header.
func applyForwarded(v *clientView, t *forwardTrust, lines []string) {
	var elems []fwdElement
	for _, line := range lines {
		var ok bool
		if elems, ok = parseForwarded(elems, line); !ok {
			return
		}
	}
	if len(elems) == 0 {
		return
	}
	// The element the walk ends on was written by a trusted proxy (the
	// peer, or the one named in the element to its right).
	client, end := walk(len(elems), func(i int) string { return elems[i].forNode }, t)
	if client >= 0 {
		v.remoteAddr, v.remotePort, _ = parseNode(elems[client].forNode)
	}
	e := elems[end]
	if s, ok := schemeOf(e.proto); ok {
		v.scheme = s
	}
	if e.host != "" && validHost(e.host) {
		v.host = e.host
	}
}

// walk goes leftwards over n forwarded nodes (node(i) for i from n-1 to
// 0) past trusted addresses. client is the index of the first untrusted
// address, else of the left-most; a node that is not an address ends the
// walk, and client is then the last address before it (-1 if none). end
// is the index the walk ended on.
func walk(n int, node func(int) string, t *forwardTrust) (client, end int) {
	client = -1
	for end = n - 1; end >= 0; end-- {
		addr, _, ok := parseNode(node(end))
		if !ok {
			return client, end
		}
		client = end
		if a, _ := netip.ParseAddr(addr); !t.trusts(a) {
			return client, end
		}
	}
	return client, 0
}

// parseNode splits a forwarded node — "192.0.2.1", "192.0.2.1:80",
// "[2001:db8::1]", "[2001:db8::1]:80", or a bare IPv6 address — into the
// address and the port ("" when absent or obfuscated, as "_x"). ok is
// false unless the address is an IP address.
func parseNode(s string) (addr, port string, ok bool) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", false
		}
		addr = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", "", false
			}
			port = rest[1:]
		}
		if a, err := netip.ParseAddr(addr); err != nil || !a.Is6() {
			return "", "", false
		}
	case strings.Count(s, ":") == 1:
		addr, port, _ = strings.Cut(s, ":")
		if a, err := netip.ParseAddr(addr); err != nil || !a.Is4() {
			return "", "", false
		}
	default:
		addr = s
		if _, err := netip.ParseAddr(addr); err != nil {
			return "", "", false
		}
	}
	if !validPort(port) {
		port = ""
	}
	return addr, port, true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// lastValue returns the right-most non-empty element of comma-separated
// header values.
func lastValue(values []string) (string, bool) {
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for {
			j := strings.LastIndexByte(v, ',')
			if s := strings.TrimSpace(v[j+1:]); s != "" {
				return s, true
			}
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return "", false
}

// schemeOf maps a forwarded protocol to wsgi.url_scheme; others are ignored.
func schemeOf(p string) (string, bool) {
	switch {
	case strings.EqualFold(p, "https"):
		return "https", true
	case strings.EqualFold(p, "http"):
		return "http", true
	}
	return "", false
}

// validHost reports whether h looks like a Host header: a name or IP
// address, optionally with a port, without spaces, slashes or controls.
func validHost(h string) bool {
	if h == "" || len(h) > 261 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:[]%!$&'()*+,;=", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// fwdElement is one forwarded-element of a Forwarded header: one hop.
type fwdElement struct {
	forNode, proto, host string
}

// parseForwarded appends the elements of one Forwarded header line to
// elems (RFC 7239 section 4: elements separated by ",", pairs by ";",
// values tokens or quoted strings; parameter names in any case). ok is
// false when the line does not parse or repeats a parameter in an element.
func parseForwarded(elems []fwdElement, line string) (_ []fwdElement, ok bool) {
	var e fwdElement
	var seen [3]bool
	i := 0
	for {
		i = skipOWS(line, i)
		// A pair: token "=" value; empty elements and pairs are allowed.
		if i < len(line) && line[i] != ';' && line[i] != ',' {
			var name, val string
			if name, val, i, ok = forwardedPair(line, i); !ok {
				return elems, false
			}
			if !e.set(name, val, &seen) {
				return elems, false
			}
			i = skipOWS(line, i)
		}
		switch {
		case i >= len(line):
			return append(elems, e), true
		case line[i] == ';':
			i++
		case line[i] == ',':
			elems = append(elems, e)
			e, seen = fwdElement{}, [3]bool{}
			i++
		default:
			return elems, false
		}
	}
}

// forwardedPair reads the pair token "=" value at line[i:], the value a
// token or a quoted string, and returns it with the index after it.
func forwardedPair(line string, i int) (name, val string, next int, ok bool) {
	j := i
	for j < len(line) && isTokenChar(line[j]) {
		j++
	}
	if j == i || j >= len(line) || line[j] != '=' {
		return "", "", 0, false
	}
	name, i = line[i:j], j+1
	if i < len(line) && line[i] == '"' {
		val, next, ok = quotedString(line, i+1)
		return name, val, next, ok
	}
	j = i
	for j < len(line) && isTokenChar(line[j]) {
		j++
	}
	if j == i {
		return "", "", 0, false
	}
	return name, line[i:j], j, true
}

// quotedString reads the rest of a quoted string whose opening quote is
// before line[i], undoing backslash escapes; false if it is unterminated.
func quotedString(line string, i int) (string, int, bool) {
	var b strings.Builder
	for i < len(line) {
		c := line[i]
		if c == '\\' && i+1 < len(line) {
			b.WriteByte(line[i+1])
			i += 2
			continue
		}
		i++
		if c == '"' {
			return b.String(), i, true
		}
		b.WriteByte(c)
	}
	return "", 0, false
}

// set records the parameter name=val of a Forwarded element: for, proto
// and host (any case) at most once each; "by" and extensions are ignored.
func (e *fwdElement) set(name, val string, seen *[3]bool) bool {
	var k int
	switch {
	case strings.EqualFold(name, "for"):
		k, e.forNode = 0, val
	case strings.EqualFold(name, "proto"):
		k, e.proto = 1, val
	case strings.EqualFold(name, "host"):
		k, e.host = 2, val
	default:
		return true
	}
	if seen[k] {
		return false
	}
	seen[k] = true
	return true
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
