package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestHostProcs(t *testing.T) {
	tests := []struct {
		env     string
		cpus    int
		want    int
		wantSet bool
	}{
		{"", 1, 1, true},
		{"", 2, 1, true},
		{"", 3, 2, true},
		{"", 8, 4, true},
		{"", 64, 32, true},
		{"2", 2, 0, false}, // the user's choice stands
		{"1", 8, 0, false},
		{"0", 4, 2, true}, // not a valid GOMAXPROCS: Go would ignore it too
		{"many", 4, 2, true},
	}
	for _, tt := range tests {
		n, set := hostProcs(tt.env, tt.cpus)
		if n != tt.want || set != tt.wantSet {
			t.Errorf("hostProcs(%q, %d) = %d, %v; want %d, %v", tt.env, tt.cpus, n, set, tt.want, tt.wantSet)
		}
	}
}

// TestBinaryGoThreads reads the Go thread count the real binary logs at
// start: GOMAXPROCS from the environment, else at most half the CPUs.
func TestBinaryGoThreads(t *testing.T) {
	half := max(1, (runtime.NumCPU()+1)/2)
	for _, env := range []string{"3", ""} {
		t.Run("GOMAXPROCS="+env, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", env)
			s := start(t, writeConfig(t, t.TempDir(), serveConfig), "-log-level", "debug")
			got := -1
			for _, line := range strings.Split(s.log(), "\n") {
				var m struct {
					Message    string
					Gomaxprocs int
				}
				if json.Unmarshal([]byte(line), &m) == nil && m.Message == "Go threads" {
					got = m.Gomaxprocs
				}
			}
			switch {
			case env == "3" && got != 3:
				t.Errorf("GOMAXPROCS=3: the host runs %d Go threads", got)
			case env == "" && (got < 1 || got > half):
				t.Errorf("no GOMAXPROCS: the host runs %d Go threads, want 1 to %d of %d CPUs", got, half, runtime.NumCPU())
			}
		})
	}
}
