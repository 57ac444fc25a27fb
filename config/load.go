package config

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Defaults applied to keys the config file leaves out.
const (
	// DefaultCallable is the WSGI callable looked up when module names none.
	DefaultCallable = "application"
	// DefaultPython is the interpreter command used when an app names none.
	DefaultPython = "python3"
	// DefaultShutdownTimeout is used when shutdown_timeout is not set.
	DefaultShutdownTimeout = 30 * time.Second
	// MaxWorkers is the largest accepted value of workers and of threads.
	MaxWorkers = 1024
)

// Keys accepted at each level of the file.
var (
	topKeys   = []string{"listeners", "apps", "mounts", "shutdown_timeout", "limits", "log", "admin"}
	logKeys   = []string{"level", "format", "access"}
	limitKeys = []string{"max_body", "max_header_bytes", "read_header_timeout", "idle_timeout",
		"body_timeout", "send_timeout", "body_memory", "max_spool"}
	listenerKeys = []string{"addr", "tls", "h2c", "forwarded_allow_ips", "mode", "max_connections"}
	tlsKeys      = []string{"cert", "key"}
	adminKeys    = []string{"addr", "token_file"}
	appKeys      = []string{"module", "static", "cache_control", "dir", "python", "workers", "threads", "env", "reload",
		"timeout", "max_requests", "max_requests_jitter", "max_rss", "queue", "queue_timeout", "start_timeout", "max_request_time"}
)

var appNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Load reads the config file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates the YAML config in data, read from path.
//
// Relative paths in the config (app dirs, unix socket paths) are resolved
// against the folder of path. Every problem found is reported: the error
// is then of type Errors, sorted by position, each Error's Pos.File being
// path as given, and the returned *Config is nil.
func Parse(path string, data []byte) (*Config, error) {
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: resolve folder: %w", path, err)
	}
	l := &loader{file: path, base: base}
	var cfg *Config
	if root := l.decode(data); root != nil {
		cfg = l.config(root)
	}
	if l.overBudget != nil {
		// What else was found came from a partial walk: misleading.
		return nil, Errors{l.overBudget}
	}
	if len(l.errs) > 0 {
		return nil, l.sorted()
	}
	return cfg, nil
}

// maxEntries bounds the key/value pairs one Parse may walk (a mapping and
// an item of a "<<" list count as one more each). Each "<<" merge walks
// the mapping it merges again, so aliases of mappings that merge others
// multiply: nine levels of nine merges in 641 bytes are 9^9 pairs. A
// config of a thousand apps merging twenty keys each walks some 20,000;
// past this bound, loading stops with one error, in about 0.1 s.
const maxEntries = 1_000_000

// loader holds the state of one Parse call.
type loader struct {
	file string // path as given, for positions
	base string // absolute folder of the config file
	errs Errors

	walked     int    // key/value pairs walked, merged ones included
	mergeDepth int    // "<<" merges being expanded, nested
	overBudget *Error // set once walked passes maxEntries
}

// pos returns the position of n in the file.
func (l *loader) pos(n *yaml.Node) Pos {
	if n == nil || n.Line == 0 {
		return Pos{File: l.file, Line: 1, Col: 1}
	}
	return Pos{File: l.file, Line: n.Line, Col: n.Column}
}

// errorf records a problem at node n.
func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	l.errs = append(l.errs, &Error{Pos: l.pos(n), Msg: fmt.Sprintf(format, args...)})
}

// sorted returns the recorded errors in file order, without repeats (a
// mapping merged or aliased twice is walked twice).
func (l *loader) sorted() Errors {
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i].Pos, l.errs[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := make(Errors, 0, len(l.errs))
	seen := make(map[Error]bool)
	for _, e := range l.errs {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	return out
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// decode parses data into a node tree and returns the root node of the
// (single) document, or nil after recording why there is none.
func (l *loader) decode(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errs = append(l.errs, &Error{Pos: l.pos(nil), Msg: "config is empty: expected a mapping with listeners, apps and mounts"})
		} else {
			l.syntaxError(err, data)
		}
		return nil
	}
	// Later documents are an error unless empty (a stray trailing "---").
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.syntaxError(err, data)
			break
		}
		if len(extra.Content) > 0 && !isNull(extra.Content[0]) {
			l.errorf(&extra, "only one YAML document is allowed")
			break
		}
	}
	if len(doc.Content) == 0 {
		l.errs = append(l.errs, &Error{Pos: l.pos(nil), Msg: "config is empty: expected a mapping with listeners, apps and mounts"})
		return nil
	}
	return doc.Content[0]
}

var unknownAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// syntaxError records an error returned by the YAML parser, at the line
// it names (line 1 when it names none).
func (l *loader) syntaxError(err error, data []byte) {
	msg := err.Error()
	p := Pos{File: l.file, Line: 1, Col: 1}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			p.Line = n
		}
		msg = msg[len(m[0]):]
	} else {
		if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
			// yaml.v3 gives no position here; point at the first use.
			if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
				before := data[:i]
				p.Line = bytes.Count(before, []byte("\n")) + 1
				p.Col = i - (bytes.LastIndexByte(before, '\n') + 1) + 1
			}
		}
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	l.errs = append(l.errs, &Error{Pos: p, Msg: "invalid YAML: " + msg})
}

// deref follows an alias to the node it refers to.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describe names the kind (and value, for scalars) of n for messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!str":
			return strconv.Quote(n.Value)
		case "!!null":
			return "null"
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "float " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!timestamp":
			return "timestamp " + n.Value
		default:
			return fmt.Sprintf("a %s value", tag)
		}
	}
	return "nothing"
}

// isString reports whether n is a plain string scalar (tag !!str).
func isString(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"
}

// isNull reports whether n is a null scalar ("~", "null" or nothing).
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// field returns the message prefix for a problem at where.
func field(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// join appends key to the dotted path where, quoting it unless plain.
func join(where, key string) string {
	if !plainKeyRE.MatchString(key) {
		key = strconv.Quote(key)
	}
	if where == "" {
		return key
	}
	return where + "." + key
}

// entry is one key/value pair of a mapping.
type entry struct {
	key, val *yaml.Node
	name     string
}

// entries returns the pairs of mapping m (not an alias) in file order,
// expanding "<<" merge keys (explicit keys win). Non-string and duplicate
// keys are reported and skipped.
func (l *loader) entries(where string, m *yaml.Node) []entry {
	if l.walked += 1 + len(m.Content)/2; l.walked > maxEntries {
		if l.overBudget == nil && l.mergeDepth == 0 {
			l.tooLarge(where, m, false)
		}
		return nil
	}
	var out, merged []entry
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		kd := deref(k)
		if kd.Kind != yaml.ScalarNode {
			l.errorf(k, "%skeys must be strings, got %s", field(where), describe(kd))
			continue
		}
		if kd.ShortTag() == "!!merge" {
			l.mergeDepth++
			merged = append(merged, l.mergeEntries(where, v)...)
			if l.mergeDepth--; l.mergeDepth == 0 && l.walked > maxEntries && l.overBudget == nil {
				l.tooLarge(where, k, true)
			}
			continue
		}
		if first, dup := seen[kd.Value]; dup {
			l.errorf(k, "%sduplicate key %q, first at %s", field(where), kd.Value, l.pos(first))
			continue
		}
		seen[kd.Value] = k
		out = append(out, entry{key: k, val: v, name: kd.Value})
	}
	for _, e := range merged {
		if _, ok := seen[e.name]; !ok {
			seen[e.name] = e.key
			out = append(out, e)
		}
	}
	return out
}

// tooLarge records that the walk passed maxEntries at n: the outermost
// "<<" key whose expansion passed it (merge), or the mapping where it did.
func (l *loader) tooLarge(where string, n *yaml.Node, merge bool) {
	what := "the config has"
	if merge {
		what = "this \"<<\" merge expands to"
	}
	l.overBudget = &Error{Pos: l.pos(n), Msg: fmt.Sprintf("%s%s more than %d keys "+
		"(merges of aliases that merge others multiply); config refused", field(where), what, maxEntries)}
}

// mergeEntries returns the pairs a "<<" merge key brings in: those of a
// mapping, or of a list of mappings (earlier mappings win).
func (l *loader) mergeEntries(where string, v *yaml.Node) []entry {
	vd := deref(v)
	switch vd.Kind {
	case yaml.MappingNode:
		return l.entries(where, vd)
	case yaml.SequenceNode:
		l.walked += len(vd.Content)
		var out []entry
		seen := make(map[string]bool)
		for _, item := range vd.Content {
			if deref(item).Kind != yaml.MappingNode {
				l.errorf(item, "%s\"<<\" merges mappings only, got %s", field(where), describe(item))
				continue
			}
			for _, e := range l.entries(where, deref(item)) {
				if !seen[e.name] {
					seen[e.name] = true
					out = append(out, e)
				}
			}
		}
		return out
	}
	l.errorf(v, "%s\"<<\" merges mappings only, got %s", field(where), describe(v))
	return nil
}

// unknownKey reports key name at k, suggesting the closest known key.
func (l *loader) unknownKey(where string, k *yaml.Node, name string, known []string) {
	l.errorf(k, "%sunknown key %q%s", field(where), name, suggest(name, known))
}

// str returns the string value of n, or reports that it is not a string.
func (l *loader) str(where string, n *yaml.Node) (string, bool) {
	if !isString(n) {
		l.errorf(n, "%smust be a string, got %s", field(where), describe(n))
		return "", false
	}
	return deref(n).Value, true
}

// config walks the top-level mapping.
func (l *loader) config(root *yaml.Node) *Config {
	rd := deref(root)
	if isNull(rd) {
		l.errorf(nil, "config is empty: expected a mapping with listeners, apps and mounts")
		return nil
	}
	if rd.Kind != yaml.MappingNode {
		l.errorf(root, "top level must be a mapping with listeners, apps and mounts, got %s", describe(rd))
		return nil
	}
	var listeners, apps, mounts, timeout, limits, logE, admin *entry
	for _, e := range l.entries("", rd) {
		switch e.name {
		case "listeners":
			listeners = &e
		case "apps":
			apps = &e
		case "mounts":
			mounts = &e
		case "shutdown_timeout":
			timeout = &e
		case "limits":
			limits = &e
		case "log":
			logE = &e
		case "admin":
			admin = &e
		default:
			l.unknownKey("", e.key, e.name, topKeys)
		}
	}
	cfg := &Config{Path: l.file, ShutdownTimeout: DefaultShutdownTimeout, Limits: DefaultLimits, Log: Log{Access: true}}
	if limits != nil {
		l.limits(limits.val, &cfg.Limits)
	}
	if logE != nil {
		l.logConfig(logE.val, &cfg.Log)
	}
	if admin != nil {
		cfg.Admin, cfg.AdminToken = l.admin(admin.val)
	}
	if n := l.section(root, listeners, "listeners", yaml.SequenceNode, "listener", "a list of addresses"); n != nil {
		cfg.Listeners = l.listeners(n)
	}
	appsOK := false
	if n := l.section(root, apps, "apps", yaml.MappingNode, "app", "a mapping of app names to apps"); n != nil {
		cfg.Apps = l.apps(n)
		appsOK = true
	}
	if n := l.section(root, mounts, "mounts", yaml.MappingNode, "mount", "a mapping of paths to app names"); n != nil {
		cfg.Mounts = l.mounts(n, cfg.Apps, appsOK)
	}
	if timeout != nil {
		cfg.ShutdownTimeout = l.duration(timeout.name, timeout.val, cfg.ShutdownTimeout)
	}
	if cfg.Admin != nil {
		_, akey, _ := parseListenAddr(cfg.Admin.Addr, l.base)
		for _, ln := range cfg.Listeners {
			if _, key, _ := parseListenAddr(ln.Addr, l.base); key == akey && !strings.HasSuffix(key, ":0") {
				l.errs = append(l.errs, &Error{Pos: cfg.Admin.Pos, Msg: fmt.Sprintf("admin: %q is already a listener's address (at %s)", cfg.Admin.Addr, ln.Pos)})
			}
		}
	}
	return cfg
}

// logConfig walks the log mapping into lc.
func (l *loader) logConfig(n *yaml.Node, lc *Log) {
	v := deref(n)
	if isNull(v) {
		return
	}
	if v.Kind != yaml.MappingNode {
		l.errorf(n, "log: must be a mapping with level, format and access, got %s", describe(v))
		return
	}
	for _, f := range l.entries("log", v) {
		w := join("log", f.name)
		switch f.name {
		case "level":
			if s, ok := l.str(w, f.val); ok {
				if s = strings.ToLower(s); slices.Contains(LogLevels, s) {
					lc.Level = s
				} else {
					l.errorf(f.val, "%s: must be one of debug, info, warn, error, got %q", w, s)
				}
			}
		case "format":
			if s, ok := l.str(w, f.val); ok {
				if s == "console" || s == "json" {
					lc.Format = s
				} else {
					l.errorf(f.val, "%s: must be console or json, got %q", w, s)
				}
			}
		case "access":
			lc.Access = l.boolean(w, f.val)
		default:
			l.unknownKey("log", f.key, f.name, logKeys)
		}
	}
}

// admin reads the admin listener: its address, "host:port" or
// "unix:/path", or a mapping with addr and token_file. It returns a nil
// listener for null (no admin listener) or after a problem.
func (l *loader) admin(n *yaml.Node) (*Listener, Secret) {
	v := deref(n)
	if isNull(v) {
		return nil, ""
	}
	where, addr, token := "admin", n, Secret("")
	if v.Kind == yaml.MappingNode {
		where, addr = "admin.addr", nil
		for _, f := range l.entries("admin", v) {
			switch f.name {
			case "addr":
				addr = f.val
			case "token_file":
				token = l.tokenFile("admin.token_file", f.val)
			default:
				l.unknownKey("admin", f.key, f.name, adminKeys)
			}
		}
		if addr == nil {
			l.errorf(n, "admin: missing required key \"addr\"")
			return nil, ""
		}
	}
	s, ok := l.str(where, addr)
	if !ok {
		return nil, ""
	}
	ln, _, problem := parseListenAddr(s, l.base)
	if problem != "" {
		l.errorf(addr, "%s: invalid address %q: %s", where, s, problem)
		return nil, ""
	}
	ln.Pos = l.pos(addr)
	if ln.Network == "unix" && !strings.HasPrefix(ln.Address, "@") {
		ln.Mode = DefaultSocketMode
	}
	return &ln, token
}

// MinTokenLength is the shortest admin token accepted.
const MinTokenLength = 16

// tokenFile reads a bearer token from the file named in n: its contents
// without surrounding whitespace, at least MinTokenLength characters of
// RFC 6750's token68 alphabet. Messages never show the token.
func (l *loader) tokenFile(where string, n *yaml.Node) Secret {
	path, data, ok := l.readFile(where, n)
	if !ok {
		return ""
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case len(tok) < MinTokenLength:
		l.errorf(n, "%s: the token in %q is %d characters long; use at least %d (e.g. the output of \"openssl rand -hex 32\")",
			where, path, len(tok), MinTokenLength)
	case !token68RE.MatchString(tok):
		l.errorf(n, "%s: the token in %q must be one line of letters, digits and - . _ ~ + / (then optional =), as a Bearer token is",
			where, path)
	default:
		return Secret(tok)
	}
	return ""
}

// token68RE is RFC 6750's b64token (RFC 9110's token68).
var token68RE = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// section checks a required top-level list or mapping and returns it, or
// nil after reporting that it is missing, empty or of the wrong kind.
func (l *loader) section(root *yaml.Node, e *entry, name string, kind yaml.Kind, one, want string) *yaml.Node {
	if e == nil {
		l.errorf(root, "missing %q: at least one %s is required", name, one)
		return nil
	}
	v := deref(e.val)
	switch {
	case isNull(v) || (v.Kind == kind && len(v.Content) == 0):
		l.errorf(e.key, "%s: at least one %s is required", name, one)
		return nil
	case v.Kind != kind:
		l.errorf(e.val, "%s: must be %s, got %s", name, want, describe(v))
		return nil
	}
	return v
}

// listeners walks the listeners list.
func (l *loader) listeners(seq *yaml.Node) []Listener {
	var out []Listener
	seen := make(map[string]Pos)
	for i, item := range seq.Content {
		where := fmt.Sprintf("listeners[%d]", i)
		it := deref(item)
		var addr *yaml.Node
		var opts []entry
		switch {
		case isString(it):
			addr = item
		case it.Kind == yaml.MappingNode:
			for _, e := range l.entries(where, it) {
				switch e.name {
				case "addr":
					addr = e.val
				case "tls", "h2c", "forwarded_allow_ips", "mode", "max_connections":
					opts = append(opts, e)
				default:
					l.unknownKey(where, e.key, e.name, listenerKeys)
				}
			}
		default:
			l.errorf(item, "%s: must be an address string or a mapping with addr, got %s", where, describe(it))
			continue
		}
		// The options are checked even when the address is bad, so that
		// every problem shows at once; those that depend on the kind of
		// address are checked only when it is known.
		ln, key, ok := l.listenAddr(where, item, addr, it.Kind == yaml.MappingNode)
		l.listenerOptions(where, &ln, opts)
		if !ok {
			continue
		}
		if first, dup := seen[key]; dup {
			l.errorf(addr, "%s: duplicate listener address %q, first at %s", addrWhere(where, it), ln.Addr, first)
			continue
		}
		ln.Pos = l.pos(addr)
		seen[key] = ln.Pos
		out = append(out, ln)
	}
	return out
}

// addrWhere names the address of listener where (a bare string, or the
// addr key of a mapping) in messages.
func addrWhere(where string, item *yaml.Node) string {
	if item.Kind == yaml.MappingNode {
		return where + ".addr"
	}
	return where
}

// listenAddr checks the address of one listener (addr is nil when a
// mapping has none) and returns the listener it gives, its duplicate key
// and whether it is usable.
func (l *loader) listenAddr(where string, item, addr *yaml.Node, mapping bool) (Listener, string, bool) {
	if addr == nil {
		l.errorf(item, "%s: missing required key \"addr\"", where)
		return Listener{}, "", false
	}
	if mapping {
		where += ".addr"
		if !isString(addr) {
			l.errorf(addr, "%s: must be an address string, got %s", where, describe(addr))
			return Listener{}, "", false
		}
	}
	s := deref(addr).Value
	ln, key, problem := parseListenAddr(s, l.base)
	if problem != "" {
		l.errorf(addr, "%s: invalid address %q: %s", where, s, problem)
		return Listener{}, "", false
	}
	return ln, key, true
}

// listenerOptions walks a listener's keys other than addr into ln, whose
// Network is "" when the address was unusable.
func (l *loader) listenerOptions(where string, ln *Listener, opts []entry) {
	abstract := ln.Network == "unix" && strings.HasPrefix(ln.Address, "@")
	if ln.Network == "unix" && !abstract {
		ln.Mode = DefaultSocketMode
	}
	var tlsKey, h2cKey *yaml.Node
	for _, e := range opts {
		w := join(where, e.name)
		switch e.name {
		case "max_connections":
			ln.MaxConnections = l.intRange(w, e.val, ln.MaxConnections, 1, 1<<24)
		case "tls":
			if !isNull(e.val) {
				tlsKey = e.key
			}
			ln.TLS = l.listenerTLS(w, e.val)
		case "h2c":
			if ln.H2C = l.boolean(w, e.val); ln.H2C {
				h2cKey = e.key
			}
		case "forwarded_allow_ips":
			ln.ForwardedAllow = l.allowIPs(w, e.val, ln.Network)
		case "mode":
			mode, ok := l.socketMode(w, e.val)
			switch {
			case !ok:
			case ln.Network == "tcp":
				l.errorf(e.key, "%s: only a unix socket has a mode; this listener is tcp", w)
			case abstract:
				l.errorf(e.key, "%s: an abstract unix socket (\"unix:@name\") has no file to set a mode on", w)
			case ln.Network == "unix":
				ln.Mode = mode
			}
		}
	}
	if tlsKey != nil && h2cKey != nil {
		l.errorf(h2cKey, "%s: h2c (HTTP/2 without TLS) cannot be set together with tls: a tls listener serves HTTP/2 already, by ALPN", join(where, "h2c"))
	}
}

// listenerTLS walks a listener's tls mapping: the cert and key files must
// exist and load as a pair. It returns nil for null or after a problem.
func (l *loader) listenerTLS(where string, n *yaml.Node) *TLSConfig {
	v := deref(n)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		l.errorf(n, "%s: must be a mapping with cert and key, got %s", where, describe(v))
		return nil
	}
	t := &TLSConfig{}
	var certPEM, keyPEM []byte
	var hasCert, hasKey, ok = false, false, true
	for _, f := range l.entries(where, v) {
		w := join(where, f.name)
		switch f.name {
		case "cert", "key":
			path, data, good := l.readFile(w, f.val)
			ok = ok && good
			if f.name == "cert" {
				hasCert, t.Cert, certPEM = true, path, data
			} else {
				hasKey, t.Key, keyPEM = true, path, data
			}
		default:
			l.unknownKey(where, f.key, f.name, tlsKeys)
		}
	}
	if !hasCert {
		l.errorf(n, "%s: missing required key \"cert\"", where)
	}
	if !hasKey {
		l.errorf(n, "%s: missing required key \"key\"", where)
	}
	if !hasCert || !hasKey || !ok {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		l.errorf(n, "%s: cert %q and key %q do not load as a pair: %v", where, t.Cert, t.Key, err)
		return nil
	}
	t.Certificate = &cert
	t.Fingerprint = CertFingerprint(certPEM, keyPEM)
	return t
}

// CertFingerprint is the TLSConfig.Fingerprint of a cert and key file's contents.
func CertFingerprint(certPEM, keyPEM []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(certPEM)))
	h.Write(n[:])
	h.Write(certPEM)
	h.Write(keyPEM)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// readFile reads the file named by the string in n, resolved against the
// config's folder; it returns the absolute path, the contents and whether
// that worked.
func (l *loader) readFile(where string, n *yaml.Node) (string, []byte, bool) {
	s, ok := l.str(where, n)
	if !ok {
		return "", nil, false
	}
	if s == "" {
		l.errorf(n, "%s: must not be empty", where)
		return "", nil, false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(l.base, s)
	}
	s = filepath.Clean(s)
	data, err := os.ReadFile(s)
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			l.errorf(n, "%s: file %q does not exist", where, s)
		case errors.As(err, &pe):
			l.errorf(n, "%s: cannot read %q: %v", where, s, pe.Err)
		default:
			l.errorf(n, "%s: cannot read %q: %v", where, s, err)
		}
		return s, nil, false
	}
	return s, data, true
}

// allowIPs walks forwarded_allow_ips: a list of IP addresses, CIDRs and
// "*", or one string of them separated by commas (gunicorn's form). On a
// unix listener only "*" means anything. Null or an empty list trusts no one.
func (l *loader) allowIPs(where string, n *yaml.Node, network string) []netip.Prefix {
	v := deref(n)
	type item struct {
		node  *yaml.Node
		where string
		text  string
	}
	var items []item
	switch {
	case isNull(v):
		return nil
	case isString(v):
		for _, s := range strings.Split(v.Value, ",") {
			items = append(items, item{n, where, strings.TrimSpace(s)})
		}
	case v.Kind == yaml.SequenceNode:
		for i, it := range v.Content {
			w := fmt.Sprintf("%s[%d]", where, i)
			if !isString(it) {
				l.errorf(it, "%s: must be an IP address, a CIDR or \"*\", got %s", w, describe(it))
				continue
			}
			items = append(items, item{it, w, strings.TrimSpace(deref(it).Value)})
		}
	default:
		l.errorf(n, "%s: must be a list of IP addresses and CIDRs (or \"*\"), got %s", where, describe(v))
		return nil
	}
	var out []netip.Prefix
	all := false
	for _, it := range items {
		if it.text == "*" {
			all = true
			continue
		}
		p, problem := parseAllowIP(it.text)
		if problem != "" {
			l.errorf(it.node, "%s: invalid address %q: %s", it.where, it.text, problem)
			continue
		}
		if network == "unix" {
			l.errorf(it.node, "%s: %q cannot match: a unix socket's peers have no IP address; use \"*\" to believe every peer (the socket's mode limits who may connect)", it.where, it.text)
			continue
		}
		out = append(out, p)
	}
	if all {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	return out
}

// parseAllowIP parses one entry of forwarded_allow_ips other than "*": an
// IP address (a prefix of one address) or a CIDR (host bits cleared, as
// nginx does). IPv4-mapped IPv6 becomes IPv4, as peers' addresses do.
func parseAllowIP(s string) (netip.Prefix, string) {
	const want = `want an IP address like "127.0.0.1", a CIDR like "10.0.0.0/8", or "*"`
	if s == "" {
		return netip.Prefix{}, "empty; " + want
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, want
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, want
	}
	if a.Zone() != "" {
		return netip.Prefix{}, "an IPv6 zone cannot be matched; " + want
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// socketMode reads a unix socket's permission bits: octal digits, as a
// string ("0660") or a YAML number (0660 and 660 read as octal too).
func (l *loader) socketMode(where string, n *yaml.Node) (os.FileMode, bool) {
	v := deref(n)
	if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!str" || v.ShortTag() == "!!int") {
		digits := strings.TrimPrefix(strings.TrimPrefix(v.Value, "0o"), "0O")
		if m, err := strconv.ParseUint(digits, 8, 32); err == nil && len(digits) <= 4 && m <= 0o777 {
			if m == 0 {
				l.errorf(n, "%s: mode %q lets no one connect", where, v.Value)
				return 0, false
			}
			return os.FileMode(m), true
		}
	}
	l.errorf(n, "%s: must be an octal permission like \"0660\" (at most 0777), got %s", where, describe(v))
	return 0, false
}

// parseListenAddr checks a listener address and resolves unix socket
// paths against base. It returns the listener, a key identifying the
// address for duplicate detection, and a problem ("" when valid).
func parseListenAddr(addr, base string) (Listener, string, string) {
	ln := Listener{Addr: addr, MaxConnections: DefaultMaxConnections}
	if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
		switch {
		case rest == "":
			return ln, "", "unix socket path is empty"
		case strings.ContainsRune(rest, 0):
			return ln, "", "unix socket path contains a NUL byte"
		case rest[0] == '@': // Linux abstract socket: not a file path.
		case !filepath.IsAbs(rest):
			rest = filepath.Join(base, rest)
		default:
			rest = filepath.Clean(rest)
		}
		ln.Network, ln.Address = "unix", rest
		return ln, "unix\x00" + rest, ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ln, "", `must be "host:port" or "unix:/path/to.sock"`
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || strings.ContainsAny(port, "+-") {
		return ln, "", "port must be a number from 0 to 65535"
	}
	if problem := checkListenHost(host, strings.HasPrefix(addr, "[")); problem != "" {
		return ln, "", problem
	}
	ln.Network, ln.Address = "tcp", addr
	return ln, "tcp\x00" + net.JoinHostPort(strings.ToLower(host), strconv.Itoa(p)), ""
}

// checkListenHost checks the host part of a tcp listener address: empty,
// an IP address or a host name. bracketed tells whether it was in [].
func checkListenHost(host string, bracketed bool) string {
	if host == "" {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if bracketed && !ip.Is6() {
			return "brackets are only for IPv6 addresses"
		}
		return ""
	}
	if bracketed || strings.Contains(host, ":") {
		return fmt.Sprintf("invalid IPv6 address %q", host)
	}
	if !validHostname(host, "_") {
		return fmt.Sprintf("invalid host %q", host)
	}
	labels := strings.Split(host, ".")
	if allDigits(labels[len(labels)-1]) {
		return fmt.Sprintf("invalid IP address %q", host)
	}
	return ""
}

// validHostname reports whether name is dot-separated non-empty labels of
// ASCII letters, digits, '-' and the characters in extra, at most 253 bytes.
func validHostname(name, extra string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return false
		}
		for _, c := range label {
			if !(c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c)) || c == '-' || strings.ContainsRune(extra, c)) {
				return false
			}
		}
	}
	return true
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// apps walks the apps mapping.
func (l *loader) apps(m *yaml.Node) []*App {
	var out []*App
	for _, e := range l.entries("apps", m) {
		where := join("apps", e.name)
		if !appNameRE.MatchString(e.name) {
			l.errorf(e.key, "%s: invalid app name: use only letters, digits, \"_\", \".\" and \"-\"", where)
		}
		out = append(out, l.app(where, e))
	}
	return out
}

// app walks one app's mapping. The result carries defaults for whatever
// is missing or invalid.
func (l *loader) app(where string, e entry) *App {
	a := &App{
		Name:     e.name,
		Callable: DefaultCallable,
		Dir:      l.base,
		Python:   DefaultPython,
		Workers:  1,
		Threads:  1,
		Env:      map[string]string{},

		Timeout:      DefaultTimeout,
		Queue:        DefaultQueue,
		QueueTimeout: DefaultQueueTimeout,
		StartTimeout: DefaultStartTimeout,
		Pos:          l.pos(e.key),
	}
	v := deref(e.val)
	if v.Kind != yaml.MappingNode {
		l.errorf(e.val, "%s: must be a mapping with at least a module, got %s", where, describe(v))
		return a
	}
	var hasModule, hasDir bool
	var staticKey, cacheKey *yaml.Node
	for _, f := range l.entries(where, v) {
		w := join(where, f.name)
		switch f.name {
		case "module":
			hasModule = true
			l.appModule(a, w, f.val)
		case "static":
			staticKey = f.key
			if d, ok := l.dir(w, f.val); ok {
				a.Static = d
			}
		case "cache_control":
			cacheKey = f.key
			a.CacheControl = l.headerValue(w, f.val)
		case "dir":
			hasDir = true
			if d, ok := l.dir(w, f.val); ok {
				a.Dir = d
			}
		default:
			l.appSetting(a, where, f)
		}
	}
	switch {
	case staticKey != nil && hasModule:
		l.errorf(staticKey, "%s: an app is either a module or a static folder, not both", where)
	case staticKey == nil && !hasModule:
		l.errorf(e.key, "%s: missing required key \"module\" (or \"static\" for a folder of files)", where)
	}
	if cacheKey != nil && staticKey == nil {
		l.errorf(cacheKey, "%s: only a static app has cache_control (a WSGI app sets its own Cache-Control)", join(where, "cache_control"))
	}
	if !hasDir {
		l.checkDir(e.key, where+": default dir (the config file's folder)", a.Dir)
	}
	return a
}

// appModule reads an app's module ("pkg.mod:callable") into a.
func (l *loader) appModule(a *App, where string, n *yaml.Node) {
	s, ok := l.str(where, n)
	if !ok {
		return
	}
	mod, call, problem := parseModule(s)
	if problem != "" {
		l.errorf(n, "%s: invalid module %q: %s", where, s, problem)
		return
	}
	a.Module, a.Callable = mod, call
}

// appSetting reads the app key f (other than module, static,
// cache_control and dir) into a, or reports it as unknown.
func (l *loader) appSetting(a *App, where string, f entry) {
	w := join(where, f.name)
	switch f.name {
	case "python":
		s, ok := l.str(w, f.val)
		if !ok {
			return
		}
		if strings.TrimSpace(s) == "" {
			l.errorf(f.val, "%s: must not be empty", w)
			return
		}
		a.Python = s
	case "workers":
		a.Workers = l.count(w, f.val, a.Workers)
	case "threads":
		a.Threads = l.count(w, f.val, a.Threads)
	case "env":
		l.env(w, f.val, a.Env)
	case "reload":
		a.Reload = l.boolean(w, f.val)
	case "timeout":
		a.Timeout = l.duration(w, f.val, a.Timeout)
	case "queue_timeout":
		a.QueueTimeout = l.duration(w, f.val, a.QueueTimeout)
	case "start_timeout":
		a.StartTimeout = l.duration(w, f.val, a.StartTimeout)
	case "max_requests":
		a.MaxRequests = l.intRange(w, f.val, 0, 0, 1<<40)
	case "max_requests_jitter":
		a.MaxRequestsJitter = l.intRange(w, f.val, 0, 0, 1<<40)
	case "queue":
		a.Queue = l.intRange(w, f.val, a.Queue, 0, 1<<24)
	case "max_rss":
		a.MaxRSS = l.size(w, f.val, 0, true)
	case "max_request_time":
		a.MaxRequestTime = l.duration(w, f.val, 0)
	default:
		l.unknownKey(where, f.key, f.name, appKeys)
	}
}

// headerValue reads a string to send as an HTTP header value: not empty,
// and without control characters (CR and LF would split the header).
func (l *loader) headerValue(where string, n *yaml.Node) string {
	s, ok := l.str(where, n)
	switch {
	case !ok:
	case strings.TrimSpace(s) == "":
		l.errorf(n, "%s: must not be empty (leave the key out to send no header)", where)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		l.errorf(n, "%s: must not contain control characters, got %q", where, s)
	default:
		return s
	}
	return ""
}

// limits walks the top-level limits mapping into lim.
func (l *loader) limits(n *yaml.Node, lim *Limits) {
	v := deref(n)
	if v.Kind != yaml.MappingNode {
		l.errorf(n, "limits: must be a mapping, got %s", describe(v))
		return
	}
	for _, f := range l.entries("limits", v) {
		w := join("limits", f.name)
		switch f.name {
		case "max_body":
			lim.MaxBody = l.size(w, f.val, lim.MaxBody, false)
		case "max_header_bytes":
			lim.MaxHeaderBytes = int(l.size(w, f.val, int64(lim.MaxHeaderBytes), false))
			if lim.MaxHeaderBytes > 1<<30 {
				l.errorf(f.val, "%s: must be at most 1GiB", w)
			}
		case "read_header_timeout":
			lim.ReadHeaderTimeout = l.duration(w, f.val, lim.ReadHeaderTimeout)
		case "idle_timeout":
			lim.IdleTimeout = l.duration(w, f.val, lim.IdleTimeout)
		case "body_timeout":
			lim.BodyTimeout = l.duration(w, f.val, lim.BodyTimeout)
		case "send_timeout":
			lim.SendTimeout = l.duration(w, f.val, lim.SendTimeout)
		case "body_memory":
			lim.BodyMemory = l.size(w, f.val, lim.BodyMemory, false)
		case "max_spool":
			lim.MaxSpool = l.size(w, f.val, lim.MaxSpool, true)
		default:
			l.unknownKey("limits", f.key, f.name, limitKeys)
		}
	}
}

// intRange returns the integer in n, which must be from lo to hi; def
// after reporting otherwise.
func (l *loader) intRange(where string, n *yaml.Node, def, lo, hi int) int {
	v := deref(n)
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		var i int64
		if err := v.Decode(&i); err == nil && i >= int64(lo) && i <= int64(hi) {
			return int(i)
		}
	}
	l.errorf(n, "%s: must be an integer from %d to %d, got %s", where, lo, hi, describe(v))
	return def
}

// size returns a byte count written as an integer or with a unit (KiB,
// MiB, GiB, KB, MB, GB, B); zeroOK allows 0 (meaning "no limit").
func (l *loader) size(where string, n *yaml.Node, def int64, zeroOK bool) int64 {
	v := deref(n)
	if v.Kind != yaml.ScalarNode || isNull(v) {
		l.errorf(n, "%s: must be a size like \"16MiB\", got %s", where, describe(v))
		return def
	}
	b, err := ParseSize(v.Value)
	switch {
	case err != nil:
		l.errorf(n, "%s: %v", where, err)
		return def
	case b == 0 && !zeroOK:
		l.errorf(n, "%s: must be greater than 0", where)
		return def
	}
	return b
}

// boolean reads a YAML bool (true/false).
func (l *loader) boolean(where string, n *yaml.Node) bool {
	v := deref(n)
	if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
		var b bool
		if err := v.Decode(&b); err == nil {
			return b
		}
	}
	l.errorf(n, "%s: must be true or false, got %s", where, describe(v))
	return false
}

// dir reads a folder path, relative to the config file's folder, that
// must exist; it returns the absolute, cleaned path.
func (l *loader) dir(where string, n *yaml.Node) (string, bool) {
	s, ok := l.str(where, n)
	if !ok {
		return "", false
	}
	if s == "" {
		l.errorf(n, "%s: must not be empty", where)
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(l.base, s)
	}
	s = filepath.Clean(s)
	l.checkDir(n, where+": directory", s)
	return s, true
}

// checkDir reports at n if dir does not exist or is not a directory.
func (l *loader) checkDir(n *yaml.Node, what, dir string) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.errorf(n, "%s %q does not exist", what, dir)
	case err != nil:
		l.errorf(n, "%s %q: %v", what, dir, err)
	case !fi.IsDir():
		l.errorf(n, "%s %q is not a directory", what, dir)
	}
}

// parseModule splits "pkg.mod:callable" into module and callable (default
// DefaultCallable) and checks both are dotted Python identifiers.
func parseModule(s string) (module, callable, problem string) {
	module, callable, hasColon := strings.Cut(s, ":")
	if !hasColon {
		callable = DefaultCallable
	}
	switch {
	case module == "":
		return "", "", "missing module name before \":\""
	case hasColon && callable == "":
		return "", "", "missing callable after \":\""
	}
	if p := checkDotted(module); p != "" {
		return "", "", p
	}
	if p := checkDotted(callable); p != "" {
		return "", "", p
	}
	return module, callable, ""
}

var pythonKeywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true, "assert": true,
	"async": true, "await": true, "break": true, "class": true, "continue": true,
	"def": true, "del": true, "elif": true, "else": true, "except": true,
	"finally": true, "for": true, "from": true, "global": true, "if": true,
	"import": true, "in": true, "is": true, "lambda": true, "nonlocal": true,
	"not": true, "or": true, "pass": true, "raise": true, "return": true,
	"try": true, "while": true, "with": true, "yield": true,
}

// checkDotted checks that s is dot-separated Python identifiers.
func checkDotted(s string) string {
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return fmt.Sprintf("empty name in %q", s)
		}
		if !isIdentifier(part) {
			return fmt.Sprintf("%q is not a Python identifier (want \"package.module\" or \"package.module:callable\")", part)
		}
		if pythonKeywords[part] {
			return fmt.Sprintf("%q is a Python keyword", part)
		}
	}
	return ""
}

// isIdentifier reports whether s is a Python identifier: a letter or '_'
// followed by letters, digits and '_'.
func isIdentifier(s string) bool {
	for i, c := range s {
		if !(c == '_' || unicode.IsLetter(c) || i > 0 && unicode.IsDigit(c)) {
			return false
		}
	}
	return s != ""
}

// count returns the integer in n, which must be from 1 to MaxWorkers; def
// after reporting otherwise.
func (l *loader) count(where string, n *yaml.Node, def int) int {
	v := deref(n)
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		var i int64
		if err := v.Decode(&i); err == nil && i >= 1 && i <= MaxWorkers {
			return int(i)
		}
	}
	l.errorf(n, "%s: must be an integer from 1 to %d, got %s", where, MaxWorkers, describe(v))
	return def
}

// env adds the variables of mapping n to env. Scalar values are kept as
// written; null becomes "".
func (l *loader) env(where string, n *yaml.Node, env map[string]string) {
	v := deref(n)
	if isNull(v) {
		return
	}
	if v.Kind != yaml.MappingNode {
		l.errorf(n, "%s: must be a mapping of variable names to values, got %s", where, describe(v))
		return
	}
	for _, e := range l.entries(where, v) {
		if e.name == "" || strings.ContainsAny(e.name, "=\x00") {
			l.errorf(e.key, "%s: invalid variable name %q: must be non-empty, without \"=\" or NUL", where, e.name)
			continue
		}
		val := deref(e.val)
		switch {
		case isNull(val):
			env[e.name] = ""
		case val.Kind == yaml.ScalarNode:
			if strings.ContainsRune(val.Value, 0) {
				l.errorf(e.val, "%s: value must not contain a NUL byte", join(where, e.name))
				continue
			}
			env[e.name] = val.Value
		default:
			l.errorf(e.val, "%s: must be a string, number or boolean, got %s", join(where, e.name), describe(val))
		}
	}
}

// mountKey identifies a mount for duplicate detection.
type mountKey struct{ host, prefix string }

// mounts walks the mounts mapping. Unknown app names are reported only
// when the apps section itself was usable (appsOK).
func (l *loader) mounts(m *yaml.Node, apps []*App, appsOK bool) []Mount {
	names := make([]string, len(apps))
	known := make(map[string]bool)
	for i, a := range apps {
		names[i] = a.Name
		known[a.Name] = true
	}
	var out []Mount
	seen := make(map[mountKey]Pos)
	for _, e := range l.entries("mounts", m) {
		where := "mounts." + strconv.Quote(e.name)
		ok := true
		host, prefix, problem := parseMountKey(e.name)
		if problem != "" {
			l.errorf(e.key, "%s: invalid mount: %s", where, problem)
			ok = false
		}
		var app string
		if !isString(e.val) {
			l.errorf(e.val, "%s: must be an app name, got %s", where, describe(e.val))
			ok = false
		} else if app = deref(e.val).Value; appsOK && !known[app] {
			l.errorf(e.val, "%s: unknown app %q%s", where, app, suggestApp(app, names))
			ok = false
		}
		if problem == "" {
			k := mountKey{host, prefix}
			if first, dup := seen[k]; dup {
				l.errorf(e.key, "%s: duplicate mount, first at %s", where, first)
				ok = false
			} else {
				seen[k] = l.pos(e.key)
			}
		}
		if ok {
			out = append(out, Mount{Key: e.name, Host: host, Prefix: prefix, App: app, Pos: l.pos(e.key)})
		}
	}
	return out
}

// parseMountKey splits "[host]/path" into a lower-cased host and a
// normalized path prefix, or returns a problem.
func parseMountKey(key string) (host, prefix, problem string) {
	i := strings.IndexByte(key, '/')
	if i < 0 {
		return "", "", `must be "/path" or "host/path"`
	}
	host, prefix = strings.ToLower(key[:i]), key[i:]
	if host != "" {
		if p := checkMountHost(host); p != "" {
			return "", "", p
		}
	}
	switch {
	case strings.ContainsAny(prefix, "?#"):
		return "", "", `path must not contain "?" or "#"`
	case strings.Contains(prefix, "//"):
		return "", "", `path must not contain "//"`
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "." || seg == ".." {
			return "", "", `path must not contain "." or ".." segments`
		}
	}
	if len(prefix) > 1 {
		prefix = strings.TrimSuffix(prefix, "/")
	}
	return host, prefix, ""
}

// checkMountHost checks the (lower-cased) host part of a mount key.
func checkMountHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && allDigits(host[i+1:]) {
		return fmt.Sprintf("host %q must not include a port (mounts match any port)", host)
	}
	name := strings.TrimPrefix(host, "*.")
	if !validHostname(name, "") {
		return fmt.Sprintf("invalid host %q: use letters, digits, \"-\" and \".\", optionally after a leading \"*.\"", host)
	}
	return ""
}

// duration parses a positive Go duration; def after reporting otherwise.
func (l *loader) duration(where string, n *yaml.Node, def time.Duration) time.Duration {
	v := deref(n)
	if v.Kind != yaml.ScalarNode || isNull(v) {
		l.errorf(n, "%s: must be a duration like \"30s\", got %s", where, describe(v))
		return def
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		l.errorf(n, "%s: invalid duration %q: use a Go duration like \"30s\" or \"1m30s\"", where, v.Value)
		return def
	}
	if d <= 0 {
		l.errorf(n, "%s: must be greater than 0, got %q", where, v.Value)
		return def
	}
	return d
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to
// name within edit distance 2, or "".
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if d < bestDist && d < len(name) && (d < 2 || strings.EqualFold(name[:1], c[:1])) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// suggestApp is suggest for app names; with no close match it lists the
// apps when there are few.
func suggestApp(name string, apps []string) string {
	if s := suggest(name, apps); s != "" {
		return s
	}
	if len(apps) == 0 || len(apps) > 5 {
		return ""
	}
	quoted := make([]string, len(apps))
	for i, a := range apps {
		quoted[i] = strconv.Quote(a)
	}
	return fmt.Sprintf(" (known apps: %s)", strings.Join(quoted, ", "))
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
