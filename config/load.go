package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the config file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates the YAML config in data, read from path.
//
// Relative paths in the config (app dirs, unix socket paths) are resolved
// against the folder of path. The files its include patterns match are
// read too (see include.go). Every problem found is reported: the error
// is then of type Errors, those of path first, then those of each
// included file, each file's sorted by position (Pos.File is path as
// given, or an included file's path joined to its folder), and the
// returned *Config is nil.
func Parse(path string, data []byte) (*Config, error) {
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: resolve folder: %w", path, err)
	}
	l := &loader{file: path, base: base}
	var cfg *Config
	if root := l.decode(data); root != nil {
		cfg = l.config(root)
	}
	errs, overBudget := l.allErrors(l.included)
	if overBudget != nil {
		// What else was found came from a partial walk: misleading.
		return nil, Errors{overBudget}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// maxEntries bounds the key/value pairs one Parse may walk (a mapping and
// an item of a "<<" list count as one more each). Each "<<" merge walks
// the mapping it merges again, so aliases of mappings that merge others
// multiply: nine levels of nine merges in 641 bytes are 9^9 pairs. A
// config of a thousand apps merging twenty keys each walks some 20,000;
// past this bound, loading stops with one error, in about 0.1 s.
const maxEntries = 1_000_000

// loader holds the state of one Parse call.
type loader struct {
	file string // path as given, for positions
	base string // absolute folder of the config file
	errs Errors

	walked     int                   // key/value pairs walked, merged ones included
	mergeDepth int                   // "<<" merges being expanded, nested
	expanding  map[*yaml.Node]bool   // mappings whose entries are being walked (a merge of one is a cycle)
	overBudget *Error                // set once walked passes maxEntries
	expanded   map[*yaml.Node]string // scalars whose ${NAME} were expanded: their text as written
	badEnv     map[*yaml.Node]bool   // scalars whose ${NAME} could not be expanded
	hasInclude bool                  // the main file has an include key
	included   []*included           // the files it includes
}

// pos returns the position of n in the file.
func (l *loader) pos(n *yaml.Node) Pos {
	if n == nil || n.Line == 0 {
		return Pos{File: l.file, Line: 1, Col: 1}
	}
	return Pos{File: l.file, Line: n.Line, Col: n.Column}
}

// errorf records a problem at node n.
func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if d := deref(n); d != nil {
		if l.badEnv[d] {
			return // its ${NAME} was reported; what follows from it is noise
		}
		if written, ok := l.expanded[d]; ok {
			msg = hideExpanded(msg, d.Value, written)
		}
	}
	l.errorAt(l.pos(n), "%s", msg)
}

// hideExpanded returns msg with the expanded value shown as written:
// quoted, or as the last word (describe's "integer 4").
func hideExpanded(msg, value, written string) string {
	if value == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, strconv.Quote(value), strconv.Quote(written))
	if strings.HasSuffix(msg, " "+value) {
		msg = strings.TrimSuffix(msg, value) + written
	}
	return msg
}

// errorAt records a problem at p. A message that quotes an expanded
// value quotes the value as written instead (values from the environment
// may be secrets).
func (l *loader) errorAt(p Pos, format string, args ...any) {
	l.errs = append(l.errs, &Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// sorted returns the recorded errors in file order, without repeats (a
// mapping merged or aliased twice is walked twice).
func (l *loader) sorted() Errors {
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i].Pos, l.errs[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := make(Errors, 0, len(l.errs))
	seen := make(map[Error]bool)
	for _, e := range l.errs {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	return out
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// decode parses data into a node tree and returns the root node of the
// (single) document, or nil after recording why there is none.
func (l *loader) decode(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errorf(nil, "config is empty: expected a mapping with listeners, apps and mounts")
		} else {
			l.syntaxError(err, data)
		}
		return nil
	}
	// Later documents are an error unless empty (a stray trailing "---").
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.syntaxError(err, data)
			break
		}
		if len(extra.Content) > 0 && !isNull(extra.Content[0]) {
			l.errorf(&extra, "only one YAML document is allowed")
			break
		}
	}
	if len(doc.Content) == 0 {
		l.errorf(nil, "config is empty: expected a mapping with listeners, apps and mounts")
		return nil
	}
	l.expandEnv(&doc)
	return doc.Content[0]
}

var unknownAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// syntaxError records an error returned by the YAML parser, at the line
// it names (line 1 when it names none).
func (l *loader) syntaxError(err error, data []byte) {
	msg := err.Error()
	p := Pos{File: l.file, Line: 1, Col: 1}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			p.Line = n
		}
		msg = msg[len(m[0]):]
	} else {
		if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
			// yaml.v3 gives no position here; point at the first use.
			if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
				before := data[:i]
				p.Line = bytes.Count(before, []byte("\n")) + 1
				p.Col = i - (bytes.LastIndexByte(before, '\n') + 1) + 1
			}
		}
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	l.errorAt(p, "invalid YAML: %s", msg)
}

// topLevel is what the top level of the file is read into: the config,
// and what one section tells the next.
type topLevel struct {
	Config
	appsOK     bool // apps was a mapping of apps: mounts check the names they use
	appsBad    bool // apps was there but not a usable mapping
	hasInclude bool // the file includes others: apps and mounts may be there
	inc        []*included
	mountSeen  map[mountKey]Pos // the mounts of every file, for duplicates
}

// config reads the top-level mapping by topKeys.
func (l *loader) config(root *yaml.Node) *Config {
	rd := deref(root)
	if isNull(rd) {
		l.errorf(nil, "config is empty: expected a mapping with listeners, apps and mounts")
		return nil
	}
	if rd.Kind != yaml.MappingNode {
		l.errorf(root, "top level must be a mapping with listeners, apps and mounts, got %s", describe(rd))
		return nil
	}
	t := &topLevel{Config: Config{Path: l.file}, mountSeen: map[mountKey]Pos{}}
	setDefaults(t, topKeys)
	l.included = l.includes(root, &t.Config)
	t.inc, t.hasInclude = l.included, l.hasInclude
	walk(l, "", root, t, topKeys)
	l.finishIncludes(t, root)
	l.checkAdminAddr(&t.Config)
	return &t.Config
}

// section checks a required top-level list or mapping, at path where, and
// returns it, or nil after reporting that it is empty or of the wrong kind.
func (l *loader) section(where string, e entry, kind yaml.Kind, one, want string) *yaml.Node {
	v := deref(e.val)
	switch {
	case isNull(v) || (v.Kind == kind && len(v.Content) == 0):
		l.errorf(e.key, "%s: at least one %s is required", where, one)
		return nil
	case v.Kind != kind:
		l.errorf(e.val, "%s: must be %s, got %s", where, want, describe(v))
		return nil
	}
	return v
}
