package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// The parsers of a listener's values. Each returns an error whose message
// follows "listeners[N].key: ".

// parseAddrString reads the addr of a listener written as a mapping.
func parseAddrString(n *yaml.Node) (string, error) {
	if !isString(n) {
		return "", fmt.Errorf("must be an address string, got %s", describe(n))
	}
	return deref(n).Value, nil
}

// parseListenAddr checks a listener address and resolves unix socket
// paths against base. It returns a listener with Addr, Network, Address
// and, for a socket file, Mode DefaultSocketMode set.
func parseListenAddr(addr, base string) (Listener, error) {
	network, address, problem := splitListenAddr(addr, base)
	if problem != "" {
		return Listener{}, fmt.Errorf("invalid address %q: %s", addr, problem)
	}
	ln := Listener{Addr: addr, Network: network, Address: address}
	if network == "unix" && !strings.HasPrefix(address, "@") {
		ln.Mode = DefaultSocketMode
	}
	return ln, nil
}

// splitListenAddr returns the network and address of a listener address,
// or a problem.
func splitListenAddr(addr, base string) (network, address, problem string) {
	if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
		switch {
		case rest == "":
			return "", "", "unix socket path is empty"
		case strings.ContainsRune(rest, 0):
			return "", "", "unix socket path contains a NUL byte"
		case rest[0] == '@': // Linux abstract socket: not a file path.
		case !filepath.IsAbs(rest):
			rest = filepath.Join(base, rest)
		default:
			rest = filepath.Clean(rest)
		}
		return "unix", rest, ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", `must be "host:port" or "unix:/path/to.sock"`
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || strings.ContainsAny(port, "+-") {
		return "", "", "port must be a number from 0 to 65535"
	}
	if problem := checkListenHost(host, strings.HasPrefix(addr, "[")); problem != "" {
		return "", "", problem
	}
	return "tcp", addr, ""
}

// listenKey identifies the address of a valid listener, for finding two
// listeners on one address.
func listenKey(ln Listener) string {
	if ln.Network == "unix" {
		return "unix\x00" + ln.Address
	}
	host, port, _ := net.SplitHostPort(ln.Address)
	p, _ := strconv.Atoi(port)
	return "tcp\x00" + net.JoinHostPort(strings.ToLower(host), strconv.Itoa(p))
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

// parseSocketMode reads a unix socket's permission bits: octal digits, as
// a string ("0660") or a YAML number (0660 and 660 read as octal too).
func parseSocketMode(n *yaml.Node) (os.FileMode, error) {
	v := deref(n)
	if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!str" || v.ShortTag() == "!!int") {
		digits := strings.TrimPrefix(strings.TrimPrefix(v.Value, "0o"), "0O")
		if m, err := strconv.ParseUint(digits, 8, 32); err == nil && len(digits) <= 4 && m <= 0o777 {
			if m == 0 {
				return 0, fmt.Errorf("mode %q lets no one connect", v.Value)
			}
			return os.FileMode(m), nil
		}
	}
	return 0, fmt.Errorf("must be an octal permission like \"0660\" (at most 0777), got %s", describe(v))
}

// checkHasMode returns why listener ln, whose Network is "" when its
// address is unusable, has no socket file to set a mode on.
func checkHasMode(ln *Listener) error {
	switch {
	case ln.Network == "tcp":
		return errors.New("only a unix socket has a mode; this listener is tcp")
	case ln.Network == "unix" && strings.HasPrefix(ln.Address, "@"):
		return errors.New("an abstract unix socket (\"unix:@name\") has no file to set a mode on")
	}
	return nil
}

// parseAllowIPs reads forwarded_allow_ips: a list of IP addresses, CIDRs
// and "*", or one string of them separated by commas (gunicorn's form),
// for a listener on network. On a unix listener only "*" means anything.
// Null or an empty list trusts no one. Problems with items of a list are
// nodeErrors.
func parseAllowIPs(n *yaml.Node, network string) ([]netip.Prefix, error) {
	items, err := allowItems(n)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var out []netip.Prefix
	all := false
	for _, it := range items {
		if it.text == "*" {
			all = true
			continue
		}
		p, err := parseAllowIP(it.text)
		if err == nil && network == "unix" {
			err = fmt.Errorf("%q cannot match: a unix socket's peers have no IP address; use \"*\" to believe every peer (the socket's mode limits who may connect)", it.text)
		}
		if err != nil {
			errs = append(errs, &nodeError{node: it.node, sub: it.sub, msg: err.Error()})
			continue
		}
		out = append(out, p)
	}
	if all {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, errors.Join(errs...)
	}
	return out, errors.Join(errs...)
}

// allowItem is one entry of forwarded_allow_ips: the node it is written
// at, its path under the key ("" or "[N]") and its text.
type allowItem struct {
	node      *yaml.Node
	sub, text string
}

// allowItems returns the entries of forwarded_allow_ips. Items of a list
// that are not strings are nodeErrors.
func allowItems(n *yaml.Node) ([]allowItem, error) {
	v := deref(n)
	var items []allowItem
	var errs []error
	switch {
	case isNull(v):
	case isString(v):
		for _, s := range strings.Split(v.Value, ",") {
			items = append(items, allowItem{node: n, text: strings.TrimSpace(s)})
		}
	case v.Kind == yaml.SequenceNode:
		for i, it := range v.Content {
			sub := fmt.Sprintf("[%d]", i)
			if !isString(it) {
				errs = append(errs, &nodeError{node: it, sub: sub, msg: fmt.Sprintf("must be an IP address, a CIDR or \"*\", got %s", describe(it))})
				continue
			}
			items = append(items, allowItem{node: it, sub: sub, text: strings.TrimSpace(deref(it).Value)})
		}
	default:
		return nil, fmt.Errorf("must be a list of IP addresses and CIDRs (or \"*\"), got %s", describe(v))
	}
	return items, errors.Join(errs...)
}

// parseAllowIP parses one entry of forwarded_allow_ips other than "*": an
// IP address (a prefix of one address) or a CIDR (host bits cleared, as
// nginx does). IPv4-mapped IPv6 becomes IPv4, as peers' addresses do.
func parseAllowIP(s string) (netip.Prefix, error) {
	const want = `want an IP address like "127.0.0.1", a CIDR like "10.0.0.0/8", or "*"`
	problem := want
	switch {
	case s == "":
		problem = "empty; " + want
	case strings.Contains(s, "/"):
		if p, err := netip.ParsePrefix(s); err == nil {
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			return p.Masked(), nil
		}
	default:
		a, err := netip.ParseAddr(s)
		if err == nil && a.Zone() == "" {
			a = a.Unmap()
			return netip.PrefixFrom(a, a.BitLen()), nil
		}
		if err == nil {
			problem = "an IPv6 zone cannot be matched; " + want
		}
	}
	return netip.Prefix{}, fmt.Errorf("invalid address %q: %s", s, problem)
}
