package main

import (
	"os"

	"github.com/cloudflare/tableflip"
	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/host"
)

// upgrader replaces the running gowsgi binary without closing its ports,
// as nginx and gunicorn do on SIGUSR2, through cloudflare/tableflip: the
// old process hands its listening sockets to a new one started from the
// same path and arguments; the new one takes them, starts its apps, and
// says it is ready; only then does the old one stop accepting, drain and
// exit. An upgrade that fails (the new binary does not start, or its
// config does not apply) leaves the old one serving.
type upgrader struct {
	upg *tableflip.Upgrader
	log zerolog.Logger
}

// newUpgrader returns the process's upgrader and makes the host take the
// sockets a previous gowsgi handed over, if it started this one. nil (with
// a warning) if upgrades cannot work here.
func newUpgrader(log zerolog.Logger) *upgrader {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		log.Warn().Err(err).Msg("binary upgrades (SIGUSR2) are off")
		return nil
	}
	host.InheritSockets(upg.Fds)
	return &upgrader{upg: upg, log: log}
}

// ready tells the old gowsgi, if any, that this one serves.
func (u *upgrader) ready() {
	if u == nil {
		return
	}
	if err := u.upg.Ready(); err != nil {
		u.log.Error().Err(err).Msg("telling the old gowsgi that this one is ready")
		return
	}
	if u.upg.HasParent() {
		u.log.Info().Int("pid", os.Getpid()).Msg("upgraded: serving on the sockets the old gowsgi handed over")
	}
}

// upgrade starts the new binary with the host's sockets; exited closes
// once it is ready.
func (u *upgrader) upgrade(h *host.Host) {
	if u == nil {
		return
	}
	if err := h.HandOver(u.upg.Fds); err != nil {
		u.log.Error().Err(err).Msg("upgrade refused: a socket cannot be handed over")
		return
	}
	u.log.Info().Msg("SIGUSR2: starting the new gowsgi")
	go func() { // tableflip allows one at a time; it ends within its timeout
		if err := u.upg.Upgrade(); err != nil {
			u.log.Error().Err(err).Msg("upgrade failed; still serving")
		}
	}()
}

// exited is closed when a new gowsgi has taken over.
func (u *upgrader) exited() <-chan struct{} {
	if u == nil {
		return nil
	}
	return u.upg.Exit()
}

func (u *upgrader) stop() {
	if u != nil {
		u.upg.Stop()
	}
}
