package host

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium returns the path of a Chromium to drive headless, or skips the
// test (fails it with GOWSGI_REQUIRE_CHROMIUM=1, as in CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("GOWSGI_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); set GOWSGI_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

// runChromium runs headless Chromium with args and returns its stdout.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(),
		// Let the page's fetch of /status and its timers run before the dump.
		"--virtual-time-budget=5000"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestStatusPageInBrowser loads the admin status page in headless Chromium
// and checks that its script rendered /status: app names, worker pids and
// the generation are in the DOM, which has none of them before it runs.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	th := startHost(t, strings.Replace(observeConfig, "python: {{python}}}", "python: {{python}}, workers: 2}", 1))
	th.get("/app/pid")
	url := th.adminURL() + "/"
	dom := runChromium(t, bin, "--dump-dom", url)
	want := []string{"<td><b>basic</b>", "<td><b>files</b>", `id="generation">1<`, "<code>/app</code>", `<span class="ok">serving</span>`}
	for _, pid := range th.Pids("basic") {
		want = append(want, "<code>"+strconv.Itoa(pid)+"</code>")
	}
	for _, w := range want {
		if !strings.Contains(dom, w) {
			t.Errorf("rendered page lacks %q:\n%s", w, dom)
		}
	}
	if !strings.Contains(dom, `<div id="error"></div>`) {
		t.Errorf("the page could not fetch /status:\n%s", dom)
	}
	if shot := os.Getenv("GOWSGI_ADMIN_SCREENSHOT"); shot != "" {
		runChromium(t, bin, "--screenshot="+shot, "--window-size=1100,800", "--hide-scrollbars", url)
		t.Logf("screenshot in %s", shot)
	}
}
