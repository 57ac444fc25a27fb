// Package config defines gowsgi's YAML configuration: its types, loading,
// validation with file:line:col errors, and watching the file for changes.
//
// # How a file is read
//
// Parse decodes the file into yaml.v3 nodes and walks them. Each kind of
// mapping in the file (the top level, an app, a listener, limits, log,
// admin, tls) has a table in keys.go, one entry a key: its name, a
// one-line doc, its default, and how its value is read. The walk (walk.go)
// meets a mapping's entries in file order, reports those its table does
// not know and reads the others; a few keys whose reading uses what other
// keys set (a listener's options use its address) are read after, in
// stages. Most values are read by pure parsers (parse_*.go) that take the
// node and return the value or an error; the walk turns the error into a
// file:line:col problem at the value, prefixed by the key's dotted path.
// Checks across keys of one mapping (an app is a module or a static
// folder, not both) follow its walk (apps.go, listeners.go). Every problem
// is reported, in file order; a file with any problem gives no Config.
//
// Before the walk, ${NAME} references in scalar values are expanded
// (envvalues.go), and the files the include key matches are read, their
// apps first and their mounts once every file's apps are known
// (include.go); problems are then listed file by file, the main file's
// first. The watcher (watch.go, follow.go) follows the file and the
// included ones through symlinks.
//
// # Adding a key
//
// To add a key to apps, say, add the field to App (config.go) and one
// entry to appKeys (keys.go):
//
//	opt("max_idle", func(a *App) *time.Duration { return &a.MaxIdle }, 0, parseDuration,
//		"recycle a worker idle this long; 0: never"),
//
// opt takes the key's name, the field it sets, its default, its parser
// and its doc. A value no parser reads yet gets a new one in a parse_*.go
// file: func(*yaml.Node) (V, error). Then use the field: for what the
// workers need, in host.WorkerSpec, the one mapping from an App to a
// worker.Spec (used by both serve and check).
package config
