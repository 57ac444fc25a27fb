package host

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gowsgi/gowsgi/config"
)

// Response compression (compress:): the encoders come from well-kept
// libraries (klauspost/compress for gzip and zstd, andybalholm/brotli),
// pooled, at levels meant for responses made per request: fast, most of
// the gain.

// encoding is one content coding the host can produce.
type encoding struct {
	name string // as in Accept-Encoding and Content-Encoding
	pool sync.Pool
	make func(io.Writer) encoder
}

// encoder is a pooled compressing writer.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

// encodings in the order the host prefers them when the client accepts
// several with the same q-value.
var encodings = []*encoding{
	{name: "br", make: func(w io.Writer) encoder { return brotli.NewWriterLevel(w, 4) }},
	{name: "zstd", make: func(w io.Writer) encoder {
		e, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithWindowSize(1<<20)) // a client must hold the window: keep it small
		return e
	}},
	{name: "gzip", make: func(w io.Writer) encoder { e, _ := gzip.NewWriterLevel(w, 5); return e }},
}

// get returns an encoder of e writing to w.
func (e *encoding) get(w io.Writer) encoder {
	if enc, ok := e.pool.Get().(encoder); ok {
		enc.Reset(w)
		return enc
	}
	return e.make(w)
}

// negotiate returns the encoding to use for a request's Accept-Encoding
// (RFC 9110 section 12.5.3, with q-values), or nil for none.
func negotiate(accept []string) *encoding {
	var best *encoding
	bestQ := 0.0
	for _, e := range encodings {
		if q := acceptQ(accept, e.name); q > bestQ {
			best, bestQ = e, q
		}
	}
	return best
}

// acceptQ returns the q-value Accept-Encoding gives coding ("*" counts
// for codings not named); 0 if not accepted.
func acceptQ(accept []string, coding string) float64 {
	q, star := -1.0, -1.0
	for _, line := range accept {
		for _, item := range strings.Split(line, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(item), ";")
			v := 1.0
			if p, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
				if err != nil || f < 0 || f > 1 {
					continue
				}
				v = f
			}
			switch {
			case strings.EqualFold(strings.TrimSpace(name), coding):
				q = v
			case strings.TrimSpace(name) == "*":
				star = v
			}
		}
	}
	if q < 0 {
		q = star
	}
	return max(q, 0)
}

// compressible reports whether a Content-Type is worth compressing:
// text, JSON, JavaScript, XML, SVG and the like; not images, audio,
// video, archives or fonts that are compressed already.
func compressible(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	switch {
	case ct == "":
		return false
	case strings.HasPrefix(ct, "text/"):
		return true // server-sent events too: each event is flushed as it comes
	case strings.HasSuffix(ct, "+json"), strings.HasSuffix(ct, "+xml"):
		return true
	}
	switch ct {
	case "application/json", "application/javascript", "application/x-javascript", "application/ecmascript",
		"application/xml", "application/xhtml+xml", "image/svg+xml", "application/wasm", "application/manifest+json",
		"application/ld+json", "application/graphql-response+json", "font/ttf", "font/otf", "application/vnd.ms-fontobject":
		return true
	}
	return false
}

// compressWanted reports whether the host should compress a response with
// status code and headers h, for a request with method, under settings
// cfg: a compressible type, not encoded already, not no-transform, not a
// partial response, and not known to be shorter than cfg.MinSize.
func compressWanted(cfg config.Compress, code int, h http.Header) bool {
	if !cfg.Enabled || code < 200 || code == http.StatusNoContent || code == http.StatusPartialContent ||
		code == http.StatusNotModified || code >= 300 && code < 400 {
		return false
	}
	if len(h["Content-Encoding"]) > 0 || len(h["Content-Range"]) > 0 || !compressible(first(h["Content-Type"])) {
		return false
	}
	for _, v := range h["Cache-Control"] {
		if strings.Contains(strings.ToLower(v), "no-transform") {
			return false
		}
	}
	if cl := first(h["Content-Length"]); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n < cfg.MinSize {
			return false
		}
	}
	return true
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// startCompression sets the headers of a response the host compresses
// with enc: Content-Encoding, Vary, no Content-Length, a weak ETag (the
// bytes are not the app's).
func startCompression(h http.Header, enc *encoding) {
	h["Content-Encoding"] = []string{enc.name}
	delete(h, "Content-Length")
	if et := first(h["Etag"]); et != "" && !strings.HasPrefix(et, "W/") {
		h["Etag"] = []string{"W/" + et}
	}
}

// addVary adds Accept-Encoding to the response's Vary, once.
func addVary(h http.Header) {
	for _, v := range h["Vary"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return
			}
		}
	}
	h["Vary"] = append(h["Vary"], "Accept-Encoding")
}

// compressor is a response being compressed: the encoder writes to the
// client, and goes back to its pool once closed.
type compressor struct {
	enc  encoder
	from *encoding
}

func (c *compressor) Write(p []byte) (int, error) { return c.enc.Write(p) }

// close ends the compressed stream and returns the encoder to its pool.
func (c *compressor) close() error {
	err := c.enc.Close()
	c.enc.Reset(io.Discard)
	c.from.pool.Put(c.enc)
	return err
}
