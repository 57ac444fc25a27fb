package host

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/worker"
)

// WorkerSpec is the one mapping from an app's config to the spec its
// workers start with, used by serve (startApp) and by check. log receives
// the workers' output; when ctx ends, a start in progress is abandoned.
// The pool adds its body area (Spec.Bodies) itself.
func WorkerSpec(ctx context.Context, app *config.App, log zerolog.Logger) *worker.Spec {
	return &worker.Spec{
		App:             app.Name,
		Python:          app.Python,
		Dir:             app.Dir,
		Module:          app.Module,
		Callable:        app.Callable,
		Threads:         app.Threads,
		Workers:         app.Workers,
		Env:             app.Env,
		Preload:         app.Preload,
		UID:             app.UID,
		GID:             app.GID,
		Umask:           app.Umask,
		MaxOpenFiles:    app.MaxOpenFiles,
		MaxAddressSpace: app.MaxAddressSpace,
		StartTimeout:    app.StartTimeout,
		Log:             log,
		Context:         ctx,
	}
}
