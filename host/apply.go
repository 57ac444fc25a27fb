package host

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/router"
)

// ErrShuttingDown is the error of a reload refused, or abandoned half
// way, because the host is shutting down.
var ErrShuttingDown = errors.New("host is shutting down")

// A reload goes through four steps, as Caddy's run and unsyncedStop do:
//
//   - prepare: open the admin listener, start the new and changed apps and
//     open the new sockets, everything the new generation needs, while the
//     old one serves on; on any error (or the shutdown beginning) stop
//     what it started, so that nothing changes;
//   - publish: store the new generation with one atomic store, start the
//     new sockets' servers and update the kept ones;
//   - retire: drain and stop what the new generation no longer uses, in
//     the background (h.draining);
//   - report: one log line of what changed.
//
// /status, /metrics and the health checks read the published generation
// and never wait for a reload.

// reload is one config being applied: what prepare made ready and what
// the report tells.
type reload struct {
	cfg   *config.Config
	log   zerolog.Logger
	began time.Time

	admin   *adminServer           // the new generation's (may be the old one)
	next    map[string]*appRuntime // every app of cfg, by name
	started []*appRuntime          // apps with a new pool
	nextLn  map[string]*listener   // every listener of cfg, by key
	lcs     map[string]config.Listener
	opened  []*listener // sockets opened for cfg

	// For the report.
	updatedLn, stopped, replaced, closedLn []string
	adminChange                            string
}

// apply is Apply with h.mu held; the app named force is replaced even if
// its definition did not change. When the shutdown begins meanwhile, the
// apps it was starting are stopped and it returns ErrShuttingDown.
func (h *Host) apply(cfg *config.Config, force string) error {
	if h.closed || h.stopping.Load() {
		return ErrShuttingDown
	}
	if h.logHook != nil {
		h.logHook(cfg.Log)
	}
	rl := &reload{cfg: cfg, began: time.Now(), log: h.log.With().Int64("generation", h.genID+1).Logger()}
	if err := h.prepare(rl, force); err != nil {
		return err
	}
	h.publish(rl)
	h.retire(rl)
	h.report(rl)
	return nil
}

// prepare readies everything rl.cfg needs; on error it stops what it
// started and nothing has changed.
func (h *Host) prepare(rl *reload, force string) error {
	// The admin listener first, so that /healthz and /readyz answer while
	// the apps of the first config start.
	admin, err := h.openAdmin(rl.cfg.Admin, rl.cfg.AdminToken)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", rl.cfg.Admin.Addr, err)
	}
	rl.admin = admin
	rl.next, rl.started = h.startApps(rl.cfg, force, rl.log)
	if h.life.Err() != nil {
		h.rollback(rl)
		return ErrShuttingDown
	}
	if err := h.openListeners(rl); err != nil {
		h.rollback(rl)
		return err
	}
	return nil
}

// openListeners keeps the sockets of unchanged addresses and opens the new ones.
func (h *Host) openListeners(rl *reload) error {
	rl.nextLn, rl.lcs = map[string]*listener{}, map[string]config.Listener{}
	for _, lc := range rl.cfg.Listeners {
		key := lc.Network + ":" + lc.Address
		rl.lcs[key] = lc
		if l := h.listeners[key]; l != nil {
			rl.nextLn[key] = l
			continue
		}
		l, err := openListener(key, lc)
		if err != nil {
			return fmt.Errorf("listener %s: %w", lc.Addr, err)
		}
		rl.nextLn[key] = l
		rl.opened = append(rl.opened, l)
	}
	return nil
}

// rollback stops what prepare started for a reload that is not applied.
func (h *Host) rollback(rl *reload) {
	for _, l := range rl.opened {
		l.closeSocket()
	}
	h.discard(rl.next)
	if rl.admin != nil && rl.admin != h.admin {
		rl.admin.close(0)
	}
}

// publish makes rl's generation the one requests see, then starts the new
// sockets' servers and updates the kept ones.
func (h *Host) publish(rl *reload) {
	mounts := make([]router.Mount[*appRuntime], 0, len(rl.cfg.Mounts))
	for _, m := range rl.cfg.Mounts {
		mounts = append(mounts, router.Mount[*appRuntime]{Host: m.Host, Prefix: m.Prefix, Target: rl.next[m.App]})
	}
	h.genID++
	gen := &generation{id: h.genID, routes: router.New(mounts), limits: rl.cfg.Limits, compress: rl.cfg.Compress,
		access: rl.cfg.Log.Access, combined: rl.cfg.Log.AccessFormat == "combined", cfg: rl.cfg}
	for _, name := range slices.Sorted(maps.Keys(rl.next)) {
		gen.apps = append(gen.apps, rl.next[name])
	}
	for _, key := range slices.Sorted(maps.Keys(rl.nextLn)) {
		l := rl.nextLn[key]
		gen.listeners = append(gen.listeners, listenerStatus{Addr: l.addr, Bound: l.ln.Addr().String(), TLS: rl.lcs[key].TLS != nil})
		gen.sockets = append(gen.sockets, l)
	}
	if rl.admin != nil {
		gen.admin = rl.admin.ln.Addr()
	}
	h.spoolDisk.SetMax(rl.cfg.Limits.MaxSpoolTotal)
	h.gen.Store(gen)
	h.ready.Store(true)
	for _, l := range rl.opened {
		l.update(rl.lcs[l.key], rl.log)
		st := settingsOf(rl.lcs[l.key], rl.cfg.Limits)
		l.setServer(h.newServer(l, st), st)
		l.start(h.log)
	}
	h.updateListeners(rl)
	for _, rt := range rl.next {
		if rt.def.Reload && rt.stopWatch == nil {
			h.watchApp(rt) // the sources of new apps with reload: true
		}
	}
}

// updateListeners applies rl's settings to the sockets it keeps. The
// certificate, forwarded_allow_ips, max_connections and the mode change
// in place; new server settings get a new server, which takes the new
// connections while the old one finishes its own.
func (h *Host) updateListeners(rl *reload) {
	for key, l := range rl.nextLn {
		if h.listeners[key] != l {
			continue
		}
		changed := l.update(rl.lcs[key], rl.log)
		if st := settingsOf(rl.lcs[key], rl.cfg.Limits); st != l.settings {
			changed = append(changed, "server")
			old := l.setServer(h.newServer(l, st), st)
			h.draining.Go(func() { shutdownServer(old, rl.cfg.ShutdownTimeout) })
		}
		if len(changed) > 0 {
			rl.updatedLn = append(rl.updatedLn, l.addr+" ("+strings.Join(changed, ", ")+")")
		}
	}
	slices.Sort(rl.updatedLn)
}

// retire drains and stops, in the background, the apps, listeners and
// admin listener that the published generation no longer uses.
func (h *Host) retire(rl *reload) {
	for name, old := range h.apps {
		if rl.next[name] != old {
			h.retireApp(rl, name, old)
		}
	}
	for key, l := range h.listeners {
		if rl.nextLn[key] == nil {
			rl.closedLn = append(rl.closedLn, l.addr)
			h.draining.Go(func() { l.close(rl.cfg.ShutdownTimeout) })
		}
	}
	for name := range h.apps {
		if _, ok := rl.next[name]; !ok {
			h.metrics.forget(name)
		}
	}
	h.retireAdmin(rl)
	h.apps, h.listeners = rl.next, rl.nextLn
}

// retireApp stops an app's old runtime once the requests routed to it end.
func (h *Host) retireApp(rl *reload, name string, old *appRuntime) {
	if old.stopWatch != nil {
		old.stopWatch()
	}
	if old.static != nil {
		// Requests routed by the old generation may still open files.
		h.draining.Go(func() {
			select {
			case <-time.After(min(rl.cfg.ShutdownTimeout, 5*time.Second)):
			case <-h.life.Done():
			}
			old.static.Close()
		})
	}
	if old.pool == nil {
		return
	}
	if _, ok := rl.next[name]; ok {
		rl.replaced = append(rl.replaced, name)
		for range old.pool.Pids() {
			old.m.restarted(h.metrics, restartReload)
		}
	} else {
		rl.stopped = append(rl.stopped, name)
	}
	h.draining.Go(func() { old.pool.stop(rl.cfg.ShutdownTimeout) })
}

// retireAdmin closes the old admin listener if the new generation has
// another, and gives the one it has the new token.
func (h *Host) retireAdmin(rl *reload) {
	admin := rl.admin
	if admin != h.admin {
		if old := h.admin; old != nil {
			rl.adminChange = "closed " + old.addr
			h.draining.Go(func() { old.close(rl.cfg.ShutdownTimeout) })
		}
		if admin != nil {
			rl.adminChange = strings.TrimPrefix(rl.adminChange+", opened "+admin.ln.Addr().String(), ", ")
		}
		h.admin = admin
	}
	if admin != nil {
		admin.setToken(rl.cfg.AdminToken) // a kept listener takes the new token now
		admin.warnIfExposed(rl.log)
	}
}

// report logs what the reload changed, and makes rl.cfg the applied config.
func (h *Host) report(rl *reload) {
	var started, failed, opened []string
	for _, rt := range rl.started {
		started = append(started, rt.name)
	}
	for name, rt := range rl.next {
		if !rt.serving() {
			failed = append(failed, name)
		}
	}
	for _, l := range rl.opened {
		opened = append(opened, l.ln.Addr().String())
	}
	added, removed := mountChanges(h.cfg, rl.cfg)
	h.cfg = rl.cfg
	slices.Sort(started)
	slices.Sort(failed)
	slices.Sort(rl.stopped)
	slices.Sort(rl.replaced)
	slices.Sort(rl.closedLn)
	rl.log.Info().Strs("apps_started", started).Strs("apps_failed", failed).Strs("apps_replaced", rl.replaced).
		Strs("apps_stopped", rl.stopped).Strs("listeners_opened", opened).Strs("listeners_updated", rl.updatedLn).
		Strs("listeners_closed", rl.closedLn).Strs("mounts_added", added).Strs("mounts_removed", removed).
		Str("admin", rl.adminChange).Int("mounts", len(rl.cfg.Mounts)).Dur("took", time.Since(rl.began)).Msg("config applied")
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
