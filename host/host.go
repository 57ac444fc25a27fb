// Package host runs gowsgi: it owns the listeners, the worker pools of every
// app, the HTTP handler that routes requests to them, and reloads, where a
// new generation of mounts and pools is built, checked, swapped in with one
// atomic store, and the old one drained.
package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strings"
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

	bodyMem bodyBudget // memory held by request bodies (limits.body_memory)
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
	access    bool             // log an access line per request
	cfg       *config.Config   // nil before the first Apply
	apps      []*appRuntime    // by name
	listeners []listenerStatus // by address
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

// New returns a host that serves nothing until Apply is called.
func New(log zerolog.Logger) *Host {
	h := &Host{log: log, apps: map[string]*appRuntime{}, listeners: map[string]*listener{}, started: time.Now()}
	h.life, h.endLife = context.WithCancel(context.Background())
	h.metrics = newMetrics(h)
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

// ErrShuttingDown is the error of a reload refused, or abandoned half
// way, because the host is shutting down.
var ErrShuttingDown = errors.New("host is shutting down")

// apply is Apply with h.mu held; the app named force is replaced even if
// its definition did not change. When the shutdown begins meanwhile, the
// apps it was starting are stopped and it returns ErrShuttingDown.
func (h *Host) apply(cfg *config.Config, force string) error {
	if h.closed || h.stopping.Load() {
		return ErrShuttingDown
	}
	began := time.Now()
	log := h.log.With().Int64("generation", h.genID+1).Logger()
	if h.logHook != nil {
		h.logHook(cfg.Log)
	}

	// The admin listener first, so that /healthz and /readyz answer while
	// the apps of the first config start.
	admin, err := h.openAdmin(cfg.Admin, cfg.AdminToken)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", cfg.Admin.Addr, err)
	}
	closeNewAdmin := func() {
		if admin != h.admin {
			admin.close(0)
		}
	}

	// Apps: reuse the unchanged, start the new and changed ones in parallel.
	next, started := h.startApps(cfg, force, log)
	if h.life.Err() != nil {
		h.discard(next)
		closeNewAdmin()
		return ErrShuttingDown
	}

	// Listeners: keep the sockets of unchanged addresses, open the new ones.
	nextLn := map[string]*listener{}
	lcs := map[string]config.Listener{}
	var opened []*listener
	for _, lc := range cfg.Listeners {
		key := lc.Network + ":" + lc.Address
		lcs[key] = lc
		if l := h.listeners[key]; l != nil {
			nextLn[key] = l
			continue
		}
		l, err := openListener(key, lc)
		if err != nil {
			for _, l := range opened {
				l.ln.Close()
			}
			h.discard(next)
			closeNewAdmin()
			return fmt.Errorf("listener %s: %w", lc.Addr, err)
		}
		nextLn[key] = l
		opened = append(opened, l)
	}

	mounts := make([]router.Mount[*appRuntime], 0, len(cfg.Mounts))
	for _, m := range cfg.Mounts {
		mounts = append(mounts, router.Mount[*appRuntime]{Host: m.Host, Prefix: m.Prefix, Target: next[m.App]})
	}
	h.genID++
	gen := &generation{id: h.genID, routes: router.New(mounts), limits: cfg.Limits, access: cfg.Log.Access, cfg: cfg}
	for _, name := range slices.Sorted(maps.Keys(next)) {
		gen.apps = append(gen.apps, next[name])
	}
	for _, key := range slices.Sorted(maps.Keys(nextLn)) {
		l := nextLn[key]
		gen.listeners = append(gen.listeners, listenerStatus{Addr: l.addr, Bound: l.ln.Addr().String(), TLS: lcs[key].TLS != nil})
	}
	if admin != nil {
		gen.admin = admin.ln.Addr()
	}
	h.gen.Store(gen)
	h.ready.Store(true)
	for _, l := range opened {
		l.update(lcs[l.key], log)
		st := settingsOf(lcs[l.key], cfg.Limits)
		l.setServer(h.newServer(l, st), st)
		go l.acceptLoop(h.log)
	}
	var updatedLn []string
	for key, l := range nextLn {
		if h.listeners[key] != l {
			continue
		}
		// Same socket. The certificate, forwarded_allow_ips and the mode
		// change in place; new server settings get a new server, which
		// takes the new connections while the old one finishes its own.
		changed := l.update(lcs[key], log)
		if st := settingsOf(lcs[key], cfg.Limits); st != l.settings {
			changed = append(changed, "server")
			old := l.setServer(h.newServer(l, st), st)
			h.draining.Add(1)
			go func() {
				defer h.draining.Done()
				shutdownServer(old, cfg.ShutdownTimeout)
			}()
		}
		if len(changed) > 0 {
			updatedLn = append(updatedLn, l.addr+" ("+strings.Join(changed, ", ")+")")
		}
	}
	slices.Sort(updatedLn)

	// Watch the sources of new apps with reload: true.
	for _, rt := range next {
		if rt.def.Reload && rt.stopWatch == nil {
			h.watchApp(rt)
		}
	}

	// Retire what the new generation no longer uses.
	var stopped, replaced []string
	for name, old := range h.apps {
		if next[name] == old {
			continue
		}
		if old.stopWatch != nil {
			old.stopWatch()
		}
		if old.static != nil {
			// Requests routed by the old generation may still open files.
			h.draining.Add(1)
			go func() {
				defer h.draining.Done()
				time.Sleep(min(cfg.ShutdownTimeout, 5*time.Second))
				old.static.Close()
			}()
		}
		if old.pool == nil {
			continue
		}
		if _, ok := next[name]; ok {
			replaced = append(replaced, name)
			for range old.pool.Pids() {
				old.m.restarted(h.metrics, restartReload)
			}
		} else {
			stopped = append(stopped, name)
		}
		h.draining.Add(1)
		go func() {
			defer h.draining.Done()
			old.pool.stop(cfg.ShutdownTimeout)
		}()
	}
	var closedLn []string
	for key, l := range h.listeners {
		if nextLn[key] == nil {
			closedLn = append(closedLn, l.addr)
			h.draining.Add(1)
			go func() {
				defer h.draining.Done()
				l.close(cfg.ShutdownTimeout)
			}()
		}
	}
	var startedNames, failed, openedNames []string
	for _, rt := range started {
		startedNames = append(startedNames, rt.name)
	}
	for name, rt := range next {
		if !rt.serving() {
			failed = append(failed, name)
		}
	}
	for _, l := range opened {
		openedNames = append(openedNames, l.ln.Addr().String())
	}
	for name := range h.apps {
		if _, ok := next[name]; !ok {
			h.metrics.forget(name)
		}
	}
	adminChange := ""
	if admin != h.admin {
		if old := h.admin; old != nil {
			adminChange = "closed " + old.addr
			h.draining.Add(1)
			go func() {
				defer h.draining.Done()
				old.close(cfg.ShutdownTimeout)
			}()
		}
		if admin != nil {
			adminChange = strings.TrimPrefix(adminChange+", opened "+admin.ln.Addr().String(), ", ")
		}
		h.admin = admin
	}
	if admin != nil {
		admin.setToken(cfg.AdminToken) // a kept listener takes the new token now
		admin.warnIfExposed(log)
	}
	added, removed := mountChanges(h.cfg, cfg)
	h.apps = next
	h.listeners = nextLn
	h.cfg = cfg
	slices.Sort(startedNames)
	slices.Sort(failed)
	slices.Sort(stopped)
	log.Info().Strs("apps_started", startedNames).Strs("apps_failed", failed).Strs("apps_replaced", replaced).
		Strs("apps_stopped", stopped).Strs("listeners_opened", openedNames).Strs("listeners_updated", updatedLn).Strs("listeners_closed", closedLn).
		Strs("mounts_added", added).Strs("mounts_removed", removed).Str("admin", adminChange).
		Int("mounts", len(mounts)).Dur("took", time.Since(began)).Msg("config applied")
	return nil
}

// mountChanges lists the mounts ("key -> app") in next but not in prev, and
// the other way round.
func mountChanges(prev, next *config.Config) (added, removed []string) {
	set := func(c *config.Config) map[string]bool {
		m := map[string]bool{}
		if c != nil {
			for _, mt := range c.Mounts {
				m[mt.Key+" -> "+mt.App] = true
			}
		}
		return m
	}
	p, n := set(prev), set(next)
	for k := range n {
		if !p[k] {
			added = append(added, k)
		}
	}
	for k := range p {
		if !n[k] {
			removed = append(removed, k)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
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
		h.draining.Add(1)
		go func() {
			defer h.draining.Done()
			if rt.pool != nil {
				rt.pool.stop(0)
			}
			if rt.static != nil {
				rt.static.Close()
			}
		}()
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
// still importing its apps are killed) and no reload is applied any more.
// Shutdown calls it; calling it again does nothing.
func (h *Host) BeginShutdown() {
	h.stopping.Store(true)
	h.endLife()
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
			l.ln.Close()
			if err := l.server().srv.Shutdown(ctx); err != nil {
				h.cutting.Store(true) // for the access lines of the requests cut
				l.server().srv.Close()
			}
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
