package host

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
)

// ReloadFile reads the config at path and applies it. A config with errors
// changes nothing: each problem is logged as file:line:col and returned.
func (h *Host) ReloadFile(path string) error {
	began := time.Now()
	cfg, err := config.Load(path)
	if err != nil {
		h.setLastReload(began, err, false)
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				h.log.Error().Str("config", path).Msg(e.Error())
			}
		}
		h.log.Error().Err(err).Msg("reload refused: the config has errors; still serving the previous one")
		return err
	}
	if err := h.Apply(cfg); err != nil {
		if errors.Is(err, ErrShuttingDown) {
			h.log.Info().Msg("reload abandoned: the host is shutting down")
		} else {
			h.log.Error().Err(err).Msg("reload refused; still serving the previous config")
		}
		return err
	}
	return nil
}

// WatchConfig reloads the config at path whenever it changes: the file,
// any symlink it resolves through, or the files its include patterns
// match (appearing, changing, going). It is watching when it returns;
// stop ends the watching and waits for it.
func (h *Host) WatchConfig(path string) (stop func(), err error) {
	w, err := config.WatchFiles(func() (paths, globs []string) {
		paths = []string{path}
		if cfg := h.gen.Load().cfg; cfg != nil {
			paths = append(paths, cfg.Files...)
			globs = cfg.Include
		}
		return paths, globs
	})
	if err != nil {
		return nil, err
	}
	return h.run(w, func() {
		h.log.Info().Str("config", path).Msg("config file changed; reloading")
		h.ReloadFile(path)
	}, h.log), nil
}

// run runs a watcher in the background until the returned stop is called.
func (h *Host) run(w *config.Watcher, onChange func(), log zerolog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, config.DefaultDebounce, onChange, func(err error) { log.Warn().Err(err).Msg("file watcher") })
	}()
	return func() { cancel(); <-done }
}

// watchApp starts the reload: true watcher of an app runtime: a change to a
// .py file under its dir replaces its workers the graceful way.
func (h *Host) watchApp(rt *appRuntime) {
	log := h.log.With().Str("app", rt.name).Logger()
	w, err := config.WatchTree(rt.def.Dir, func(name string) bool { return filepath.Ext(name) == ".py" })
	if err != nil {
		log.Error().Err(err).Msg("cannot watch the app's sources for reload")
		return
	}
	stop := h.run(w, func() { go h.restartApp(rt) }, log)
	rt.stopWatch = func() { go stop() }
}

// restartApp replaces the workers of an app whose sources changed, if rt is
// still the app's current runtime.
func (h *Host) restartApp(rt *appRuntime) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.apps[rt.name] != rt || h.cfg == nil {
		return
	}
	h.log.Info().Str("app", rt.name).Msg("app sources changed; replacing its workers")
	h.apply(h.cfg, rt.name)
}
