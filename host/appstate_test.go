package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// appStatusOf returns the app named name from /status, failing the test
// if there is none.
func (th *testHost) appStatusOf(name string) appStatus {
	th.t.Helper()
	for _, a := range th.Status().Apps {
		if a.Name == name {
			return a
		}
	}
	th.t.Fatalf("no app %s in /status", name)
	return appStatus{}
}

// checkAppState checks an app's state in /status and in the
// gowsgi_app_state metric.
func checkAppState(t *testing.T, th *testHost, name, want string) appStatus {
	t.Helper()
	a := th.appStatusOf(name)
	if a.State != want {
		t.Errorf("%s: /status state %q, want %q (%+v)", name, a.State, want, a)
	}
	for _, s := range appStates {
		v := 0.0
		if s == want {
			v = 1
		}
		if got := metricValue(t, th, "gowsgi_app_state", map[string]string{"app": name, "state": s}); got != v {
			t.Errorf("%s: gowsgi_app_state{state=%q} = %v, want %v", name, s, got, v)
		}
	}
	return a
}

// TestAppStates: /status, the metrics and the status page tell an app
// that serves from one whose worker is being replaced (starting) and from
// one in a crash loop (failing, with its last error and since when); a
// crash-looping app used to show as serving.
func TestAppStates(t *testing.T) {
	t.Parallel()
	gate, flakyDir := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(gate, "release"), nil, 0o644)
	// Loads the first time; every later import exits (crashLoop, see
	// TestCrashLoopAnswers503).
	os.WriteFile(filepath.Join(flakyDir, "flaky.py"), []byte(crashLoop), 0o644)
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
admin: "127.0.0.1:0"
apps:
  gated: {module: gated, dir: {{apps}}, python: {{python}}, env: {GOWSGI_TEST_GATE: "`+gate+`"}}
  flaky: {module: flaky, dir: `+flakyDir+`, python: {{python}}}
  broken: {module: broken, dir: {{apps}}, python: {{python}}}
mounts:
  "/gated": gated
  "/flaky": flaky
  "/broken": broken
`)
	for _, name := range []string{"gated", "flaky"} {
		if a := checkAppState(t, th, name, stateServing); !a.Since.IsZero() || a.LastError != nil {
			t.Errorf("%s serving: since %v, last error %v", name, a.Since, a.LastError)
		}
	}
	if a := checkAppState(t, th, "broken", stateFailed); a.Since.IsZero() || !strings.Contains(a.Error, "broken on purpose") {
		t.Errorf("broken: since %v, error %q", a.Since, a.Error)
	}

	// The gated worker dies; its replacement waits at the gate: starting.
	os.Remove(filepath.Join(gate, "release"))
	os.Remove(filepath.Join(gate, "importing"))
	died := time.Now()
	if code, _ := th.get("/gated/crash"); code != 502 {
		t.Errorf("GET /gated/crash: %d, want 502", code)
	}
	importingPid(t, gate)
	a := checkAppState(t, th, "gated", stateStarting)
	if a.Since.Before(died.Add(-time.Second)) || a.LastError == nil || !strings.Contains(a.LastError.Message, "worker died") {
		t.Errorf("gated starting: since %v (died at %v), last error %+v", a.Since, died, a.LastError)
	}
	os.WriteFile(filepath.Join(gate, "release"), nil, 0o644)
	waitFor(t, func() bool { return th.appStatusOf("gated").State == stateServing }, "gated to serve again")
	if a := checkAppState(t, th, "gated", stateServing); a.LastError == nil || !a.Since.IsZero() {
		t.Errorf("gated serving again: since %v, last error %+v (want it kept)", a.Since, a.LastError)
	}

	// The flaky worker dies and cannot be restarted: failing.
	if code, _ := th.get("/flaky/"); code != 502 {
		t.Errorf("GET /flaky/: %d, want 502", code)
	}
	waitFor(t, func() bool { return th.appStatusOf("flaky").State == stateFailing }, "flaky to be failing")
	a = checkAppState(t, th, "flaky", stateFailing)
	if !strings.Contains(a.Error, "exit status 3") || a.LastError == nil || a.Since.IsZero() || a.Since.After(a.LastError.Time) {
		t.Errorf("flaky failing: error %q, since %v, last error %+v", a.Error, a.Since, a.LastError)
	}
	if got := metricValue(t, th, "gowsgi_app_state_since_timestamp_seconds", map[string]string{"app": "flaky"}); got < float64(a.Since.Unix()) {
		t.Errorf("gowsgi_app_state_since_timestamp_seconds{flaky} = %v, want %d", got, a.Since.Unix())
	}

	t.Run("status page", func(t *testing.T) {
		dom := runChromium(t, chromium(t), "--dump-dom", th.adminURL()+"/")
		for _, w := range []string{`<span class="bad">failing</span> <small>since `, "exit status 3", `<span class="bad">failed</span>`, "broken on purpose"} {
			if !strings.Contains(dom, w) {
				t.Errorf("rendered page lacks %q:\n%s", w, dom)
			}
		}
	})
}
