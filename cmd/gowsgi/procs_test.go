package main

import "testing"

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
