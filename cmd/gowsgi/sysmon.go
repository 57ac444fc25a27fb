package main

import (
	"os"
	"strings"
	"syscall"
)

// Go's system monitor (sysmon) sleeps deeply whenever every Go thread is
// idle, and the next system call wakes it up again, after which it polls
// every 20 µs for a while. The host idles between requests whenever its
// workers are the slow part, so that happens about once per request: on a
// 2-CPU KVM guest it cost the host ~40 µs of CPU per Flask request (host
// 88 → 49 µs with it avoided, 7k → 9k requests/s, p99 5 → 3 ms).
//
// The only switch for it is GODEBUG=schedtrace, read once when the runtime
// starts: sysmon never sleeps deeply while a trace is due. With the longest
// period (2^31-1 ms, 24.8 days) it then wakes at most every 10 ms when idle,
// and prints one scheduler line to stderr each time the system's uptime
// passes a multiple of that period (and the scheduler's state after a
// fatal runtime error, beside the usual traceback). So `gowsgi serve` executes itself once
// more with it set, unless GODEBUG already sets schedtrace (the user's
// choice stands: schedtrace=0 opts out). The re-executed host puts
// GODEBUG back as it was, so that workers and their apps never see it.
const (
	sysmonSetting = "schedtrace=2147483647"
	// savedGodebugEnv carries the user's GODEBUG across the re-execution:
	// "=" followed by its value, or empty if it was unset.
	savedGodebugEnv = "GOWSGI_SAVED_GODEBUG"
)

// sysmonExec returns the environment to re-execute the host with, or nil
// if it runs as it should already (or was re-executed: it then restores
// GODEBUG in env through setenv/unsetenv).
func sysmonExec(environ []string, setenv func(k, v string), unsetenv func(k string)) []string {
	saved, resumed := lookup(environ, savedGodebugEnv)
	if resumed {
		unsetenv(savedGodebugEnv)
		if v, ok := strings.CutPrefix(saved, "="); ok {
			setenv("GODEBUG", v)
		} else {
			unsetenv("GODEBUG")
		}
		return nil
	}
	godebug, set := lookup(environ, "GODEBUG")
	for _, kv := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "schedtrace=") {
			return nil
		}
	}
	out := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			out = append(out, kv)
		}
	}
	if set {
		out = append(out, savedGodebugEnv+"=="+godebug)
		// Settings are read left to right; the user's come after ours.
		return append(out, "GODEBUG="+sysmonSetting+","+godebug)
	}
	return append(out, savedGodebugEnv+"=", "GODEBUG="+sysmonSetting)
}

// keepSysmonAwake re-executes the host with sysmonSetting if it does not
// run with it yet; it returns only if that is not needed or cannot be
// done (the host then runs as is).
func keepSysmonAwake() {
	env := sysmonExec(os.Environ(), func(k, v string) { os.Setenv(k, v) }, func(k string) { os.Unsetenv(k) })
	if env == nil {
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	syscall.Exec(self, os.Args, env) // returns only on failure
}

// lookup finds key's value in an environment list.
func lookup(environ []string, key string) (string, bool) {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], key+"="); ok {
			return v, true
		}
	}
	return "", false
}
