// Package config defines gowsgi's YAML configuration: its types, loading,
// validation with file:line:col errors, and watching the file for changes.
package config

import (
	"fmt"
	"strings"
	"time"
)

// Config is one parsed and validated gowsgi.yaml.
type Config struct {
	// Path is the file the config was read from.
	Path string
	// Listeners are the addresses the host accepts connections on.
	Listeners []Listener
	// Apps are the WSGI applications, in file order.
	Apps []*App
	// Mounts map path prefixes (optionally with a host part) to apps, in file order.
	Mounts []Mount
	// ShutdownTimeout bounds how long in-flight requests may run after
	// SIGINT/SIGTERM before workers are stopped. Default 30s.
	ShutdownTimeout time.Duration
}

// Listener is one address to accept connections on.
type Listener struct {
	// Addr is the address as written: "host:port" or "unix:/path".
	Addr string
	// Network is "tcp" or "unix".
	Network string
	// Address is what net.Listen takes: "host:port" or the socket path.
	Address string
	// Pos is where the address is written.
	Pos Pos
}

// App is one WSGI application and the worker pool that runs it.
type App struct {
	// Name is the key under apps:.
	Name string
	// Module is the import path, e.g. "hello" from "hello:application".
	Module string
	// Callable is the attribute (or dotted path) naming the WSGI callable;
	// default "application".
	Callable string
	// Dir is the absolute working directory, put first on sys.path.
	Dir string
	// Python is the interpreter command or path; default "python3".
	Python string
	// Workers is the number of worker processes; default 1.
	Workers int
	// Threads is the number of requests one process serves at once; default 1.
	Threads int
	// Env is extra environment for the workers.
	Env map[string]string
	// Reload replaces the app's workers (gracefully) when a .py file under
	// Dir changes; for development.
	Reload bool
	// Pos is where the app's name is written under apps:.
	Pos Pos
}

// Mount maps a request host and path prefix to an app.
type Mount struct {
	// Key is the mount key as written, e.g. "example.com/blog".
	Key string
	// Host is the host part, lower-cased, without port; "" matches any host.
	// A leading "*." makes it a wildcard for subdomains.
	Host string
	// Prefix is the path part: "/" or "/blog" (never a trailing slash except for "/").
	Prefix string
	// App is the name of the app served here.
	App string
	// Pos is where the mount key is written.
	Pos Pos
}

// Pos is a place in a config file.
type Pos struct {
	// File is the config file's path as given to Load or Parse.
	File string
	// Line and Col are 1-based.
	Line int
	Col  int
}

// String formats the position as file:line:col.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is one problem found in a config file.
type Error struct {
	// Pos is where the problem is.
	Pos Pos
	// Msg describes the problem.
	Msg string
}

// Error formats the problem as "file:line:col: message".
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Errors is every problem found in a config file, in file order.
type Errors []*Error

// Error formats every problem, one "file:line:col: message" a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// App returns the app with the given name, or nil.
func (c *Config) App(name string) *App {
	for _, a := range c.Apps {
		if a.Name == name {
			return a
		}
	}
	return nil
}
