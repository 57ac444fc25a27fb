package config

import (
	"errors"
	"fmt"
	"strings"
)

// parseMountKey splits a mount key, "[host]/path", into a lower-cased host
// and a normalized path prefix. Its error follows "mounts.KEY: ".
func parseMountKey(key string) (host, prefix string, err error) {
	host, prefix, problem := splitMountKey(key)
	if problem != "" {
		return "", "", errors.New("invalid mount: " + problem)
	}
	return host, prefix, nil
}

// splitMountKey is parseMountKey returning a problem.
func splitMountKey(key string) (host, prefix, problem string) {
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
