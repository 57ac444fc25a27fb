package host

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/worker"
)

// Errors of acquire; the handler answers each with 503.
var (
	errNoWorker     = errors.New("no worker is running for this app (it keeps crashing; see the log)")
	errDraining     = errors.New("app is being stopped")
	errQueueFull    = errors.New("too many requests are waiting for this app")
	errQueueTimeout = errors.New("timed out waiting for a free worker")
	errCanceled     = errors.New("request canceled while queued")
)

// pool is the set of worker processes of one app: it starts them, restarts
// those that die, recycles them after max_requests or max_rss, and hands
// requests to the least busy one, queueing the rest.
type pool struct {
	spec *worker.Spec
	app  config.App
	log  zerolog.Logger
	// perWorker is how many requests one process may have at once.
	perWorker int
	// restarted counts a worker replaced for a reason (see restartCrash);
	// never nil.
	restarted func(reason string)
	// health records the pool's errors for /status.
	health *appHealth
	// startWorker starts a worker process: worker.Start, or a fake in tests.
	startWorker func(*worker.Spec) (*worker.Process, error)

	// tmpl is the preloaded app's template (nil: none yet, or no preload);
	// preloadRefused, that it refused to fork. Both under tmplMu, which
	// also serialises template starts.
	tmplMu         sync.Mutex
	tmpl           *worker.Template
	preloadRefused bool

	ctx    context.Context // ended by stop: back-offs and restarts give up
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the pool (go)

	mu       sync.Mutex
	live     map[*proc]bool // every process not yet exited, serving or not
	slots    []*slot
	waiters  []*waiter
	users    int // requests routed to this pool and not finished
	draining bool
	idle     chan struct{} // closed when draining and users reaches 0
	stopped  bool
	growing  int // slots added by scaling whose worker is starting
	// growRetryAt: after a failed scale-up, none is tried before it (the
	// delay doubles per failure, as restarts back off); under mu.
	growRetryAt time.Time
	growBackoff time.Duration

	scaleUps, scaleDowns atomic.Int64 // workers added and retired by scaling
}

// slot is one place in the pool, held by successive processes.
type slot struct {
	cur     *proc // nil while (re)starting
	backoff time.Duration
}

// proc is a live worker process and its load.
type proc struct {
	p        *worker.Process
	slot     *slot
	inflight int
	served   int
	limit    int // recycle after this many requests (0: never)
	state    procState
	started  time.Time
	lastUsed time.Time   // the end of its last request (or its start); under pl.mu
	timedOut atomic.Bool // killed for a request past its timeout
}

// procState is where a worker process is in its life in the pool.
type procState uint8

const (
	procServing  procState = iota // takes requests; recycled at max_requests or max_rss
	procKept                      // takes requests, never recycled: its replacement failed to start
	procRetiring                  // being recycled: no new requests while its replacement starts
	procReplaced                  // its replacement is installed: closed once idle
	procOrphaned                  // exited while retiring: the recycle restarts its slot
)

// takesRequests reports whether the process may be given requests.
func (pr *proc) takesRequests() bool { return pr.state == procServing || pr.state == procKept }

type waiter struct {
	ch  chan *proc // buffered 1; closed (with err set) to turn the waiter away
	err error
	// noPipeline: give it only an idle thread, never a place behind a
	// running request (its large body would hold the handler in Send
	// until the busy worker reads it, where it cannot be withdrawn).
	noPipeline bool
}

const maxBackoff = 10 * time.Second

// maxBodySlots bounds an app's shared body area (slots of
// worker.BodySlotSize: 64 MiB).
const maxBodySlots = 64

// startPool starts all workers of an app and returns when every one has
// loaded the app, or with the first error (other workers are stopped).
// restarted counts each worker replaced later, by reason.
func startPool(spec *worker.Spec, app config.App, log zerolog.Logger, health *appHealth, restarted func(reason string)) (*pool, error) {
	pl := newPool(spec, app, log, health, restarted)
	n := max(spec.Workers, 1)
	if app.Scale != nil {
		n = app.Scale.Min
	}
	// Shared memory for large request bodies: room for every request the
	// workers may have at once (see pickLocked), and as many again for
	// bodies being read from clients, up to maxBodySlots. Slots are reused
	// last-freed first, so only as many pages are touched as bodies
	// wait at once.
	if bodies, err := worker.NewBodyArena(app.Name, min(2*n*(pl.perWorker+pipelineDepth), maxBodySlots)); err == nil {
		pl.spec.Bodies = bodies
	} else {
		log.Warn().Err(err).Msg("no shared memory for request bodies; they go through the socket")
	}
	procs, err := pl.startAll(n)
	if err != nil {
		if pl.spec.Bodies != nil {
			pl.spec.Bodies.Close()
		}
		pl.cancel()
		pl.stopTemplate()
		return nil, err
	}
	for _, p := range procs {
		pl.addSlot(p)
	}
	if app.Scale != nil {
		pl.wg.Go(pl.scaleDownLoop)
	}
	return pl, nil
}

// newPool returns a pool of spec's app with no worker yet. Its spec is a
// copy whose Context ends when the pool stops, so that a start in
// progress is abandoned then.
func newPool(spec *worker.Spec, app config.App, log zerolog.Logger, health *appHealth, restarted func(reason string)) *pool {
	pl := &pool{app: app, log: log, health: health, perWorker: max(spec.Threads, 1), idle: make(chan struct{}),
		restarted: restarted, live: map[*proc]bool{}}
	pl.startWorker = pl.startProc
	parent := spec.Context
	if parent == nil {
		parent = context.Background()
	}
	pl.ctx, pl.cancel = context.WithCancel(parent)
	own := *spec
	own.Context = pl.ctx
	pl.spec = &own
	return pl
}

// startAll starts n workers at once; if any fails, it stops the others
// and returns the first error.
func (pl *pool) startAll(n int) ([]*worker.Process, error) {
	procs := make([]*worker.Process, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i], errs[i] = pl.startWorker(pl.spec)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, p := range procs {
			if p != nil {
				p.Close(0)
			}
		}
		return nil, err
	}
	return procs, nil
}

// addSlot adds a place to the pool, held by p.
func (pl *pool) addSlot(p *worker.Process) {
	s := &slot{}
	pl.mu.Lock()
	pl.slots = append(pl.slots, s)
	pl.mu.Unlock()
	pl.install(s, p)
}

// Pids returns the pids of the live workers.
func (pl *pool) Pids() []int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var pids []int
	for _, s := range pl.slots {
		if s.cur != nil {
			pids = append(pids, s.cur.p.Pid)
		}
	}
	return pids
}

// install puts a ready process into its slot and watches it.
func (pl *pool) install(s *slot, p *worker.Process) {
	pr := &proc{p: p, slot: s, started: time.Now()}
	pr.lastUsed = pr.started
	if pl.app.MaxRequests > 0 {
		pr.limit = pl.app.MaxRequests
		if pl.app.MaxRequestsJitter > 0 {
			pr.limit += rand.IntN(pl.app.MaxRequestsJitter + 1)
		}
	}
	pl.mu.Lock()
	if pl.stopped {
		pl.mu.Unlock()
		p.Close(time.Second)
		return
	}
	s.cur = pr
	pl.live[pr] = true
	pl.dispatchLocked(pr)
	pl.mu.Unlock()
	pl.wg.Go(func() { pl.supervise(pr) })
}

// supervise waits for a process to exit and, unless the pool is stopping
// or the process was recycled, starts a replacement: at once after the
// first crash, then backing off while the app keeps crashing.
func (pl *pool) supervise(pr *proc) {
	started := time.Now()
	pl.watch(pr)
	pl.mu.Lock()
	s := pr.slot
	if s.cur == pr {
		s.cur = nil
	}
	delete(pl.live, pr)
	stop := pl.stopped || pr.state == procRetiring || pr.state == procReplaced
	if pr.state == procRetiring {
		pr.state = procOrphaned // recycle restarts the slot if its start fails
	}
	if pr.served > 0 || time.Since(started) >= healthyLife {
		// It worked, and was killed or crashed later: replace it at once.
		// Back-off is for apps that cannot start or die as they do.
		s.backoff = 0
	}
	pl.mu.Unlock()
	if stop {
		return
	}
	if pr.timedOut.Load() {
		pl.restarted(restartTimeout)
	} else {
		pl.restarted(restartCrash)
	}
	pl.log.Error().Int("pid", pr.p.Pid).Str("exit", fmt.Sprint(pr.p.ExitErr())).Msg("worker died; restarting it")
	pl.health.record(fmt.Sprintf("worker died; restarting it (%v)", pr.p.ExitErr()), time.Now())
	for {
		pl.mu.Lock()
		wait := s.backoff
		s.backoff = min(max(s.backoff*2, 100*time.Millisecond), maxBackoff)
		pl.mu.Unlock()
		if wait > 0 {
			pl.log.Warn().Dur("backoff", wait).Msg("worker keeps dying; waiting before the next start")
		}
		select {
		case <-time.After(wait):
		case <-pl.ctx.Done():
			return
		}
		p, err := pl.startWorker(pl.spec)
		if err == nil {
			if pl.isStopped() {
				p.Close(time.Second)
				return
			}
			pl.install(s, p)
			return
		}
		if pl.ctx.Err() != nil {
			return // the pool is stopping: the start was abandoned
		}
		pl.log.Error().Err(err).Msg("worker restart failed")
		pl.health.record("worker restart failed: "+err.Error(), time.Now())
		pl.mu.Lock()
		if pl.crashLoopingLocked() {
			pl.turnAwayLocked(errNoWorker)
		}
		pl.mu.Unlock()
	}
}

// healthyLife is how long a worker that served nothing must have lived
// for its death not to count as a failure to start.
const healthyLife = time.Second

// watch enforces the app's time limits on the requests of a process
// until it exits: timeout (the app's time to start a response, then
// between two pieces of it, not counting time spent waiting for the
// client) and max_request_time. A process past them is killed, and every
// request it was running is logged with what it had got.
func (pl *pool) watch(pr *proc) {
	_, _, next := pr.p.Stalled(time.Now(), pl.app.Timeout, pl.app.MaxRequestTime)
	t := time.NewTimer(next)
	defer t.Stop()
	for {
		select {
		case <-pr.p.Exited():
			return
		case <-t.C:
		}
		running, late, next := pr.p.Stalled(time.Now(), pl.app.Timeout, pl.app.MaxRequestTime)
		if late {
			pl.killLate(pr, running)
			<-pr.p.Exited()
			return
		}
		t.Reset(next)
	}
}

// killLate kills a process that broke the app's time limits, logging each
// request it was running.
func (pl *pool) killLate(pr *proc, running []worker.CallState) {
	for _, st := range running {
		msg := "request cut: its worker is killed for another request's timeout"
		if st.Late(pl.app.Timeout, pl.app.MaxRequestTime) {
			msg = "request timed out; killing its worker"
		}
		pl.log.Error().Int("pid", pr.p.Pid).Str("method", st.Method).Str("path", st.Path).
			Bool("response_started", st.Started).Int64("body_bytes", st.Bytes).
			Dur("running", st.Running).Dur("app_silent_for", st.Stalled).
			Dur("timeout", pl.app.Timeout).Dur("max_request_time", pl.app.MaxRequestTime).
			Msg(msg)
	}
	pl.health.record(fmt.Sprintf("a request timed out; its worker was killed (timeout %s)", pl.app.Timeout), time.Now())
	pr.timedOut.Store(true)
	pr.p.Kill()
}

// turnAwayLocked fails every queued request with err.
func (pl *pool) turnAwayLocked(err error) {
	for _, w := range pl.waiters {
		w.err = err
		close(w.ch)
	}
	pl.waiters = nil
}

func (pl *pool) isStopped() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.stopped
}

// enter registers a request routed to this pool. It fails once the pool is
// draining; the caller then routes again on the newer generation.
func (pl *pool) enter() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.draining {
		return false
	}
	pl.users++
	return true
}

// leave ends what enter began.
func (pl *pool) leave() {
	pl.mu.Lock()
	pl.users--
	if pl.draining && pl.users == 0 {
		close(pl.idle)
	}
	pl.mu.Unlock()
}

// acquire returns a worker with room for one more request, waiting up to
// queue_timeout for one if all are busy. The caller must call release(pr)
// when the request is done.
func (pl *pool) acquire(done <-chan struct{}, pipeline bool) (*proc, error) {
	pl.mu.Lock()
	if pl.stopped {
		pl.mu.Unlock()
		return nil, errDraining
	}
	if best := pl.pickLocked(pipeline); best != nil {
		best.inflight++
		pl.mu.Unlock()
		return best, nil
	}
	if pl.crashLoopingLocked() {
		pl.mu.Unlock()
		return nil, errNoWorker
	}
	if len(pl.waiters) >= pl.app.Queue {
		pl.mu.Unlock()
		return nil, errQueueFull
	}
	w := &waiter{ch: make(chan *proc, 1), noPipeline: !pipeline}
	pl.waiters = append(pl.waiters, w)
	pl.growLocked()
	pl.mu.Unlock()
	timer := time.NewTimer(pl.app.QueueTimeout)
	defer timer.Stop()
	var err error
	select {
	case pr := <-w.ch:
		if pr == nil {
			return nil, w.err
		}
		return pr, nil
	case <-done:
		err = errCanceled
	case <-timer.C:
		err = errQueueTimeout
	}
	pl.mu.Lock()
	for i, x := range pl.waiters {
		if x == w {
			pl.waiters = append(pl.waiters[:i], pl.waiters[i+1:]...)
			pl.mu.Unlock()
			return nil, err
		}
	}
	pl.mu.Unlock()
	// A worker was handed to us as we gave up: pass it on.
	if pr := <-w.ch; pr != nil {
		pl.release(pr, false)
	}
	return nil, err
}

// pipelineDepth is how many requests beyond its threads a busy worker may
// be sent, when no worker is idle: they wait on the worker's socket and go
// in and out with the requests before them, in the same system calls.
const pipelineDepth = 4

// pipelineWindow: a busy worker gets pipelined requests only while the
// oldest request it is running started less than this long ago, so that
// requests do not queue behind a long one on one worker while another
// worker may free up first. A variable for tests.
var pipelineWindow = 10 * time.Millisecond

// pickLocked returns the live process with the fewest requests, if it has
// room: an idle thread first, else a place in the pipeline of a worker
// that is busy with short requests.
func (pl *pool) pickLocked(pipeline bool) *proc {
	var best *proc
	for _, s := range pl.slots {
		if pr := s.cur; pr != nil && pr.takesRequests() && (best == nil || pr.inflight < best.inflight) && !pr.p.Dead() {
			best = pr
		}
	}
	switch {
	case best == nil:
		return nil
	case best.inflight < pl.perWorker:
		return best
	case !pipeline:
		return nil
	case pl.app.Scale != nil && len(pl.slots) < pl.app.Scale.Max:
		return nil // queue, which adds a worker, rather than pipeline
	case best.inflight >= pl.perWorker+pipelineDepth:
		return nil
	}
	var fresh *proc
	for _, s := range pl.slots {
		pr := s.cur
		if pr == nil || !pr.takesRequests() || pr.inflight >= pl.perWorker+pipelineDepth || (fresh != nil && pr.inflight >= fresh.inflight) || pr.p.Dead() {
			continue
		}
		if at := pr.p.OldestStart(); !at.IsZero() && time.Since(at) < pipelineWindow {
			fresh = pr
		}
	}
	return fresh
}

// crashLoopingLocked reports whether no worker is up and every slot is
// backing off after repeated crashes (as opposed to a restart in progress).
func (pl *pool) crashLoopingLocked() bool {
	if len(pl.slots) == 0 {
		// A scaling pool at zero: the next request starts a worker, unless
		// the last start failed moments ago.
		return time.Now().Before(pl.growRetryAt)
	}
	for _, s := range pl.slots {
		if s.cur != nil || s.backoff <= 200*time.Millisecond {
			return false
		}
	}
	return true
}

// backingOff counts the slots that have no worker and wait to start one
// after repeated failures (as crashLoopingLocked judges a slot). It only
// reads, for /status and the metrics.
func (pl *pool) backingOff() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := 0
	for _, s := range pl.slots {
		if s.cur == nil && s.backoff > 200*time.Millisecond {
			n++
		}
	}
	return n
}

// release returns a process's place after a request finished, and
// recycles the process if it reached max_requests or max_rss.
func (pl *pool) release(pr *proc, completed bool) {
	pl.mu.Lock()
	pr.inflight--
	if completed {
		pr.served++ // not a request given back, refused or lost with the worker
	}
	pr.lastUsed = time.Now()
	if pr.state == procReplaced && pr.inflight == 0 {
		pl.mu.Unlock()
		pl.wg.Go(func() { pr.p.Close(5 * time.Second) })
		return
	}
	reason := ""
	if pr.state == procServing && !pl.stopped {
		if pr.limit > 0 && pr.served >= pr.limit {
			reason = "max_requests"
		} else if pl.app.MaxRSS > 0 && rss(pr.p.Pid) > pl.app.MaxRSS {
			reason = "max_rss"
		}
	}
	if reason != "" {
		pr.state = procRetiring
	} else if pr.slot.cur == pr && pr.takesRequests() && !pr.p.Dead() {
		// A dead process is never handed out: queued requests wait for
		// its replacement, which install hands them.
		pl.dispatchLocked(pr)
	}
	pl.mu.Unlock()
	if reason != "" {
		pl.wg.Go(func() { pl.recycle(pr, reason) })
	}
}

// recycle replaces a worker gracefully: the replacement is started and
// installed, then the old process finishes what it has and exits.
func (pl *pool) recycle(pr *proc, reason string) {
	log := pl.log.With().Int("pid", pr.p.Pid).Str("reason", reason).Logger()
	log.Info().Int("served", pr.served).Msg("recycling worker")
	p, err := pl.startWorker(pl.spec)
	if err != nil && pl.ctx.Err() != nil {
		return // the pool is stopping: the start was abandoned
	}
	if err != nil {
		log.Error().Err(err).Msg("could not start the replacement; the old worker keeps serving")
		pl.health.record("could not start a replacement worker: "+err.Error(), time.Now())
		pl.mu.Lock()
		orphaned := pr.state == procOrphaned
		pr.state = procKept
		if !orphaned {
			pl.dispatchLocked(pr)
		}
		pl.mu.Unlock()
		if orphaned {
			// The old worker died meanwhile: restart the slot as after a crash.
			pl.supervise(pr)
		}
		return
	}
	if pl.isStopped() {
		p.Close(time.Second)
		return
	}
	pl.restarted(reason)
	pl.install(pr.slot, p)
	pl.mu.Lock()
	pr.state = procReplaced
	idle := pr.inflight == 0
	pl.mu.Unlock()
	if idle {
		pr.p.Close(5 * time.Second)
	}
}

// dispatchLocked hands a process to queued requests while it has an idle
// thread or, if it is busy with short requests, room in its pipeline.
func (pl *pool) dispatchLocked(pr *proc) {
	limit := pl.perWorker
	if len(pl.waiters) > 0 && pr.inflight >= pl.perWorker {
		if at := pr.p.OldestStart(); at.IsZero() || time.Since(at) < pipelineWindow {
			limit += pipelineDepth
		}
	}
	for i := 0; i < len(pl.waiters) && pr.inflight < limit; {
		w := pl.waiters[i]
		if w.noPipeline && pr.inflight >= pl.perWorker {
			i++ // it waits for an idle thread
			continue
		}
		pl.waiters = slices.Delete(pl.waiters, i, i+1)
		pr.inflight++
		w.ch <- pr
	}
	if len(pl.waiters) == 0 && pr.inflight < pl.perWorker {
		pl.stealLocked(pl.perWorker - pr.inflight)
	}
}

// stealLocked asks workers for up to n of their pipelined requests back
// (those waiting behind a running one), so that a worker with n idle
// threads runs them: a request never waits behind another while a worker
// of its app is idle. Each one the worker gives back is sent again by its
// handler, and acquire gives it the idle thread.
func (pl *pool) stealLocked(n int) {
	for _, s := range pl.slots {
		if o := s.cur; o != nil && o.inflight > pl.perWorker && n > 0 {
			n -= o.p.Withdraw(min(n, o.inflight-pl.perWorker))
		}
	}
}

// drain stops new requests from entering and waits, up to timeout, for
// those inside to finish. It reports whether they all did.
func (pl *pool) drain(timeout time.Duration) bool {
	pl.mu.Lock()
	if !pl.draining {
		pl.draining = true
		if pl.users == 0 {
			close(pl.idle)
		}
	}
	pl.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-pl.idle:
		return true
	case <-t.C:
		return false
	}
}

// stop drains the pool for up to timeout and then stops every worker
// (SIGTERM to its process group, SIGKILL after a grace period).
func (pl *pool) stop(timeout time.Duration) {
	if !pl.drain(timeout) {
		pl.log.Warn().Dur("timeout", timeout).Msg("requests still running at stop; stopping workers anyway")
	}
	pl.mu.Lock()
	pl.stopped = true
	var procs []*worker.Process
	for pr := range pl.live {
		procs = append(procs, pr.p)
	}
	pl.turnAwayLocked(errDraining)
	pl.mu.Unlock()
	pl.cancel()
	for _, p := range procs {
		pl.wg.Go(func() { p.Close(5 * time.Second) })
	}
	pl.wg.Wait()
	pl.stopTemplate() // after its workers: they would die with it
	if pl.spec.Bodies != nil {
		pl.spec.Bodies.Close() // unmapped once the last request lets go of its slot
	}
}

// workerStatus is one worker as /status shows it.
type workerStatus struct {
	Pid      int       `json:"pid"`      // 0 while starting
	State    string    `json:"state"`    // idle, busy or starting
	Requests int       `json:"requests"` // served by this process
	InFlight int       `json:"in_flight"`
	RSS      int64     `json:"rss_bytes"`
	Started  time.Time `json:"started,omitzero"`
	Uptime   float64   `json:"uptime_seconds"`
}

// poolSnapshot is the load of a pool at one moment.
type poolSnapshot struct {
	inFlight, queued int
	workers          []workerStatus
	scaling          *scalingStatus // nil: a fixed number of workers
}

// scalingStatus is a scaling app's bounds and events, for /status.
type scalingStatus struct {
	Min         int     `json:"min"`
	Max         int     `json:"max"`
	IdleTimeout float64 `json:"idle_timeout_seconds"`
	ScaleUps    int64   `json:"scale_ups"`   // workers added because a request would have queued
	ScaleDowns  int64   `json:"scale_downs"` // workers retired after idle_timeout
}

// snapshot returns the pool's load and workers (without their memory).
func (pl *pool) snapshot() poolSnapshot {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	st := poolSnapshot{queued: len(pl.waiters), workers: make([]workerStatus, 0, len(pl.slots))}
	if sc := pl.app.Scale; sc != nil {
		st.scaling = &scalingStatus{Min: sc.Min, Max: sc.Max, IdleTimeout: sc.IdleTimeout.Seconds(),
			ScaleUps: pl.scaleUps.Load(), ScaleDowns: pl.scaleDowns.Load()}
	}
	for _, s := range pl.slots {
		pr := s.cur
		if pr == nil {
			st.workers = append(st.workers, workerStatus{State: "starting"})
			continue
		}
		w := workerStatus{Pid: pr.p.Pid, State: "idle", Requests: pr.served, InFlight: pr.inflight, Started: pr.started}
		if pr.inflight > 0 {
			w.State = "busy"
		}
		st.inFlight += pr.inflight
		st.workers = append(st.workers, w)
	}
	return st
}

var pageSize = int64(os.Getpagesize())

// rss returns the resident memory of a process in bytes (0 if unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * pageSize
}
