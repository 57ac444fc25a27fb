//go:build gowsgiprof

package main

// Built only with -tags gowsgiprof: GOWSGI_CPUPROFILE=FILE writes a CPU
// profile of the whole run to FILE (stopped on the way out of serve).

import (
	"os"
	"runtime/pprof"
)

func init() {
	path := os.Getenv("GOWSGI_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
}
