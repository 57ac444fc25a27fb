package host

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/router"
	"github.com/gowsgi/gowsgi/worker"
)

// Time-dependent pool logic, tested in a synctest bubble against
// in-process fake workers (net.Pipe, so that a fake that waits is durably
// blocked and the bubble's clock jumps ahead): nothing really sleeps.

// fakeApp answers one request on a fake worker through c.
type fakeApp func(c *fakeCall)

// fakeCall is one request on a fake worker.
type fakeCall struct {
	send func(typ byte, payload string)
	gone <-chan struct{} // closed when the host closes the worker's connection
}

// sleep waits d (in the bubble's time); false if the connection closed first.
func (c *fakeCall) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-c.gone:
		return false
	}
}

// fakeWorkerOf runs app for every request frame on conn, each in its own
// goroutine, until conn is closed.
func fakeWorkerOf(conn net.Conn, app fakeApp) {
	var wmu sync.Mutex
	br := bufio.NewReader(conn)
	var wg sync.WaitGroup
	gone := make(chan struct{})
	defer wg.Wait()
	defer close(gone)
	for {
		f, err := worker.ReadFrame(br)
		if err != nil {
			return
		}
		if f.Type != worker.FrameRequest {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			app(&fakeCall{gone: gone, send: func(typ byte, payload string) {
				wmu.Lock()
				defer wmu.Unlock()
				conn.Write(worker.AppendFrame(nil, typ, f.ID, []byte(payload)))
			}})
		}()
	}
}

// fakeHost is a host serving one app at "/" whose workers are fake.
type fakeHost struct {
	h  *Host
	pl *pool
	mu sync.Mutex
	// started counts fake workers started, the first ones included.
	started int
}

// newFakeHost returns a host whose app has workers fake workers running
// app, with the app settings of def (Name, Timeout, ...).
func newFakeHost(t *testing.T, def config.App, workers int, app fakeApp) *fakeHost {
	def.Workers, def.Threads = workers, 1
	spec := &worker.Spec{App: def.Name, Threads: 1, Workers: workers}
	fh := &fakeHost{h: New(zerolog.Nop())}
	fh.pl = newPool(spec, def, zerolog.Nop(), nil, func(string) {})
	fh.pl.startWorker = func(s *worker.Spec) (*worker.Process, error) {
		hostEnd, workerEnd := net.Pipe()
		go fakeWorkerOf(workerEnd, app)
		fh.mu.Lock()
		fh.started++
		fh.mu.Unlock()
		return worker.Attach(s, hostEnd), nil
	}
	for range workers {
		p, _ := fh.pl.startWorker(fh.pl.spec)
		fh.pl.addSlot(p)
	}
	rt := &appRuntime{name: def.Name, def: def, pool: fh.pl, m: fh.h.metrics.app(def.Name)}
	gen := *fh.h.gen.Load()
	gen.routes = router.New([]router.Mount[*appRuntime]{{Prefix: "/", Target: rt}})
	gen.access = false
	fh.h.gen.Store(&gen)
	t.Cleanup(func() { fh.pl.stop(0) })
	return fh
}

// get serves a GET of path and returns the recorder; a handler that cuts
// the connection (http.ErrAbortHandler) gives code -1.
func (fh *fakeHost) get(path string) (rec *httptest.ResponseRecorder) {
	rec = httptest.NewRecorder()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			rec.Code = -1
		}
	}()
	fh.h.ServeHTTP(rec, httptest.NewRequest("GET", "http://x"+path, nil))
	return rec
}

func (fh *fakeHost) workersStarted() int {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	return fh.started
}

func appDef(settings func(*config.App)) config.App {
	a := config.App{Name: "app", Timeout: 30 * time.Second, Queue: config.DefaultQueue, QueueTimeout: config.DefaultQueueTimeout}
	if settings != nil {
		settings(&a)
	}
	return a
}

const okHead = "200 OK\r\nContent-Type: text/plain\r\n"

// streamApp starts a response, then sends n chunks, every seconds apart.
func streamApp(n int, every time.Duration) fakeApp {
	return func(c *fakeCall) {
		c.send(worker.FrameStart, okHead)
		for i := range n {
			if !c.sleep(every) {
				return
			}
			c.send(worker.FrameBody, fmt.Sprintf("chunk %d\n", i))
		}
		c.send(worker.FrameEnd, "")
	}
}

// TestPoolTimeout: timeout bounds the app's silence, not the response's
// length; max_request_time bounds the length; a silent app's worker is
// killed, the client gets 504 and the worker is replaced.
func TestPoolTimeout(t *testing.T) {
	tests := []struct {
		name     string
		app      fakeApp
		maxTime  time.Duration
		wantCode int
		wantBody string
		killed   bool
	}{
		{"pauses shorter than timeout", streamApp(5, 20*time.Second), 0, 200, "chunk 4\n", false},
		{"silent before its response", func(c *fakeCall) { c.sleep(time.Hour) }, 0, 504, "", true},
		{"silent after its start", func(c *fakeCall) {
			c.send(worker.FrameStart, okHead)
			c.sleep(time.Hour)
		}, 0, -1, "", true},
		{"past max_request_time", streamApp(5, 20*time.Second), 50 * time.Second, -1, "", true},
		{"within max_request_time", streamApp(2, 20*time.Second), 50 * time.Second, 200, "chunk 1\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fh := newFakeHost(t, appDef(func(a *config.App) { a.MaxRequestTime = tt.maxTime }), 1, tt.app)
				rec := fh.get("/")
				if rec.Code != tt.wantCode || !strings.HasSuffix(rec.Body.String(), tt.wantBody) {
					t.Errorf("got %d %q, want %d ending in %q", rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
				}
				synctest.Wait() // the pool's supervisor replaces a killed worker
				if got := fh.workersStarted(); (got > 1) != tt.killed {
					t.Errorf("%d workers started; killed: want %v", got, tt.killed)
				}
			})
		})
	}
}

// TestPoolQueueTimeout: a request that finds every worker busy (and no
// room to pipeline) waits queue_timeout for one, then gets 503.
func TestPoolQueueTimeout(t *testing.T) {
	setPipelineWindow(t, 0)
	synctest.Test(t, func(t *testing.T) {
		fh := newFakeHost(t, appDef(func(a *config.App) { a.QueueTimeout = 5 * time.Second; a.Timeout = time.Hour }), 1,
			streamApp(1, time.Minute))
		go fh.get("/")
		synctest.Wait() // the first request has the worker
		began := time.Now()
		rec := fh.get("/")
		if rec.Code != 503 || time.Since(began) != 5*time.Second {
			t.Errorf("queued request: %d after %s, want 503 after 5s", rec.Code, time.Since(began))
		}
	})
}

// TestPoolBackoffWaitsOnStop: a slot whose restarts back off gives up at
// once when the pool stops, instead of sleeping out its back-off.
func TestPoolBackoffWaitsOnStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fh := newFakeHost(t, appDef(nil), 1, streamApp(0, 0))
		fh.pl.startWorker = func(*worker.Spec) (*worker.Process, error) { return nil, errors.New("cannot start") }
		fh.pl.mu.Lock()
		pr := fh.pl.slots[0].cur
		fh.pl.slots[0].backoff = maxBackoff
		fh.pl.mu.Unlock()
		pr.p.Kill()
		synctest.Wait() // the supervisor is in its back-off
		began := time.Now()
		fh.pl.stop(0)
		if d := time.Since(began); d != 0 {
			t.Errorf("stop waited %s for a back-off", d)
		}
	})
}

// TestPoolScalesDownAfterIdle: a scaling pool at min 0 starts a worker
// for its first request, keeps it while requests come within
// idle_timeout, retires it once idle that long, and starts another for
// the next request.
func TestPoolScalesDownAfterIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		def := appDef(func(a *config.App) { a.Scale = &config.Scale{Min: 0, Max: 2, IdleTimeout: 10 * time.Second} })
		fh := newFakeHost(t, def, 0, streamApp(0, 0))
		fh.pl.wg.Go(fh.pl.scaleDownLoop)
		for i := range 3 {
			if rec := fh.get("/"); rec.Code != 200 {
				t.Fatalf("request %d: %d", i, rec.Code)
			}
			time.Sleep(8 * time.Second)
		}
		synctest.Wait()
		if n, started := len(fh.pl.Pids()), fh.workersStarted(); n != 1 || started != 1 {
			t.Fatalf("after requests 8s apart: %d workers, %d started; want the one kept", n, started)
		}
		time.Sleep(3 * time.Second) // 11s idle
		synctest.Wait()
		if n := len(fh.pl.Pids()); n != 0 || fh.pl.scaleDowns.Load() != 1 {
			t.Fatalf("after idle_timeout: %d workers, %d retired; want 0 and 1", n, fh.pl.scaleDowns.Load())
		}
		if rec := fh.get("/"); rec.Code != 200 || fh.workersStarted() != 2 {
			t.Errorf("after scaling to zero: %d with %d started, want 200 from a second worker", rec.Code, fh.workersStarted())
		}
	})
}

// TestPoolScaleUpBacksOff: an app at zero workers whose start fails
// answers 503 at once, and its next requests get 503 without a start
// until the back-off has passed, which doubles per failure.
func TestPoolScaleUpBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		def := appDef(func(a *config.App) { a.Scale = &config.Scale{Min: 0, Max: 2, IdleTimeout: time.Minute} })
		fh := newFakeHost(t, def, 0, streamApp(0, 0))
		starts := 0
		fh.pl.startWorker = func(*worker.Spec) (*worker.Process, error) {
			starts++
			return nil, errors.New("cannot import")
		}
		for i, tt := range []struct {
			after  time.Duration
			starts int
		}{{0, 1}, {50 * time.Millisecond, 1}, {60 * time.Millisecond, 2}, {150 * time.Millisecond, 2}, {60 * time.Millisecond, 3}} {
			time.Sleep(tt.after)
			if rec := fh.get("/"); rec.Code != 503 || starts != tt.starts {
				t.Errorf("request %d: %d after %d starts, want 503 after %d", i, rec.Code, starts, tt.starts)
			}
			synctest.Wait()
		}
	})
}
