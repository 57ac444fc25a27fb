// Package router maps a request's host and path to a mounted app, and splits
// the path into SCRIPT_NAME and PATH_INFO as PEP 3333 defines them.
package router

import (
	"sort"
	"strings"
)

// Mount is one entry of the mount table.
type Mount[T any] struct {
	// Host is "" (any host), an exact lower-case host name, or "*.suffix" for
	// any subdomain of suffix.
	Host string
	// Prefix is "/" or a path without a trailing slash, e.g. "/blog".
	Prefix string
	// Target is what the mount serves.
	Target T
}

// Match is the result of a successful lookup.
type Match[T any] struct {
	Target T
	// ScriptName is the mount prefix ("" for "/").
	ScriptName string
	// PathInfo is the rest of the path after ScriptName.
	PathInfo string
}

// Table is an immutable mount table. The zero value matches nothing.
type Table[T any] struct {
	exact     map[string][]Mount[T] // host -> mounts, longest prefix first
	wildcards []wildcard[T]         // longest suffix first
	any       []Mount[T]            // host-less mounts, longest prefix first
}

type wildcard[T any] struct {
	suffix string // ".example.com"
	mounts []Mount[T]
}

// New builds a table from mounts. Later duplicates of a host+prefix pair are
// ignored; config validation refuses them before they get here.
func New[T any](mounts []Mount[T]) *Table[T] {
	t := &Table[T]{exact: map[string][]Mount[T]{}}
	wild := map[string][]Mount[T]{}
	for _, m := range mounts {
		switch {
		case m.Host == "":
			t.any = append(t.any, m)
		case strings.HasPrefix(m.Host, "*."):
			s := m.Host[1:]
			wild[s] = append(wild[s], m)
		default:
			t.exact[m.Host] = append(t.exact[m.Host], m)
		}
	}
	for h, ms := range t.exact {
		t.exact[h] = sortMounts(ms)
	}
	for s, ms := range wild {
		t.wildcards = append(t.wildcards, wildcard[T]{suffix: s, mounts: sortMounts(ms)})
	}
	sort.Slice(t.wildcards, func(i, j int) bool { return len(t.wildcards[i].suffix) > len(t.wildcards[j].suffix) })
	t.any = sortMounts(t.any)
	return t
}

func sortMounts[T any](ms []Mount[T]) []Mount[T] {
	sort.SliceStable(ms, func(i, j int) bool { return len(ms[i].Prefix) > len(ms[j].Prefix) })
	return ms
}

// Lookup finds the mount for a request. host is the Host header as sent (any
// port is ignored, case does not matter); path is the percent-decoded path.
// Mounts with an exact host beat wildcard hosts, which beat host-less mounts;
// within each, the longest prefix on a "/" boundary wins.
func (t *Table[T]) Lookup(host, path string) (Match[T], bool) {
	if len(t.exact) > 0 || len(t.wildcards) > 0 {
		h := normalizeHost(host)
		if ms, ok := t.exact[h]; ok {
			if m, ok := matchPrefix(ms, path); ok {
				return m, true
			}
		}
		for _, w := range t.wildcards {
			if len(h) > len(w.suffix) && strings.HasSuffix(h, w.suffix) {
				if m, ok := matchPrefix(w.mounts, path); ok {
					return m, true
				}
			}
		}
	}
	return matchPrefix(t.any, path)
}

func matchPrefix[T any](ms []Mount[T], path string) (Match[T], bool) {
	for _, m := range ms {
		if m.Prefix == "/" {
			return Match[T]{Target: m.Target, PathInfo: path}, true
		}
		if strings.HasPrefix(path, m.Prefix) && (len(path) == len(m.Prefix) || path[len(m.Prefix)] == '/') {
			return Match[T]{Target: m.Target, ScriptName: m.Prefix, PathInfo: path[len(m.Prefix):]}, true
		}
	}
	return Match[T]{}, false
}

// normalizeHost lower-cases host and strips a port and a trailing dot.
func normalizeHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}
