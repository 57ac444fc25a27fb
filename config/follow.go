package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// Following files through symlinks. A Kubernetes ConfigMap volume holds
// gowsgi.yaml -> ..data/gowsgi.yaml and updates by renaming a new ..data
// link over the old one; a release switches current -> releases/N. Neither
// touches the file's own name, so the watcher follows every link the
// path resolves through, watches the folder of each (filtering by name),
// and resolves again after every change.

// maxLinks bounds the symlinks one path may resolve through (as Linux's
// MAXSYMLINKS).
const maxLinks = 40

// linkChain returns the absolute paths that path resolves through: each
// symlink met (as a component or as the file itself), then the file it
// finally names. When a component is missing, the chain ends with it, so
// that its creation is seen.
func linkChain(path string) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	var chain []string
	cur, rest := "/", splitPath(abs)
	for links := 0; len(rest) > 0; {
		next := filepath.Join(cur, rest[0])
		rest = rest[1:]
		fi, err := os.Lstat(next)
		if err != nil {
			return append(chain, next), nil
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return chain, fmt.Errorf("resolve %s: more than %d symlinks", path, maxLinks)
		}
		chain = append(chain, next)
		target, err := os.Readlink(next)
		if err != nil {
			return chain, fmt.Errorf("resolve %s: %w", path, err)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return append(chain, cur), nil
}

// splitPath splits a slash-separated path into its non-empty components.
func splitPath(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// follower is the state of a Watcher made by WatchFiles: what it watches
// now, recomputed by refresh.
type follower struct {
	fs    *fsnotify.Watcher
	files func() (paths, globs []string)
	dirs  map[string]bool // folders watched
	names map[string]bool // paths whose events count
	globs []string        // absolute patterns whose matching events count
}

// WatchFiles watches the files that files returns, and those matching its
// glob patterns (absolute, or relative to the working directory): each is
// followed through any chain of symlinks, and a change to any link of the
// chain or to the file counts. files is called again after every event
// that counts and after every onChange, so the set may change (a config
// that includes other files).
func WatchFiles(files func() (paths, globs []string)) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch config files: %w", err)
	}
	f := &follower{fs: w, files: files, dirs: map[string]bool{}}
	if err := f.refresh(); err != nil {
		w.Close()
		return nil, err
	}
	return &Watcher{fs: w, want: f.want, refresh: f.refresh}, nil
}

// want reports whether an event on name counts.
func (f *follower) want(name string) bool {
	name = filepath.Clean(name)
	if f.names[name] {
		return true
	}
	for _, g := range f.globs {
		if ok, _ := filepath.Match(g, name); ok {
			return true
		}
	}
	return false
}

// refresh resolves the files and patterns again and watches the folders
// they now need (and only those).
func (f *follower) refresh() error {
	paths, globs := f.files()
	names, dirs := map[string]bool{}, map[string]bool{}
	var patterns []string
	var errs []error
	add := func(chain []string) {
		for _, p := range chain {
			names[p], dirs[filepath.Dir(p)] = true, true
		}
	}
	for _, p := range paths {
		chain, err := linkChain(p)
		errs = appendErr(errs, err)
		add(chain)
	}
	for _, g := range globs {
		chain, err := linkChain(filepath.Dir(g))
		errs = appendErr(errs, err)
		add(chain)
		if dir := chain[len(chain)-1]; err == nil && isDir(dir) {
			dirs[dir] = true
			patterns = append(patterns, filepath.Join(dir, filepath.Base(g)))
		}
	}
	errs = append(errs, f.watchDirs(dirs)...)
	f.names, f.globs = names, patterns
	return errors.Join(errs...)
}

// watchDirs watches the folders in dirs and stops watching the others.
func (f *follower) watchDirs(dirs map[string]bool) []error {
	var errs []error
	for d := range f.dirs {
		if !dirs[d] {
			f.fs.Remove(d) // it may be gone already
			delete(f.dirs, d)
		}
	}
	for d := range dirs {
		// Added again even when watched: a folder removed and made anew
		// lost its watch.
		if err := f.fs.Add(d); err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", d, err))
			continue
		}
		f.dirs[d] = true
	}
	return errs
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}
