package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes data, placeholders expanded, to path.
func (th *testHost) writeFile(path, data string) {
	th.t.Helper()
	mustDo(th.t, os.MkdirAll(filepath.Dir(path), 0o755))
	mustDo(th.t, os.WriteFile(path, []byte(expand(th.t, data)), 0o644))
}

// waitRefusals waits until the log holds n reload refusals and returns
// the log.
func (th *testHost) waitRefusals(n int) string {
	th.t.Helper()
	waitFor(th.t, func() bool { return strings.Count(th.Logs.String(), "reload refused") >= n }, "a reload refusal")
	return th.Logs.String()
}

// TestReloadInclude adds, edits (a broken edit is refused with its own
// file's name and the old config kept) and removes an included file, and
// refuses an app declared in two files.
func TestReloadInclude(t *testing.T) {
	th := startHost(t, "listeners: [\"127.0.0.1:0\"]\ninclude: [\"apps.d/*.yaml\"]\n"+
		"apps:\n  main: {module: pidapp, dir: {{apps}}, python: {{python}}}\nmounts:\n  \"/main\": main\n")
	th.watch()
	blog := filepath.Join(th.dir, "apps.d", "blog.yaml")
	blogApp := "apps:\n  blog: {module: pidapp, dir: {{apps}}, python: {{python}}%s}\nmounts:\n  \"%s\": blog\n"

	gen := th.Generation()
	th.writeFile(blog, sprintf(blogApp, "", "/blog"))
	gen = th.waitGeneration(gen)
	if code, _ := th.get("/blog/"); code != 200 {
		t.Fatalf("GET /blog/ after adding apps.d/blog.yaml: %d", code)
	}

	th.writeFile(blog, sprintf(blogApp, ", workers: zero", "/blog"))
	logs := th.waitRefusals(1)
	if !strings.Contains(logs, "apps.d/blog.yaml:2:") {
		t.Errorf("the refusal does not name apps.d/blog.yaml:2:\n%s", logs)
	}
	if th.Generation() != gen {
		t.Fatal("a broken included file was applied")
	}
	if code, _ := th.get("/blog/"); code != 200 {
		t.Errorf("GET /blog/ after a broken edit: %d, want the old config's 200", code)
	}

	th.writeFile(blog, sprintf(blogApp, "", "/blog2"))
	gen = th.waitGeneration(gen)
	if code, _ := th.get("/blog2/"); code != 200 {
		t.Errorf("GET /blog2/ after fixing apps.d/blog.yaml: %d", code)
	}

	dup := filepath.Join(th.dir, "apps.d", "dup.yaml")
	th.writeFile(dup, "apps:\n  main: {module: pidapp, dir: {{apps}}, python: {{python}}}\n")
	if logs := th.waitRefusals(2); !strings.Contains(logs, `apps.main: app \"main\" is also declared at `+th.path+":4:3") {
		t.Errorf("no duplicate app naming both files in the log:\n%s", logs)
	}

	mustDo(t, os.Remove(dup))
	mustDo(t, os.Remove(blog))
	waitFor(t, func() bool {
		code, _ := th.get("/blog2/")
		return code == 404
	}, "/blog2 gone after removing apps.d/blog.yaml")
}

// TestReloadEnvValues reads ${NAME} and ${NAME:-default} at start and at
// every reload; an unset variable without default is refused with its
// position, and the log never shows a value from the environment.
func TestReloadEnvValues(t *testing.T) {
	t.Setenv("GOWSGI_T_WORKERS", "2")
	t.Setenv("GOWSGI_T_SECRET", "s3cr3t-value")
	conf := "listeners: [\"127.0.0.1:0\"]\n" +
		"apps:\n  app:\n    module: pidapp\n    dir: {{apps}}\n    python: {{python}}\n    workers: %s\n    env: {X: \"${GOWSGI_T_SECRET}\"}\n" +
		"mounts:\n  \"%s\": app\n"
	th := startHost(t, sprintf(conf, "${GOWSGI_T_WORKERS}", "/a"))
	th.watch()
	if n := len(th.Pids("app")); n != 2 {
		t.Errorf("workers: ${GOWSGI_T_WORKERS} with 2: %d workers", n)
	}
	gen := th.Generation()

	th.writeConfig(sprintf(conf, "${GOWSGI_T_UNSET_WORKERS}", "/b"), true)
	logs := th.waitRefusals(1)
	if !strings.Contains(logs, "gowsgi.yaml:7:") || !strings.Contains(logs, "GOWSGI_T_UNSET_WORKERS is not set") {
		t.Errorf("the refusal does not name the variable and its place:\n%s", logs)
	}
	if th.Generation() != gen {
		t.Fatal("a config with an unset variable was applied")
	}

	th.writeConfig(sprintf(conf, "${GOWSGI_T_UNSET_WORKERS:-1}", "/b"), true)
	th.waitGeneration(gen)
	if code, _ := th.get("/b/"); code != 200 {
		t.Errorf("GET /b/ after the reload: %d", code)
	}
	if strings.Contains(th.Logs.String(), "s3cr3t-value") {
		t.Errorf("the log shows a value from the environment:\n%s", th.Logs.String())
	}
}
