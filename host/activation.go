package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudflare/tableflip"

	"github.com/gowsgi/gowsgi/config"
)

// Sockets passed by systemd socket activation (sd_listen_fds(3)): the
// host takes them over instead of binding, so the port stays open, and
// queues connections, while gowsgi restarts.

// activated holds the inherited listening sockets not yet taken by a
// configured listener.
var activated struct {
	mu   sync.Mutex
	list []inheritedSocket
}

type inheritedSocket struct {
	name string // from LISTEN_FDNAMES ("" if none)
	ln   net.Listener
}

// TakeActivatedSockets reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
// (the sockets start at fd 3), keeps the sockets for the listeners of
// the config to take, and unsets the variables so that workers do not
// inherit them. It returns how many it found; call it once at start.
func TakeActivatedSockets() (int, error) {
	defer func() {
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(v)
		}
	}()
	if pid, err := strconv.Atoi(os.Getenv("LISTEN_PID")); err != nil || pid != os.Getpid() {
		return 0, nil // not for this process
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return 0, nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	activated.mu.Lock()
	defer activated.mu.Unlock()
	for i := range n {
		f := os.NewFile(uintptr(3+i), "activated-socket")
		ln, err := net.FileListener(f)
		f.Close() // FileListener holds its own descriptor
		if err != nil {
			return len(activated.list), fmt.Errorf("socket activation: fd %d: %w", 3+i, err)
		}
		name := ""
		if i < len(names) {
			name = names[i]
		}
		activated.list = append(activated.list, inheritedSocket{name: name, ln: ln})
	}
	return len(activated.list), nil
}

// takeActivated returns the inherited socket for lc, matched by name
// (LISTEN_FDNAMES equal to the address as written) or by address, and
// removes it from the list; nil if there is none.
func takeActivated(lc config.Listener) net.Listener {
	activated.mu.Lock()
	defer activated.mu.Unlock()
	for i, s := range activated.list {
		if s.name == lc.Addr || sameAddress(s.ln.Addr(), lc) {
			activated.list = append(activated.list[:i], activated.list[i+1:]...)
			return s.ln
		}
	}
	return nil
}

// sameAddress reports whether a bound address is the one lc asks for.
func sameAddress(a net.Addr, lc config.Listener) bool {
	if lc.Network == "unix" {
		return a.Network() == "unix" && a.String() == lc.Address
	}
	t, ok := a.(*net.TCPAddr)
	want, err := net.ResolveTCPAddr("tcp", lc.Address)
	if !ok || err != nil || t.Port != want.Port {
		return false
	}
	return t.IP.Equal(want.IP) || (want.IP == nil && t.IP.IsUnspecified())
}

// Sockets handed over by a binary upgrade (cloudflare/tableflip): the old
// gowsgi registers its listening sockets just before it starts the new
// one (HandOver), which takes them by address instead of binding.

// SocketRegistry is what sockets are handed over through: a
// *tableflip.Fds.
type SocketRegistry interface {
	Listener(network, addr string) (net.Listener, error)
	AddListener(network, addr string, ln tableflip.Listener) error
}

var handedOver struct {
	mu  sync.Mutex
	reg SocketRegistry
}

// InheritSockets makes the config's listeners take the sockets a previous
// gowsgi handed over through reg, where their addresses match. Call it
// once at start, before the first Apply.
func InheritSockets(reg SocketRegistry) {
	handedOver.mu.Lock()
	handedOver.reg = reg
	handedOver.mu.Unlock()
}

// handOverName is the name a socket is handed over under: its address,
// the admin listener's marked so that the two never mix (with port 0 in
// the config they would have the same address).
func handOverName(lc config.Listener, admin bool) string {
	if admin {
		return "admin " + lc.Address
	}
	return lc.Address
}

func takeHandedOver(lc config.Listener, admin bool) net.Listener {
	handedOver.mu.Lock()
	defer handedOver.mu.Unlock()
	if handedOver.reg == nil {
		return nil
	}
	ln, err := handedOver.reg.Listener(lc.Network, handOverName(lc, admin))
	if err != nil || ln == nil {
		return nil
	}
	return ln
}

// HandOver registers the host's listening sockets (admin included) with
// reg, for a new gowsgi to take over. Registered now rather than when
// opened, so that a listener a reload removed is not kept open.
func (h *Host) HandOver(reg SocketRegistry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	add := func(lc *config.Listener, ln net.Listener, admin bool) {
		tl, ok := ln.(tableflip.Listener)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: cannot be handed over", lc.Addr))
			return
		}
		if err := reg.AddListener(lc.Network, handOverName(*lc, admin), tl); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", lc.Addr, err))
		}
	}
	if h.cfg == nil {
		return errors.New("no config applied")
	}
	for i := range h.cfg.Listeners {
		lc := &h.cfg.Listeners[i]
		if l := h.listeners[lc.Network+":"+lc.Address]; l != nil {
			add(lc, l.ln, false)
		}
	}
	if h.admin != nil && h.cfg.Admin != nil {
		add(h.cfg.Admin, h.admin.ln, true)
	}
	return errors.Join(errs...)
}
