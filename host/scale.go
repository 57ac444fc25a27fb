package host

import (
	"time"
)

// Scaling (workers: {min, max, idle_timeout}): acquire adds a worker when
// a request would have to queue and fewer than max run (growLocked), and
// scaleDownLoop retires workers idle longer than idle_timeout down to min.
// With min 0 an idle app ends with no worker and no template; its next
// request queues while a worker starts (bounded by queue_timeout, and the
// start by start_timeout).

// growLocked starts workers for the queued requests that no starting
// worker will take, up to the app's max. pl.mu is held.
func (pl *pool) growLocked() {
	sc := pl.app.Scale
	if sc == nil || pl.stopped || time.Now().Before(pl.growRetryAt) {
		return
	}
	for need := len(pl.waiters) - pl.growing; need > 0 && len(pl.slots) < sc.Max; need-- {
		s := &slot{}
		pl.slots = append(pl.slots, s)
		pl.growing++
		pl.wg.Go(func() { pl.grow(s) })
	}
}

// grow starts a worker for the new slot s and installs it; if the start
// fails the slot goes, and with no worker left queued requests get 503.
func (pl *pool) grow(s *slot) {
	started := time.Now()
	p, err := pl.startWorker(pl.spec)
	pl.mu.Lock()
	pl.growing--
	if err != nil {
		pl.growBackoff = min(max(pl.growBackoff*2, 100*time.Millisecond), maxBackoff)
		pl.growRetryAt = time.Now().Add(pl.growBackoff)
		pl.removeSlotLocked(s)
		if pl.liveSlotsLocked() == 0 {
			pl.turnAwayLocked(errNoWorker)
		}
		pl.mu.Unlock()
		if pl.ctx.Err() == nil {
			pl.log.Error().Err(err).Msg("could not add a worker")
			pl.health.record("could not add a worker: "+err.Error(), time.Now())
		}
		return
	}
	n := len(pl.slots)
	pl.growBackoff = 0
	pl.mu.Unlock()
	pl.scaleUps.Add(1)
	pl.log.Info().Int("pid", p.Pid).Int("workers", n).Dur("start", time.Since(started)).Msg("scaled up: a request would have queued")
	pl.install(s, p)
}

// removeSlotLocked takes s out of the pool. pl.mu is held.
func (pl *pool) removeSlotLocked(s *slot) {
	for i, x := range pl.slots {
		if x == s {
			pl.slots = append(pl.slots[:i], pl.slots[i+1:]...)
			return
		}
	}
}

// liveSlotsLocked counts the slots that hold a worker. pl.mu is held.
func (pl *pool) liveSlotsLocked() int {
	n := 0
	for _, s := range pl.slots {
		if s.cur != nil {
			n++
		}
	}
	return n
}

// scaleDownLoop retires idle workers until the pool stops.
func (pl *pool) scaleDownLoop() {
	idle := pl.app.Scale.IdleTimeout
	t := time.NewTicker(min(max(idle/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-pl.ctx.Done():
			return
		case now := <-t.C:
			pl.retireIdle(now)
		}
	}
}

// retireIdle stops the workers idle for idle_timeout, newest first, down
// to min; once none is left (or starting), the template goes too.
func (pl *pool) retireIdle(now time.Time) {
	sc := pl.app.Scale
	var retired []*proc
	pl.mu.Lock()
	for i := len(pl.slots) - 1; i >= 0 && len(pl.slots) > sc.Min && !pl.stopped; i-- {
		pr := pl.slots[i].cur
		if pr == nil || pr.state != procServing || pr.inflight > 0 || now.Sub(pr.lastUsed) < sc.IdleTimeout {
			continue
		}
		pr.state = procReplaced // supervise lets it go
		pl.slots = append(pl.slots[:i], pl.slots[i+1:]...)
		retired = append(retired, pr)
	}
	n := len(pl.slots)
	pl.mu.Unlock()
	if len(retired) == 0 {
		return
	}
	pl.scaleDowns.Add(int64(len(retired)))
	pl.log.Info().Int("retired", len(retired)).Int("workers", n).Dur("idle_timeout", sc.IdleTimeout).Msg("scaled down: workers were idle")
	pl.wg.Go(func() {
		for _, pr := range retired {
			pr.p.Close(5 * time.Second)
		}
		pl.mu.Lock()
		empty := len(pl.slots) == 0 && pl.growing == 0 && !pl.stopped
		pl.mu.Unlock()
		if empty {
			pl.stopTemplate() // a start meanwhile finds it gone and starts another
		}
	})
}
