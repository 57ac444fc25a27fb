package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Environment values: ${NAME} and ${NAME:-default} in scalar values
// (never in keys) are replaced by the variable's value when the file is
// loaded, at start and at every reload. A plain (unquoted) scalar then
// reads as if the result had been written in its place (workers: ${N}
// with N=4 is the integer 4); a quoted one stays a string. "$${" writes
// a literal "${". Problems name the value as written, never what it
// expanded to.

// envNameRE is a variable's name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv replaces the references in every scalar value under n.
func (l *loader) expandEnv(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			l.expandEnv(c)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			l.expandEnv(n.Content[i])
		}
	case yaml.ScalarNode:
		l.expandScalar(n)
	}
}

// expandScalar expands the references in the scalar n, recording its
// text as written so that messages show that instead.
func (l *loader) expandScalar(n *yaml.Node) {
	if !strings.Contains(n.Value, "${") {
		return
	}
	out, err := expandRefs(n.Value, os.LookupEnv)
	if err != nil {
		l.errorf(n, "%v", err)
		if l.badEnv == nil {
			l.badEnv = map[*yaml.Node]bool{}
		}
		l.badEnv[n] = true
		return
	}
	if l.expanded == nil {
		l.expanded = map[*yaml.Node]string{}
	}
	l.expanded[n] = n.Value
	n.Value = out
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 && n.Tag == "!!str" {
		n.Tag = "" // resolved again from the value
	}
}

// expandRefs returns s with its references replaced by lookup's values.
func expandRefs(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // "$${": a literal "${"
			b.WriteString(s[:i] + "{")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf(`unterminated "${" in %q: write ${NAME} or ${NAME:-default} (or "$${" for a literal "${")`, s)
		}
		v, err := lookupRef(s[i+2:i+end], lookup)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		s = s[i+end+1:]
	}
}

// lookupRef returns the value of one reference, "NAME" or "NAME:-default".
func lookupRef(ref string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDef := strings.Cut(ref, ":-")
	if !envNameRE.MatchString(name) {
		return "", fmt.Errorf("invalid environment reference ${%s}: a name is letters, digits and _, not starting with a digit", ref)
	}
	if v, ok := lookup(name); ok && (v != "" || !hasDef) {
		return v, nil
	}
	if hasDef {
		return def, nil
	}
	return "", fmt.Errorf("environment variable %s is not set (give a default with ${%s:-value})", name, name)
}
