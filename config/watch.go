package config

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a watcher waits for a burst of file events
// (an editor's write, rename and chmod) to end before it reports a change.
const DefaultDebounce = 100 * time.Millisecond

// Watcher reports changes to a file or a tree of files. It is watching as
// soon as WatchFile or WatchTree returns; Run delivers the changes.
type Watcher struct {
	fs      *fsnotify.Watcher
	want    func(name string) bool // whether an event's file counts
	refresh func() error           // if set, recomputes what is watched after a change
}

// WatchFile watches the file at path: written, created, replaced by a
// rename, or removed. It watches the file's folder and filters by name,
// since editors save by writing a new file and renaming it over the old one.
// The file is followed through symlinks, as WatchFiles does.
func WatchFile(path string) (*Watcher, error) {
	return WatchFiles(func() ([]string, []string) { return []string{path}, nil })
}

// WatchTree watches the files under dir, at any depth, whose name match
// accepts. Folders created later are watched too; hidden folders and
// __pycache__ are skipped.
func WatchTree(dir string, match func(name string) bool) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	addTree := func(root string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			if err := w.Add(p); err != nil {
				return fmt.Errorf("watch %s: %w", p, err)
			}
			return nil
		})
	}
	if err := addTree(dir); err != nil {
		w.Close()
		return nil, err
	}
	return &Watcher{fs: w, want: func(name string) bool {
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			if !skipDir(filepath.Base(name)) {
				addTree(name)
			}
			return false
		}
		return match(name)
	}}, nil
}

func skipDir(name string) bool {
	return name == "__pycache__" || (len(name) > 1 && name[0] == '.')
}

// Run calls onChange once per burst of changes, debounce after the last
// event (DefaultDebounce if 0), until ctx ends; then it closes the watcher.
// Errors go to onError and watching goes on.
func (w *Watcher) Run(ctx context.Context, debounce time.Duration, onChange func(), onError func(error)) {
	defer w.fs.Close()
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if w.want(ev.Name) {
				timer.Reset(debounce)
				w.refreshed(onError)
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			onError(err)
		case <-timer.C:
			onChange()
			w.refreshed(onError)
		}
	}
}

// refreshed recomputes what w watches, if it follows files.
func (w *Watcher) refreshed(onError func(error)) {
	if w.refresh == nil {
		return
	}
	if err := w.refresh(); err != nil {
		onError(err)
	}
}
