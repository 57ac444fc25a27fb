package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// The parsers of an app's values. Each returns an error whose message
// follows "apps.NAME.key: ".

// parseModuleValue reads an app's module, "pkg.mod:callable".
func parseModuleValue(n *yaml.Node) (module, callable string, err error) {
	s, err := parseString(n)
	if err != nil {
		return "", "", err
	}
	return parseModule(s)
}

// parseModule splits "pkg.mod:callable" into module and callable (default
// DefaultCallable) and checks both are dotted Python identifiers.
func parseModule(s string) (module, callable string, err error) {
	module, callable, hasColon := strings.Cut(s, ":")
	if !hasColon {
		callable = DefaultCallable
	}
	problem := ""
	switch {
	case module == "":
		problem = "missing module name before \":\""
	case hasColon && callable == "":
		problem = "missing callable after \":\""
	default:
		if problem = checkDotted(module); problem == "" {
			problem = checkDotted(callable)
		}
	}
	if problem != "" {
		return "", "", fmt.Errorf("invalid module %q: %s", s, problem)
	}
	return module, callable, nil
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

// parseDir reads the path of a folder that must exist, relative to base
// (the config file's folder), and returns it absolute and cleaned.
func parseDir(base string, n *yaml.Node) (string, error) {
	s, err := parsePath(base, n)
	if err != nil {
		return "", err
	}
	return s, checkDir("directory", s)
}

// parsePath reads a path, relative to base, and returns it absolute and
// cleaned.
func parsePath(base string, n *yaml.Node) (string, error) {
	s, err := parseString(n)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", errors.New("must not be empty")
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(base, s)
	}
	return filepath.Clean(s), nil
}

// checkDir returns why dir, described as what, is not a directory.
func checkDir(what, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %q does not exist", what, dir)
	case err != nil:
		return fmt.Errorf("%s %q: %v", what, dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%s %q is not a directory", what, dir)
	}
	return nil
}

// checkEnvName checks the name of an environment variable.
func checkEnvName(name string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("invalid variable name %q: must be non-empty, without \"=\" or NUL", name)
	}
	return nil
}

// parseEnvValue reads the value of an environment variable: a scalar as
// written; null is "".
func parseEnvValue(n *yaml.Node) (string, error) {
	v := deref(n)
	switch {
	case isNull(v):
		return "", nil
	case v.Kind != yaml.ScalarNode:
		return "", fmt.Errorf("must be a string, number or boolean, got %s", describe(v))
	case strings.ContainsRune(v.Value, 0):
		return "", errors.New("value must not contain a NUL byte")
	}
	return v.Value, nil
}

// parseUser reads a user name or number and resolves it.
func parseUser(n *yaml.Node) (string, uint32, error) {
	s, err := parseNonEmpty(n)
	if err != nil {
		return "", 0, err
	}
	u, err := user.Lookup(s)
	if err != nil {
		if u, err = user.LookupId(s); err != nil {
			return "", 0, fmt.Errorf("unknown user %q", s)
		}
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	return s, uint32(id), err
}

// parseGroup reads a group name or number and resolves it.
func parseGroup(n *yaml.Node) (string, uint32, error) {
	s, err := parseNonEmpty(n)
	if err != nil {
		return "", 0, err
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		if g, err = user.LookupGroupId(s); err != nil {
			return "", 0, fmt.Errorf("unknown group %q", s)
		}
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	return s, uint32(id), err
}

// parseUmask reads an octal mask from 0 to 0777, like "0027".
func parseUmask(n *yaml.Node) (int, error) {
	v := deref(n)
	m, err := strconv.ParseUint(v.Value, 8, 32)
	if v.Kind != yaml.ScalarNode || err != nil || m > 0o777 {
		return 0, fmt.Errorf("must be an octal mask like \"0027\", got %s", describe(v))
	}
	return int(m), nil
}

// parseCount64 reads a whole number of 0 or more.
func parseCount64(n *yaml.Node) (int64, error) {
	v := deref(n)
	i, err := strconv.ParseInt(v.Value, 10, 64)
	if v.Kind != yaml.ScalarNode || err != nil || i < 0 {
		return 0, fmt.Errorf("must be a whole number of 0 or more, got %s", describe(v))
	}
	return i, nil
}
