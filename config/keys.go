package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// The keys of gowsgi.yaml, one table per kind of mapping. Each entry is
// one key: its name, the field it sets, its default, its parser and what
// it is for. A table's order is the order its keys are read in and the
// order "did you mean" tries them.

// topKeys are the keys of the top level. They are read after the walk
// of the top level, stage by stage: limits, log and admin, then
// listeners, apps, mounts (which name apps) and shutdown_timeout. (The
// stages only decide which of two problems at one place in the file is
// reported first, as they always have.)
var topKeys = []key[topLevel]{
	{name: "listeners", stage: 4, doc: `addresses to accept connections on: "host:port", "unix:/path", or a mapping with addr and options`,
		missing: missingSection("listener"),
		read: func(l *loader, t *topLevel, w string, e entry) {
			if n := l.section(w, e, yaml.SequenceNode, "listener", "a list of addresses"); n != nil {
				t.Listeners = l.listeners(n)
			}
		}},
	{name: "apps", stage: 5, doc: "the WSGI apps and static folders, by name",
		missing: missingSection("app"),
		read: func(l *loader, t *topLevel, w string, e entry) {
			if n := l.section(w, e, yaml.MappingNode, "app", "a mapping of app names to apps"); n != nil {
				t.Apps, t.appsOK = l.apps(n), true
			} else {
				t.appsBad = true
			}
		}},
	{name: "mounts", stage: 6, doc: `which app serves a path prefix, optionally of one host: "/blog", "example.com/"`,
		missing: missingSection("mount"),
		read: func(l *loader, t *topLevel, w string, e entry) {
			if n := l.section(w, e, yaml.MappingNode, "mount", "a mapping of paths to app names"); n != nil {
				apps, ok := t.allApps()
				t.Mounts = l.mounts(n, apps, ok, t.mountSeen)
			}
		}},
	{name: "include", doc: `more files of apps and mounts: glob patterns relative to this file, like "apps.d/*.yaml"`,
		read: func(*loader, *topLevel, string, entry) {}}, // read before the walk (include.go)
	opt("shutdown_timeout", func(t *topLevel) *time.Duration { return &t.ShutdownTimeout }, DefaultShutdownTimeout, parseDuration,
		"how long in-flight requests may run after SIGINT/SIGTERM").inStage(7),
	{name: "compress", stage: 1, doc: "response compression: true, false, or a mapping (compressKeys)",
		def:  func(t *topLevel) { t.Compress = defaults(compressKeys) },
		read: func(l *loader, t *topLevel, w string, e entry) { l.compress(w, e.val, &t.Compress) }},
	{name: "limits", stage: 1, doc: "what one client may send (limitKeys)",
		def:  func(t *topLevel) { t.Limits = DefaultLimits },
		read: func(l *loader, t *topLevel, w string, e entry) { l.limits(w, e.val, &t.Limits) }},
	{name: "log", stage: 2, doc: "logging (logKeys)",
		def:  func(t *topLevel) { t.Log = defaults(logKeys) },
		read: func(l *loader, t *topLevel, w string, e entry) { l.logConfig(w, e.val, &t.Log) }},
	{name: "admin", stage: 3, doc: "the admin listener (metrics, status, health): an address, or a mapping (adminKeys)",
		read: func(l *loader, t *topLevel, w string, e entry) { t.Admin, t.AdminToken = l.admin(w, e.val) }},
}

// logKeys are the keys of log.
var logKeys = []key[Log]{
	opt("level", func(c *Log) *string { return &c.Level }, "", parseLogLevel,
		"debug, info, warn or error; not set: the -log-level flag decides"),
	opt("format", func(c *Log) *string { return &c.Format }, "", parseLogFormat,
		"console or json; not set: console when stderr is a terminal, else json"),
	opt("access", func(c *Log) *bool { return &c.Access }, true, parseBool,
		"write one line per request"),
	opt("access_format", func(c *Log) *string { return &c.AccessFormat }, "json", parseAccessFormat,
		"json (a log line like the others) or combined (Apache/nginx Combined Log Format, on stdout)"),
}

// limitKeys are the keys of limits. DefaultLimits holds their defaults.
var limitKeys = []key[Limits]{
	opt("max_body", func(c *Limits) *int64 { return &c.MaxBody }, 16<<20, parseSize,
		"the largest request body; larger get 413"),
	opt("max_header_bytes", func(c *Limits) *int { return &c.MaxHeaderBytes }, 64<<10, parseHeaderBytes,
		"the largest request line and headers; larger get 431"),
	opt("read_header_timeout", func(c *Limits) *time.Duration { return &c.ReadHeaderTimeout }, 10*time.Second, parseDuration,
		"how long reading a request's headers may take"),
	opt("idle_timeout", func(c *Limits) *time.Duration { return &c.IdleTimeout }, 60*time.Second, parseDuration,
		"how long a keep-alive connection may stay idle"),
	opt("body_timeout", func(c *Limits) *time.Duration { return &c.BodyTimeout }, 60*time.Second, parseDuration,
		"the longest wait between two reads of a request body; past it 408"),
	opt("send_timeout", func(c *Limits) *time.Duration { return &c.SendTimeout }, 60*time.Second, parseDuration,
		"the longest wait between two writes of a response to the client"),
	opt("body_memory", func(c *Limits) *int64 { return &c.BodyMemory }, 64<<20, parseSize,
		"memory for request bodies across all clients; past it they go to files"),
	opt("max_spool", func(c *Limits) *int64 { return &c.MaxSpool }, 1<<30, parseSizeOrZero,
		"response bytes kept in a file for one slow client; 0: memory only"),
	opt("max_spool_total", func(c *Limits) *int64 { return &c.MaxSpoolTotal }, 2<<30, parseSizeOrZero,
		"disk for the spool files of all responses together"),
}

// compressKeys are the keys of compress written as a mapping; written
// as true or false, it sets enabled alone.
var compressKeys = []key[Compress]{
	opt("enabled", func(c *Compress) *bool { return &c.Enabled }, false, parseBool,
		"compress responses of compressible types (gzip, Brotli, zstd, as the client accepts)"),
	opt("min_size", func(c *Compress) *int64 { return &c.MinSize }, 1024, parseSizeOrZero,
		"responses known to be shorter are sent as they are"),
}

// compress reads the top-level compress: a boolean, or a mapping.
func (l *loader) compress(where string, n *yaml.Node, c *Compress) {
	if v := deref(n); v.Kind == yaml.ScalarNode {
		if b, err := parseBool(n); l.ok(where, n, err) {
			c.Enabled = b
		}
		return
	}
	if l.isMapping(where, n, "true, false or a mapping") {
		c.Enabled = true // a mapping of settings turns it on unless it says otherwise
		walk(l, where, n, c, compressKeys)
	}
}

// adminKeys are the keys of admin written as a mapping. The address is
// read after the token (as it always has been).
var adminKeys = []key[adminConfig]{
	{name: "addr", stage: 1, doc: `the address: "host:port" or "unix:/path"`, missing: required,
		read: func(l *loader, a *adminConfig, w string, e entry) { a.ln = l.adminAddr(w, e.val) }},
	{name: "token_file", doc: "a file holding the bearer token admin requests must carry",
		read: func(l *loader, a *adminConfig, w string, e entry) {
			if tok, err := parseTokenFile(l.base, e.val); l.ok(w, e.val, err) {
				a.token = tok
			}
		}},
}

// listenerKeys are the keys of a listener written as a mapping. The
// address is read first (stage 1), the others after it (stage 2): their
// reads look at it.
var listenerKeys = []key[Listener]{
	{name: "addr", stage: 1, doc: `the address: "host:port" or "unix:/path"`, missing: required,
		read: func(l *loader, ln *Listener, w string, e entry) {
			if s, err := parseAddrString(e.val); l.ok(w, e.val, err) {
				l.setAddr(w, e.val, s, ln)
			}
		}},
	{name: "tls", stage: 2, doc: "serve HTTPS with this certificate and key (tlsKeys)",
		read: func(l *loader, ln *Listener, w string, e entry) { ln.TLS = l.listenerTLS(w, e.val) }},
	opt("h2c", func(ln *Listener) *bool { return &ln.H2C }, false, parseBool,
		"serve HTTP/2 without TLS beside HTTP/1.1").inStage(2),
	{name: "forwarded_allow_ips", stage: 2, doc: `the peers whose X-Forwarded-* and Forwarded headers are believed; "*" for all`,
		read: func(l *loader, ln *Listener, w string, e entry) {
			ips, err := parseAllowIPs(e.val, ln.Network)
			l.ok(w, e.val, err)
			ln.ForwardedAllow = ips
		}},
	{name: "mode", stage: 2, doc: `the permission of a unix socket file, like "0660"`,
		read: func(l *loader, ln *Listener, w string, e entry) {
			if m, err := parseSocketMode(e.val); l.ok(w, e.val, err) && l.ok(w, e.key, checkHasMode(ln)) && ln.Network == "unix" {
				ln.Mode = m
			}
		}},
	opt("max_connections", func(ln *Listener) *int { return &ln.MaxConnections }, DefaultMaxConnections, intIn(1, 1<<24),
		"connections open at once; past it the listener stops accepting").inStage(2),
	opt("proxy_protocol", func(ln *Listener) *bool { return &ln.ProxyProtocol }, false, parseBool,
		"read a PROXY protocol header (v1, v2) from peers in forwarded_allow_ips").inStage(2),
}

// tlsKeys are the keys of a listener's tls.
var tlsKeys = []key[tlsFiles]{
	pemKey("cert", func(t *tlsFiles) *pemFile { return &t.cert }, "the PEM certificate (chain) file"),
	pemKey("key", func(t *tlsFiles) *pemFile { return &t.key }, "the PEM private key file"),
}

// appKeys are the keys of an app. An app's dir defaults to the config
// file's folder (see app).
var appKeys = []key[App]{
	{name: "module", doc: `the WSGI callable: "package.module" or "package.module:callable"`,
		def: func(a *App) { a.Callable = DefaultCallable },
		read: func(l *loader, a *App, w string, e entry) {
			if m, c, err := parseModuleValue(e.val); l.ok(w, e.val, err) {
				a.Module, a.Callable = m, c
			}
		}},
	dirKey("static", func(a *App) *string { return &a.Static }, "a folder of files to serve instead of a module"),
	opt("cache_control", func(a *App) *string { return &a.CacheControl }, "", parseHeaderValue,
		"a static app's Cache-Control header"),
	dirKey("dir", func(a *App) *string { return &a.Dir }, "the working directory, first on sys.path"),
	opt("python", func(a *App) *string { return &a.Python }, DefaultPython, parseNonEmpty,
		"the interpreter command or path"),
	{name: "workers", doc: "worker processes: a count, or {min, max, idle_timeout} to scale with demand",
		def:  func(a *App) { a.Workers = 1 },
		read: func(l *loader, a *App, w string, e entry) { l.workers(w, e, a) }},
	opt("threads", func(a *App) *int { return &a.Threads }, 1, intIn(1, MaxWorkers),
		"requests one worker process serves at once"),
	{name: "user", doc: "the user the workers run as: a name or a number",
		read: func(l *loader, a *App, w string, e entry) {
			if name, id, err := parseUser(e.val); l.ok(w, e.val, err) {
				a.User, a.UID = name, &id
			}
		}},
	{name: "group", doc: "the group the workers run as: a name or a number",
		read: func(l *loader, a *App, w string, e entry) {
			if name, id, err := parseGroup(e.val); l.ok(w, e.val, err) {
				a.Group, a.GID = name, &id
			}
		}},
	opt("umask", func(a *App) *int { return &a.Umask }, -1, parseUmask,
		`the workers' file mode creation mask, octal like "0027"`),
	opt("max_open_files", func(a *App) *int64 { return &a.MaxOpenFiles }, 0, parseCount64,
		"the workers' open file limit (RLIMIT_NOFILE); 0: the host's"),
	opt("max_address_space", func(a *App) *int64 { return &a.MaxAddressSpace }, 0, parseSizeOrZero,
		"the workers' address space limit (RLIMIT_AS); 0: none"),
	opt("preload", func(a *App) *bool { return &a.Preload }, false, parseBool,
		"import the app once in a template process and fork the workers from it"),
	{name: "env", doc: "extra environment variables for the workers",
		def:  func(a *App) { a.Env = map[string]string{} },
		read: func(l *loader, a *App, w string, e entry) { l.env(w, e.val, a.Env) }},
	opt("reload", func(a *App) *bool { return &a.Reload }, false, parseBool,
		"replace the workers when a .py file under dir changes"),
	opt("timeout", func(a *App) *time.Duration { return &a.Timeout }, DefaultTimeout, parseDuration,
		"how long the app may take to start its response, then between two pieces of it"),
	opt("max_requests", func(a *App) *int { return &a.MaxRequests }, 0, intIn(0, 1<<40),
		"recycle a worker after this many requests; 0: never"),
	opt("max_requests_jitter", func(a *App) *int { return &a.MaxRequestsJitter }, 0, intIn(0, 1<<40),
		"add a random 0..this to max_requests"),
	opt("max_rss", func(a *App) *int64 { return &a.MaxRSS }, 0, parseSizeOrZero,
		"recycle a worker whose resident memory passes this; 0: no limit"),
	opt("queue", func(a *App) *int { return &a.Queue }, DefaultQueue, intIn(0, 1<<24),
		"requests that may wait for a free worker; beyond, 503"),
	opt("queue_timeout", func(a *App) *time.Duration { return &a.QueueTimeout }, DefaultQueueTimeout, parseDuration,
		"how long a request may wait for a worker; past it, 503"),
	opt("start_timeout", func(a *App) *time.Duration { return &a.StartTimeout }, DefaultStartTimeout, parseDuration,
		"how long a worker's import of the app may take"),
	opt("max_request_time", func(a *App) *time.Duration { return &a.MaxRequestTime }, 0, parseDurationOrZero,
		"the longest a request may run on a worker; 0: no cap"),
	opt("compress", func(a *App) **bool { return &a.Compress }, nil, parseOptBool,
		"compress this app's responses (true) or not (false); not set: the top-level compress decides"),
}

// scaleKeys are the keys of an app's workers written as a mapping.
var scaleKeys = []key[Scale]{
	opt("min", func(s *Scale) *int { return &s.Min }, 0, intIn(0, MaxWorkers),
		"workers kept however idle; 0: no process at all (template included) after idle_timeout"),
	{name: "max", doc: "the most workers; one is added when a request would queue",
		missing: required,
		read: func(l *loader, s *Scale, w string, e entry) {
			if v, err := intIn(1, MaxWorkers)(e.val); l.ok(w, e.val, err) {
				s.Max = v
			}
		}},
	opt("idle_timeout", func(s *Scale) *time.Duration { return &s.IdleTimeout }, DefaultScaleIdle, parseDuration,
		"a worker idle this long is retired, down to min"),
}

// missingSection is the missing of a required top-level section, of
// which one item is called one.
func missingSection(one string) func(l *loader, where, name string, n *yaml.Node) {
	return func(l *loader, _, name string, root *yaml.Node) {
		if l.hasInclude {
			return // it may be in an included file (finishIncludes checks)
		}
		l.errorf(root, "missing %q: at least one %s is required", name, one)
	}
}

// dirKey declares an app key naming a folder that must exist.
func dirKey(name string, at func(*App) *string, doc string) key[App] {
	return key[App]{name: name, doc: doc,
		read: func(l *loader, a *App, w string, e entry) {
			if d, err := parseDir(l.base, e.val); l.ok(w, e.val, err) {
				*at(a) = d
			}
		}}
}

// pemKey declares a key of tls naming a PEM file, which is required.
func pemKey(name string, at func(*tlsFiles) *pemFile, doc string) key[tlsFiles] {
	return key[tlsFiles]{name: name, doc: doc, missing: required,
		read: func(l *loader, t *tlsFiles, w string, e entry) {
			f := at(t)
			var err error
			f.path, f.data, err = readFile(l.base, e.val)
			t.bad = !l.ok(w, e.val, err) || t.bad
		}}
}
