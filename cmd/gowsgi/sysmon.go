package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Go's system monitor (sysmon) sleeps deeply whenever every Go thread is
// idle, and the next system call wakes it up again, after which it polls
// every 20 µs for a while. The host idles between requests whenever its
// workers are the slow part, so that happens about once per request: on a
// 2-CPU KVM guest it cost ~40 µs of CPU (host and worker together) per
// Flask request and ~6 µs per plain hello (medians of six alternating
// runs; the README's "Go's system monitor" has them).
//
// The only switch for it is GODEBUG=schedtrace, read once when the runtime
// starts: sysmon does not sleep deeply while schedtrace > 0. With the
// longest period (2^31-1 ms, 24.8 days) it then wakes at least every 10 ms
// (every 20 µs just after activity). The costs, which the README repeats:
//   - Go prints one plain-text "SCHED …" line to stderr, among the JSON
//     logs, each time the monotonic clock (time since boot, excluding
//     suspend) passes a multiple of 24.8 days: on a machine up longer than
//     that, at every start.
//   - A fatal runtime error (an unrecovered panic, a throw, a fatal signal
//     including SIGQUIT) prints the scheduler's state before anything else
//     (before the "panic:" line): every P, every M and at least one line
//     per connection. That takes the scheduler's lock, so a throw or fatal
//     signal on a thread that holds that lock — a runtime bug, thread
//     exhaustion (debug.SetMaxThreads), or bad timing — hangs the host
//     instead of letting it exit and be restarted.
//
// So `gowsgi serve`, once its config loads, executes itself once more with
// the setting, unless GODEBUG already sets schedtrace (the user's choice
// stands: schedtrace=0 opts out) or the config cannot be read twice (a
// pipe). The re-executed host puts GODEBUG back as it was, so that workers
// and their apps never see it.
const (
	sysmonSetting = "schedtrace=2147483647"
	// savedGodebugEnv carries the user's GODEBUG across the re-execution:
	// "=" followed by its value, or empty if it was unset.
	savedGodebugEnv = "GOWSGI_SAVED_GODEBUG"
)

// sysmonExec returns the environment to re-execute the host with, or nil
// if it runs as it should already (or was re-executed: it then restores
// GODEBUG through setenv/unsetenv). A savedGodebugEnv that the host did
// not set itself (GODEBUG does not start with the sysmonSetting entry) is
// dropped.
func sysmonExec(environ []string, setenv func(k, v string), unsetenv func(k string)) []string {
	godebug, set := lookup(environ, "GODEBUG")
	if saved, ok := lookup(environ, savedGodebugEnv); ok {
		unsetenv(savedGodebugEnv)
		if first, _, _ := strings.Cut(godebug, ","); first == sysmonSetting {
			if v, ok := strings.CutPrefix(saved, "="); ok {
				setenv("GODEBUG", v)
			} else {
				unsetenv("GODEBUG")
			}
			return nil
		}
	}
	for _, kv := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "schedtrace=") {
			return nil
		}
	}
	out := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, savedGodebugEnv+"=") {
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
// run with it yet. It returns only if that is not needed (nil) or cannot
// be done (the error; the host then runs as is). cfgPath must name a
// regular file, which the re-executed host can read again.
func keepSysmonAwake(cfgPath string) error {
	env := sysmonExec(os.Environ(), func(k, v string) { os.Setenv(k, v) }, func(k string) { os.Unsetenv(k) })
	if env == nil {
		return nil
	}
	if fi, err := os.Stat(cfgPath); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("not re-executed with GODEBUG=%s: config %s is not a regular file that can be read again", sysmonSetting, cfgPath)
	}
	self, err := selfPath()
	if err == nil {
		err = syscall.Exec(self, os.Args, env) // returns only on failure
	}
	return fmt.Errorf("re-execute with GODEBUG=%s: %w", sysmonSetting, err)
}

// selfPath is the path to execute the running binary by: the one it was
// started by if that still names it, so that the process keeps its name
// (comm, as ps and top show it) when started through a symlink; otherwise
// the binary's resolved path.
func selfPath() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(self)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return p, nil
		}
	}
	return self, nil
}

// lookup finds key's value in an environment list: the first one, as
// os.Getenv does.
func lookup(environ []string, key string) (string, bool) {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, true
		}
	}
	return "", false
}
