package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/gowsgi/gowsgi/config"
	"github.com/gowsgi/gowsgi/host"
	"github.com/gowsgi/gowsgi/worker"
)

// check validates the config at cfgPath, then checks every app: a static
// app's folder must be a readable directory, any other app must import in
// a throwaway worker. It checks as many apps at once as there are CPUs,
// reports to stdout in config order, and opens no listener. It returns
// the exit code: 0 if every app passed.
func check(cfgPath string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return checkApps(cfg.Apps, runtime.NumCPU(), checkOne, stdout)
}

// checkOne checks one app, static or WSGI.
func checkOne(app *config.App) (bool, string) {
	if app.Static != "" {
		return checkStatic(app)
	}
	return checkApp(app)
}

// checkApps runs checkOne on every app, at most parallel at a time, and
// prints each report in the order of apps as soon as it and those before
// it are done. It returns 0 if every app passed, else 1.
func checkApps(apps []*config.App, parallel int, checkOne func(*config.App) (bool, string), stdout io.Writer) int {
	type result struct {
		ok     bool
		report string
	}
	results := make([]chan result, len(apps))
	slots := make(chan struct{}, max(parallel, 1))
	for i, app := range apps {
		results[i] = make(chan result, 1)
		go func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			ok, report := checkOne(app)
			results[i] <- result{ok, report}
		}()
	}
	code := 0
	for _, c := range results {
		r := <-c
		if !r.ok {
			code = 1
		}
		fmt.Fprint(stdout, r.report)
	}
	return code
}

// checkStatic reports whether a static app's folder is a directory the
// host can list and open files in.
func checkStatic(app *config.App) (bool, string) {
	err := readableDir(app.Static)
	if err == nil {
		return true, fmt.Sprintf("app %s: OK (static %s)\n", app.Name, app.Static)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "app %s: FAILED\n", app.Name)
	indent(&b, err.Error(), "    ")
	return false, b.String()
}

// readableDir returns why dir is not a folder the host can serve: it
// opens it as the host does (an os.Root) and lists it.
func readableDir(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("static folder: %w", err)
	}
	defer root.Close()
	f, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("static folder %s: %w", dir, err)
	}
	defer f.Close()
	if _, err := f.ReadDir(1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("static folder %s: %w", dir, err)
	}
	return nil
}

// checkApp starts one worker for app, closes it, and reports whether the
// app loaded, with the lines to print.
func checkApp(app *config.App) (bool, string) {
	out := &appOutput{}
	p, err := worker.Start(host.WorkerSpec(context.Background(), app, zerolog.New(out)))
	if err == nil {
		p.Close(5 * time.Second)
		python := app.Python
		if path, err := exec.LookPath(python); err == nil && !strings.Contains(python, "/") {
			python = path
		}
		return true, fmt.Sprintf("app %s: OK (module %s:%s, python %s)\n", app.Name, app.Module, app.Callable, python)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "app %s: FAILED\n", app.Name)
	var le *worker.LoadError
	if errors.As(err, &le) {
		indent(&b, le.Traceback, "    ")
		return false, b.String()
	}
	// No traceback (the interpreter is missing, crashed, or timed out):
	// what the process printed is the best clue. worker.Start does not
	// wait for its output relay, so give it a moment to drain.
	indent(&b, err.Error(), "    ")
	time.Sleep(100 * time.Millisecond)
	if s := out.String(); s != "" {
		b.WriteString("    output:\n")
		indent(&b, s, "      ")
	}
	return false, b.String()
}

func indent(b *strings.Builder, text, prefix string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
	}
}

// appOutput collects what a worker printed: the messages of the log
// events (one JSON object per Write) that worker.Start relays it as.
type appOutput struct {
	mu    sync.Mutex
	lines []string
}

func (o *appOutput) Write(p []byte) (int, error) {
	var ev struct{ Message string }
	if json.Unmarshal(p, &ev) == nil {
		o.mu.Lock()
		o.lines = append(o.lines, ev.Message)
		o.mu.Unlock()
	}
	return len(p), nil
}

func (o *appOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n")
}
