package config

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gowsgi/gowsgi/internal/testcert"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden")

// TestBadGolden parses every testdata/bad/*.yaml, named by its base name
// and with testdata/bad as working directory (so relative dirs resolve
// there), and compares the errors with the .golden file next to it. The
// absolute path of testdata/bad is written as $DIR in goldens.
func TestBadGolden(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/bad/*.yaml files")
	}
	t.Chdir(dir)
	t.Setenv("GOWSGI_TEST_BAD_WORKERS", "lots") // for env_values.yaml
	t.Setenv("GOWSGI_TEST_ZERO", "0")
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(name, data)
			if err == nil {
				t.Fatalf("Parse succeeded, want errors")
			}
			if cfg != nil {
				t.Errorf("Parse returned a config along with errors")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want Errors", err)
			}
			for i, e := range es {
				// Included files are under include/, after the main file's.
				if e.Pos.File != name && (!strings.HasPrefix(e.Pos.File, "include/") || i == 0) {
					t.Errorf("error %d: Pos.File = %q, want %q or an included file after it", i, e.Pos.File, name)
				}
				if e.Pos.Line < 1 || e.Pos.Col < 1 {
					t.Errorf("error %d: bad position %v", i, e.Pos)
				}
				if i > 0 && es[i-1].Pos.File == e.Pos.File {
					p := es[i-1].Pos
					if p.Line > e.Pos.Line || p.Line == e.Pos.Line && p.Col > e.Pos.Col {
						t.Errorf("errors %d and %d out of order: %v, %v", i-1, i, p, e.Pos)
					}
				}
			}
			got := strings.ReplaceAll(err.Error(), dir, "$DIR") + "\n"
			golden := strings.TrimSuffix(name, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s (run go test ./config -update if intended)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestGoldenFilesHaveInputs catches .golden files left behind.
func TestGoldenFilesHaveInputs(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("testdata", "bad", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden") + ".yaml"); err != nil {
			t.Errorf("%s has no .yaml input", g)
		}
	}
}

func TestParseGood(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"site", "examples/hello", "blog"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "admin.token"), []byte("  0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(root, "blog") // for an absolute dir:
	path := filepath.Join(root, "gowsgi.yaml")
	pos := func(line, col int) Pos { return Pos{File: path, Line: line, Col: col} }
	defaultApp := func(name string, line, col int) *App {
		return &App{Name: name, Module: "hello", Callable: "application", Dir: root, Python: "python3",
			Workers: 1, Threads: 1, Env: map[string]string{}, Pos: pos(line, col)}
	}
	tcp := func(addr string, line, col int) Listener {
		return Listener{Addr: addr, Network: "tcp", Address: addr, Pos: pos(line, col)}
	}

	tests := []struct {
		name string
		yaml string
		want *Config
	}{
		{
			name: "minimal with defaults",
			yaml: `
listeners: ["127.0.0.1:8000"]
apps:
  hello: {module: hello}
mounts:
  /: hello
`,
			want: &Config{
				Listeners:       []Listener{tcp("127.0.0.1:8000", 2, 13)},
				Apps:            []*App{defaultApp("hello", 4, 3)},
				Mounts:          []Mount{{Key: "/", Host: "", Prefix: "/", App: "hello", Pos: pos(6, 3)}},
				ShutdownTimeout: 30 * time.Second,
			},
		},
		{
			name: "every key",
			yaml: `
listeners:
  - addr: "127.0.0.1:8000"
  - "[::1]:8001"
  - addr: ":0"
  - "unix:/tmp/gowsgi.sock"
  - "unix:run/app.sock"
apps:
  hello:
    module: "hello:application"
    dir: "examples/hello"
    python: "/usr/bin/python3.12"
    workers: 2
    threads: 8
    env: {GREETING: "hi", PORT: 8000, DEBUG: true, RATIO: 1.50, HEX: 0x10, EMPTY: "", NOTHING: ~, "lower.case": x}
    reload: true
  blog:
    module: "blog.wsgi:make_app.wsgi"
    dir: ` + abs + `
    workers: 1024
  site:
    module: site.app
    dir: ./site/
mounts:
  "/": hello
  "/blog": blog
  "/blog2/": blog
  "example.com/": site
  "Docs.Example.COM/guide/": site
  "*.example.com/": site
  "/a.b/c-d/": hello
log: {level: DEBUG, format: json, access: false}
admin: "127.0.0.1:9191"
shutdown_timeout: 1m30s
`,
			want: &Config{
				Log:   Log{Level: "debug", Format: "json"},
				Admin: &Listener{Addr: "127.0.0.1:9191", Network: "tcp", Address: "127.0.0.1:9191", Pos: pos(33, 8)},
				Listeners: []Listener{
					tcp("127.0.0.1:8000", 3, 11),
					tcp("[::1]:8001", 4, 5),
					tcp(":0", 5, 11),
					{Addr: "unix:/tmp/gowsgi.sock", Network: "unix", Address: "/tmp/gowsgi.sock", Pos: pos(6, 5)},
					{Addr: "unix:run/app.sock", Network: "unix", Address: filepath.Join(root, "run", "app.sock"), Pos: pos(7, 5)},
				},
				Apps: []*App{
					{Name: "hello", Module: "hello", Callable: "application", Dir: filepath.Join(root, "examples", "hello"),
						Python: "/usr/bin/python3.12", Workers: 2, Threads: 8,
						Env: map[string]string{"GREETING": "hi", "PORT": "8000", "DEBUG": "true", "RATIO": "1.50",
							"HEX": "0x10", "EMPTY": "", "NOTHING": "", "lower.case": "x"},
						Reload: true, Pos: pos(9, 3)},
					{Name: "blog", Module: "blog.wsgi", Callable: "make_app.wsgi", Dir: abs, Python: "python3",
						Workers: 1024, Threads: 1, Env: map[string]string{}, Pos: pos(17, 3)},
					{Name: "site", Module: "site.app", Callable: "application", Dir: filepath.Join(root, "site"),
						Python: "python3", Workers: 1, Threads: 1, Env: map[string]string{}, Pos: pos(21, 3)},
				},
				Mounts: []Mount{
					{Key: "/", Host: "", Prefix: "/", App: "hello", Pos: pos(25, 3)},
					{Key: "/blog", Host: "", Prefix: "/blog", App: "blog", Pos: pos(26, 3)},
					{Key: "/blog2/", Host: "", Prefix: "/blog2", App: "blog", Pos: pos(27, 3)},
					{Key: "example.com/", Host: "example.com", Prefix: "/", App: "site", Pos: pos(28, 3)},
					{Key: "Docs.Example.COM/guide/", Host: "docs.example.com", Prefix: "/guide", App: "site", Pos: pos(29, 3)},
					{Key: "*.example.com/", Host: "*.example.com", Prefix: "/", App: "site", Pos: pos(30, 3)},
					{Key: "/a.b/c-d/", Host: "", Prefix: "/a.b/c-d", App: "hello", Pos: pos(31, 3)},
				},
				ShutdownTimeout: 90 * time.Second,
			},
		},
		{
			name: "same prefix on different hosts",
			yaml: `
listeners: [":8000", "localhost:8001", "unix:./a.sock"]
apps:
  a: {module: hello}
  b: {module: hello}
mounts:
  /x: a
  example.com/x: b
  "*.example.com/x": a
  example.org/x/: b
shutdown_timeout: 250ms
`,
			want: &Config{
				Listeners: []Listener{
					tcp(":8000", 2, 13),
					tcp("localhost:8001", 2, 22),
					{Addr: "unix:./a.sock", Network: "unix", Address: filepath.Join(root, "a.sock"), Pos: pos(2, 40)},
				},
				Apps: []*App{defaultApp("a", 4, 3), defaultApp("b", 5, 3)},
				Mounts: []Mount{
					{Key: "/x", Prefix: "/x", App: "a", Pos: pos(7, 3)},
					{Key: "example.com/x", Host: "example.com", Prefix: "/x", App: "b", Pos: pos(8, 3)},
					{Key: "*.example.com/x", Host: "*.example.com", Prefix: "/x", App: "a", Pos: pos(9, 3)},
					{Key: "example.org/x/", Host: "example.org", Prefix: "/x", App: "b", Pos: pos(10, 3)},
				},
				ShutdownTimeout: 250 * time.Millisecond,
			},
		},
		{
			name: "apps keep file order, anchors and merge keys",
			yaml: `
listeners:
  - ":8000"
apps:
  zeta: &base
    module: hello
    workers: 3
    env: {A: "1"}
  alpha:
    <<: *base
    workers: 4
  mid:
    <<: [{threads: 2}, {threads: 5, python: py}]
    module: hello
mounts:
  /z: zeta
  /a: alpha
  /m: mid
`,
			want: &Config{
				Listeners: []Listener{tcp(":8000", 3, 5)},
				Apps: []*App{
					{Name: "zeta", Module: "hello", Callable: "application", Dir: root, Python: "python3",
						Workers: 3, Threads: 1, Env: map[string]string{"A": "1"}, Pos: pos(5, 3)},
					{Name: "alpha", Module: "hello", Callable: "application", Dir: root, Python: "python3",
						Workers: 4, Threads: 1, Env: map[string]string{"A": "1"}, Pos: pos(9, 3)},
					{Name: "mid", Module: "hello", Callable: "application", Dir: root, Python: "py",
						Workers: 1, Threads: 2, Env: map[string]string{}, Pos: pos(12, 3)},
				},
				Mounts: []Mount{
					{Key: "/z", Prefix: "/z", App: "zeta", Pos: pos(16, 3)},
					{Key: "/a", Prefix: "/a", App: "alpha", Pos: pos(17, 3)},
					{Key: "/m", Prefix: "/m", App: "mid", Pos: pos(18, 3)},
				},
				ShutdownTimeout: 30 * time.Second,
			},
		},
		{
			name: "static apps and cache_control",
			yaml: `
listeners: [":8000"]
apps:
  assets: {static: site, cache_control: "public, max-age=31536000, immutable"}
  plain: {static: ./site/}
mounts:
  /: assets
  /p: plain
`,
			want: &Config{
				Listeners: []Listener{tcp(":8000", 2, 13)},
				Apps: []*App{
					{Name: "assets", Callable: "application", Dir: root, Python: "python3", Workers: 1, Threads: 1, Env: map[string]string{},
						Static: filepath.Join(root, "site"), CacheControl: "public, max-age=31536000, immutable", Pos: pos(4, 3)},
					{Name: "plain", Callable: "application", Dir: root, Python: "python3", Workers: 1, Threads: 1, Env: map[string]string{},
						Static: filepath.Join(root, "site"), Pos: pos(5, 3)},
				},
				Mounts: []Mount{
					{Key: "/", Prefix: "/", App: "assets", Pos: pos(7, 3)},
					{Key: "/p", Prefix: "/p", App: "plain", Pos: pos(8, 3)},
				},
				ShutdownTimeout: 30 * time.Second,
			},
		},
		{
			name: "admin with a token file",
			yaml: `
listeners: [":8000"]
apps:
  hello: {module: hello}
mounts:
  /: hello
admin:
  token_file: admin.token
  addr: "unix:admin.sock"
`,
			want: &Config{
				Listeners: []Listener{tcp(":8000", 2, 13)},
				Apps:      []*App{defaultApp("hello", 4, 3)},
				Mounts:    []Mount{{Key: "/", Prefix: "/", App: "hello", Pos: pos(6, 3)}},
				Admin: &Listener{Addr: "unix:admin.sock", Network: "unix", Address: filepath.Join(root, "admin.sock"),
					Mode: DefaultSocketMode, Pos: pos(9, 9)},
				AdminToken:      "0123456789abcdef0123456789abcdef",
				ShutdownTimeout: 30 * time.Second,
			},
		},
	}
	sup := defaultApp("hello", 4, 3)
	sup.Timeout, sup.MaxRequests, sup.MaxRequestsJitter, sup.MaxRSS = 5*time.Second, 1000, 50, 512<<20
	sup.Queue, sup.QueueTimeout, sup.StartTimeout = 5, 2*time.Second, 90*time.Second
	sup.MaxRequestTime = 10 * time.Minute
	off := false
	sup.Compress = &off
	tests = append(tests, struct {
		name string
		yaml string
		want *Config
	}{
		name: "supervision and limits",
		yaml: `
listeners: ["127.0.0.1:8000"]
apps:
  hello: {module: hello, timeout: 5s, max_requests: 1000, max_requests_jitter: 50, max_rss: 512MiB, queue: 5, queue_timeout: 2s, start_timeout: 1m30s, max_request_time: 10m, compress: false}
mounts:
  /: hello
limits:
  max_body: 1GB
  max_header_bytes: 8192
  read_header_timeout: 3s
  idle_timeout: 2m
  body_timeout: 15s
  send_timeout: 20s
  body_memory: 8MiB
  max_spool: 0
compress: {min_size: 2KiB}
`,
		want: &Config{
			Listeners:       []Listener{tcp("127.0.0.1:8000", 2, 13)},
			Apps:            []*App{sup},
			Mounts:          []Mount{{Key: "/", Host: "", Prefix: "/", App: "hello", Pos: pos(6, 3)}},
			ShutdownTimeout: 30 * time.Second,
			Limits: Limits{MaxBody: 1e9, MaxHeaderBytes: 8192, ReadHeaderTimeout: 3 * time.Second, IdleTimeout: 2 * time.Minute,
				BodyTimeout: 15 * time.Second, SendTimeout: 20 * time.Second, BodyMemory: 8 << 20, MaxSpool: 0, MaxSpoolTotal: 2 << 30},
			Compress: Compress{Enabled: true, MinSize: 2048},
		},
	})
	certs := filepath.Join(root, "certs")
	if err := os.Mkdir(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	testcert.Write(t, filepath.Join(certs, "server.crt"), filepath.Join(certs, "server.key"), 1)
	certPEM, err := os.ReadFile(filepath.Join(certs, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(certs, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tests = append(tests, struct {
		name string
		yaml string
		want *Config
	}{
		name: "listener options",
		yaml: `
listeners:
  - addr: "0.0.0.0:8443"
    tls: {cert: certs/server.crt, key: ` + filepath.Join(certs, "server.key") + `}
  - addr: "127.0.0.1:8080"
    h2c: true
    forwarded_allow_ips: ["127.0.0.1", "10.1.2.3/8", "::1", "fd00::/8", "::ffff:192.168.0.0/112"]
  - addr: "unix:/run/gowsgi.sock"
    mode: "0600"
    forwarded_allow_ips: "*"
  - {addr: "unix:a.sock", mode: 0640, h2c: false, tls: ~}
  - {addr: "unix:b.sock", mode: 755, forwarded_allow_ips: [], max_connections: 100}
  - {addr: "unix:@abstract", forwarded_allow_ips: ~}
  - {addr: ":1", forwarded_allow_ips: "127.0.0.1, 10.0.0.0/8 ,*"}
apps:
  hello: {module: hello}
mounts:
  /: hello
`,
		want: &Config{
			Listeners: []Listener{
				{Addr: "0.0.0.0:8443", Network: "tcp", Address: "0.0.0.0:8443", Pos: pos(3, 11), TLS: &TLSConfig{
					Cert: filepath.Join(certs, "server.crt"), Key: filepath.Join(certs, "server.key"),
					Certificate: &pair, Fingerprint: CertFingerprint(certPEM, keyPEM)}},
				{Addr: "127.0.0.1:8080", Network: "tcp", Address: "127.0.0.1:8080", Pos: pos(5, 11), H2C: true,
					ForwardedAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"),
						netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("192.168.0.0/16")}},
				{Addr: "unix:/run/gowsgi.sock", Network: "unix", Address: "/run/gowsgi.sock", Pos: pos(8, 11), Mode: 0o600,
					ForwardedAllow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
				{Addr: "unix:a.sock", Network: "unix", Address: filepath.Join(root, "a.sock"), Pos: pos(11, 12), Mode: 0o640},
				{Addr: "unix:b.sock", Network: "unix", Address: filepath.Join(root, "b.sock"), Pos: pos(12, 12), Mode: 0o755, MaxConnections: 100},
				{Addr: "unix:@abstract", Network: "unix", Address: "@abstract", Pos: pos(13, 12)},
				{Addr: ":1", Network: "tcp", Address: ":1", Pos: pos(14, 12),
					ForwardedAllow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
			},
			Apps:            []*App{defaultApp("hello", 16, 3)},
			Mounts:          []Mount{{Key: "/", Host: "", Prefix: "/", App: "hello", Pos: pos(18, 3)}},
			ShutdownTimeout: 30 * time.Second,
		},
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.want.Path = path
			withDefaults(tt.want)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config differs\ngot:  %s\nwant: %s", dump(got), dump(tt.want))
			}
		})
	}
}

// withDefaults fills the settings a want config leaves zero with their
// defaults, so that test cases spell out only what they set.
func withDefaults(c *Config) {
	if c.Log == (Log{}) {
		c.Log.Access = true
	}
	if c.Log.AccessFormat == "" {
		c.Log.AccessFormat = "json"
	}
	if c.Limits == (Limits{}) {
		c.Limits = DefaultLimits
	}
	if c.Compress == (Compress{}) {
		c.Compress = Compress{MinSize: 1024}
	}
	if c.Admin != nil && c.Admin.MaxConnections == 0 {
		c.Admin.MaxConnections = DefaultMaxConnections
	}
	for i, l := range c.Listeners {
		if l.MaxConnections == 0 {
			c.Listeners[i].MaxConnections = DefaultMaxConnections
		}
		if l.Network == "unix" && !strings.HasPrefix(l.Address, "@") && l.Mode == 0 {
			c.Listeners[i].Mode = DefaultSocketMode
		}
	}
	for _, a := range c.Apps {
		if a.Timeout == 0 {
			a.Timeout = DefaultTimeout
		}
		if a.Queue == 0 {
			a.Queue = DefaultQueue
		}
		if a.QueueTimeout == 0 {
			a.QueueTimeout = DefaultQueueTimeout
		}
		if a.StartTimeout == 0 {
			a.StartTimeout = DefaultStartTimeout
		}
		if a.Umask == 0 {
			a.Umask = -1 // no test sets umask 0
		}
	}
}

// dump formats a config readably for failure messages.
func dump(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "path=%s shutdown=%v limits=%+v", c.Path, c.ShutdownTimeout, c.Limits)
	for _, l := range c.Listeners {
		fmt.Fprintf(&b, "\n  listener %+v", l)
		if l.TLS != nil {
			fmt.Fprintf(&b, " tls=%s %s %x loaded=%v", l.TLS.Cert, l.TLS.Key, l.TLS.Fingerprint, l.TLS.Certificate != nil)
		}
	}
	for _, a := range c.Apps {
		fmt.Fprintf(&b, "\n  app %+v", *a)
	}
	for _, m := range c.Mounts {
		fmt.Fprintf(&b, "\n  mount %+v", m)
	}
	return b.String()
}

func TestParseDefaultDirIsConfigFolder(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	if err := os.Mkdir("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	data := []byte("listeners: [':1']\napps: {a: {module: m, dir: app}}\nmounts: {/: a}\n")
	if err := os.Mkdir(filepath.Join("sub", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A relative config path: the folder is made absolute.
	cfg, err := Parse(filepath.Join("sub", "gowsgi.yaml"), data)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "sub", "app"); cfg.Apps[0].Dir != want {
		t.Errorf("Dir = %q, want %q", cfg.Apps[0].Dir, want)
	}
	if cfg.Listeners[0].Pos.File != filepath.Join("sub", "gowsgi.yaml") {
		t.Errorf("Pos.File = %q, want the path as given", cfg.Listeners[0].Pos.File)
	}
	// A bare file name: the folder is the working directory.
	cfg, err = Parse("gowsgi.yaml", []byte("listeners: [':1']\napps: {a: {module: m}}\nmounts: {/: a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Apps[0].Dir != root {
		t.Errorf("Dir = %q, want %q", cfg.Apps[0].Dir, root)
	}
}

func TestParseDefaultDirMissing(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "gone")
	path := filepath.Join(folder, "gowsgi.yaml")
	_, err := Parse(path, []byte("listeners: [':1']\napps:\n  a: {module: m}\nmounts: {/: a}\n"))
	want := path + `:3:3: apps.a: default dir (the config file's folder) "` + folder + `" does not exist`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	if !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("err = %q, want it to start with \"read config: \"", err)
	}
}

func TestParseListenAddr(t *testing.T) {
	tests := []struct {
		addr, network, address string
		ok                     bool
	}{
		{"127.0.0.1:8000", "tcp", "127.0.0.1:8000", true},
		{":8000", "tcp", ":8000", true},
		{"[::1]:80", "tcp", "[::1]:80", true},
		{"[fe80::1%eth0]:80", "tcp", "[fe80::1%eth0]:80", true},
		{"localhost:65535", "tcp", "localhost:65535", true},
		{"my_host.internal:1", "tcp", "my_host.internal:1", true},
		{"unix:/run/a.sock", "unix", "/run/a.sock", true},
		{"unix:/run/../a.sock", "unix", "/a.sock", true},
		{"unix:a.sock", "unix", "/base/a.sock", true},
		{"unix:@abstract", "unix", "@abstract", true},
		{"localhost", "", "", false},
		{"localhost:65536", "", "", false},
		{"localhost:+80", "", "", false},
		{":", "", "", false},
		{"unix:", "", "", false},
		{"[1.2.3.4]:80", "", "", false},
		{"[foo]:80", "", "", false},
		{"::1:80", "", "", false},
		{"1.2.3.999:80", "", "", false},
		{"a..b:80", "", "", false},
		{"tcp://localhost:80", "", "", false},
	}
	for _, tt := range tests {
		ln, err := parseListenAddr(tt.addr, "/base")
		if ok := err == nil; ok != tt.ok {
			t.Errorf("%q: ok = %v (%v), want %v", tt.addr, ok, err, tt.ok)
			continue
		}
		if tt.ok && (ln.Network != tt.network || ln.Address != tt.address || ln.Addr != tt.addr) {
			t.Errorf("%q: got %+v, want %s %s", tt.addr, ln, tt.network, tt.address)
		}
	}
}

func TestParseModule(t *testing.T) {
	tests := []struct {
		in, module, callable string
		ok                   bool
	}{
		{"hello", "hello", "application", true},
		{"hello:app", "hello", "app", true},
		{"pkg.mod:make_app.wsgi", "pkg.mod", "make_app.wsgi", true},
		{"_private.Mod2:_x", "_private.Mod2", "_x", true},
		{"héllo:app", "héllo", "app", true},
		{"", "", "", false},
		{"hello:", "", "", false},
		{":app", "", "", false},
		{"2fast", "", "", false},
		{"a..b", "", "", false},
		{"a.", "", "", false},
		{"a:b:c", "", "", false},
		{"a-b", "", "", false},
		{"import:app", "", "", false},
		{"a:None", "", "", false},
		{"a b", "", "", false},
	}
	for _, tt := range tests {
		m, c, err := parseModule(tt.in)
		if ok := err == nil; ok != tt.ok {
			t.Errorf("%q: ok = %v (%v), want %v", tt.in, ok, err, tt.ok)
			continue
		}
		if m != tt.module || c != tt.callable {
			t.Errorf("%q: got %q %q, want %q %q", tt.in, m, c, tt.module, tt.callable)
		}
	}
}

func TestParseMountKey(t *testing.T) {
	tests := []struct {
		key, host, prefix string
		ok                bool
	}{
		{"/", "", "/", true},
		{"/blog", "", "/blog", true},
		{"/blog/", "", "/blog", true},
		{"/a/b/", "", "/a/b", true},
		{"example.com/", "example.com", "/", true},
		{"EXAMPLE.com/Blog/", "example.com", "/Blog", true},
		{"*.example.com/", "*.example.com", "/", true},
		{"xn--bcher-kva.example/", "xn--bcher-kva.example", "/", true},
		{"localhost/x", "localhost", "/x", true},
		{"blog", "", "", false},
		{"", "", "", false},
		{"example.com:80/", "", "", false},
		{"example.com:/", "", "", false},
		{"*/", "", "", false},
		{"*./", "", "", false},
		{"a.*.com/", "", "", false},
		{"*.*.com/", "", "", false},
		{".example.com/", "", "", false},
		{"example.com./", "", "", false},
		{"ex_ample.com/", "", "", false},
		{"[::1]/", "", "", false},
		{"//", "", "", false},
		{"/a//b", "", "", false},
		{"/a//", "", "", false},
		{"/./", "", "", false},
		{"/a/.", "", "", false},
		{"/a/../b", "", "", false},
		{"/..", "", "", false},
		{"/a?b", "", "", false},
		{"/a#b", "", "", false},
	}
	for _, tt := range tests {
		host, prefix, err := parseMountKey(tt.key)
		if ok := err == nil; ok != tt.ok {
			t.Errorf("%q: ok = %v (%v), want %v", tt.key, ok, err, tt.ok)
			continue
		}
		if host != tt.host || prefix != tt.prefix {
			t.Errorf("%q: got %q %q, want %q %q", tt.key, host, prefix, tt.host, tt.prefix)
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{"worker", ` (did you mean "workers"?)`},
		{"Workers", ` (did you mean "workers"?)`},
		{"modul", ` (did you mean "module"?)`},
		{"thread", ` (did you mean "threads"?)`},
		{"foo", ""},
		{"d", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.name, keyNames(appKeys)); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestErrorsFormat(t *testing.T) {
	es := Errors{
		{Pos: Pos{File: "gowsgi.yaml", Line: 3, Col: 5}, Msg: "first"},
		{Pos: Pos{File: "gowsgi.yaml", Line: 12, Col: 1}, Msg: "second"},
	}
	want := "gowsgi.yaml:3:5: first\ngowsgi.yaml:12:1: second"
	if got := es.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestParseManyMergesWithinBudget: the bound on merge expansion
// (maxEntries) leaves room for large configs that share settings through
// nested merges.
func TestParseManyMergesWithinBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("listeners: [\":8000\"]\napps:\n  base: &base {module: hello, threads: 2, timeout: 10s, queue: 10}\n" +
		"  web: &web {<<: *base, workers: 2, env: {A: '1', B: '2'}}\n  big: &big {<<: [*web, *base], max_rss: 1GiB}\n")
	const apps = 2000
	for i := range apps {
		fmt.Fprintf(&b, "  app%d: {<<: [*big, *web], python: py%d}\n", i, i)
	}
	b.WriteString("mounts:\n  /: app0\n")
	cfg, err := Parse(filepath.Join(t.TempDir(), "gowsgi.yaml"), []byte(b.String()))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	last := cfg.Apps[len(cfg.Apps)-1]
	if len(cfg.Apps) != apps+3 || last.Workers != 2 || last.MaxRSS != 1<<30 || last.Threads != 2 || last.Python != "py1999" {
		t.Errorf("got %d apps, the last %+v", len(cfg.Apps), last)
	}
}

// TestSecretNeverPrints: printing or encoding a config never shows the
// admin token.
func TestSecretNeverPrints(t *testing.T) {
	const tok = "0123456789abcdef-secret"
	c := Config{AdminToken: tok}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c.AdminToken), string(j)} {
		if strings.Contains(s, tok) || !strings.Contains(s, "[redacted]") {
			t.Errorf("printed as %s", s)
		}
	}
	if string(c.AdminToken) != tok {
		t.Errorf("string(AdminToken) = %q", string(c.AdminToken))
	}
}
