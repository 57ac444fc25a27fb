package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is one parsed and validated gowsgi.yaml.
type Config struct {
	// Path is the file the config was read from.
	Path string
	// Files are the absolute paths of the files its include patterns
	// matched, in the order read.
	Files []string
	// Include are its include patterns, made absolute.
	Include []string
	// Listeners are the addresses the host accepts connections on.
	Listeners []Listener
	// Apps are the WSGI applications, in file order.
	Apps []*App
	// Mounts map path prefixes (optionally with a host part) to apps, in file order.
	Mounts []Mount
	// Limits bound what one client may send.
	Limits Limits
	// Compress configures response compression for every app that does
	// not set its own.
	Compress Compress
	// ShutdownTimeout bounds how long in-flight requests may run after
	// SIGINT/SIGTERM before workers are stopped. Default 30s.
	ShutdownTimeout time.Duration
	// Log configures logging.
	Log Log
	// Admin is the address of the admin listener (metrics, status,
	// health): "host:port" or "unix:/path"; nil when not set (off).
	Admin *Listener
	// AdminToken, read from admin.token_file, is the bearer token every
	// admin request but the health probes must carry; "" for none.
	AdminToken Secret
}

// Secret is a string that never prints: fmt and encoders show
// "[redacted]". Convert it to string to use it.
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// GoString returns "[redacted]" quoted, for %#v.
func (Secret) GoString() string { return `"[redacted]"` }

// MarshalText returns "[redacted]".
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Log configures logging.
type Log struct {
	// Level is "debug", "info", "warn" or "error"; "" when not set (the
	// -log-level flag, default info, decides).
	Level string
	// Format is "console" or "json"; "" when not set (console when stderr
	// is a terminal, else json). Read at start only.
	Format string
	// Access writes one line per request. Default true.
	Access bool
	// AccessFormat is "json" (access lines are log lines, in the log's
	// format) or "combined" (the Combined Log Format of Apache and nginx,
	// one line per request on stdout). Default "json".
	AccessFormat string
}

// LogLevels are the accepted values of log.level.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Limits bound what one client may send.
type Limits struct {
	// MaxBody is the largest request body; larger ones get 413 before any
	// worker is used. Default 16MiB.
	MaxBody int64
	// MaxHeaderBytes bounds the request line and headers; larger get 431.
	// Default 64KiB.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 60s.
	IdleTimeout time.Duration
	// BodyTimeout bounds the wait between two reads of a request body;
	// past it the request gets 408 and the connection is closed. Default 60s.
	BodyTimeout time.Duration
	// SendTimeout bounds the wait between two writes of a response to the
	// client (on HTTP/2, to the stream); past it the client is dropped and
	// the response's spool deleted. Default 60s.
	SendTimeout time.Duration
	// BodyMemory bounds the memory that request bodies being read or
	// waiting for a worker may use, across all clients; past it bodies go
	// to temporary files. Default 64MiB.
	BodyMemory int64
	// MaxSpool bounds the response bytes kept in a temporary file for one
	// client that reads slower than its app writes; past it the worker
	// waits for the client. 0 keeps only SpoolMemory in memory. Default 1GiB.
	MaxSpool int64
	// MaxSpoolTotal bounds the disk that the spool files of all responses
	// use together; past it responses spill no more and their workers
	// wait for their clients. Default 2GiB.
	MaxSpoolTotal int64
}

// Defaults of the settings a config file leaves out, where other code
// needs them by name. Every key's default is in its entry in keys.go.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultQueue        = 1024
	DefaultQueueTimeout = 30 * time.Second
	DefaultStartTimeout = 60 * time.Second
	// DefaultScaleIdle is how long a worker of a scaling app may be idle.
	DefaultScaleIdle = 60 * time.Second
	// DefaultMaxConnections is a listener's connection limit when it sets none.
	DefaultMaxConnections = 4096
	// DefaultCallable is the WSGI callable looked up when module names none.
	DefaultCallable = "application"
	// DefaultPython is the interpreter command used when an app names none.
	DefaultPython = "python3"
	// DefaultShutdownTimeout is used when shutdown_timeout is not set.
	DefaultShutdownTimeout = 30 * time.Second
	// MaxWorkers is the largest accepted value of workers and of threads.
	MaxWorkers = 1024
)

// DefaultLimits are the limits of a config that sets none: the defaults
// of limitKeys.
var DefaultLimits = defaults(limitKeys)

// ParseSize parses a byte count: an integer, optionally followed by B, KB,
// MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGiBkmgb ")
	unit := strings.TrimSpace(s[len(num):])
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes like 1048576 or \"16MiB\"", s)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, KiB, MiB or GiB)", s, unit)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// Compress configures response compression: gzip, Brotli or zstd, as
// the client's Accept-Encoding prefers, for compressible types.
type Compress struct {
	// Enabled turns it on. Default false.
	Enabled bool
	// MinSize: responses whose Content-Length is smaller are sent as they
	// are. Default 1KiB.
	MinSize int64
}

// Listener is one address to accept connections on.
type Listener struct {
	// Addr is the address as written: "host:port" or "unix:/path".
	Addr string
	// Network is "tcp" or "unix".
	Network string
	// Address is what net.Listen takes: "host:port" or the socket path.
	Address string
	// TLS, when set, makes the listener serve HTTPS (TLS 1.2 and later,
	// HTTP/2 by ALPN).
	TLS *TLSConfig
	// H2C serves HTTP/2 without TLS, by prior knowledge only, beside
	// HTTP/1.1: a request asking for "Upgrade: h2c" (deprecated by RFC
	// 9113) is served as HTTP/1.1. Never set together with TLS.
	H2C bool
	// ForwardedAllow lists the peers whose X-Forwarded-For, -Proto and
	// -Host and Forwarded headers are believed. Empty: nobody's. "*" in
	// the file is 0.0.0.0/0 and ::/0 (and, on a unix listener, where it is
	// the only value accepted, every peer).
	ForwardedAllow []netip.Prefix
	// ProxyProtocol reads a PROXY protocol (v1 or v2) header at the start
	// of each connection from a peer in ForwardedAllow, and takes the
	// client's address from it; other peers may not send one.
	ProxyProtocol bool
	// MaxConnections bounds the connections open at once; past it the
	// listener stops accepting until one closes (they wait in the kernel's
	// backlog). Default DefaultMaxConnections.
	MaxConnections int
	// Mode is the permission of a unix socket file: DefaultSocketMode
	// unless set; 0 for tcp and abstract unix sockets.
	Mode os.FileMode
	// Pos is where the address is written.
	Pos Pos
}

// DefaultSocketMode is the permission of a unix socket file whose
// listener sets no mode: the owner and the group may connect.
const DefaultSocketMode os.FileMode = 0o660

// TLSConfig is a listener's certificate and key.
type TLSConfig struct {
	// Cert and Key are the absolute paths of the PEM certificate (chain)
	// and private key files.
	Cert, Key string
	// Certificate is the pair as loaded (and checked) when the config was
	// read, so that the host serves exactly what was validated.
	Certificate *tls.Certificate
	// Fingerprint is the SHA-256 of the two files' contents: a reload
	// whose files did not change keeps the certificate it has.
	Fingerprint [32]byte
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
	// Scale, if set (workers written as a mapping), makes the number of
	// workers follow demand between Scale.Min and Scale.Max (= Workers).
	Scale *Scale
	// User and Group, if set, are who the app's workers run as (the host
	// keeps its own identity, for its sockets): a name or a number, checked
	// at load; UID and GID are what they resolve to.
	User, Group string
	UID, GID    *uint32
	// Umask, if 0 or more, is the workers' file mode creation mask; -1
	// (the default) keeps the host's.
	Umask int
	// MaxOpenFiles and MaxAddressSpace, if above 0, are the workers'
	// RLIMIT_NOFILE and RLIMIT_AS.
	MaxOpenFiles, MaxAddressSpace int64
	// Preload imports the app once in a template process and forks the
	// workers from it (sharing its memory); default false.
	Preload bool
	// Static, if set, makes this app a folder of files the host serves
	// itself (absolute path); the Python settings are then unused.
	Static string
	// Compress, if set, turns response compression on or off for this
	// app, whatever the top-level compress says.
	Compress *bool
	// CacheControl, for a static app, is sent as the Cache-Control header
	// of the files it serves; "" sends none.
	CacheControl string
	// Reload replaces the app's workers (gracefully) when a .py file under
	// Dir changes; for development.
	Reload bool
	// Timeout times the app: how long it may take to start its response,
	// and then the longest pause between two pieces of it. Time spent
	// waiting for a slow client never counts. Past it the worker is killed
	// and replaced (the client gets 504 if nothing was sent). Default 30s.
	Timeout time.Duration
	// MaxRequestTime caps a request's whole time on a worker, from its
	// start until the app has produced all of its response (uWSGI's
	// harakiri); 0 (the default) means no cap.
	MaxRequestTime time.Duration
	// MaxRequests recycles a worker gracefully after this many requests,
	// plus a random 0..MaxRequestsJitter; 0 means never.
	MaxRequests, MaxRequestsJitter int
	// MaxRSS recycles a worker whose resident memory passes this many bytes,
	// after its request; 0 means no limit.
	MaxRSS int64
	// Queue is how many requests may wait for a free worker; beyond it
	// they get 503 with Retry-After. Default 1024.
	Queue int
	// QueueTimeout is how long a request may wait for a worker before it
	// gets 503. Default 30s.
	QueueTimeout time.Duration
	// StartTimeout bounds a worker's import of the app. Default 60s.
	StartTimeout time.Duration
	// Pos is where the app's name is written under apps:.
	Pos Pos
}

// Scale is an app's workers as a mapping: a worker is added when a
// request would have to queue and fewer than Max run; a worker idle for
// IdleTimeout is retired, down to Min. With Min 0 an idle app has no
// process at all, and its next request waits for the start.
type Scale struct {
	Min, Max    int
	IdleTimeout time.Duration
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
