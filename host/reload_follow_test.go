package host

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// followConfig is a config whose one app is mounted at mount.
func followConfig(t *testing.T, mount string) []byte {
	return []byte(expand(t, "listeners: [\"127.0.0.1:0\"]\n"+
		"apps:\n  app: {module: pidapp, dir: {{apps}}, python: {{python}}}\n"+
		"mounts:\n  \""+mount+"\": app\n"))
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReloadConfigMapSwap serves a config mounted as a Kubernetes
// ConfigMap volume lays it out, and updates it as the kubelet does: the
// new mount must be served without a restart.
func TestReloadConfigMapSwap(t *testing.T) {
	vol := t.TempDir()
	mustDo(t, os.Mkdir(filepath.Join(vol, "..2026_a"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(vol, "..2026_a", "gowsgi.yaml"), followConfig(t, "/a"), 0o644))
	mustDo(t, os.Symlink("..2026_a", filepath.Join(vol, "..data")))
	mustDo(t, os.Symlink("..data/gowsgi.yaml", filepath.Join(vol, "gowsgi.yaml")))
	th := startHostFile(t, filepath.Join(vol, "gowsgi.yaml"))
	th.watch()
	gen := th.Generation()

	mustDo(t, os.Mkdir(filepath.Join(vol, "..2026_b"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(vol, "..2026_b", "gowsgi.yaml"), followConfig(t, "/b"), 0o644))
	mustDo(t, os.Symlink("..2026_b", filepath.Join(vol, "..data_tmp")))
	mustDo(t, os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")))
	mustDo(t, os.RemoveAll(filepath.Join(vol, "..2026_a")))
	th.waitGeneration(gen)
	if code, _ := th.get("/b/"); code != 200 {
		t.Errorf("GET /b/ after the ConfigMap update: %d, want 200", code)
	}
	if code, _ := th.get("/a/"); code != 404 {
		t.Errorf("GET /a/ after the ConfigMap update: %d, want 404", code)
	}
}

// TestReloadReleaseSwap serves current/gowsgi.yaml and switches current
// from releases/1 to releases/2 with a rename, as deploy tools do.
func TestReloadReleaseSwap(t *testing.T) {
	root := t.TempDir()
	for i, mount := range []string{"/one", "/two"} {
		rel := filepath.Join(root, "releases", string(rune('1'+i)))
		mustDo(t, os.MkdirAll(rel, 0o755))
		mustDo(t, os.WriteFile(filepath.Join(rel, "gowsgi.yaml"), followConfig(t, mount), 0o644))
	}
	mustDo(t, os.Symlink("releases/1", filepath.Join(root, "current")))
	th := startHostFile(t, filepath.Join(root, "current", "gowsgi.yaml"))
	th.watch()
	gen := th.Generation()

	mustDo(t, os.Symlink("releases/2", filepath.Join(root, "current.new")))
	mustDo(t, os.Rename(filepath.Join(root, "current.new"), filepath.Join(root, "current")))
	th.waitGeneration(gen)
	if code, _ := th.get("/two/"); code != 200 {
		t.Errorf("GET /two/ after the release switch: %d, want 200", code)
	}
}

// sprintf is fmt.Sprintf for test configs.
func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
