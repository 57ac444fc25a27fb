package host

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// staticFiles serves a folder the way nginx would in front of gunicorn:
// ETag and Last-Modified with conditional GET, Range requests and a
// Content-Type from the file name (all from http.ServeContent). It never
// lists a folder (a folder serves its index.html or 404), never serves a
// name starting with "." (.git, .env) other than a top-level .well-known
// (RFC 8615: ACME challenges, security.txt), and never leaves the folder:
// the path is cleaned, and files are opened through an os.Root, which
// refuses ".." and symlinks that lead outside.
type staticFiles struct {
	root         *os.Root
	dir          string
	cacheControl string // sent with every file served; "" for none
}

func newStaticFiles(dir, cacheControl string) (*staticFiles, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("static folder: %w", err)
	}
	return &staticFiles{root: root, dir: dir, cacheControl: cacheControl}, nil
}

// Close releases the folder.
func (s *staticFiles) Close() error { return s.root.Close() }

// serve answers a request for pathInfo (decoded, relative to the mount).
func (s *staticFiles) serve(w http.ResponseWriter, r *http.Request, pathInfo string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if strings.IndexByte(pathInfo, 0) >= 0 {
		// No file name holds a NUL; the system would refuse it (a 500).
		http.Error(w, "400 Bad Request: NUL in the path", http.StatusBadRequest)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+pathInfo), "/")
	if name == "" {
		name = "."
	}
	if hidden(name) {
		http.NotFound(w, r)
		return
	}
	f, fi, err := s.open(name)
	if err == nil && fi.IsDir() {
		f.Close()
		f, fi, err = s.open(path.Join(name, "index.html"))
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || isEscape(err) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	typeName := fi.Name() // Content-Type comes from the file asked for, not its sibling
	if sib, sfi, coding, varies := s.precompressed(r, name, fi); varies {
		w.Header().Add("Vary", "Accept-Encoding")
		if sib != nil {
			f.Close()
			f, fi = sib, sfi
			defer f.Close()
			w.Header().Set("Content-Encoding", coding)
		}
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	if s.cacheControl != "" {
		// On 200, 206 and 304; ServeContent drops it from its errors.
		w.Header().Set("Cache-Control", s.cacheControl)
	}
	dropEmptySuffixRanges(r.Header, fi.Size())
	http.ServeContent(w, r, typeName, fi.ModTime(), f)
}

// siblingSuffix is the file name suffix of a precompressed sibling, by coding.
var siblingSuffix = map[string]string{"br": ".br", "zstd": ".zst", "gzip": ".gz"}

// precompressed returns the precompressed sibling of name (name.br,
// name.zst or name.gz, at least as new as the file) that the request's
// Accept-Encoding prefers, opened, with its coding; varies reports that
// the file has such siblings, so that the response varies with
// Accept-Encoding whichever is sent.
func (s *staticFiles) precompressed(r *http.Request, name string, fi fs.FileInfo) (f *os.File, sfi fs.FileInfo, coding string, varies bool) {
	accept := r.Header["Accept-Encoding"]
	bestQ := 0.0
	for _, e := range encodings {
		sib, info, err := s.open(name + siblingSuffix[e.name])
		if err != nil {
			continue
		}
		if !info.Mode().IsRegular() || info.ModTime().Before(fi.ModTime()) {
			sib.Close() // not a file, or stale: made before the file changed
			continue
		}
		varies = true
		if q := acceptQ(accept, e.name); q > bestQ {
			if f != nil {
				f.Close()
			}
			f, sfi, coding, bestQ = sib, info, e.name, q
			continue
		}
		sib.Close()
	}
	return f, sfi, coding, varies
}

// dropEmptySuffixRanges removes from a Range header the suffix ranges of
// no bytes ("bytes=-0", or any "-N" of an empty file), which RFC 9110
// section 14.1.2 calls unsatisfiable but http.ServeContent answers with 206
// and a backwards Content-Range ("bytes 22-21/22"). If no range is left,
// the header asks for one past the end, which ServeContent answers with
// 416 and "Content-Range: bytes */SIZE" (If-Range still applies first),
// or for an empty file with 200 and the (empty) file.
func dropEmptySuffixRanges(h http.Header, size int64) {
	spec, ok := strings.CutPrefix(h.Get("Range"), "bytes=")
	if !ok {
		return
	}
	ranges := strings.Split(spec, ",")
	var kept []string
	for _, ra := range ranges {
		start, end, _ := strings.Cut(ra, "-")
		n, err := strconv.ParseInt(strings.TrimSpace(end), 10, 64)
		if strings.TrimSpace(start) == "" && err == nil && n >= 0 && (n == 0 || size == 0) {
			continue
		}
		kept = append(kept, ra)
	}
	switch {
	case len(kept) == len(ranges):
	case len(kept) == 0:
		h.Set("Range", fmt.Sprintf("bytes=%d-", size))
	default:
		h.Set("Range", "bytes="+strings.Join(kept, ","))
	}
}

// hidden reports whether the cleaned relative path name has a segment
// that starts with ".", other than "." itself and a first ".well-known".
func hidden(name string) bool {
	for i, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") && seg != "." && !(i == 0 && seg == ".well-known") {
			return true
		}
	}
	return false
}

func (s *staticFiles) open(name string) (*os.File, fs.FileInfo, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// isEscape reports an os.Root refusal of a path that leads outside it.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// keepingWriter is what a static file is written through: it re-arms
// the send deadline before each write, as the relay does, so that a
// client reading a large file steadily is never cut by send_timeout,
// while one that stops reading is.
type keepingWriter struct {
	*accessWriter
	send *deadline
}

func (k *keepingWriter) Write(p []byte) (int, error) {
	k.send.keep(time.Now())
	return k.accessWriter.Write(p)
}

// ReadFrom sends r (sendfile over plain HTTP/1.1) in pieces, re-arming
// the deadline before each (copyKeeping). A limit on r (a range) becomes
// the limit of the pieces, which sendfile needs to see the file.
func (k *keepingWriter) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return copyKeeping(k.accessWriter, r, -1, k.send)
	}
	n, err := copyKeeping(k.accessWriter, lr.R, lr.N, k.send)
	lr.N -= n
	return n, err
}

// Unwrap gives http.ResponseController the writer underneath.
func (k *keepingWriter) Unwrap() http.ResponseWriter { return k.accessWriter }
