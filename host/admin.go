package host

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
)

// adminServer is the admin listener: /metrics, /status, /healthz, /livez, /readyz
// and a status page at /. It is kept across reloads while its address
// does not change.
type adminServer struct {
	key   string // network:address, as the config's listeners are keyed
	addr  string // as configured
	ln    net.Listener
	srv   *http.Server
	token atomic.Pointer[[sha256.Size]byte] // SHA-256 of the bearer token; nil: none
}

// setToken makes token ("" for none) the one requests must carry.
func (a *adminServer) setToken(token config.Secret) {
	if token == "" {
		a.token.Store(nil)
		return
	}
	sum := sha256.Sum256([]byte(token))
	a.token.Store(&sum)
}

// authorize lets a request through to next if the server has no token,
// if it carries "Authorization: Bearer TOKEN", or if it is a health probe
// (/healthz, /livez, /readyz: kubelets and load balancers send no token). Others
// get 401 with "WWW-Authenticate: Bearer".
func (a *adminServer) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := a.token.Load()
		if want == nil || r.URL.Path == "/healthz" || r.URL.Path == "/livez" || r.URL.Path == "/readyz" || bearerIs(r.Header.Get("Authorization"), want) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "401 Unauthorized: send Authorization: Bearer <the token of admin.token_file>", http.StatusUnauthorized)
	})
}

// bearerIs reports whether the Authorization header value carries the
// bearer token whose SHA-256 is want. Hashing first makes the comparison
// take the same time whatever the token's length and content.
func bearerIs(authorization string, want *[sha256.Size]byte) bool {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// warnIfExposed warns when the admin listener can be reached from other
// hosts: it is bound to neither a loopback address nor a unix socket.
func (a *adminServer) warnIfExposed(log zerolog.Logger) {
	addr, ok := a.ln.Addr().(*net.TCPAddr)
	if !ok || addr.IP.IsLoopback() {
		return
	}
	ev := log.Warn().Str("admin", a.addr).Str("bound", addr.String())
	if a.token.Load() == nil {
		ev.Msg("the admin listener is reachable from other hosts and has no token: anyone who can connect reads " +
			"/status and /metrics; bind it to 127.0.0.1 or a unix socket, or set admin.token_file")
		return
	}
	ev.Msg("the admin listener is reachable from other hosts; its token travels in clear text (no TLS), so keep it on a private network")
}

// openAdmin returns the admin server for lc: the running one if its
// address did not change, a new one (listening, with token) otherwise, or
// nil when lc is nil. It does not touch h.admin, nor the running one's
// token.
func (h *Host) openAdmin(lc *config.Listener, token config.Secret) (*adminServer, error) {
	if lc == nil {
		return nil, nil
	}
	key := lc.Network + ":" + lc.Address
	if h.admin != nil && h.admin.key == key {
		return h.admin, nil
	}
	ln, _, err := listenSocket(*lc, true)
	if err != nil {
		return nil, err
	}
	a := &adminServer{key: key, addr: lc.Addr, ln: ln}
	a.setToken(token)
	a.srv = &http.Server{
		Handler:           a.authorize(h.AdminHandler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.New(debugWriter{h.log}, "", 0),
	}
	go a.srv.Serve(ln)
	return a, nil
}

// close stops the admin server, letting requests finish for up to timeout.
func (a *adminServer) close(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
}

// AdminAddr is the bound address of the admin listener of the generation
// being served, or nil. It does not wait for a reload in progress.
func (h *Host) AdminAddr() net.Addr { return h.gen.Load().admin }

//go:embed status.html
var statusPage []byte

// AdminHandler serves the admin endpoints.
func (h *Host) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics.reg, promhttp.HandlerOpts{ErrorLog: debugPrinter{h}}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(h.Status())
	})
	live := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	}
	mux.HandleFunc("GET /healthz", live)
	mux.HandleFunc("GET /livez", live)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case h.stopping.Load():
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		case h.ready.Load():
			w.Write([]byte("ready\n"))
		default:
			http.Error(w, "starting: no config applied yet", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(statusPage)
	})
	return mux
}

// debugPrinter sends promhttp's errors to the log.
type debugPrinter struct{ h *Host }

func (d debugPrinter) Println(v ...any) {
	d.h.log.Warn().Str("source", "metrics").Msg(strings.TrimSpace(fmt.Sprintln(v...)))
}

// Status is what /status reports.
type Status struct {
	Config     string           `json:"config"`
	Generation int64            `json:"generation"`
	Ready      bool             `json:"ready"`
	Started    time.Time        `json:"started"`
	Uptime     float64          `json:"uptime_seconds"`
	LastReload *reloadStatus    `json:"last_reload"`
	Listeners  []listenerStatus `json:"listeners"`
	Admin      string           `json:"admin,omitempty"`
	Mounts     []mountStatus    `json:"mounts"`
	Apps       []appStatus      `json:"apps"`
}

type mountStatus struct {
	Mount string `json:"mount"`
	App   string `json:"app"`
}

type appStatus struct {
	Name      string         `json:"name"`
	Kind      string         `json:"kind"`            // wsgi or static
	State     string         `json:"state"`           // serving, starting, failing or failed
	Since     time.Time      `json:"since,omitzero"`  // starting, failing, failed: since its first error
	Error     string         `json:"error,omitempty"` // failed: why it did not load; failing: its last error
	LastError *lastError     `json:"last_error,omitempty"`
	Module    string         `json:"module,omitempty"`
	Static    string         `json:"static,omitempty"`
	Mounts    []string       `json:"mounts"`
	Requests  uint64         `json:"requests"` // answered since the host started
	InFlight  int            `json:"in_flight"`
	Queued    int            `json:"queued"`
	Workers   []workerStatus `json:"workers"`
	Scaling   *scalingStatus `json:"scaling,omitempty"` // workers: {min, max, idle_timeout}
}

// Status returns the host's state as /status reports it: that of the
// generation being served, without waiting for a reload in progress.
func (h *Host) Status() Status {
	gen := h.gen.Load()
	now := time.Now()
	st := Status{
		Generation: gen.id, Ready: h.isReady(), Started: h.started, Uptime: now.Sub(h.started).Seconds(),
		Listeners: gen.listeners, Mounts: []mountStatus{}, Apps: []appStatus{},
	}
	if st.Listeners == nil {
		st.Listeners = []listenerStatus{}
	}
	h.statusMu.Lock()
	if !h.lastReload.Time.IsZero() {
		lr := h.lastReload
		st.LastReload = &lr
	}
	h.statusMu.Unlock()
	if gen.admin != nil {
		st.Admin = gen.admin.String()
	}
	mountsOf := map[string][]string{}
	if gen.cfg != nil {
		st.Config = gen.cfg.Path
		for _, m := range gen.cfg.Mounts {
			st.Mounts = append(st.Mounts, mountStatus{Mount: m.Key, App: m.App})
			mountsOf[m.App] = append(mountsOf[m.App], m.Key)
		}
	}
	for _, rt := range gen.apps {
		st.Apps = append(st.Apps, rt.status(mountsOf[rt.name], now))
	}
	return st
}

// status returns the app as /status shows it.
func (rt *appRuntime) status(mounts []string, now time.Time) appStatus {
	a := appStatus{Name: rt.name, Kind: "wsgi", Module: rt.def.Module + ":" + rt.def.Callable,
		Mounts: mounts, Requests: rt.m.served.Load(), Workers: []workerStatus{}}
	if a.Mounts == nil {
		a.Mounts = []string{}
	}
	if rt.def.Static != "" {
		a.Kind, a.Module, a.Static = "static", "", rt.def.Static
	}
	var ps *poolSnapshot
	if rt.pool != nil {
		snap := rt.pool.snapshot()
		ps = &snap
		a.InFlight, a.Queued, a.Scaling = ps.inFlight, ps.queued, ps.scaling
		for _, w := range ps.workers {
			if w.Pid != 0 {
				w.RSS = rss(w.Pid)
				w.Uptime = now.Sub(w.Started).Seconds()
			}
			a.Workers = append(a.Workers, w)
		}
	}
	as := rt.state(ps)
	a.State, a.Since, a.LastError = as.state, as.since, as.last
	switch {
	case as.state == stateFailed:
		a.Error = rt.failReason
	case as.state == stateFailing && as.last != nil:
		a.Error = as.last.Message
	}
	return a
}
