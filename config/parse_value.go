package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// The parsers of scalar values. Each reads the value n of a key and
// returns it, or an error whose message follows "path.of.key: ".

// parseString reads a string.
func parseString(n *yaml.Node) (string, error) {
	if !isString(n) {
		return "", fmt.Errorf("must be a string, got %s", describe(n))
	}
	return deref(n).Value, nil
}

// parseNonEmpty reads a string with more than white space in it.
func parseNonEmpty(n *yaml.Node) (string, error) {
	s, err := parseString(n)
	if err == nil && strings.TrimSpace(s) == "" {
		return "", errors.New("must not be empty")
	}
	return s, err
}

// parseBool reads a YAML bool (true/false).
func parseBool(n *yaml.Node) (bool, error) {
	v := deref(n)
	if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
		var b bool
		if err := v.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("must be true or false, got %s", describe(v))
}

// intIn returns the parser of an integer from lo to hi.
func intIn(lo, hi int) func(*yaml.Node) (int, error) {
	return func(n *yaml.Node) (int, error) {
		v := deref(n)
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
			var i int64
			if err := v.Decode(&i); err == nil && i >= int64(lo) && i <= int64(hi) {
				return int(i), nil
			}
		}
		return 0, fmt.Errorf("must be an integer from %d to %d, got %s", lo, hi, describe(v))
	}
}

// parseSize reads a byte count greater than 0, written as an integer or
// with a unit (KiB, MiB, GiB, KB, MB, GB, B): see ParseSize.
func parseSize(n *yaml.Node) (int64, error) { return size(n, false) }

// parseSizeOrZero is parseSize allowing 0 (meaning "no limit").
func parseSizeOrZero(n *yaml.Node) (int64, error) { return size(n, true) }

func size(n *yaml.Node, zeroOK bool) (int64, error) {
	v := deref(n)
	if v.Kind != yaml.ScalarNode || isNull(v) {
		return 0, fmt.Errorf("must be a size like \"16MiB\", got %s", describe(v))
	}
	b, err := ParseSize(v.Value)
	switch {
	case err != nil:
		return 0, err
	case b == 0 && !zeroOK:
		return 0, errors.New("must be greater than 0")
	}
	return b, nil
}

// parseHeaderBytes reads limits.max_header_bytes: a size up to 1GiB.
func parseHeaderBytes(n *yaml.Node) (int, error) {
	b, err := parseSize(n)
	if err == nil && b > 1<<30 {
		return 0, errors.New("must be at most 1GiB")
	}
	return int(b), err
}

// parseDuration reads a Go duration greater than 0.
func parseDuration(n *yaml.Node) (time.Duration, error) {
	v := deref(n)
	if v.Kind != yaml.ScalarNode || isNull(v) {
		return 0, fmt.Errorf("must be a duration like \"30s\", got %s", describe(v))
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use a Go duration like \"30s\" or \"1m30s\"", v.Value)
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be greater than 0, got %q", v.Value)
	}
	return d, nil
}

// parseDurationOrZero reads a Go duration of 0 or more (0: off).
func parseDurationOrZero(n *yaml.Node) (time.Duration, error) {
	if v := deref(n); v.Kind == yaml.ScalarNode && (v.Value == "0" || v.Value == "0s") {
		return 0, nil
	}
	return parseDuration(n)
}

// parseOptBool reads a boolean that overrides a default when set.
func parseOptBool(n *yaml.Node) (*bool, error) {
	b, err := parseBool(n)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// parseHeaderValue reads a string to send as an HTTP header value: not
// empty, and without control characters (CR and LF would split the header).
func parseHeaderValue(n *yaml.Node) (string, error) {
	s, err := parseString(n)
	switch {
	case err != nil:
		return "", err
	case strings.TrimSpace(s) == "":
		return "", errors.New("must not be empty (leave the key out to send no header)")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", fmt.Errorf("must not contain control characters, got %q", s)
	}
	return s, nil
}

// parseLogLevel reads log.level: one of LogLevels, in any case.
func parseLogLevel(n *yaml.Node) (string, error) {
	s, err := parseString(n)
	if err != nil {
		return "", err
	}
	if s = strings.ToLower(s); !slices.Contains(LogLevels, s) {
		return "", fmt.Errorf("must be one of debug, info, warn, error, got %q", s)
	}
	return s, nil
}

// parseLogFormat reads log.format: console or json.
// parseAccessFormat reads log.access_format: json or combined.
func parseAccessFormat(n *yaml.Node) (string, error) {
	s, err := parseString(n)
	if err == nil && s != "json" && s != "combined" {
		return "", fmt.Errorf("must be json or combined, got %q", s)
	}
	return s, err
}

func parseLogFormat(n *yaml.Node) (string, error) {
	s, err := parseString(n)
	if err == nil && s != "console" && s != "json" {
		return "", fmt.Errorf("must be console or json, got %q", s)
	}
	return s, err
}
