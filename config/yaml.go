package config

import (
	"fmt"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Reading yaml.v3 nodes: following aliases, describing values in
// messages, and the entries of a mapping with "<<" merges expanded.

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
	if l.expanding == nil {
		l.expanding = map[*yaml.Node]bool{}
	}
	l.expanding[m] = true
	defer delete(l.expanding, m)
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
	if l.expanding[vd] {
		// A mapping that merges itself (or one that merges it): its
		// expansion would never end.
		l.errorf(v, "%s\"<<\" merges a mapping into itself", field(where))
		return nil
	}
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
			if l.expanding[deref(item)] {
				l.errorf(item, "%s\"<<\" merges a mapping into itself", field(where))
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
