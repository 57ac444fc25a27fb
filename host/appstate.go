package host

import (
	"sync"
	"time"
)

// What an app is doing, as /status, the status page and the
// gowsgi_app_state metric show it.
const (
	stateServing  = "serving"  // every worker is up (or a static folder is open)
	stateStarting = "starting" // a worker is being replaced (after it died, say)
	stateFailing  = "failing"  // a worker keeps failing: its restarts back off
	stateFailed   = "failed"   // the app did not load: its mounts answer 503
)

var appStates = []string{stateServing, stateStarting, stateFailing, stateFailed}

// appHealth remembers the errors of an app: why it did not load, or what
// its pool logged at error level (a worker that died, a restart that
// failed), for /status.
type appHealth struct {
	quiet time.Duration // errors further apart than this begin a new run

	mu      sync.Mutex
	lastErr string
	lastAt  time.Time
	runFrom time.Time // the first error of the current run
}

// newAppHealth returns the health of an app whose workers may take
// startTimeout to start. Errors of one crash loop are at most a worker's
// short life (the pool resets its back-off once one lived 30 s), the
// longest back-off and a start apart.
func newAppHealth(startTimeout time.Duration) *appHealth {
	return &appHealth{quiet: 30*time.Second + maxBackoff + startTimeout}
}

// record notes an error that happened at now.
func (a *appHealth) record(msg string, now time.Time) {
	if a == nil {
		return // a pool made without one (benchmarks)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastAt.IsZero() || now.Sub(a.lastAt) > a.quiet {
		a.runFrom = now
	}
	a.lastErr, a.lastAt = msg, now
}

// lastError is an app's most recent error, as /status shows it.
type lastError struct {
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// last returns the most recent error (nil if none) and the start of its run.
func (a *appHealth) last() (*lastError, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastAt.IsZero() {
		return nil, time.Time{}
	}
	return &lastError{Message: a.lastErr, Time: a.lastAt}, a.runFrom
}

// appState is what an app is doing and since when.
type appState struct {
	state string
	since time.Time  // for starting, failing and failed: when its run of errors began
	last  *lastError // the most recent error, also once recovered
}

// state returns what rt is doing; ps is its pool's snapshot (nil without a pool).
func (rt *appRuntime) state(ps *poolSnapshot) appState {
	var st appState
	if rt.health != nil {
		st.last, st.since = rt.health.last()
	}
	switch {
	case rt.static != nil:
		st.state = stateServing
	case rt.pool == nil:
		st.state = stateFailed
	case rt.pool.backingOff() > 0:
		st.state = stateFailing
	case ps != nil && ps.starting() > 0:
		st.state = stateStarting
	default:
		st.state = stateServing
	}
	if st.state == stateServing {
		st.since = time.Time{}
	}
	return st
}

// starting counts the pool's workers being (re)started.
func (ps *poolSnapshot) starting() int {
	n := 0
	for _, w := range ps.workers {
		if w.State == "starting" {
			n++
		}
	}
	return n
}
