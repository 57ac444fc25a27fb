package host

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
)

// observeConfig mounts the basic app, a static folder and leaves /nothing
// unmounted; bodies over 100 bytes get 413.
const observeConfig = `
listeners: ["127.0.0.1:0"]
admin: "127.0.0.1:0"
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}}
  files: {static: {{apps}}}
mounts:
  "/app": basic
  "/files": files
limits: {max_body: 100}
`

// adminURL is the base URL of the host's admin listener.
func (th *testHost) adminURL() string {
	th.t.Helper()
	a := th.AdminAddr()
	if a == nil {
		th.t.Fatal("no admin listener")
	}
	return "http://" + a.String()
}

// fetch GETs url, failing the test on a transport error.
func fetch(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

// accessLines returns the access lines logged so far, decoded.
func (th *testHost) accessLines() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(th.Logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

// accessLine waits for the access line of the request with id.
func (th *testHost) accessLine(id string) map[string]any {
	th.t.Helper()
	var found map[string]any
	waitFor(th.t, func() bool {
		for _, m := range th.accessLines() {
			if m["request_id"] == id {
				found = m
				return true
			}
		}
		return false
	}, "the access line of "+id)
	return found
}

var hexID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestAccessLog(t *testing.T) {
	t.Parallel()
	th := startHost(t, observeConfig)
	pid := th.Pids("basic")[0]
	fi, err := os.Stat(appsDir(t) + "/basic.py")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		body               string
		status             int
		app                string
		bytes              int64 // -1: any
		pid                int
	}{
		{"app", "GET", "/app/pid", "", 200, "basic", int64(len(strconv.Itoa(pid))), pid},
		{"app 404", "GET", "/app/missing", "", 404, "basic", -1, pid},
		{"app raises", "GET", "/app/raise", "", 500, "basic", -1, pid},
		{"no mount", "GET", "/nothing", "", 404, "", -1, 0},
		{"too large", "POST", "/app/echo", strings.Repeat("x", 200), 413, "basic", -1, 0},
		{"static", "GET", "/files/basic.py", "", 200, "files", fi.Size(), 0},
		{"static 404", "GET", "/files/nope", "", 404, "files", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, th.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			id := resp.Header.Get("X-Request-ID")
			if !hexID.MatchString(id) {
				t.Fatalf("X-Request-ID %q: want 16 hex digits", id)
			}
			m := th.accessLine(id)
			want := map[string]any{"app": tt.app, "method": tt.method, "path": tt.path, "status": float64(tt.status),
				"remote": "127.0.0.1", "level": "info"}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v (line %v)", k, m[k], v, m)
				}
			}
			if b, _ := m["bytes"].(float64); int64(b) != n || tt.bytes >= 0 && n != tt.bytes {
				t.Errorf("bytes = %v, client got %d, want %d", m["bytes"], n, tt.bytes)
			}
			if tt.pid == 0 && m["pid"] != nil || tt.pid != 0 && m["pid"] != float64(tt.pid) {
				t.Errorf("pid = %v, want %d", m["pid"], tt.pid)
			}
			if d, ok := m["duration"].(float64); !ok || d < 0 {
				t.Errorf("duration = %v", m["duration"])
			}
			if ts, _ := m["time"].(string); ts == "" {
				t.Errorf("no time in %v", m)
			}
		})
	}

	// access: false turns the lines off on reload; metrics still count.
	th.writeConfig(strings.Replace(observeConfig, "limits:", "log: {access: false}\nlimits:", 1), false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	resp, _ := fetch(t, th.URL+"/app/pid")
	id := resp.Header.Get("X-Request-ID")
	time.Sleep(100 * time.Millisecond)
	for _, m := range th.accessLines() {
		if m["request_id"] == id {
			t.Errorf("access line with access: false: %v", m)
		}
	}
	if got := metricValue(t, th, "gowsgi_requests_total", map[string]string{"app": "basic", "status": "200"}); got != 2 {
		t.Errorf("requests_total{basic,200} = %v, want 2", got)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	const cfg = `
listeners: [{addr: "127.0.0.1:0", forwarded_allow_ips: [%s]}]
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": basic
`
	untrusted := startHost(t, strings.Replace(cfg, "%s", `"10.0.0.1"`, 1))
	trusted := startHost(t, strings.Replace(cfg, "%s", `"127.0.0.1"`, 1))
	tests := []struct {
		name   string
		th     *testHost
		sent   string
		wantID string // "": a generated one
	}{
		{"none sent", untrusted, "", ""},
		{"untrusted peer", untrusted, "from-client-1", ""},
		{"trusted peer", trusted, "from-proxy-1", "from-proxy-1"},
		{"trusted, none sent", trusted, "", ""},
		{"trusted, invalid", trusted, "has space", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.sent != "" {
				hdr = []string{"X-Request-ID", tt.sent}
			}
			resp, body := fetch(t, tt.th.URL+"/environ", hdr...)
			var env map[string]any
			if err := json.Unmarshal([]byte(body), &env); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			id := resp.Header.Get("X-Request-ID")
			if tt.wantID != "" && id != tt.wantID || tt.wantID == "" && !hexID.MatchString(id) {
				t.Errorf("X-Request-ID %q, want %q", id, tt.wantID)
			}
			if len(resp.Header.Values("X-Request-ID")) != 1 {
				t.Errorf("X-Request-ID %q: want one", resp.Header.Values("X-Request-ID"))
			}
			if env["HTTP_X_REQUEST_ID"] != id {
				t.Errorf("the app saw HTTP_X_REQUEST_ID %v, the client got %q", env["HTTP_X_REQUEST_ID"], id)
			}
			tt.th.accessLine(id)
		})
	}
	// Generated ids differ.
	seen := map[string]bool{}
	for range 20 {
		id := newRequestID()
		if seen[id] {
			t.Fatalf("id %s twice", id)
		}
		seen[id] = true
	}
}

// scrape fetches and parses the host's /metrics.
func scrape(t *testing.T, th *testHost) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := fetch(t, th.adminURL()+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mf
}

// metricValue returns the value of the series of name with labels (a
// histogram's sample count), or -1 if there is none.
func metricValue(t *testing.T, th *testHost, name string, labels map[string]string) float64 {
	t.Helper()
	mf := scrape(t, th)[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	th := startHost(t, observeConfig)
	for range 3 {
		th.get("/app/pid")
	}
	th.get("/app/missing")
	th.get("/nothing")
	th.get("/files/basic.py")
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gowsgi_requests_total", map[string]string{"app": "basic", "status": "200"}, 3},
		{"gowsgi_requests_total", map[string]string{"app": "basic", "status": "404"}, 1},
		{"gowsgi_requests_total", map[string]string{"app": "", "status": "404"}, 1},
		{"gowsgi_requests_total", map[string]string{"app": "files", "status": "200"}, 1},
		{"gowsgi_request_duration_seconds", map[string]string{"app": "basic"}, 4},
		{"gowsgi_requests_in_flight", map[string]string{"app": "basic"}, 0},
		{"gowsgi_requests_queued", map[string]string{"app": "basic"}, 0},
		{"gowsgi_workers", map[string]string{"app": "basic", "state": "idle"}, 1},
		{"gowsgi_workers", map[string]string{"app": "basic", "state": "busy"}, 0},
		{"gowsgi_workers", map[string]string{"app": "basic", "state": "starting"}, 0},
		{"gowsgi_config_generation", nil, 1},
		{"gowsgi_reloads_total", map[string]string{"outcome": "applied"}, 0},
		{"gowsgi_reloads_total", map[string]string{"outcome": "refused"}, 0},
	}
	for _, tt := range tests {
		if got := metricValue(t, th, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}

	// A busy worker and a queued request show in the gauges.
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			http.Get(th.URL + "/app/slow?s=1")
		}()
	}
	waitFor(t, func() bool {
		return metricValue(t, th, "gowsgi_workers", map[string]string{"app": "basic", "state": "busy"}) == 1 &&
			metricValue(t, th, "gowsgi_requests_in_flight", map[string]string{"app": "basic"}) >= 1
	}, "a busy worker in the metrics")
	<-done
	<-done

	// A refused reload, then an applied one.
	th.writeConfig("apps: [", false)
	th.ReloadFile(th.path)
	th.writeConfig(strings.Replace(observeConfig, "limits: {max_body: 100}", "", 1), false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gowsgi_reloads_total", map[string]string{"outcome": "applied"}, 1},
		{"gowsgi_reloads_total", map[string]string{"outcome": "refused"}, 1},
		{"gowsgi_config_generation", nil, 2},
	} {
		if got := metricValue(t, th, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestRestartMetrics(t *testing.T) {
	t.Parallel()
	const cfg = `
listeners: ["127.0.0.1:0"]
admin: "127.0.0.1:0"
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}, timeout: 1s}
  recycled: {module: basic, dir: {{apps}}, python: {{python}}, max_requests: 2}
mounts:
  "/": basic
  "/r": recycled
`
	th := startHost(t, cfg)
	restarts := func(app, reason string) float64 {
		return metricValue(t, th, "gowsgi_worker_restarts_total", map[string]string{"app": app, "reason": reason})
	}
	waitRestarts := func(app, reason string, n float64) {
		t.Helper()
		waitFor(t, func() bool { return restarts(app, reason) == n }, app+" restarts for "+reason)
	}

	pid := th.Pids("basic")[0]
	if code, _ := th.get("/crash"); code != 502 {
		t.Errorf("/crash: %d", code)
	}
	waitRestarts("basic", "crash", 1)
	waitFor(t, func() bool { p := th.Pids("basic"); return len(p) == 1 && p[0] != pid }, "a new worker")

	if code, _ := th.get("/hang"); code != 504 {
		t.Errorf("/hang: %d", code)
	}
	waitRestarts("basic", "timeout", 1)

	th.get("/r/pid")
	th.get("/r/pid")
	waitRestarts("recycled", "max_requests", 1)

	// A reload that changes the app replaces its worker.
	waitFor(t, func() bool { return len(th.Pids("basic")) == 1 }, "basic's worker")
	th.writeConfig(strings.Replace(cfg, "timeout: 1s", "timeout: 2s", 1), false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	waitRestarts("basic", "reload", 1)
	if got := restarts("basic", "crash"); got != 1 {
		t.Errorf("crash restarts = %v after the reload, want 1", got)
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	th := startHost(t, observeConfig)
	th.get("/app/pid")
	th.writeConfig("apps: [", false)
	th.ReloadFile(th.path)
	resp, body := fetch(t, th.adminURL()+"/status")
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var st struct {
		Config     string
		Generation int64
		Ready      bool
		Uptime     float64 `json:"uptime_seconds"`
		LastReload struct {
			Time    time.Time
			Outcome string
			Errors  []string
		} `json:"last_reload"`
		Listeners []struct{ Addr, Bound string }
		Admin     string
		Mounts    []struct{ Mount, App string }
		Apps      []struct {
			Name, Kind, State, Module string
			Mounts                    []string
			Requests                  int
			Workers                   []struct {
				Pid      int
				State    string
				Requests int
				RSS      int64   `json:"rss_bytes"`
				Uptime   float64 `json:"uptime_seconds"`
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if st.Config != th.path || st.Generation != 1 || !st.Ready || st.Uptime <= 0 {
		t.Errorf("config %q generation %d ready %v uptime %v", st.Config, st.Generation, st.Ready, st.Uptime)
	}
	if st.LastReload.Outcome != "refused" || len(st.LastReload.Errors) == 0 || !strings.Contains(st.LastReload.Errors[0], "gowsgi.yaml:1:") ||
		time.Since(st.LastReload.Time) > time.Minute {
		t.Errorf("last_reload %+v", st.LastReload)
	}
	if len(st.Listeners) != 1 || st.Listeners[0].Addr != "127.0.0.1:0" || st.Listeners[0].Bound != th.tcpAddr() {
		t.Errorf("listeners %+v", st.Listeners)
	}
	if st.Admin != th.AdminAddr().String() {
		t.Errorf("admin %q", st.Admin)
	}
	if len(st.Mounts) != 2 || len(st.Apps) != 2 {
		t.Fatalf("mounts %+v apps %+v", st.Mounts, st.Apps)
	}
	a := st.Apps[0]
	if a.Name != "basic" || a.Kind != "wsgi" || a.State != "serving" || a.Module != "basic:application" ||
		len(a.Mounts) != 1 || a.Mounts[0] != "/app" || a.Requests != 1 || len(a.Workers) != 1 {
		t.Fatalf("app %+v", a)
	}
	w := a.Workers[0]
	if w.Pid != th.Pids("basic")[0] || w.State != "idle" || w.Requests != 1 || w.RSS < 1<<20 || w.Uptime <= 0 {
		t.Errorf("worker %+v", w)
	}
	if f := st.Apps[1]; f.Name != "files" || f.Kind != "static" || len(f.Workers) != 0 {
		t.Errorf("static app %+v", f)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := fetch(t, th.adminURL()+path); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	// Before the first config: not ready.
	h := New(zerolog.Nop())
	rec := httptest.NewRecorder()
	h.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 {
		t.Errorf("readyz before a config: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("healthz before a config: %d", rec.Code)
	}

	// While Shutdown drains a request: 503; the admin listener closes last.
	th := startHost(t, observeConfig)
	admin := th.adminURL()
	if resp, _ := fetch(t, admin+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
	slow := make(chan int, 1)
	go func() {
		resp, err := http.Get(th.URL + "/app/slow?s=1")
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	waitFor(t, func() bool { return th.Status().Apps[0].Workers[0].State == "busy" }, "the slow request")
	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		th.Shutdown(ctx)
		close(stopped)
	}()
	waitFor(t, func() bool { return !th.isReady() }, "shutdown to begin")
	resp, body := fetch(t, admin+"/readyz")
	if resp.StatusCode != 503 {
		t.Errorf("readyz while draining: %d %s", resp.StatusCode, body)
	}
	if resp, _ := fetch(t, admin+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz while draining: %d", resp.StatusCode)
	}
	if code := <-slow; code != 200 {
		t.Errorf("the request in flight at shutdown: %d", code)
	}
	<-stopped
	if _, err := http.Get(admin + "/healthz"); err == nil {
		t.Error("the admin listener still answers after Shutdown")
	}
}

func TestAdminListenerReload(t *testing.T) {
	t.Parallel()
	without := strings.Replace(observeConfig, `admin: "127.0.0.1:0"`+"\n", "", 1)
	th := startHost(t, without)
	if th.AdminAddr() != nil {
		t.Fatal("admin listener without admin:")
	}
	reload := func(yaml string) {
		t.Helper()
		th.writeConfig(yaml, false)
		if err := th.ReloadFile(th.path); err != nil {
			t.Fatal(err)
		}
	}
	reload(observeConfig)
	url := th.adminURL()
	if resp, _ := fetch(t, url+"/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	// Unchanged: the same socket.
	reload(strings.Replace(observeConfig, "max_body: 100", "max_body: 200", 1))
	if got := th.adminURL(); got != url {
		t.Errorf("admin listener moved from %s to %s on a reload that kept it", url, got)
	}
	// Busy: a reload to an address in use is refused, the old one kept.
	busy := strings.Replace(observeConfig, `"127.0.0.1:0"`+"\napps", `"`+th.tcpAddr()+`"`+"\napps", 1)
	th.writeConfig(busy, false)
	if err := th.ReloadFile(th.path); err == nil {
		t.Error("reload to an admin address in use succeeded")
	}
	if got := th.adminURL(); got != url {
		t.Errorf("admin listener changed by a refused reload: %s", got)
	}
	// Removed.
	reload(without)
	if th.AdminAddr() != nil {
		t.Error("admin listener still set")
	}
	waitFor(t, func() bool {
		_, err := http.Get(url + "/healthz")
		return err != nil
	}, "the admin listener to close")
}

// TestAccessWriter checks that the writer keeps what net/http's writer
// offers: flushing, ReadFrom (sendfile) and Unwrap.
func TestAccessWriter(t *testing.T) {
	rec := httptest.NewRecorder()
	aw := &accessWriter{ResponseWriter: rec}
	if err := http.NewResponseController(aw).Flush(); err != nil {
		t.Errorf("Flush through ResponseController: %v", err)
	}
	if !rec.Flushed {
		t.Error("not flushed")
	}
	n, err := aw.ReadFrom(bytes.NewReader(make([]byte, 1000)))
	if n != 1000 || err != nil || aw.bytes != 1000 || aw.status != 200 {
		t.Errorf("ReadFrom: %d %v, counted %d, status %d", n, err, aw.bytes, aw.status)
	}
	aw.Write([]byte("abc"))
	if aw.bytes != 1003 || rec.Body.Len() != 1003 {
		t.Errorf("bytes %d, body %d", aw.bytes, rec.Body.Len())
	}
	var _ io.ReaderFrom = aw
	var _ http.Flusher = aw
	if aw.Unwrap() != rec {
		t.Error("Unwrap")
	}
	aw2 := &accessWriter{ResponseWriter: httptest.NewRecorder()}
	aw2.WriteHeader(103)
	aw2.WriteHeader(404)
	if aw2.status != 404 {
		t.Errorf("status %d after 103 and 404", aw2.status)
	}
}

// TestAccessLogCombined: with log.access_format: combined, each request
// gets one line in the Combined Log Format, which the standard expression
// parses, with what a client sent escaped.
func TestAccessLogCombined(t *testing.T) {
	t.Parallel()
	th := startHost(t, oneApp("")+"log: {access_format: combined}\n")
	var out syncBuffer
	th.accessMu.Lock()
	th.accessOut = &out
	th.accessMu.Unlock()
	req, _ := http.NewRequest("GET", th.URL+"/pid?x=1", nil)
	req.Header.Set("User-Agent", `evil "agent" `+"\xe9")
	req.Header.Set("Referer", "http://example.com/")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	combined := regexp.MustCompile(`^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$`)
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 1 }, "the access line")
	line := strings.TrimSuffix(out.String(), "\n")
	m := combined.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("not the Combined Log Format: %q", line)
	}
	if m[1] != "127.0.0.1" || m[5] != "GET /pid?x=1 HTTP/1.1" || m[6] != "200" || m[8] != "http://example.com/" || m[9] != `evil \x22agent\x22 \xE9` {
		t.Errorf("fields %q", m[1:])
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[4]); err != nil {
		t.Errorf("time %q: %v", m[4], err)
	}
	if strings.Contains(th.Logs.String(), `"message":"access"`) {
		t.Error("a JSON access line was written too")
	}
}
