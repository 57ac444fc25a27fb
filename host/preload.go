package host

import (
	"errors"
	"fmt"
	"time"

	"github.com/gowsgi/gowsgi/worker"
)

// errPreloadRefused is the template's refusal to fork, remembered: the
// pool's workers import the app themselves from then on.
var errPreloadRefused = errors.New("preload refused")

// startProc is the pool's startWorker: worker.Start, or for a preloaded
// app a fork of the pool's template (started on first use, and again
// after it died). If the template refuses to fork (threads run after the
// import), the worker imports the app itself.
func (pl *pool) startProc(spec *worker.Spec) (*worker.Process, error) {
	if !spec.Preload {
		return worker.Start(spec)
	}
	for attempt := 0; ; attempt++ {
		t, err := pl.template()
		if errors.Is(err, errPreloadRefused) {
			return worker.Start(spec)
		}
		if err != nil {
			return nil, err
		}
		p, err := t.Fork(spec)
		if err == nil || t.Alive() || attempt > 0 {
			return p, err
		}
		// The template died meanwhile (its forks with it): a new one.
	}
}

// template returns the pool's live template, starting one if there is
// none. Starts are serialised: concurrent callers share one template.
func (pl *pool) template() (*worker.Template, error) {
	pl.tmplMu.Lock()
	defer pl.tmplMu.Unlock()
	if pl.preloadRefused {
		return nil, errPreloadRefused
	}
	if pl.tmpl != nil && pl.tmpl.Alive() {
		return pl.tmpl, nil
	}
	if old := pl.tmpl; old != nil {
		pl.tmpl = nil
		pl.log.Error().Int("pid", old.Pid()).Msg("template process died (its workers with it); starting a new one")
		pl.health.record("template process died; starting a new one", time.Now())
		old.Close(0)
	}
	t, err := worker.StartTemplate(pl.spec)
	var te *worker.ThreadsError
	if errors.As(err, &te) {
		pl.preloadRefused = true
		pl.log.Error().Str("threads", te.Threads).Msg(te.Error())
		pl.health.record(te.Error(), time.Now())
		return nil, errPreloadRefused
	}
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	pl.log.Info().Int("pid", t.Pid()).Msg("template imported the app; workers are forked from it")
	pl.tmpl = t
	return t, nil
}

// templatePid returns the pid of the pool's template, or 0 if it has none.
func (pl *pool) templatePid() int {
	pl.tmplMu.Lock()
	defer pl.tmplMu.Unlock()
	if pl.tmpl == nil {
		return 0
	}
	return pl.tmpl.Pid()
}

// stopTemplate stops the pool's template, once its workers are stopped.
func (pl *pool) stopTemplate() {
	pl.tmplMu.Lock()
	t := pl.tmpl
	pl.tmpl = nil
	pl.tmplMu.Unlock()
	if t != nil {
		t.Close(5 * time.Second)
	}
}
