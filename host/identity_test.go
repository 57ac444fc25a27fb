package host

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestAppIdentityAndLimits: an app with user, group, umask and
// max_open_files runs its workers as that user, unable to read a file
// only the host's user can, with that mask, and stopped at that many
// open files; an app without them runs as the host.
func TestAppIdentityAndLimits(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run workers as another user")
	}
	t.Parallel()
	// The app's folder must be open to nobody wherever the checkout is:
	// a copy of the app in a temporary folder open to all.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	src, err := os.ReadFile(filepath.Join(appsDir(t), "basic.py"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "basic.py"), src, 0o644)
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("host only"), 0o600); err != nil {
		t.Fatal(err)
	}
	th := startHost(t, `
listeners: ["127.0.0.1:0"]
apps:
  team: {module: basic, dir: `+dir+`, python: {{python}}, user: nobody, group: nogroup, umask: "0077", max_open_files: 64}
  host: {module: basic, dir: {{apps}}, python: {{python}}}
mounts:
  "/team": team
  "/host": host
`)
	var team, host struct {
		UID, GID, Umask, Opened int
		Readable                *bool
	}
	for _, c := range []struct {
		path string
		into any
	}{{"/team/identity?path=" + secret, &team}, {"/host/identity?path=" + secret, &host}} {
		code, body := th.get(c.path)
		if code != 200 || json.Unmarshal([]byte(body), c.into) != nil {
			t.Fatalf("%s: %d %q", c.path, code, body)
		}
	}
	if team.UID != 65534 || team.GID != 65534 || team.Umask != 0o077 || team.Readable == nil || *team.Readable || team.Opened >= 64 {
		t.Errorf("team app: %+v (readable %v), want nobody:nogroup, umask 077, the secret unreadable, under 64 files", team, deref(team.Readable))
	}
	if host.UID != 0 || host.Readable == nil || !*host.Readable || host.Opened < 64 {
		t.Errorf("host app: %+v (readable %v), want root, the secret readable", host, deref(host.Readable))
	}
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
