package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
)

// lines counts the log lines whose message is msg.
func (s *server) lines(msg string) int {
	n := 0
	for _, line := range strings.Split(s.log(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			n++
		}
	}
	return n
}

// TestLogConfig checks log.level and log.access from the config, the
// -log-level flag overriding the config, and a reload changing both.
func TestLogConfig(t *testing.T) {
	t.Parallel()
	debugCfg := strings.Replace(serveConfig, "shutdown_timeout", "log: {level: debug, format: console}\nshutdown_timeout", 1)
	tests := []struct {
		name      string
		flags     []string
		wantDebug bool
	}{
		{"config level", nil, true},
		{"flag overrides", []string{"-log-level", "info"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// start passes -log-format json, which overrides format: console.
			s := start(t, writeConfig(t, dir, debugCfg), append([]string{"-watch=false"}, tt.flags...)...)
			if code, _ := s.get(t, "/"); code != 200 {
				t.Fatalf("GET /: %d", code)
			}
			waitFor(t, func() bool { return s.lines("access") == 1 }, "the access line")
			if got := s.lines("request done") > 0; got != tt.wantDebug {
				t.Errorf("debug lines: %v, want %v", got, tt.wantDebug)
			}
			if tt.flags != nil {
				return
			}
			// Reload: level info, no access lines.
			writeConfig(t, dir, strings.Replace(serveConfig, "shutdown_timeout", "log: {level: info, access: false}\nshutdown_timeout", 1))
			s.cmd.Process.Signal(syscall.SIGHUP)
			waitFor(t, func() bool { return s.lines("config applied") == 2 }, "the reload")
			debugBefore := s.lines("request done")
			s.get(t, "/")
			s.get(t, "/")
			if n := s.lines("access"); n != 1 {
				t.Errorf("%d access lines after access: false, want 1", n)
			}
			if n := s.lines("request done"); n != debugBefore {
				t.Errorf("debug lines after level: info: %d, were %d", n, debugBefore)
			}
		})
	}
}
