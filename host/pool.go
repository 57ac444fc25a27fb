package host

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/worker"
)

// errNoWorker is returned while an app has no live worker (crash loop).
var errNoWorker = errors.New("no worker is running for this app")

// errDraining is returned by a pool that is being replaced or stopped.
var errDraining = errors.New("app is being stopped")

// pool is the set of worker processes of one app: it starts them, restarts
// those that die, and hands requests to the least busy one.
type pool struct {
	spec *worker.Spec
	log  zerolog.Logger
	// perWorker is how many requests one process may have at once.
	perWorker int

	mu       sync.Mutex
	slots    []*slot
	waiters  []*waiter
	users    int // requests routed to this pool and not finished
	draining bool
	idle     chan struct{} // closed when draining and users reaches 0
	stopped  bool
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
}

type waiter struct {
	ch chan *proc // buffered 1
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// startPool starts all workers of an app and returns when every one has
// loaded the app, or with the first error (other workers are stopped).
func startPool(spec *worker.Spec, log zerolog.Logger) (*pool, error) {
	n := max(spec.Workers, 1)
	pl := &pool{spec: spec, log: log, perWorker: max(spec.Threads, 1), idle: make(chan struct{})}
	procs := make([]*worker.Process, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i], errs[i] = worker.Start(spec)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range procs {
			if p != nil {
				p.Kill()
			}
		}
		for _, e := range errs {
			if e != nil {
				return nil, e
			}
		}
	}
	for _, p := range procs {
		s := &slot{backoff: minBackoff}
		pl.slots = append(pl.slots, s)
		pl.install(s, p)
	}
	return pl, nil
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
	pr := &proc{p: p, slot: s}
	pl.mu.Lock()
	s.cur = pr
	pl.dispatchLocked(pr)
	pl.mu.Unlock()
	go pl.supervise(pr)
}

// supervise waits for a process to exit and, unless the pool is stopping,
// starts a replacement, backing off while the app keeps crashing.
func (pl *pool) supervise(pr *proc) {
	started := time.Now()
	<-pr.p.Exited()
	pl.mu.Lock()
	s := pr.slot
	s.cur = nil
	stopped := pl.stopped
	pl.mu.Unlock()
	if stopped {
		return
	}
	pl.log.Error().Int("pid", pr.p.Pid).Str("exit", fmt.Sprint(pr.p.ExitErr())).Msg("worker died; restarting it")
	if time.Since(started) > 30*time.Second {
		s.backoff = minBackoff
	}
	for {
		time.Sleep(s.backoff)
		s.backoff = min(s.backoff*2, maxBackoff)
		pl.mu.Lock()
		stopped := pl.stopped
		pl.mu.Unlock()
		if stopped {
			return
		}
		p, err := worker.Start(pl.spec)
		if err == nil {
			pl.mu.Lock()
			if pl.stopped {
				pl.mu.Unlock()
				p.Close(time.Second)
				return
			}
			pl.mu.Unlock()
			pl.install(s, p)
			return
		}
		pl.log.Error().Err(err).Dur("retry_in", s.backoff).Msg("worker restart failed")
	}
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

// acquire returns a worker with room for one more request, waiting for one
// if all are busy. The caller must call release(pr) when the request is done.
func (pl *pool) acquire(done <-chan struct{}) (*proc, error) {
	pl.mu.Lock()
	if best := pl.pickLocked(); best != nil {
		best.inflight++
		pl.mu.Unlock()
		return best, nil
	}
	if !pl.anyAliveLocked() && pl.allDownLocked() {
		pl.mu.Unlock()
		return nil, errNoWorker
	}
	w := &waiter{ch: make(chan *proc, 1)}
	pl.waiters = append(pl.waiters, w)
	pl.mu.Unlock()
	select {
	case pr := <-w.ch:
		if pr == nil {
			return nil, errDraining
		}
		return pr, nil
	case <-done:
		pl.mu.Lock()
		for i, x := range pl.waiters {
			if x == w {
				pl.waiters = append(pl.waiters[:i], pl.waiters[i+1:]...)
				pl.mu.Unlock()
				return nil, errors.New("request canceled while queued")
			}
		}
		pl.mu.Unlock()
		// A worker was handed to us as we gave up: pass it on.
		if pr := <-w.ch; pr != nil {
			pl.release(pr)
		}
		return nil, errors.New("request canceled while queued")
	}
}

// pickLocked returns the live process with the fewest requests, if it has room.
func (pl *pool) pickLocked() *proc {
	var best *proc
	for _, s := range pl.slots {
		if pr := s.cur; pr != nil && pr.inflight < pl.perWorker && (best == nil || pr.inflight < best.inflight) {
			best = pr
		}
	}
	return best
}

func (pl *pool) anyAliveLocked() bool {
	for _, s := range pl.slots {
		if s.cur != nil {
			return true
		}
	}
	return false
}

// allDownLocked reports whether every slot is backing off after crashes
// (as opposed to a single restart in progress).
func (pl *pool) allDownLocked() bool {
	for _, s := range pl.slots {
		if s.cur != nil || s.backoff <= minBackoff*2 {
			return false
		}
	}
	return true
}

// release returns a process's place after a request finished.
func (pl *pool) release(pr *proc) {
	pl.mu.Lock()
	pr.inflight--
	if pr.slot.cur == pr {
		pl.dispatchLocked(pr)
	}
	pl.mu.Unlock()
}

// dispatchLocked hands a process to queued requests while it has room.
func (pl *pool) dispatchLocked(pr *proc) {
	for len(pl.waiters) > 0 && pr.inflight < pl.perWorker {
		w := pl.waiters[0]
		pl.waiters = pl.waiters[1:]
		pr.inflight++
		w.ch <- pr
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
	select {
	case <-pl.idle:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop drains the pool for up to timeout and then stops every worker.
func (pl *pool) stop(timeout time.Duration) {
	if !pl.drain(timeout) {
		pl.log.Warn().Dur("timeout", timeout).Msg("requests still running at stop; stopping workers anyway")
	}
	pl.mu.Lock()
	pl.stopped = true
	var procs []*worker.Process
	for _, s := range pl.slots {
		if s.cur != nil {
			procs = append(procs, s.cur.p)
		}
	}
	waiters := pl.waiters
	pl.waiters = nil
	pl.mu.Unlock()
	for _, w := range waiters {
		close(w.ch)
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Close(5 * time.Second)
		}()
	}
	wg.Wait()
}
