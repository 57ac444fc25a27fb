package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Go's system monitor (sysmon) sleeps deeply whenever every P (Go's
// processor: GOMAXPROCS of them, 1 on 2 CPUs, see hostProcs) is idle: it
// sets sched.sysmonwait and sleeps on a note until the next timer (sysmon
// in runtime/proc.go). The next goroutine to enter a system call through
// syscall.Syscall (reentersyscall), or to take an idle P on leaving one
// (exitsyscall), finds sysmonwait set and wakes it with a futex; it then
// polls every 20 µs until it finds every P idle again. The host idles
// between requests whenever its workers are the slow part, so that is one
// wake-up cycle per request at most (a futex wake, two thread wake-ups, a
// nanosleep): counted on a 2-CPU VM with Flask, 0.84 wake-ups of sysmon's
// thread and ~40 µs more host CPU per request (README, Tuning).
//
// No supported setting prevents it. GODEBUG=schedtrace > 0 does (sysmon
// skips the deep sleep "so that it can print that information at the right
// time"), but it is a debugging setting, read once when the runtime starts;
// //go:debug and go.mod's godebug refuse it (not a registered setting).
// Raw system calls (syscall.RawConn with syscall.RawSyscall) do not wake
// sysmon: the host reads and writes the client's and the worker's sockets
// that way (internal/rawio) and writes its logs in batches
// (internal/logbatch), so a request's path wakes sysmon no more, but for
// static files, spooling and large request bodies that cross the worker's
// socket.
//
// So keeping sysmon awake is opt-in (-keep-sysmon-awake): with it, `gowsgi
// serve`, once its config loads, executes itself once more with
// GODEBUG=schedtrace at its longest period (2^31-1 ms, 24.8 days). Sysmon
// then wakes at least every 10 ms (every 20 µs just after activity). The
// costs, which the README repeats:
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
// The re-execution is skipped if GODEBUG already sets schedtrace (the
// user's choice stands) or the config cannot be read twice (a pipe). The
// re-executed host puts GODEBUG back as it was, so that workers and their
// apps never see it.
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
