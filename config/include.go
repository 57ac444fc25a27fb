package config

import (
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Included files. The main file's include: lists glob patterns, relative
// to its folder; each file they match (in pattern order, then name order;
// each once; never the main file) declares apps and mounts, as the main
// file does. Listeners, limits, log and admin are host-wide: only the main
// file sets them, so that a team's file cannot open a port. An app's dir
// in an included file is relative to that file's folder; mounts may name
// the apps of any file. Problems name the file they are in; an app or a
// mount declared in two files is a problem at the second, naming the
// first. Every file loads, or none.

// included is one included file, read in two steps: its apps first, its
// mounts once the apps of every file are known.
type included struct {
	l      *loader
	apps   []*App
	appsOK bool       // no apps key, or a usable one: mounts check names
	mounts *yaml.Node // the mounts mapping, nil if none or unusable
}

// includedKeys are the keys of an included file's top level.
var includedKeys = append([]key[included]{
	{name: "apps", doc: "more apps, as in the main file",
		read: func(l *loader, inc *included, w string, e entry) {
			n := l.section(w, e, yaml.MappingNode, "app", "a mapping of app names to apps")
			if inc.appsOK = n != nil; n != nil {
				inc.apps = l.apps(n)
			}
		}},
	{name: "mounts", doc: "more mounts, as in the main file; they may name the apps of any file",
		read: func(l *loader, inc *included, w string, e entry) {
			inc.mounts = l.section(w, e, yaml.MappingNode, "mount", "a mapping of paths to app names")
		}},
}, mainOnlyKeys("listeners", "shutdown_timeout", "limits", "log", "admin", "include")...)

// mainOnlyKeys are keys an included file may not set.
func mainOnlyKeys(names ...string) []key[included] {
	keys := make([]key[included], len(names))
	for i, name := range names {
		keys[i] = key[included]{name: name, doc: "refused: only the main file sets " + name, read: func(l *loader, _ *included, w string, e entry) {
			l.errorf(e.key, "%s: only the main config file sets %s; an included file declares apps and mounts", w, w)
		}}
	}
	return keys
}

// includes reads the main file's include key, if root has one, and the
// apps of the files it matches; it records the patterns in cfg.
func (l *loader) includes(root *yaml.Node, cfg *Config) []*included {
	r := deref(root)
	if r.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(r.Content); i += 2 {
		if k := deref(r.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "include" {
			l.hasInclude = true
			return l.includeFiles(r.Content[i+1], cfg)
		}
	}
	return nil
}

// includeFiles reads the patterns in n and the files they match.
func (l *loader) includeFiles(n *yaml.Node, cfg *Config) []*included {
	var out []*included
	seen := map[string]bool{}
	if abs, err := filepath.Abs(l.file); err == nil {
		seen[abs] = true
	}
	for _, p := range l.includePatterns(n) {
		pattern := deref(p).Value
		matches, err := filepath.Glob(filepath.Join(filepath.Dir(l.file), pattern))
		if err != nil {
			l.errorf(p, "include: invalid pattern %q: %v", pattern, err)
			continue
		}
		cfg.Include = append(cfg.Include, absJoin(l.base, pattern))
		for _, m := range matches {
			abs, err := filepath.Abs(m)
			if err != nil || seen[abs] || isDir(abs) {
				continue
			}
			seen[abs] = true
			cfg.Files = append(cfg.Files, abs)
			if inc := l.includeFile(p, m); inc != nil {
				out = append(out, inc)
			}
		}
	}
	return out
}

// includePatterns returns the pattern nodes of include's value n: a list
// of strings, or one string.
func (l *loader) includePatterns(n *yaml.Node) []*yaml.Node {
	v := deref(n)
	switch {
	case isString(v):
		return []*yaml.Node{n}
	case v.Kind != yaml.SequenceNode:
		l.errorf(n, "include: must be a list of file patterns like \"apps.d/*.yaml\", got %s", describe(v))
		return nil
	}
	var out []*yaml.Node
	for i, item := range v.Content {
		if !isString(item) || deref(item).Value == "" {
			l.errorf(item, "include[%d]: must be a file pattern like \"apps.d/*.yaml\", got %s", i, describe(item))
			continue
		}
		out = append(out, item)
	}
	return out
}

// absJoin returns pattern made absolute against base.
func absJoin(base, pattern string) string {
	if filepath.IsAbs(pattern) {
		return filepath.Clean(pattern)
	}
	return filepath.Join(base, pattern)
}

// includeFile reads the included file at path, matched by the pattern at
// p, and its apps; nil when it is empty.
func (l *loader) includeFile(p *yaml.Node, path string) *included {
	data, err := os.ReadFile(path)
	if err != nil {
		l.errorf(p, "include: cannot read %q: %v", path, err)
		return nil
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil // being written, or emptied: declares nothing
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		l.errorf(p, "include: resolve the folder of %q: %v", path, err)
		return nil
	}
	inc := &included{l: &loader{file: path, base: base}, appsOK: true}
	root := inc.l.decode(data)
	if root == nil {
		return inc
	}
	if r := deref(root); r.Kind != yaml.MappingNode {
		inc.l.errorf(root, "an included file's top level must be a mapping with apps and mounts, got %s", describe(r))
		return inc
	}
	walk(inc.l, "", root, inc, includedKeys)
	return inc
}

// finishIncludes reads the included files' mounts, once the apps of every
// file are known, adds their apps and mounts to t, and checks what spans
// files: app names declared twice, and that there is an app and a mount.
func (l *loader) finishIncludes(t *topLevel, root *yaml.Node) {
	apps, ok := t.allApps()
	for _, inc := range t.inc {
		if inc.mounts != nil {
			t.Mounts = append(t.Mounts, inc.l.mounts(inc.mounts, apps, ok, t.mountSeen)...)
		}
	}
	first := map[string]Pos{}
	for _, a := range t.Apps {
		first[a.Name] = a.Pos
	}
	for _, inc := range t.inc {
		for _, a := range inc.apps {
			if p, dup := first[a.Name]; dup {
				inc.l.errorAt(a.Pos, "apps.%s: app %q is also declared at %s", a.Name, a.Name, p)
				continue
			}
			first[a.Name] = a.Pos
		}
	}
	t.Apps = apps
	if !l.hasInclude {
		return
	}
	if len(apps) == 0 && !t.appsBad {
		l.errorf(root, "no apps: declare at least one under apps, here or in an included file")
	}
	if len(t.Mounts) == 0 {
		l.errorf(root, "no mounts: declare at least one under mounts, here or in an included file")
	}
}

// allApps returns the apps of every file, and whether every apps section
// was usable (so that a mount naming no app is a problem).
func (t *topLevel) allApps() ([]*App, bool) {
	apps, ok := t.Apps, t.appsOK || (t.hasInclude && !t.appsBad)
	for _, inc := range t.inc {
		apps = append(apps, inc.apps...)
		ok = ok && inc.appsOK
	}
	return apps, ok
}

// allErrors returns the problems of the main file then of each included file, or the one
// that stopped a walk that grew too large.
func (l *loader) allErrors(incs []*included) (Errors, *Error) {
	all := append([]*loader{l}, includedLoaders(incs)...)
	var errs Errors
	for _, x := range all {
		if x.overBudget != nil {
			return nil, x.overBudget
		}
		errs = append(errs, x.sorted()...)
	}
	return errs, nil
}

func includedLoaders(incs []*included) []*loader {
	out := make([]*loader, len(incs))
	for i, inc := range incs {
		out[i] = inc.l
	}
	return out
}
