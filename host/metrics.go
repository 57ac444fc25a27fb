package host

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are a host's Prometheus metrics, in a registry of its own (so
// that several hosts in one process, as in the tests, do not collide).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // app, status
	latency   *prometheus.HistogramVec // app
	restarts  *prometheus.CounterVec   // app, reason
	reloads   *prometheus.CounterVec   // outcome
	unrouted  *appMetrics              // requests no mount matched
	mu        sync.Mutex
	byApp     map[string]*appMetrics
	collector *poolCollector
}

// appMetrics are the metric children of one app, looked up once so that
// a request does no label hashing beyond a status code seen for the first
// time.
type appMetrics struct {
	name     string
	requests *prometheus.CounterVec
	latency  prometheus.Observer
	codes    [600]atomic.Pointer[prometheus.Counter] // by status code
	served   atomic.Uint64                           // requests answered, for /status
}

// observe counts one answered request.
func (m *appMetrics) observe(status int, d time.Duration) {
	m.served.Add(1)
	m.latency.Observe(d.Seconds())
	if status < 100 || status >= len(m.codes) {
		m.requests.WithLabelValues(m.name, strconv.Itoa(status)).Inc()
		return
	}
	c := m.codes[status].Load()
	if c == nil {
		cc := m.requests.WithLabelValues(m.name, strconv.Itoa(status))
		c = &cc
		m.codes[status].Store(c)
	}
	(*c).Inc()
}

// Restart reasons, the reason label of gowsgi_worker_restarts_total. A
// recycled worker's reason is its limit: "max_requests" or "max_rss".
const (
	restartCrash   = "crash"
	restartTimeout = "timeout"
	restartReload  = "reload"
)

func newMetrics(h *Host) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gowsgi_requests_total", Help: "Requests answered, by app and HTTP status (app \"\": no mount matched).",
		}, []string{"app", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gowsgi_request_duration_seconds", Help: "Time from the request's headers to the end of its response, by app.",
			Buckets: prometheus.DefBuckets,
		}, []string{"app"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gowsgi_worker_restarts_total", Help: "Workers replaced, by app and reason: crash, timeout, max_requests, max_rss, reload.",
		}, []string{"app", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gowsgi_reloads_total", Help: "Config reloads, by outcome: applied or refused (the first config is not counted).",
		}, []string{"outcome"}),
		byApp:     map[string]*appMetrics{},
		collector: &poolCollector{h: h},
	}
	m.reloads.WithLabelValues("applied")
	m.reloads.WithLabelValues("refused")
	m.reg.MustRegister(m.requests, m.latency, m.restarts, m.reloads, m.collector,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gowsgi_config_generation", Help: "Number of the config generation being served.",
		}, func() float64 { return float64(h.Generation()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.unrouted = m.app("")
	return m
}

// app returns the metric children of the named app, creating them once.
func (m *metrics) app(name string) *appMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.byApp[name]; a != nil {
		return a
	}
	a := &appMetrics{name: name, requests: m.requests, latency: m.latency.WithLabelValues(name)}
	m.byApp[name] = a
	return a
}

// forget drops the series of an app that is no longer configured.
func (m *metrics) forget(name string) {
	m.mu.Lock()
	delete(m.byApp, name)
	m.mu.Unlock()
	l := prometheus.Labels{"app": name}
	m.requests.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.restarts.DeletePartialMatch(l)
}

// poolCollector reports the gauges that are read from the pools when
// scraped: requests in flight and queued, workers by state, and what each
// app is doing.
type poolCollector struct{ h *Host }

var (
	inFlightDesc = prometheus.NewDesc("gowsgi_requests_in_flight", "Requests being run by a worker, by app.", []string{"app"}, nil)
	queuedDesc   = prometheus.NewDesc("gowsgi_requests_queued", "Requests waiting for a free worker, by app.", []string{"app"}, nil)
	workersDesc  = prometheus.NewDesc("gowsgi_workers", "Worker processes by app and state: idle, busy, starting.", []string{"app", "state"}, nil)
	appStateDesc = prometheus.NewDesc("gowsgi_app_state",
		"1 for what the app is doing, 0 for the rest: serving, starting (a worker is being replaced), failing (a worker keeps failing; restarts back off) or failed (did not load).",
		[]string{"app", "state"}, nil)
	scalingDesc = prometheus.NewDesc("gowsgi_worker_scaling_total",
		"Workers added (up: a request would have queued) and retired (down: idle past idle_timeout) by an app whose workers scale.",
		[]string{"app", "direction"}, nil)
	appSinceDesc = prometheus.NewDesc("gowsgi_app_state_since_timestamp_seconds",
		"When a starting, failing or failed app had the first error of its current run, as a Unix time.", []string{"app"}, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inFlightDesc
	ch <- queuedDesc
	ch <- workersDesc
	ch <- appStateDesc
	ch <- appSinceDesc
	ch <- scalingDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, rt := range c.h.runtimes() {
		if rt.pool == nil {
			collectState(ch, rt, nil)
			continue
		}
		st := rt.pool.snapshot()
		collectState(ch, rt, &st)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(st.inFlight), rt.name)
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(st.queued), rt.name)
		counts := map[string]int{"idle": 0, "busy": 0, "starting": 0}
		for _, w := range st.workers {
			counts[w.State]++
		}
		for state, n := range counts {
			ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(n), rt.name, state)
		}
		if sc := st.scaling; sc != nil {
			ch <- prometheus.MustNewConstMetric(scalingDesc, prometheus.CounterValue, float64(sc.ScaleUps), rt.name, "up")
			ch <- prometheus.MustNewConstMetric(scalingDesc, prometheus.CounterValue, float64(sc.ScaleDowns), rt.name, "down")
		}
	}
}

// collectState reports what the app is doing; ps is its pool's snapshot.
func collectState(ch chan<- prometheus.Metric, rt *appRuntime, ps *poolSnapshot) {
	st := rt.state(ps)
	for _, s := range appStates {
		v := 0.0
		if s == st.state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(appStateDesc, prometheus.GaugeValue, v, rt.name, s)
	}
	if !st.since.IsZero() {
		ch <- prometheus.MustNewConstMetric(appSinceDesc, prometheus.GaugeValue, float64(st.since.UnixMilli())/1000, rt.name)
	}
}

// restarted counts a worker of the app replaced for reason.
func (a *appMetrics) restarted(m *metrics, reason string) {
	m.restarts.WithLabelValues(a.name, reason).Inc()
}
