// Package host runs gowsgi: it owns the listeners, the worker pools of every
// app, the HTTP handler that routes requests to them, and reloads, where a
// new generation of mounts and pools is built, checked, swapped in with one
// atomic store, and the old one drained.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/router"
	"github.com/gowsgi/gowsgi/worker"
)

// Host serves the apps of a config on its listeners. Create it with New,
// then call Apply with each config (the first one starts it) and Shutdown.
type Host struct {
	log zerolog.Logger

	gen atomic.Pointer[generation]

	requests sync.Pool // of *request

	mu        sync.Mutex     // serializes Apply and Shutdown
	cfg       *config.Config // the applied config
	apps      map[string]*appRuntime
	listeners map[string]*listener
	genID     int64
	closed    bool
	draining  sync.WaitGroup // pools and listeners being retired
	admin     *adminServer   // nil: no admin listener

	metrics  *metrics
	started  time.Time
	ready    atomic.Bool // a config is applied (see isReady)
	stopping atomic.Bool // the shutdown began
	cutting  atomic.Bool // the shutdown timeout passed: connections are being cut
	logHook  func(config.Log)

	// life ends when the shutdown begins: it abandons a reload in
	// progress, killing the workers still importing its apps.
	life    context.Context
	endLife context.CancelFunc

	statusMu   sync.Mutex
	lastReload reloadStatus

	bodyMem   bodyBudget         // memory held by request bodies (limits.body_memory)
	spoolDisk worker.SpoolBudget // disk held by response spools (limits.max_spool_total)
	// accessOut receives access lines in the Combined Log Format
	// (log.access_format: combined): stdout, or a test's buffer.
	accessOut io.Writer
	accessMu  sync.Mutex // one line at a time
	// Repeated warnings, sampled: requests refused for want of a worker,
	// misbehaving clients, apps breaking their framing.
	refusals, clientWarnings, appWarnings sampler
}

// reloadStatus is the outcome of the last config applied or refused.
type reloadStatus struct {
	Time    time.Time `json:"time"`
	Outcome string    `json:"outcome"` // "applied" or "refused"
	Errors  []string  `json:"errors,omitempty"`
	TookMS  float64   `json:"took_ms"`
}

// generation is one immutable mount table: what a request sees, and what
// /status and /metrics read without taking the host's lock.
type generation struct {
	id        int64
	routes    *router.Table[*appRuntime]
	limits    config.Limits
	compress  config.Compress
	access    bool             // log an access line per request
	combined  bool             // access lines in the Combined Log Format, to h.accessOut
	cfg       *config.Config   // nil before the first Apply
	apps      []*appRuntime    // by name
	listeners []listenerStatus // by address
	sockets   []*listener      // the listeners themselves, for BeginShutdown
	admin     net.Addr         // the admin listener's, or nil
}

// listenerStatus is a listener as /status shows it.
type listenerStatus struct {
	Addr  string `json:"addr"`  // as configured
	Bound string `json:"bound"` // the bound address
	TLS   bool   `json:"tls"`
}

// appRuntime is one app of one or more generations: its pool, or why it has none.
type appRuntime struct {
	name       string
	def        config.App   // Pos cleared: compared to detect changes
	pool       *pool        // nil if the app failed to load, or is static
	static     *staticFiles // for a static: app
	failReason string
	stopWatch  func() // ends the reload: true watcher, if any
	m          *appMetrics
	health     *appHealth // its errors, for /status
}

// serving reports whether the runtime can answer requests.
func (rt *appRuntime) serving() bool { return rt.pool != nil || rt.static != nil }

// SetAccessOutput sets where access lines in the Combined Log Format go
// (os.Stdout unless set).
func (h *Host) SetAccessOutput(w io.Writer) {
	h.accessMu.Lock()
	h.accessOut = w
	h.accessMu.Unlock()
}

// New returns a host that serves nothing until Apply is called.
func New(log zerolog.Logger) *Host {
	h := &Host{log: log, apps: map[string]*appRuntime{}, listeners: map[string]*listener{}, started: time.Now(),
		accessOut: os.Stdout}
	h.life, h.endLife = context.WithCancel(context.Background())
	h.metrics = newMetrics(h)
	h.spoolDisk.SetMax(config.DefaultLimits.MaxSpoolTotal)
	h.gen.Store(&generation{routes: router.New[*appRuntime](nil), limits: config.DefaultLimits, access: true})
	return h
}

// OnLogConfig sets a function called with the log settings of every config
// applied, before anything else of it (cmd/gowsgi sets the level with it).
// Call it before the first Apply.
func (h *Host) OnLogConfig(f func(config.Log)) { h.logHook = f }

// runtimes returns the apps of the generation being served, by name.
func (h *Host) runtimes() []*appRuntime { return h.gen.Load().apps }

// setLastReload records the outcome of a reload for /status and the metrics.
func (h *Host) setLastReload(began time.Time, err error, first bool) {
	st := reloadStatus{Time: time.Now(), Outcome: "applied", TookMS: float64(time.Since(began).Microseconds()) / 1000}
	if err != nil {
		st.Outcome = "refused"
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				st.Errors = append(st.Errors, e.Error())
			}
		} else {
			st.Errors = []string{err.Error()}
		}
	}
	if !first || err != nil {
		h.metrics.reloads.WithLabelValues(st.Outcome).Inc()
	}
	h.statusMu.Lock()
	h.lastReload = st
	h.statusMu.Unlock()
}

// Addrs returns the bound address of every listener, in no order. With
// port 0 in the config, this is where the port chosen by the kernel shows.
func (h *Host) Addrs() map[string]net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	addrs := map[string]net.Addr{}
	for k, l := range h.listeners {
		addrs[k] = l.ln.Addr()
	}
	return addrs
}

// ShutdownTimeout is the served config's shutdown_timeout. It does not
// wait for a reload in progress.
func (h *Host) ShutdownTimeout() time.Duration {
	if cfg := h.gen.Load().cfg; cfg != nil {
		return cfg.ShutdownTimeout
	}
	return config.DefaultShutdownTimeout
}

// isReady reports whether the host is ready to serve: a config is applied
// and the shutdown has not begun.
func (h *Host) isReady() bool { return h.ready.Load() && !h.stopping.Load() }

// Generation returns the number of the config generation being served.
func (h *Host) Generation() int64 { return h.gen.Load().id }

// Pids returns the live worker pids of an app (nil if it has no pool).
func (h *Host) Pids(app string) []int {
	h.mu.Lock()
	rt := h.apps[app]
	h.mu.Unlock()
	if rt == nil || rt.pool == nil {
		return nil
	}
	return rt.pool.Pids()
}

// Apply makes cfg the served config: apps whose definition did not change
// keep their workers, new and changed apps get new pools that must load
// before any mount points at them, listeners that did not change keep their
// sockets, and the mount table is swapped in one step. Old pools and
// listeners are then drained in the background. If a listener cannot be
// opened, nothing changes and the error is returned.
func (h *Host) Apply(cfg *config.Config) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	began := time.Now()
	first := h.cfg == nil
	err := h.apply(cfg, "")
	h.setLastReload(began, err, first)
	return err
}

// startApps returns the runtimes of cfg's apps: those of h.apps whose
// definition did not change (unless named force) as they are, and the new
// and changed ones started in parallel, an old version kept where its new
// one failed to start. started lists the runtimes with a new pool.
func (h *Host) startApps(cfg *config.Config, force string, log zerolog.Logger) (next map[string]*appRuntime, started []*appRuntime) {
	next = map[string]*appRuntime{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, a := range cfg.Apps {
		def := *a
		def.Pos = config.Pos{}
		old := h.apps[a.Name]
		if old != nil && old.serving() && reflect.DeepEqual(old.def, def) && a.Name != force {
			mu.Lock()
			next[a.Name] = old
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt := h.startApp(def)
			mu.Lock()
			defer mu.Unlock()
			if !rt.serving() && old != nil && old.serving() {
				if h.life.Err() == nil {
					log.Error().Str("app", def.Name).Str("reason", rt.failReason).Msg("new version of app failed to start; the old one keeps serving")
				}
				next[def.Name] = old
				return
			}
			next[def.Name] = rt
			if rt.pool != nil {
				started = append(started, rt)
			}
		}()
	}
	wg.Wait()
	return next, started
}

// discard stops the runtimes of next that a reload started (those not in
// h.apps), for a reload that will not be applied.
func (h *Host) discard(next map[string]*appRuntime) {
	for name, rt := range next {
		if h.apps[name] == rt {
			continue
		}
		h.draining.Go(func() {
			if rt.pool != nil {
				rt.pool.stop(0)
			}
			if rt.static != nil {
				rt.static.Close()
			}
		})
	}
}

// startApp starts an app's pool; on failure the runtime carries the reason.
func (h *Host) startApp(def config.App) *appRuntime {
	rt := &appRuntime{name: def.Name, def: def, m: h.metrics.app(def.Name), health: newAppHealth(def.StartTimeout)}
	if def.Static != "" {
		st, err := newStaticFiles(def.Static, def.CacheControl)
		if err != nil {
			h.log.Error().Err(err).Str("app", def.Name).Msg("static folder; its mounts answer 503")
			rt.failReason = fmt.Sprintf("app %q: %v", def.Name, err)
			rt.health.record(rt.failReason, time.Now())
			return rt
		}
		h.log.Info().Str("app", def.Name).Str("static", def.Static).Msg("app started")
		rt.static = st
		return rt
	}
	spec := WorkerSpec(h.life, &def, h.log)
	log := h.log.With().Str("app", def.Name).Logger()
	pl, err := startPool(spec, def, h.log.With().Str("app", def.Name).Logger(), rt.health, func(reason string) { rt.m.restarted(h.metrics, reason) })
	if err != nil {
		var le *worker.LoadError
		switch {
		case h.life.Err() != nil:
			log.Info().Err(err).Msg("app start abandoned: shutting down")
			rt.failReason = err.Error()
		case errors.As(err, &le):
			log.Error().Str("traceback", le.Traceback).Msg("app failed to load; its mounts answer 503")
			rt.failReason = fmt.Sprintf("app %q failed to load: %s", def.Name, le.Reason())
		default:
			log.Error().Err(err).Msg("app failed to start; its mounts answer 503")
			rt.failReason = err.Error()
		}
		rt.health.record(rt.failReason, time.Now())
		return rt
	}
	log.Info().Ints("pids", pl.Pids()).Msg("app started")
	rt.pool = pl
	return rt
}

// BeginShutdown starts the shutdown without waiting for anything: /readyz
// answers 503 from now on, a reload in progress is abandoned (the workers
// still importing its apps are killed), no reload is applied any more and
// the listeners accept no new connection.
// Shutdown calls it; calling it again does nothing.
func (h *Host) BeginShutdown() {
	h.stopping.Store(true)
	h.endLife()
	for _, l := range h.gen.Load().sockets {
		l.closeSocket() // no new connection from now on; open ones finish
	}
}

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then stops every worker. A reload in progress is abandoned.
func (h *Host) Shutdown(ctx context.Context) error {
	h.BeginShutdown()
	h.mu.Lock()
	h.closed = true
	admin := h.admin
	h.admin = nil
	lns := slices.Collect(maps.Values(h.listeners))
	apps := slices.Collect(maps.Values(h.apps))
	h.listeners = map[string]*listener{}
	h.apps = map[string]*appRuntime{}
	h.mu.Unlock()

	for _, rt := range apps {
		if rt.stopWatch != nil {
			rt.stopWatch()
		}
	}
	var wg sync.WaitGroup
	for _, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.closeSocket()
			if err := l.server().srv.Shutdown(ctx); err != nil {
				h.cutting.Store(true) // for the access lines of the requests cut
				l.server().srv.Close()
			}
			l.loop.Wait()
		}()
	}
	wg.Wait()
	grace := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		grace = max(time.Until(dl), 0)
	}
	for _, rt := range apps {
		if rt.pool != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rt.pool.stop(grace)
			}()
		}
	}
	wg.Wait()
	h.draining.Wait()
	if admin != nil {
		admin.close(0)
	}
	return nil
}

// debugWriter sends net/http's own error log (bad requests, TLS handshake
// failures) to the logger at debug level.
type debugWriter struct{ log zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Str("source", "http").Msg(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
