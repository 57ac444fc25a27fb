package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gowsgi/gowsgi/host"
	"github.com/gowsgi/gowsgi/internal/testpython"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gowsgi-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gowsgi")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gowsgi: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	apps, _ := filepath.Abs("../../host/testdata/apps")
	yaml = strings.NewReplacer("{{apps}}", apps, "{{python}}", testpython.Path()).Replace(yaml)
	path := filepath.Join(dir, "gowsgi.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// server is a running gowsgi binary.
type server struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs []string
	done chan struct{}
}

// start runs gowsgi on a config and waits for its listening line.
func start(t *testing.T, cfgPath string, flags ...string) *server {
	t.Helper()
	return startArgs(t, append([]string{"-c", cfgPath, "-log-format", "json"}, flags...)...)
}

// startArgs runs gowsgi with exactly args and waits for its listening line.
func startArgs(t *testing.T, args ...string) *server {
	t.Helper()
	return startBinary(t, binary, args...)
}

// startBinary runs the gowsgi at path bin with args and waits for its
// listening line.
func startBinary(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	return startCmd(t, exec.Command(bin, args...))
}

// startCmd runs cmd, a gowsgi, and waits for its listening line.
func startCmd(t *testing.T, cmd *exec.Cmd) *server {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs = append(s.logs, line)
			s.mu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "listening" {
				select {
				case addr <- m["addr"].(string):
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		cmd.Wait()
		if t.Failed() || os.Getenv("GOWSGI_TEST_LOG") != "" {
			t.Logf("gowsgi log:\n%s", s.log())
		}
	})
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		t.Fatalf("gowsgi exited before listening:\n%s", s.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("gowsgi did not start listening:\n%s", s.log())
	}
	return s
}

// workerPids reads the pids of the workers from the "app started" lines.
func (s *server) workerPids(t *testing.T) []int {
	var pids []int
	for _, line := range strings.Split(s.log(), "\n") {
		var m struct {
			Message string
			Pids    []int
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Message == "app started" {
			pids = append(pids, m.Pids...)
		}
	}
	return pids
}

// logField waits for the log line with message and returns its field key.
func (s *server) logField(t *testing.T, message, key string) string {
	t.Helper()
	var v string
	waitFor(t, func() bool {
		for _, line := range strings.Split(s.log(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == message {
				v, _ = m[key].(string)
				return true
			}
		}
		return false
	}, "the log line "+message)
	return v
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.logs, "\n")
}

func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wait waits for the process to exit and returns its exit code.
func (s *server) wait(t *testing.T) int {
	t.Helper()
	<-s.done
	err := s.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func alive(pid int) bool {
	// A zombie still answers kill(0); look at its state too.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("worker %d still running", pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

const serveConfig = `
listeners: ["127.0.0.1:0"]
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}, workers: 2}
mounts:
  "/": basic
shutdown_timeout: 20s
`

func TestBadConfigExits1WithEveryProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeConfig(t, dir, `
listeners: ["127.0.0.1:99999"]
apps:
  basic: {module: basic, workers: 0}
  other: {python: python3}
mounts:
  "/": basci
  "/x": basic
  "/x/": basic
unknown: 1
`)
	cmd := exec.Command(binary, "-c", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit status 1; output:\n%s", err, out)
	}
	want := []string{
		path + `:2:13: listeners[0]: invalid address "127.0.0.1:99999"`,
		path + `:4:35: apps.basic.workers: must be an integer from 1 to 1024`,
		path + `:5:3: apps.other: missing required key "module"`,
		path + `:7:8: mounts."/": unknown app "basci" (did you mean "basic"?)`,
		path + `:9:3: mounts."/x/": duplicate mount, first at ` + path + `:8:3`,
		path + `:10:1: unknown key "unknown"`,
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: want prefix %q\n%s", i+1, w, out)
		}
	}
}

func TestListenerInUseExits1(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, writeConfig(t, dir, serveConfig))
	addr := strings.TrimPrefix(s.url, "http://")
	dir2 := t.TempDir()
	path := writeConfig(t, dir2, strings.Replace(serveConfig, "127.0.0.1:0", addr, 1))
	out, err := exec.Command(binary, "-c", path).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Errorf("second gowsgi on a used port: %v\n%s", err, out)
	}
}

func TestSIGTERMFinishesInFlightAndExits0(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, writeConfig(t, dir, serveConfig))
	pids := s.workerPids(t)
	if len(pids) != 2 {
		t.Fatalf("worker pids %v, want 2", pids)
	}
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	meet := t.TempDir()
	go func() {
		resp, err := http.Get(s.url + "/rendezvous?dir=" + meet + "&me=a&peer=b")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	// The app marks the request present (file a) and waits for file b.
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(meet, "a")); return err == nil }, "the request to reach the app")
	s.cmd.Process.Signal(syscall.SIGTERM)
	// The listener closes (new connections are refused) while the request
	// is still in flight: it cannot end before file b exists. ("shutting
	// down" is logged just before the listeners close.)
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.url, "http://"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, "the listener to refuse new connections")
	select {
	case r := <-res:
		t.Fatalf("the in-flight request ended before it was let go: %d %q %v", r.code, r.body, r.err)
	default:
	}
	os.WriteFile(filepath.Join(meet, "b"), nil, 0o644)
	r := <-res
	if r.err != nil || r.code != 200 || !strings.HasPrefix(r.body, "met ") {
		t.Errorf("in-flight request across SIGTERM: %d %q %v", r.code, r.body, r.err)
	}
	if code := s.wait(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	waitGone(t, pids...)
}

// TestSIGTERMAbandonsReload: SIGTERM while a reload waits for an app to
// import (testdata/apps/gated.py, which waits until told) ends the reload
// and the importing process at once: /readyz answers 503 from the signal
// on, and gowsgi exits 0 without waiting for the import.
func TestSIGTERMAbandonsReload(t *testing.T) {
	t.Parallel()
	dir, gate := t.TempDir(), t.TempDir()
	cfg := serveConfig + "admin: \"127.0.0.1:0\"\n"
	s := start(t, writeConfig(t, dir, cfg), "-watch=false")
	admin := s.logField(t, "admin listening", "addr")
	writeConfig(t, dir, strings.Replace(cfg, "mounts:", "  gated: {module: gated, dir: {{apps}}, python: {{python}}, env: {GOWSGI_TEST_GATE: "+gate+"}}\nmounts:", 1))
	s.cmd.Process.Signal(syscall.SIGHUP)
	var pid int
	waitFor(t, func() bool {
		b, err := os.ReadFile(filepath.Join(gate, "importing"))
		pid, _ = strconv.Atoi(string(b))
		return err == nil && pid > 0
	}, "the reload to import the gated app")

	s.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, func() bool { return strings.Contains(s.log(), "shutting down") }, "the shutdown to begin")
	if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("/readyz after SIGTERM: %d, want 503", resp.StatusCode)
		}
	}
	if code := s.wait(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(gate, "imported")); err == nil {
		t.Error("gowsgi waited for the import of the app being added before it exited")
	}
	waitGone(t, pid)
}

func TestSIGHUPReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeConfig(t, dir, serveConfig)
	s := start(t, path, "-watch=false")
	writeConfig(t, dir, strings.Replace(serveConfig, `"/": basic`, `"/only": basic`, 1))
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool {
		code, _ := s.get(t, "/")
		return code == 404
	}, "the reload")
	if code, body := s.get(t, "/only/"); code != 200 || body != "basic ok" {
		t.Errorf("after SIGHUP: %d %q", code, body)
	}
}

func TestWorkersDieWithKilledHost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, writeConfig(t, dir, serveConfig))
	_, body := s.get(t, "/pid")
	pid, _ := strconv.Atoi(body)
	s.cmd.Process.Kill()
	s.wait(t)
	waitGone(t, pid)
}

// TestPreloadedWorkersDieWithKilledHost checks that SIGKILL of the host
// takes a preloaded app's template and its forked workers with it.
func TestPreloadedWorkersDieWithKilledHost(t *testing.T) {
	dir := t.TempDir()
	s := start(t, writeConfig(t, dir, strings.Replace(serveConfig, "workers: 2}", "workers: 2, preload: true}", 1)))
	_, body := s.get(t, "/pid")
	pid, _ := strconv.Atoi(body)
	stat, err := os.ReadFile("/proc/" + body + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	template, _ := strconv.Atoi(fields[1])
	if template == s.cmd.Process.Pid {
		t.Fatalf("worker %d is the host's child, not a fork of a template", pid)
	}
	s.cmd.Process.Kill()
	s.wait(t)
	waitGone(t, pid, template)
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"help"}, {"serve", "-h"}, {"check", "-h"}} {
		stdout, stderr, code := runGowsgi(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d, want 0\n%s", args, code, stderr)
		}
		for _, want := range []string{
			"-c file", "-log-level", "-log-format", "-watch",
			"gowsgi [serve]", "gowsgi check", "gowsgi version", "gowsgi help",
			"Exit codes", "0  clean shutdown", "1  invalid config", "check failed", "2  bad usage",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v does not document %q:\n%s", args, want, stdout)
			}
		}
	}
}

func TestBadUsageExits2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"frobnicate"}, {"-nope"}, {"check", "-nope"}, {"-c", "x.yaml", "check"}, {"version", "extra"}} {
		stdout, stderr, code := runGowsgi(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "Usage:") {
			t.Errorf("%v: exit %d, want 2 with the usage on stderr\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
		}
	}
	if _, stderr, _ := runGowsgi(t, "frobnicate"); !strings.HasPrefix(stderr, `gowsgi: unknown command "frobnicate"`) {
		t.Errorf("unknown command: %s", stderr)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runGowsgi(t, "version")
	want := regexp.MustCompile(`^gowsgi ` + regexp.QuoteMeta(host.Version) + `(\+[0-9a-f]{1,12}(\.dirty)?)? \(` +
		regexp.QuoteMeta(runtime.Version()) + `, ` + runtime.GOOS + `/` + runtime.GOARCH + `\)\n$`)
	if code != 0 || !want.MatchString(stdout) {
		t.Errorf("version: exit %d, output %q, want match %s\n%s", code, stdout, want, stderr)
	}
}

func TestServeCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startArgs(t, "serve", "-c", writeConfig(t, dir, serveConfig), "-log-format", "json")
	if code, body := s.get(t, "/"); code != 200 || body != "basic ok" {
		t.Errorf("gowsgi serve: %d %q", code, body)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

func TestCheckGoodConfig(t *testing.T) {
	t.Parallel()
	// The listeners are in use: check must not try to open them.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	sock := filepath.Join(dir, "gowsgi.sock")
	path := writeConfig(t, dir, `
listeners: ["`+busy.Addr().String()+`", "unix:`+sock+`"]
apps:
  basic: {module: basic, dir: {{apps}}, python: {{python}}, workers: 3}
  threaded: {module: "basic:application", dir: {{apps}}, python: {{python}}, threads: 4, env: {X: "1"}}
  assets: {static: .}
mounts:
  "/": basic
  "/t": threaded
  "/static": assets
`)
	stdout, stderr, code := runGowsgi(t, "check", "-c", path)
	want := fmt.Sprintf("app basic: OK (module basic:application, python %[1]s)\n"+
		"app threaded: OK (module basic:application, python %[1]s)\n"+
		"app assets: OK (static %[2]s)\n", checkedPython(), dir)
	if code != 0 || stdout != want {
		t.Errorf("check: exit %d, want 0\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("check created the unix socket %s (%v)", sock, err)
	}
}

func TestCheckBrokenAppBesideGoodOnes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeConfig(t, dir, `
listeners: ["127.0.0.1:0"]
apps:
  first: {module: basic, dir: {{apps}}, python: {{python}}}
  broken: {module: broken, dir: {{apps}}, python: {{python}}}
  syntax: {module: syntax_error, dir: {{apps}}, python: {{python}}}
  nocallable: {module: no_callable, dir: {{apps}}, python: {{python}}}
  nopython: {module: basic, dir: {{apps}}, python: /nonexistent/python3}
  last: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/": first
`)
	stdout, stderr, code := runGowsgi(t, "check", "-c", path)
	if code != 1 {
		t.Errorf("check: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	// Each app's report starts with an unindented line, in config order;
	// what follows it is indented.
	var reports []string
	for _, line := range strings.SplitAfter(stdout, "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "    ") && len(reports) > 0 {
			reports[len(reports)-1] += line
		} else {
			reports = append(reports, line)
		}
	}
	ok := "OK (module basic:application, python " + checkedPython() + ")\n"
	want := []struct{ head, detail string }{
		{"app first: " + ok, ""},
		{"app broken: FAILED\n", "    ImportError: broken on purpose\n"},
		{"app syntax: FAILED\n", "    SyntaxError: "},
		{"app nocallable: FAILED\n", "    AttributeError: module 'no_callable' has no attribute 'application'\n"},
		{"app nopython: FAILED\n", "/nonexistent/python3"},
		{"app last: " + ok, ""},
	}
	if len(reports) != len(want) {
		t.Fatalf("got %d reports, want %d:\n%s", len(reports), len(want), stdout)
	}
	for i, w := range want {
		r := reports[i]
		if !strings.HasPrefix(r, w.head) || !strings.Contains(r, w.detail) {
			t.Errorf("report %d:\n%s\nwant it to start with %q and contain %q", i+1, r, w.head, w.detail)
		}
		if w.detail == "" && r != w.head {
			t.Errorf("report %d has more than its line:\n%s", i+1, r)
		}
	}
	if !strings.Contains(reports[1], "    Traceback (most recent call last):\n") ||
		!strings.Contains(reports[1], `raise ImportError("broken on purpose")`) {
		t.Errorf("broken app: no indented traceback:\n%s", reports[1])
	}
}

func TestCheckAppThatExitsShowsItsOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := "import os, sys\nprint('importing die')\nsys.stderr.write('about to exit\\n')\nsys.stderr.flush()\nos._exit(3)\n"
	if err := os.WriteFile(filepath.Join(dir, "die.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, dir, `
listeners: ["127.0.0.1:0"]
apps:
  die: {module: die, python: {{python}}}
mounts:
  "/": die
`)
	stdout, stderr, code := runGowsgi(t, "check", "-c", path)
	want := "app die: FAILED\n" +
		"    app \"die\": worker exited while loading the app (exit status 3)\n" +
		"    output:\n" +
		"      importing die\n" +
		"      about to exit\n"
	if code != 1 || stdout != want {
		t.Errorf("check: exit %d, want 1\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
}

func TestCheckInvalidConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeConfig(t, dir, `
listeners: ["127.0.0.1:0"]
apps:
  basic: {module: basic, workers: 0, dir: {{apps}}, python: {{python}}}
mounts:
  "/": basci
`)
	stdout, stderr, code := runGowsgi(t, "check", "-c", path)
	want := []string{
		path + `:4:35: apps.basic.workers: must be an integer from 1 to 1024`,
		path + `:6:8: mounts."/": unknown app "basci" (did you mean "basic"?)`,
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || stdout != "" || len(lines) != len(want) {
		t.Fatalf("check: exit %d, want 1 and %d lines on stderr\nstdout:\n%s\nstderr:\n%s", code, len(want), stdout, stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want prefix %q", i+1, lines[i], w)
		}
	}
}

// checkedPython is testPython as check reports it: a bare command name
// resolved on PATH.
func checkedPython() string {
	p := testpython.Path()
	if !strings.Contains(p, "/") {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return p
}

// runGowsgi runs the binary to completion and returns its output and exit code.
func runGowsgi(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut strings.Builder
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("gowsgi %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTricklingClientsLeaveMemoryBounded: a thousand clients that trickle
// request bodies of just under 1 MiB hold no worker and little memory: the
// host stays under 150 MiB of RSS, keeps serving other clients, and its
// admin listener keeps answering.
func TestTricklingClientsLeaveMemoryBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.py"), []byte(`
def application(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`), 0o644)
	cfg := writeConfig(t, dir, `
listeners: ["127.0.0.1:0"]
admin: "127.0.0.1:0"
apps:
  app: {module: app, python: `+checkedPython()+`}
mounts:
  "/": app
`)
	s := start(t, cfg)
	adminURL := s.adminURL(t)
	addr := strings.TrimPrefix(s.url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	chunk := strings.Repeat("a", 16<<10)
	for range 1000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n%s", chunk)
	}
	for _, c := range conns { // a second piece of each body: they keep trickling
		io.WriteString(c, chunk)
	}
	if code, body := s.get(t, "/"); code != 200 || body != "ok" {
		t.Errorf("beside 1000 trickling clients: %d %q", code, body)
	}
	if resp, err := http.Get(adminURL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("admin beside 1000 trickling clients: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if rss := vmRSS(t, s.cmd.Process.Pid); rss > 150<<20 {
		t.Errorf("host RSS %d MiB with 1000 trickling clients, want under 150 MiB", rss>>20)
	} else {
		t.Logf("host RSS %d MiB with 1000 trickling clients", rss>>20)
	}
}

// vmRSS returns a process's resident memory in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestSocketActivation: with sockets passed as systemd does (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES, from fd 3), a listener whose address (or
// name) matches takes the passed socket instead of binding: here the
// test still holds the port, so binding would fail.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.py"), []byte(`
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"activated"]
`), 0o644)
	cfg := writeConfig(t, dir, `
listeners: ["`+ln.Addr().String()+`"]
apps:
  app: {module: app, python: `+checkedPython()+`}
mounts:
  "/": app
`)
	// LISTEN_PID must be the server's own pid: a shell sets it, then execs.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, binary, "-c", cfg, "-log-format", "json")
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
	cmd.ExtraFiles = []*os.File{f}
	s := startCmd(t, cmd)
	if code, body := s.get(t, "/"); code != 200 || body != "activated" {
		t.Errorf("through the activated socket: %d %q", code, body)
	}
	if !strings.Contains(s.log(), "listening sockets inherited") {
		t.Error("the activation is not logged")
	}
}

// TestBinaryUpgrade: SIGUSR2 starts a new gowsgi on the same sockets;
// once it serves, the old one drains and exits; a client loading the
// server all along sees no failed request.
func TestBinaryUpgrade(t *testing.T) {
	dir := t.TempDir()
	s := start(t, writeConfig(t, dir, serveConfig+"admin: \"127.0.0.1:0\"\n"))
	old := s.cmd.Process.Pid
	adminURL := s.adminURL(t)
	var ok, failed atomic.Int64
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			resp, err := client.Get(s.url + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}
	}()
	waitFor(t, func() bool { return ok.Load() > 20 }, "load before the upgrade")
	s.cmd.Process.Signal(syscall.SIGUSR2)
	var newPid int
	waitFor(t, func() bool {
		for _, line := range strings.Split(s.log(), "\n") {
			var m struct {
				Message string
				Pid     int
			}
			if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(m.Message, "upgraded:") {
				newPid = m.Pid
			}
		}
		return newPid != 0
	}, "the new gowsgi to serve")
	t.Cleanup(func() { syscall.Kill(newPid, syscall.SIGKILL); waitGone(t, newPid) })
	waitFor(t, func() bool { return !alive(old) }, "the old gowsgi to exit")
	before := ok.Load()
	waitFor(t, func() bool { return ok.Load() > before+20 }, "load after the upgrade")
	close(stopLoad)
	<-loadDone
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed across the upgrade", n, n+ok.Load())
	}
	// The admin socket was handed over too: the same address answers.
	if resp, err := http.Get(adminURL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("admin after the upgrade: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// adminURL waits for the "admin listening" line and returns its URL.
func (s *server) adminURL(t *testing.T) string {
	t.Helper()
	var url string
	waitFor(t, func() bool {
		for _, line := range strings.Split(s.log(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "admin listening" {
				url = "http://" + m["addr"].(string)
			}
		}
		return url != ""
	}, "the admin address")
	return url
}
