package host

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
)

// TestWorkerSpec: the spec carries every setting of the app that the
// workers use.
func TestWorkerSpec(t *testing.T) {
	app := &config.App{Name: "a", Module: "m", Callable: "c", Dir: "/d", Python: "py", Workers: 3, Threads: 4,
		Env: map[string]string{"K": "V"}, StartTimeout: 7 * time.Second}
	ctx := context.WithValue(context.Background(), struct{}{}, 1)
	s := WorkerSpec(ctx, app, zerolog.Nop())
	if s.App != "a" || s.Module != "m" || s.Callable != "c" || s.Dir != "/d" || s.Python != "py" || s.Workers != 3 ||
		s.Threads != 4 || s.Env["K"] != "V" || s.StartTimeout != 7*time.Second || s.Context != ctx || s.Bodies != nil {
		t.Errorf("spec %+v", s)
	}
}
