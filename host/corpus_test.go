package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The gunicorn request-parser corpus (see shared/corpus/gunicorn-requests/
// README.md) is replayed byte for byte against a real host serving the
// environ-echo example app at "/".

const (
	corpusPath     = "../../shared/corpus/gunicorn-requests/corpus.json"
	deviationsPath = "testdata/corpus_deviations.txt"
	corpusDeadline = 5 * time.Second
)

type corpusCase struct {
	Name     string         `json:"name"`
	Kind     string         `json:"kind"` // valid | invalid
	Cfg      map[string]any `json:"cfg"`
	Raw      corpusBytes    `json:"raw"`
	Requests []corpusReq    `json:"requests"`
	Error    string         `json:"error"`

	noHost bool // net/http answered "missing required Host header"
}

type corpusBytes struct {
	B64 []byte `json:"b64"` // encoding/json decodes base64 into []byte
}

type corpusReq struct {
	Method string `json:"method"`
	URI    struct {
		Raw   string `json:"raw"`
		Path  string `json:"path"`
		Query string `json:"query"`
	} `json:"uri"`
	Version [2]int      `json:"version"`
	Headers [][2]string `json:"headers"`
	Body    corpusBytes `json:"body"`
}

func (c *corpusCase) id() string { return c.Kind + "/" + c.Name }

// deviation is a line of testdata/corpus_deviations.txt: what gowsgi does
// instead of what the corpus expects from gunicorn.
//
//	skip          the case is not run
//	pass          the corpus expectation holds (a valid case with a cfg
//	              that gowsgi's fixed behaviour happens to satisfy)
//	close         no response at all, the connection is closed
//	S1[,S2...]    exactly these statuses in order, then nothing more; a 2xx
//	              must come from the app and anything else must not, unless
//	              written S:host (the host answered a 2xx itself)
type deviation struct {
	outcome string
	reason  string
}

func loadDeviations(t *testing.T) map[string]deviation {
	t.Helper()
	data, err := os.ReadFile(deviationsPath)
	if err != nil {
		t.Fatal(err)
	}
	devs := map[string]deviation{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		spec, reason, _ := strings.Cut(line, "#")
		reason = strings.TrimSpace(reason)
		f := strings.Fields(spec)
		if len(f) != 2 || reason == "" {
			t.Fatalf("%s:%d: want `<kind>/<name> <outcome> # reason`, got %q", deviationsPath, i+1, line)
		}
		if _, dup := devs[f[0]]; dup {
			t.Fatalf("%s:%d: %s listed twice", deviationsPath, i+1, f[0])
		}
		if _, err := parseOutcome(f[1]); err != nil {
			t.Fatalf("%s:%d: %v", deviationsPath, i+1, err)
		}
		devs[f[0]] = deviation{outcome: f[1], reason: reason}
	}
	return devs
}

// outcomeStep is one expected response of a deviation.
type outcomeStep struct {
	status int
	host   bool // a 2xx written by the host, not the app
}

// parseOutcome returns the responses of an "S1,S2" outcome (nil for close).
func parseOutcome(o string) ([]outcomeStep, error) {
	switch o {
	case "skip", "pass", "close":
		return nil, nil
	}
	var steps []outcomeStep
	for _, s := range strings.Split(o, ",") {
		code, who, _ := strings.Cut(s, ":")
		c, err := strconv.Atoi(code)
		if err != nil || c < 100 || c > 599 || (who != "" && (who != "host" || c/100 != 2)) {
			return nil, fmt.Errorf("bad outcome %q", o)
		}
		steps = append(steps, outcomeStep{status: c, host: who == "host"})
	}
	return steps, nil
}

// truncatedCases end in the middle of a message: gunicorn's parser meets
// the end of its input there, so the test half-closes the connection after
// sending them (else a server can only wait for the rest).
var truncatedCases = map[string]string{
	"invalid/001": "the header block is cut short",
	"invalid/rfc9112_chunked_missing_final_crlf_01": "the chunked body ends without the CRLF after the last chunk",
	"valid/099": "Content-Length is 17914 but only 8599 body bytes follow",
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	data, err := os.ReadFile(corpusPath)
	if err != nil {
		msg := fmt.Sprintf("gunicorn request corpus not available: %v (clone the shared data beside the repo)", err)
		if os.Getenv("GOWSGI_REQUIRE_CORPUS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set GOWSGI_REQUIRE_CORPUS=1 to make this a failure")
	}
	var cases []corpusCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("%s: %v", corpusPath, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", corpusPath)
	}
	return cases
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	cases := loadCorpus(t)
	devs := loadDeviations(t)
	known := map[string]bool{}
	for _, c := range cases {
		known[c.id()] = true
	}
	for id := range devs {
		if !known[strings.TrimSuffix(id, "+host")] {
			t.Errorf("%s lists %s, which is not in the corpus", deviationsPath, id)
		}
	}
	ran := map[string]bool{}

	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  echo: {module: echo, dir: "{{examples}}/echo", python: {{python}}, threads: 4}
mounts:
  "/": echo
`)
	addr := strings.TrimPrefix(th.URL, "http://")

	run := func(c *corpusCase) {
		t.Run(c.id(), func(t *testing.T) {
			ran[c.id()] = true
			if dev, ok := devs[c.id()]; ok {
				t.Logf("documented deviation: %s # %s", dev.outcome, dev.reason)
				runDeviation(t, addr, c, dev)
				return
			}
			switch {
			case c.Kind == "invalid":
				runInvalid(t, addr, c)
			case c.Kind == "valid" && len(c.Cfg) == 0:
				runValid(t, addr, c)
			case c.Kind == "valid":
				t.Errorf("valid case with cfg %v: list what gowsgi does in %s", c.Cfg, deviationsPath)
			default:
				t.Fatalf("unknown kind %q", c.Kind)
			}
		})
	}
	for i := range cases {
		c := &cases[i]
		run(c)
		// Many cases are HTTP/1.1 requests without Host, which net/http
		// refuses before looking at the rest; run them again with a Host
		// header so that what they are about is tested too.
		if c.noHost {
			if v := withHost(c); v != nil {
				run(v)
			}
		}
	}
	for id := range devs {
		if base, ok := strings.CutSuffix(id, "+host"); ok && ran[base] && !ran[id] {
			t.Errorf("%s lists %s, but %s did not fail for a missing Host", deviationsPath, id, base)
		}
	}
}

// corpusHost is the Host header added by withHost.
const corpusHost = "corpus.test"

// withHost returns c with "Host: corpus.test" added after each HTTP/1.1
// request line (a line ending in " HTTP/1.1" at the start of the input
// or after a LF), named <name>+host, or nil if there is no such line.
func withHost(c *corpusCase) *corpusCase {
	v := *c
	v.Name += "+host"
	v.noHost = false
	raw := c.Raw.B64
	var out []byte
	added := 0
	for len(raw) > 0 {
		line, rest, found := bytes.Cut(raw, []byte("\r\n"))
		out = append(out, line...)
		if found {
			out = append(out, "\r\n"...)
		}
		if found && bytes.HasSuffix(line, []byte(" HTTP/1.1")) && !bytes.Contains(line, []byte("\n")) &&
			(len(out) == len(line)+2 || bytes.HasSuffix(out[:len(out)-len(line)-2], []byte("\n"))) {
			out = append(out, "Host: "+corpusHost+"\r\n"...)
			added++
		}
		raw = rest
	}
	if added == 0 {
		return nil
	}
	v.Raw.B64 = out
	v.Requests = make([]corpusReq, len(c.Requests))
	for i, r := range c.Requests {
		hasHost := false
		for _, h := range r.Headers {
			hasHost = hasHost || h[0] == "HOST"
		}
		if r.Version == [2]int{1, 1} && !hasHost {
			r.Headers = append([][2]string{{"HOST", corpusHost}}, r.Headers...)
		}
		v.Requests[i] = r
	}
	return &v
}

// corpusConn is a connection that sent a case's raw bytes (half-closed
// after them for truncatedCases) and reads the responses.
type corpusConn struct {
	t    *testing.T
	conn *net.TCPConn
	br   *bufio.Reader
	c    *corpusCase
	n    int // responses read
}

func dialCorpus(t *testing.T, addr string, c *corpusCase) *corpusConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tc := conn.(*net.TCPConn)
	tc.SetDeadline(time.Now().Add(corpusDeadline))
	if _, err := tc.Write(c.Raw.B64); err != nil {
		t.Fatalf("write: %v", err)
	}
	if why, ok := truncatedCases[c.id()]; ok {
		t.Logf("half-closing after the request: %s", why)
		tc.CloseWrite()
	}
	return &corpusConn{t: t, conn: tc, br: bufio.NewReader(tc), c: c}
}

// echoed is what the echo app answers.
type echoed struct {
	Environ map[string]any `json:"environ"`
	Body    string         `json:"body"`
}

// corpusResp is one response read off the connection.
type corpusResp struct {
	status int
	body   []byte
	echo   *echoed // non-nil when the body is the echo app's JSON
}

func (r *corpusResp) String() string {
	b := r.body
	if len(b) > 200 {
		b = append(b[:200:200], "..."...)
	}
	return fmt.Sprintf("%d %q", r.status, b)
}

// next reads one response: nil, nil on a clean close (EOF or reset
// before any byte of a response).
func (cc *corpusConn) next() (*corpusResp, error) {
	if _, err := cc.br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil, nil
		}
		return nil, err
	}
	resp, err := http.ReadResponse(cc.br, nil)
	if err != nil {
		return nil, fmt.Errorf("response %d: %w", cc.n+1, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("response %d body: %w", cc.n+1, err)
	}
	cc.n++
	r := &corpusResp{status: resp.StatusCode, body: body}
	if r.status == 400 && bytes.Contains(body, []byte("missing required Host header")) {
		cc.c.noHost = true
	}
	var e echoed
	if json.Unmarshal(body, &e) == nil && e.Environ != nil {
		r.echo = &e
	}
	return r, nil
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "connection reset")
}

// expectClose checks that nothing follows: the host closes the
// connection. With halfClose the test first closes its side, so a
// keep-alive connection ends too but a pipelined request the host has yet
// to answer still shows up.
func (cc *corpusConn) expectClose(halfClose bool) {
	cc.t.Helper()
	if halfClose {
		cc.conn.CloseWrite()
	}
	r, err := cc.next()
	switch {
	case err != nil:
		cc.t.Errorf("after %d response(s), want the connection closed: %v", cc.n, err)
	case r != nil:
		cc.t.Errorf("after %d response(s), want the connection closed, got another response: %v", cc.n-1, r)
	}
}

func runValid(t *testing.T, addr string, c *corpusCase) {
	cc := dialCorpus(t, addr, c)
	for i := range c.Requests {
		want := &c.Requests[i]
		r, err := cc.next()
		if err != nil || r == nil {
			t.Fatalf("request %d (%s %s): no response: err=%v", i+1, want.Method, want.URI.Raw, err)
		}
		if r.status != 200 || r.echo == nil {
			t.Errorf("request %d (%s %s): want 200 from the echo app, got %v", i+1, want.Method, want.URI.Raw, r)
			continue
		}
		checkEcho(t, i+1, want, r.echo)
	}
	switch c.Name {
	case "019", "021": // HTTP/1.0 without keep-alive; Connection: close
		cc.expectClose(false)
	default:
		cc.expectClose(true)
	}
}

// checkEcho compares the environ and body the app saw with the corpus.
func checkEcho(t *testing.T, n int, want *corpusReq, got *echoed) {
	t.Helper()
	env := got.Environ
	check := func(key, wantV string) {
		t.Helper()
		v, ok := env[key].(string)
		if !ok {
			t.Errorf("request %d: environ[%s] missing (%v), want %q", n, key, env[key], wantV)
		} else if v != wantV {
			t.Errorf("request %d: environ[%s] = %q, want %q", n, key, v, wantV)
		}
	}
	check("REQUEST_METHOD", want.Method)
	check("SERVER_PROTOCOL", fmt.Sprintf("HTTP/%d.%d", want.Version[0], want.Version[1]))
	check("QUERY_STRING", want.URI.Query)
	check("PATH_INFO", latin1(percentDecode(want.URI.Path)))

	// Headers: duplicates joined in wire order ("," but "; " for Cookie).
	vals := map[string][]string{}
	var keys []string
	for _, h := range want.Headers {
		if h[0] == "TRANSFER-ENCODING" {
			// The host has de-chunked the body: the app gets its size as
			// CONTENT_LENGTH instead (as from waitress).
			check("CONTENT_LENGTH", strconv.Itoa(len(want.Body.B64)))
			if v, ok := env["HTTP_TRANSFER_ENCODING"]; ok {
				t.Errorf("request %d: environ[HTTP_TRANSFER_ENCODING] = %q, want none", n, v)
			}
			continue
		}
		k := "HTTP_" + strings.ReplaceAll(h[0], "-", "_")
		if h[0] == "CONTENT-TYPE" || h[0] == "CONTENT-LENGTH" {
			k = strings.ReplaceAll(h[0], "-", "_")
		}
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = append(vals[k], h[1])
	}
	for _, k := range keys {
		sep := ","
		if k == "HTTP_COOKIE" {
			sep = "; "
		}
		check(k, strings.Join(vals[k], sep))
	}
	if body := fromLatin1(got.Body); !bytes.Equal(body, want.Body.B64) {
		t.Errorf("request %d: app read body %q, want %q", n, body, want.Body.B64)
	}
	if t.Failed() {
		var ks []string
		for k, v := range env {
			if strings.HasPrefix(k, "HTTP_") || strings.HasPrefix(k, "CONTENT_") {
				ks = append(ks, fmt.Sprintf("%s=%q", k, v))
			}
		}
		sort.Strings(ks)
		t.Logf("request %d: app saw headers %s", n, strings.Join(ks, " "))
	}
}

// percentDecode turns a latin-1 str into bytes and decodes its %XX escapes.
func percentDecode(s string) []byte {
	b := fromLatin1(s)
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			v, _ := strconv.ParseUint(string(b[i+1:i+3]), 16, 8)
			out = append(out, byte(v))
			i += 2
			continue
		}
		out = append(out, b[i])
	}
	return out
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

// latin1 maps each byte to the rune of the same value.
func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// fromLatin1 maps each rune of a latin-1 str back to its byte (runes
// above U+00FF, which latin-1 cannot hold, become '?').
func fromLatin1(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			r = '?'
		}
		out = append(out, byte(r))
	}
	return out
}

// runInvalid expects a 4xx (or 501) or a close, never a call to the app,
// and nothing after the error (no smuggled second request).
func runInvalid(t *testing.T, addr string, c *corpusCase) {
	cc := dialCorpus(t, addr, c)
	for {
		r, err := cc.next()
		if err != nil {
			t.Fatalf("want a 4xx or a close (gunicorn: %s): %v", c.Error, err)
		}
		if r == nil {
			t.Logf("gunicorn: %s; gowsgi: %d response(s), then close", c.Error, cc.n)
			return
		}
		if r.echo != nil || !(r.status >= 400 && r.status < 500 || r.status == 501) {
			t.Fatalf("want a 4xx or a close without calling the app (gunicorn: %s), got response %d: %v", c.Error, cc.n, r)
		}
		t.Logf("gunicorn: %s; gowsgi: %v", c.Error, r)
		cc.conn.CloseWrite() // the rest must be refused or dropped too
	}
}

func runDeviation(t *testing.T, addr string, c *corpusCase, dev deviation) {
	switch dev.outcome {
	case "skip":
		t.Skip(dev.reason)
	case "pass":
		if c.Kind != "valid" {
			t.Fatalf("outcome pass is for valid cases")
		}
		runValid(t, addr, c)
		return
	}
	steps, _ := parseOutcome(dev.outcome)
	cc := dialCorpus(t, addr, c)
	for i, want := range steps {
		r, err := cc.next()
		if err != nil || r == nil {
			t.Fatalf("documented outcome %s: response %d missing (err=%v)", dev.outcome, i+1, err)
		}
		fromApp := want.status/100 == 2 && !want.host
		if r.status != want.status || (r.echo != nil) != fromApp {
			t.Errorf("documented outcome %s: response %d is %v (from the app: %v)", dev.outcome, i+1, r, r.echo != nil)
		}
	}
	cc.expectClose(len(steps) > 0 && steps[len(steps)-1].status/100 == 2)
}
