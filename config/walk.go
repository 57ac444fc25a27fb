package config

import "gopkg.in/yaml.v3"

// A key is one key of a YAML mapping whose value is read into a T (an
// App, Limits, Log, a Listener...). The tables of keys are in keys.go.
type key[T any] struct {
	// name is the key as written in the file.
	name string
	// doc says in one line what the key sets, for the reference.
	doc string
	// def stores the key's default in t; nil when it is the zero value.
	def func(t *T)
	// read reads the key's value e.val into t; where is the key's dotted
	// path, for messages.
	read func(l *loader, t *T, where string, e entry)
	// missing, if set, is called when the mapping n (as written, at path
	// where) has no such key: the key is required.
	missing func(l *loader, where, name string, n *yaml.Node)
	// stage orders the reading of keys that use what other keys set (see
	// walk); 0 for most.
	stage int
}

// opt declares a key whose value parse reads into the field at returns,
// which holds def when the key is left out or its value is bad.
func opt[T, V any](name string, at func(*T) *V, def V, parse func(*yaml.Node) (V, error), doc string) key[T] {
	return key[T]{
		name: name,
		doc:  doc,
		def:  func(t *T) { *at(t) = def },
		read: func(l *loader, t *T, where string, e entry) {
			if v, err := parse(e.val); l.ok(where, e.val, err) {
				*at(t) = v
			}
		},
	}
}

// inStage returns k read in stage (see walk).
func (k key[T]) inStage(stage int) key[T] {
	k.stage = stage
	return k
}

// required is the missing of a key that must be there.
func required(l *loader, where, name string, n *yaml.Node) {
	l.errorf(n, "%s: missing required key %q", where, name)
}

// setDefaults stores the default of every key in keys in t.
func setDefaults[T any](t *T, keys []key[T]) {
	for _, k := range keys {
		if k.def != nil {
			k.def(t)
		}
	}
}

// defaults returns a T holding the default of every key in keys.
func defaults[T any](keys []key[T]) T {
	var t T
	setDefaults(&t, keys)
	return t
}

// keyNames returns the names of keys, in table order.
func keyNames[T any](keys []key[T]) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return names
}

// walk reads mapping n (as written; it must be a mapping, possibly
// through an alias), at path where, into t by the table keys. It meets
// the mapping's entries in file order, reports those that are not keys of
// the table, and reads those of stage 0 at once. Then, stage by stage, it
// reads the keys of later stages (in file order within one) and reports
// the required keys it lacks (in table order), so that a key can use what
// an earlier stage set. It returns the entries read, by name, for checks
// across keys.
func walk[T any](l *loader, where string, n *yaml.Node, t *T, keys []key[T]) map[string]entry {
	seen := make(map[string]entry)
	var later []entry
	last := 0
	for _, e := range l.entries(where, deref(n)) {
		k := find(keys, e.name)
		switch {
		case k == nil:
			l.unknownKey(where, e.key, e.name, keyNames(keys))
			continue
		case k.stage == 0:
			k.read(l, t, join(where, e.name), e)
		default:
			later = append(later, e)
		}
		seen[e.name] = e
	}
	for _, k := range keys {
		last = max(last, k.stage)
	}
	for stage := 0; stage <= last; stage++ {
		for _, e := range later {
			if k := find(keys, e.name); k.stage == stage {
				k.read(l, t, join(where, e.name), e)
			}
		}
		for _, k := range keys {
			if _, ok := seen[k.name]; !ok && k.stage == stage && k.missing != nil {
				k.missing(l, where, k.name, n)
			}
		}
	}
	return seen
}

// find returns the key of the table keys called name, or nil.
func find[T any](keys []key[T], name string) *key[T] {
	for i := range keys {
		if keys[i].name == name {
			return &keys[i]
		}
	}
	return nil
}

// isMapping reports whether n is a mapping, after reporting at n that it
// must be want ("a mapping with ...") when it is not.
func (l *loader) isMapping(where string, n *yaml.Node, want string) bool {
	if v := deref(n); v.Kind != yaml.MappingNode {
		l.errorf(n, "%s: must be %s, got %s", where, want, describe(v))
		return false
	}
	return true
}

// A nodeError is a problem a parser found at a node inside the value it
// read (an item of a list, say); sub is added to the key's path.
type nodeError struct {
	node *yaml.Node
	sub  string
	msg  string
}

func (e *nodeError) Error() string { return e.msg }

// ok records the problems in err, found in n, the value of the key at
// where, and reports whether there were none. Each error err joins is one
// problem: "where: msg" at n, or at the node and path a nodeError names.
func (l *loader) ok(where string, n *yaml.Node, err error) bool {
	if err == nil {
		return true
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			l.ok(where, n, e)
		}
		return false
	}
	if ne, ok := err.(*nodeError); ok {
		l.errorf(ne.node, "%s: %s", where+ne.sub, ne.msg)
		return false
	}
	l.errorf(n, "%s: %v", where, err)
	return false
}

// unknownKey reports key name at k, suggesting the closest known key.
func (l *loader) unknownKey(where string, k *yaml.Node, name string, known []string) {
	l.errorf(k, "%sunknown key %q%s", field(where), name, suggest(name, known))
}
