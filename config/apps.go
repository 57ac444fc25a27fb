package config

import (
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Reading the apps and the mounts.

var appNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// apps reads the apps mapping.
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

// app reads one app's mapping by appKeys, then checks the keys against
// each other. The result carries defaults for whatever is missing or
// invalid; its dir defaults to the config file's folder.
func (l *loader) app(where string, e entry) *App {
	a := &App{Name: e.name, Dir: l.base, Pos: l.pos(e.key)}
	setDefaults(a, appKeys)
	if !l.isMapping(where, e.val, "a mapping with at least a module") {
		return a
	}
	seen := walk(l, where, e.val, a, appKeys)
	static, hasStatic := seen["static"]
	_, hasModule := seen["module"]
	switch {
	case hasStatic && hasModule:
		l.errorf(static.key, "%s: an app is either a module or a static folder, not both", where)
	case !hasStatic && !hasModule:
		l.errorf(e.key, "%s: missing required key \"module\" (or \"static\" for a folder of files)", where)
	}
	if cache, ok := seen["cache_control"]; ok && !hasStatic {
		l.errorf(cache.key, "%s: only a static app has cache_control (a WSGI app sets its own Cache-Control)", join(where, "cache_control"))
	}
	if _, ok := seen["dir"]; !ok {
		l.ok(where, e.key, checkDir("default dir (the config file's folder)", a.Dir))
	}
	return a
}

// env adds the variables of mapping n, at path where, to env.
func (l *loader) env(where string, n *yaml.Node, env map[string]string) {
	if isNull(n) || !l.isMapping(where, n, "a mapping of variable names to values") {
		return
	}
	for _, e := range l.entries(where, deref(n)) {
		if !l.ok(where, e.key, checkEnvName(e.name)) {
			continue
		}
		if s, err := parseEnvValue(e.val); l.ok(join(where, e.name), e.val, err) {
			env[e.name] = s
		}
	}
}

// mountKey identifies a mount for duplicate detection.
type mountKey struct{ host, prefix string }

// mounts reads the mounts mapping. Unknown app names are reported only
// when the apps section itself was usable (appsOK). seen holds the
// mounts read so far, of this file and others, for duplicates.
func (l *loader) mounts(m *yaml.Node, apps []*App, appsOK bool, seen map[mountKey]Pos) []Mount {
	var names []string
	known := make(map[string]bool)
	for _, a := range apps {
		if !known[a.Name] { // an app of two files is reported there
			names = append(names, a.Name)
		}
		known[a.Name] = true
	}
	var out []Mount
	for _, e := range l.entries("mounts", m) {
		where := "mounts." + strconv.Quote(e.name)
		host, prefix, err := parseMountKey(e.name)
		ok := l.ok(where, e.key, err)
		var app string
		if !isString(e.val) {
			l.errorf(e.val, "%s: must be an app name, got %s", where, describe(e.val))
			ok = false
		} else if app = deref(e.val).Value; appsOK && !known[app] {
			l.errorf(e.val, "%s: unknown app %q%s", where, app, suggestApp(app, names))
			ok = false
		}
		if err == nil {
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
