package host

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain runs the tests, then fails if any worker process is left: a
// child of this process that is still running (zombies are children that
// were not waited for; both are leaks).
func TestMain(m *testing.M) {
	code := m.Run()
	deadline := time.Now().Add(10 * time.Second)
	left := children()
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		left = children()
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes left after the tests: %s\n", strings.Join(left, "; "))
		code = 1
	}
	os.Exit(code)
}

// children lists this process's child processes as "pid state cmdline".
func children() []string {
	me := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(me) {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		line := strings.ReplaceAll(string(cmd), "\x00", " ")
		if len(line) > 60 {
			line = line[:60]
		}
		out = append(out, fmt.Sprintf("%d %s %s", pid, fields[0], line))
	}
	return out
}
