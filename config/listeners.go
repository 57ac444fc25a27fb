package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Reading the listeners, their tls, and the admin listener.

// listeners reads the listeners list. A listener whose address is
// unusable or already used is left out.
func (l *loader) listeners(seq *yaml.Node) []Listener {
	var out []Listener
	seen := make(map[string]Pos)
	for i, item := range seq.Content {
		where := fmt.Sprintf("listeners[%d]", i)
		ln, ok := l.listener(where, item)
		if !ok {
			continue
		}
		key := listenKey(ln)
		if first, dup := seen[key]; dup {
			l.errorAt(ln.Pos, "%s: duplicate listener address %q, first at %s", addrWhere(where, deref(item)), ln.Addr, first)
			continue
		}
		seen[key] = ln.Pos
		out = append(out, ln)
	}
	return out
}

// listener reads one item of listeners: an address string, or a mapping
// of listenerKeys. It reports whether the address is usable. The options
// are read even when it is not, so that every problem shows at once;
// those that depend on the kind of address are checked only when it is known.
func (l *loader) listener(where string, item *yaml.Node) (Listener, bool) {
	ln := defaults(listenerKeys)
	it := deref(item)
	switch {
	case isString(it):
		l.setAddr(where, item, it.Value, &ln)
	case it.Kind == yaml.MappingNode:
		seen := walk(l, where, item, &ln, listenerKeys)
		if t, ok := seen["tls"]; ok && !isNull(t.val) && ln.H2C {
			l.errorf(seen["h2c"].key, "%s: h2c (HTTP/2 without TLS) cannot be set together with tls: a tls listener serves HTTP/2 already, by ALPN", join(where, "h2c"))
		}
	default:
		l.errorf(item, "%s: must be an address string or a mapping with addr, got %s", where, describe(it))
	}
	return ln, ln.Network != ""
}

// addrWhere names the address of listener where (a bare string, or the
// addr key of a mapping) in messages.
func addrWhere(where string, item *yaml.Node) string {
	if item.Kind == yaml.MappingNode {
		return where + ".addr"
	}
	return where
}

// setAddr sets the address of ln to s, written at n (path where), or
// reports why it is unusable (and leaves ln's Network "").
func (l *loader) setAddr(where string, n *yaml.Node, s string, ln *Listener) {
	parsed, err := parseListenAddr(s, l.base)
	if l.ok(where, n, err) {
		ln.Addr, ln.Network, ln.Address, ln.Mode = parsed.Addr, parsed.Network, parsed.Address, parsed.Mode
		ln.Pos = l.pos(n)
	}
}

// tlsFiles is a listener's tls mapping as read.
type tlsFiles struct {
	cert, key pemFile
	bad       bool // a file could not be read
}

// pemFile is a file named in tls: its absolute path and contents.
type pemFile struct {
	path string
	data []byte
}

// listenerTLS reads a listener's tls mapping: the cert and key files must
// exist and load as a pair. It returns nil for null or after a problem.
func (l *loader) listenerTLS(where string, n *yaml.Node) *TLSConfig {
	if isNull(n) || !l.isMapping(where, n, "a mapping with cert and key") {
		return nil
	}
	var t tlsFiles
	seen := walk(l, where, n, &t, tlsKeys)
	if len(seen) < len(tlsKeys) || t.bad {
		return nil
	}
	tc, err := loadKeyPair(t.cert.path, t.key.path, t.cert.data, t.key.data)
	l.ok(where, n, err)
	return tc
}

// adminConfig is admin written as a mapping, as read.
type adminConfig struct {
	ln    *Listener
	token Secret
}

// admin reads the admin listener, at path where: its address, "host:port"
// or "unix:/path", or a mapping of adminKeys. It returns a nil listener
// for null (no admin listener) or after a problem.
func (l *loader) admin(where string, n *yaml.Node) (*Listener, Secret) {
	v := deref(n)
	switch {
	case isNull(v):
		return nil, ""
	case v.Kind != yaml.MappingNode:
		return l.adminAddr(where, n), ""
	}
	var a adminConfig
	walk(l, where, n, &a, adminKeys)
	if a.ln == nil {
		return nil, ""
	}
	return a.ln, a.token
}

// adminAddr reads the admin listener's address, at path where.
func (l *loader) adminAddr(where string, n *yaml.Node) *Listener {
	s, err := parseString(n)
	if !l.ok(where, n, err) {
		return nil
	}
	ln := defaults(listenerKeys)
	if l.setAddr(where, n, s, &ln); ln.Network == "" {
		return nil
	}
	return &ln
}

// checkAdminAddr reports an admin listener on a listener's address.
func (l *loader) checkAdminAddr(cfg *Config) {
	if cfg.Admin == nil {
		return
	}
	akey := listenKey(*cfg.Admin)
	for _, ln := range cfg.Listeners {
		if key := listenKey(ln); key == akey && !strings.HasSuffix(key, ":0") {
			l.errorAt(cfg.Admin.Pos, "admin: %q is already a listener's address (at %s)", cfg.Admin.Addr, ln.Pos)
		}
	}
}
