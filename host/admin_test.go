package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adminTokenConfig has an admin listener whose token is in the file
// {{token}}; the app is static, so no Python is needed.
const adminTokenConfig = `
listeners: ["127.0.0.1:0"]
admin: {addr: "127.0.0.1:0", token_file: {{token}}}
apps:
  files: {static: {{apps}}}
mounts:
  "/files": files
`

// writeToken writes tok into a file of its own and returns its path.
func writeToken(t *testing.T, tok string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	const tok = "0123456789abcdef0123456789abcdef"
	tokenFile := writeToken(t, tok)
	th := startHost(t, strings.ReplaceAll(adminTokenConfig, "{{token}}", tokenFile))
	url := th.adminURL()
	tests := []struct {
		path, authorization string
		code                int
	}{
		{"/status", "", 401},
		{"/status", "Bearer " + tok, 200},
		{"/status", "bearer  " + tok + " ", 200},
		{"/status", "Bearer " + tok[:len(tok)-1], 401},
		{"/status", "Bearer " + tok + "0", 401},
		{"/status", "Bearer", 401},
		{"/status", "Basic " + tok, 401},
		{"/status", tok, 401},
		{"/metrics", "", 401},
		{"/metrics", "Bearer " + tok, 200},
		{"/", "", 401},
		{"/", "Bearer " + tok, 200},
		{"/nope", "", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/readyz", "Bearer wrong", 200},
		{"/livez", "", 200},
	}
	for _, tt := range tests {
		resp, _ := fetch(t, url+tt.path, "Authorization", tt.authorization)
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s with %q: %d, want %d", tt.path, tt.authorization, resp.StatusCode, tt.code)
		}
		if got := resp.Header.Get("WWW-Authenticate"); (tt.code == 401) != (got == "Bearer") {
			t.Errorf("GET %s with %q: WWW-Authenticate %q", tt.path, tt.authorization, got)
		}
	}

	// A reload takes a new token on the same socket; without one, the
	// listener is open again.
	const tok2 = "fedcba9876543210fedcba9876543210"
	if err := os.WriteFile(tokenFile, []byte(tok2), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		authorization string
		code          int
	}{{"Bearer " + tok, 401}, {"Bearer " + tok2, 200}} {
		if resp, _ := fetch(t, url+"/status", "Authorization", c.authorization); resp.StatusCode != c.code {
			t.Errorf("after the reload, /status with %q: %d, want %d", c.authorization, resp.StatusCode, c.code)
		}
	}
	th.writeConfig(strings.Replace(adminTokenConfig, "{addr: \"127.0.0.1:0\", token_file: {{token}}}", `"127.0.0.1:0"`, 1), false)
	if err := th.ReloadFile(th.path); err != nil {
		t.Fatal(err)
	}
	if resp, _ := fetch(t, url+"/status"); resp.StatusCode != 200 {
		t.Errorf("without a token, /status: %d, want 200", resp.StatusCode)
	}
	if logs := th.Logs.String(); strings.Contains(logs, tok) || strings.Contains(logs, tok2) {
		t.Errorf("the token is in the log:\n%s", logs)
	}
}

func TestAdminWarnsWhenExposed(t *testing.T) {
	t.Parallel()
	const noToken = "reachable from other hosts and has no token"
	const withToken = "reachable from other hosts; its token travels in clear text"
	tokenFile := writeToken(t, "0123456789abcdef0123456789abcdef")
	tests := []struct {
		name, admin, warning string
	}{
		{"loopback", `"127.0.0.1:0"`, ""},
		{"localhost", `"localhost:0"`, ""},
		{"unix socket", `"unix:admin.sock"`, ""},
		{"loopback with token", `{addr: "127.0.0.1:0", token_file: ` + tokenFile + `}`, ""},
		{"any IPv4", `"0.0.0.0:0"`, noToken},
		{"any address", `":0"`, noToken},
		{"any address with token", `{addr: ":0", token_file: ` + tokenFile + `}`, withToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			th := startHost(t, strings.Replace(adminTokenConfig, "{addr: \"127.0.0.1:0\", token_file: {{token}}}", tt.admin, 1))
			if err := th.ReloadFile(th.path); err != nil { // a reload warns again
				t.Fatal(err)
			}
			logs := th.Logs.String()
			n := strings.Count(logs, "the admin listener is reachable from other hosts")
			switch {
			case tt.warning == "" && n != 0:
				t.Errorf("warned about a private admin listener:\n%s", logs)
			case tt.warning != "" && (n != 2 || strings.Count(logs, tt.warning) != 2):
				t.Errorf("%d warnings, want 2 (start and reload) saying %q:\n%s", n, tt.warning, logs)
			}
		})
	}
}
