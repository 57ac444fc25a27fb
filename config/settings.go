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
