package host

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

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
