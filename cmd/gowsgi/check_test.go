package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/gowsgi/gowsgi/config"
)

// TestCheckAppsBoundsParallelism: check runs at most parallel checks at
// once (300 apps at once took 17 s), and still reports in config order.
func TestCheckAppsBoundsParallelism(t *testing.T) {
	for _, tt := range []struct{ apps, parallel, want int }{
		{apps: 10, parallel: 3, want: 3},
		{apps: 2, parallel: 4, want: 2},
		{apps: 5, parallel: 0, want: 1},
	} {
		t.Run(fmt.Sprintf("%d apps, %d at once", tt.apps, tt.parallel), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var apps []*config.App
				var want strings.Builder
				for i := range tt.apps {
					apps = append(apps, &config.App{Name: fmt.Sprint("app", i)})
					fmt.Fprintf(&want, "app%d\n", i)
				}
				var running atomic.Int32
				release := make(chan struct{})
				fake := func(app *config.App) (bool, string) {
					running.Add(1)
					<-release
					running.Add(-1)
					return app.Name != "app1", app.Name + "\n"
				}
				var out strings.Builder
				code := make(chan int)
				go func() { code <- checkApps(apps, tt.parallel, fake, &out) }()
				synctest.Wait() // every check started is blocked in fake
				if n := running.Load(); int(n) != tt.want {
					t.Errorf("%d checks ran at once, want %d", n, tt.want)
				}
				close(release)
				if c := <-code; c != 1 {
					t.Errorf("exit code %d, want 1 (app1 failed)", c)
				}
				if out.String() != want.String() {
					t.Errorf("output:\n%s\nwant:\n%s", out.String(), want.String())
				}
			})
		})
	}
}

// TestCheckStatic: a static app's folder is checked, not imported.
func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0o000); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, static string
		ok           bool
		report       string // for ok; else the start of the detail line
	}{
		{"folder", dir, true, "app s: OK (static " + dir + ")\n"},
		{"file", file, false, "    static folder: open " + file + ": not a directory"},
		{"missing", filepath.Join(dir, "gone"), false, "    static folder: open " + filepath.Join(dir, "gone") + ": no such file or directory"},
		{"unreadable", locked, false, "    static folder " + locked + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "unreadable" && os.Geteuid() == 0 {
				t.Skip("root reads any folder")
			}
			ok, report := checkOne(&config.App{Name: "s", Static: tt.static, Module: ""})
			switch {
			case ok != tt.ok:
				t.Errorf("ok = %v, want %v:\n%s", ok, tt.ok, report)
			case tt.ok && report != tt.report:
				t.Errorf("report %q, want %q", report, tt.report)
			case !tt.ok && !strings.HasPrefix(report, "app s: FAILED\n"+tt.report):
				t.Errorf("report %q, want it to start with %q", report, "app s: FAILED\n"+tt.report)
			}
		})
	}
}
