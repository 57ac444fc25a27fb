package host

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gowsgi/gowsgi/worker"
)

func scaleConfig(min, max int, idle, extra string) string {
	return fmt.Sprintf(`
listeners: ["127.0.0.1:0"]
admin: "127.0.0.1:0"
apps:
  app: {module: basic, dir: {{apps}}, python: {{python}}, workers: {min: %d, max: %d, idle_timeout: %s}%s}
mounts:
  "/": app
`, min, max, idle, extra)
}

// scaling returns the app's scaling status.
func (th *testHost) scaling(app string) scalingStatus {
	th.t.Helper()
	for _, a := range th.Status().Apps {
		if a.Name == app && a.Scaling != nil {
			return *a.Scaling
		}
	}
	th.t.Fatalf("no scaling status for %s", app)
	return scalingStatus{}
}

// TestScaleUpUnderLoad checks that a request that would queue adds a
// worker: two requests that wait for each other both complete, which
// they can only do on two workers at once.
func TestScaleUpUnderLoad(t *testing.T) {
	th := startHost(t, scaleConfig(1, 2, "1m", ""))
	if n := len(th.Pids("app")); n != 1 {
		t.Fatalf("%d workers at start, want min 1", n)
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	bodies := make([]string, 2)
	for i, q := range []string{"me=a&peer=b", "me=b&peer=a"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(th.URL + "/rendezvous?dir=" + dir + "&" + q)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var b strings.Builder
			fmt.Fprint(&b, resp.StatusCode, " ")
			buf := make([]byte, 100)
			n, _ := resp.Body.Read(buf)
			b.Write(buf[:n])
			bodies[i] = b.String()
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		if !strings.HasPrefix(b, "200 met") {
			t.Errorf("answers %q: the requests did not run at once", bodies)
			break
		}
	}
	if n := len(th.Pids("app")); n != 2 {
		t.Errorf("%d workers after the load, want 2", n)
	}
	if sc := th.scaling("app"); sc.ScaleUps != 1 || sc.Max != 2 {
		t.Errorf("scaling status %+v, want one scale-up", sc)
	}
}

// TestScaleToZeroAndColdStart checks that an app with min 0 starts with
// no process, answers its first request 200 after a cold start, goes
// back to no process at all (template included) after idle_timeout, and
// starts again for the next request.
func TestScaleToZeroAndColdStart(t *testing.T) {
	th := startHost(t, scaleConfig(0, 2, "200ms", ", preload: true"))
	if p, tp := th.Pids("app"), th.templatePid("app"); len(p) != 0 || tp != 0 {
		t.Fatalf("at start: workers %v, template %d; want none", p, tp)
	}
	for round := range 2 {
		code, body := th.get("/pid")
		if code != 200 {
			t.Fatalf("round %d: cold start answered %d %q", round, code, body)
		}
		tp := th.templatePid("app")
		if tp == 0 || ppid(atoi(body)) != tp {
			t.Errorf("round %d: worker %s is not a fork of the template %d", round, body, tp)
		}
		waitFor(t, func() bool { return len(th.Pids("app")) == 0 && th.templatePid("app") == 0 }, "scale to zero")
		waitFor(t, func() bool { return worker.ProcessGone(atoi(body)) && worker.ProcessGone(tp) }, "the worker and template to exit")
	}
	sc := th.scaling("app")
	if sc.ScaleUps != 2 || sc.ScaleDowns != 2 {
		t.Errorf("scaling status %+v, want 2 up and 2 down", sc)
	}
	b, _ := json.Marshal(sc)
	t.Logf("scaling: %s", b)
	for dir, want := range map[string]float64{"up": 2, "down": 2} {
		if got := metricValue(t, th, "gowsgi_worker_scaling_total", map[string]string{"app": "app", "direction": dir}); got != want {
			t.Errorf("gowsgi_worker_scaling_total{direction=%q} = %v, want %v", dir, got, want)
		}
	}
}
