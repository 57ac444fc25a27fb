package config

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// runWatcher runs w until the test ends and returns a channel that
// receives one value per change reported.
func runWatcher(t *testing.T, w *Watcher) <-chan struct{} {
	t.Helper()
	changes := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, 20*time.Millisecond, func() { changes <- struct{}{} }, func(err error) { t.Logf("watch error: %v", err) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return changes
}

// waitChange waits for a change, failing after a generous timeout.
func waitChange(t *testing.T, changes <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatalf("no change reported after %s", what)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWatchConfigMapSwap builds a ConfigMap volume as the kubelet does
// (gowsgi.yaml -> ..data/gowsgi.yaml, ..data -> ..2026_a) and updates it
// as the kubelet does: a new folder, a ..data_tmp link to it renamed over
// ..data, the old folder removed.
func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, "..2026_a"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "..2026_a", "gowsgi.yaml"), []byte("a"), 0o644))
	must(t, os.Symlink("..2026_a", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/gowsgi.yaml", filepath.Join(dir, "gowsgi.yaml")))
	w, err := WatchFile(filepath.Join(dir, "gowsgi.yaml"))
	must(t, err)
	changes := runWatcher(t, w)

	for i, name := range []string{"..2026_b", "..2026_c"} {
		must(t, os.Mkdir(filepath.Join(dir, name), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name, "gowsgi.yaml"), []byte(name), 0o644))
		must(t, os.Symlink(name, filepath.Join(dir, "..data_tmp")))
		must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
		old := []string{"..2026_a", "..2026_b"}[i]
		must(t, os.RemoveAll(filepath.Join(dir, old)))
		waitChange(t, changes, "swapping ..data to "+name)
		drain(changes)
	}
	// The file the chain now ends at is followed too.
	must(t, os.WriteFile(filepath.Join(dir, "..2026_c", "gowsgi.yaml"), []byte("c2"), 0o644))
	waitChange(t, changes, "writing the target in place")
}

// TestWatchReleaseSwap follows current/gowsgi.yaml when the current link
// moves from one release folder to another.
func TestWatchReleaseSwap(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []string{"1", "2"} {
		must(t, os.MkdirAll(filepath.Join(dir, "releases", r), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "releases", r, "gowsgi.yaml"), []byte(r), 0o644))
	}
	must(t, os.Symlink("releases/1", filepath.Join(dir, "current")))
	w, err := WatchFile(filepath.Join(dir, "current", "gowsgi.yaml"))
	must(t, err)
	changes := runWatcher(t, w)

	must(t, os.Symlink("releases/2", filepath.Join(dir, "current.tmp")))
	must(t, os.Rename(filepath.Join(dir, "current.tmp"), filepath.Join(dir, "current")))
	waitChange(t, changes, "switching current to releases/2")
	drain(changes)
	// An edit of the old release is no change any more; one of the new is.
	must(t, os.WriteFile(filepath.Join(dir, "releases", "2", "gowsgi.yaml"), []byte("2b"), 0o644))
	waitChange(t, changes, "editing releases/2/gowsgi.yaml")
}

// TestWatchGlob reports files matching a pattern appearing, changing and
// going, and not others.
func TestWatchGlob(t *testing.T) {
	dir := t.TempDir()
	appsD := filepath.Join(dir, "apps.d")
	w, err := WatchFiles(func() ([]string, []string) { return nil, []string{filepath.Join(appsD, "*.yaml")} })
	must(t, err)
	changes := runWatcher(t, w)
	must(t, os.Mkdir(appsD, 0o755)) // the folder appears: counts (its files may match)
	waitChange(t, changes, "creating apps.d")
	drain(changes)
	f := filepath.Join(appsD, "a.yaml")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	waitChange(t, changes, "creating apps.d/a.yaml")
	drain(changes)
	must(t, os.WriteFile(filepath.Join(appsD, "notes.txt"), []byte("x"), 0o644))
	must(t, os.Remove(f))
	waitChange(t, changes, "removing apps.d/a.yaml")
}

// drain empties changes after the debounce of a burst has passed.
func drain(changes <-chan struct{}) {
	time.Sleep(100 * time.Millisecond)
	for {
		select {
		case <-changes:
		default:
			return
		}
	}
}

func TestLinkChain(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	must(t, os.Mkdir(filepath.Join(dir, "..2026_a"), 0o755))
	must(t, os.Symlink("..2026_a", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/gowsgi.yaml", filepath.Join(dir, "gowsgi.yaml")))
	got, err := linkChain(filepath.Join(dir, "gowsgi.yaml"))
	must(t, err)
	want := []string{filepath.Join(dir, "gowsgi.yaml"), filepath.Join(dir, "..data"), filepath.Join(dir, "..2026_a", "gowsgi.yaml")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("linkChain = %q, want %q", got, want)
	}
	must(t, os.Symlink("loop", filepath.Join(dir, "loop")))
	if _, err := linkChain(filepath.Join(dir, "loop")); err == nil {
		t.Errorf("linkChain of a loop: no error")
	}
}
