package config

import "gopkg.in/yaml.v3"

// limits reads the limits mapping, at path where, into lim.
func (l *loader) limits(where string, n *yaml.Node, lim *Limits) {
	if l.isMapping(where, n, "a mapping") {
		walk(l, where, n, lim, limitKeys)
	}
}

// logConfig reads the log mapping, at path where, into lc.
func (l *loader) logConfig(where string, n *yaml.Node, lc *Log) {
	if !isNull(n) && l.isMapping(where, n, "a mapping with level, format and access") {
		walk(l, where, n, lc, logKeys)
	}
}

// workers reads an app's workers: a count, or a mapping of scaleKeys.
func (l *loader) workers(where string, e entry, a *App) {
	n := deref(e.val)
	if n.Kind != yaml.MappingNode {
		if v, err := intIn(1, MaxWorkers)(e.val); l.ok(where, e.val, err) {
			a.Workers = v
		}
		return
	}
	s := defaults(scaleKeys)
	walk(l, where, e.val, &s, scaleKeys)
	if s.Max > 0 && s.Min > s.Max {
		l.errorf(e.val, "%s: min (%d) is more than max (%d)", where, s.Min, s.Max)
		return
	}
	if s.Max > 0 {
		a.Scale, a.Workers = &s, s.Max
	}
}
