package host

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// sampleBurst is how many lines of one kind a sampler lets through each second.
const sampleBurst = 10

// sampler keeps repeated warnings of one kind (refused requests, client
// errors, apps breaking their framing) to sampleBurst lines a second and
// counts what it left out, so that no burst of bad traffic can fill a
// disk. Access lines are not sampled.
type sampler struct {
	mu      sync.Mutex
	window  time.Time // start of the current second
	n       int       // lines let through in it
	dropped int       // lines left out since the last one let through
}

// allow reports whether a line may be written at now, and how many were
// left out before it.
func (s *sampler) allow(now time.Time) (ok bool, dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.window) >= time.Second {
		s.window, s.n = now, 0
	}
	if s.n >= sampleBurst {
		s.dropped++
		return false, 0
	}
	s.n++
	dropped, s.dropped = s.dropped, 0
	return true, dropped
}

// sampled returns ev if s lets a line through now (with the count of
// lines left out before it), else a discarded event that writes nothing.
func (h *Host) sampled(s *sampler, ev *zerolog.Event) *zerolog.Event {
	ok, dropped := s.allow(time.Now())
	if !ok {
		return ev.Discard() // writes nothing; Msg still recycles it
	}
	if dropped > 0 {
		ev = ev.Int("suppressed", dropped)
	}
	return ev
}
