package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestConsoleTraceback renders an app's traceback as a terminal shows
// it: the message on one line, the traceback's lines indented under it.
func TestConsoleTraceback(t *testing.T) {
	var buf bytes.Buffer
	w := consoleWriter(&buf)
	w.NoColor = true
	log := zerolog.New(w)
	tb := "Traceback (most recent call last):\n  File \"/srv/blog/app.py\", line 3, in <module>\n    import missing\nModuleNotFoundError: No module named 'missing'\n"
	log.Error().Str("app", "blog").Str("traceback", tb).Msg("app failed to load; its mounts answer 503")
	want := "<nil> ERR app failed to load; its mounts answer 503 app=blog\n" +
		"  traceback:\n" +
		"    Traceback (most recent call last):\n" +
		"      File \"/srv/blog/app.py\", line 3, in <module>\n" +
		"        import missing\n" +
		"    ModuleNotFoundError: No module named 'missing'\n"
	if got := buf.String(); got != want {
		t.Errorf("console line:\n%s\nwant:\n%s", got, want)
	}

	buf.Reset()
	log.Error().Err(errors.New("a.yaml:1:1: bad\nb.yaml:2:3: worse")).Msg("reload refused")
	if got := buf.String(); !strings.Contains(got, "reload refused\n  error:\n    a.yaml:1:1: bad\n    b.yaml:2:3: worse\n") {
		t.Errorf("multi-line error:\n%s", got)
	}
}

// TestConsoleDurations checks that durations carry a unit, rounded.
func TestConsoleDurations(t *testing.T) {
	defer func(f string) { zerolog.DurationFieldFormat = f }(zerolog.DurationFieldFormat)
	consoleDurations()
	var buf bytes.Buffer
	w := consoleWriter(&buf)
	w.NoColor = true
	log := zerolog.New(w)
	log.Info().Dur("took", 480993114*time.Nanosecond).Dur("duration", 989084*time.Nanosecond).
		Dur("timeout", 30*time.Second).Dur("slow", 1234567890*time.Nanosecond).Str("name", "x.y").Msg("done")
	want := "<nil> INF done duration=989µs name=x.y slow=1.23s timeout=30s took=481ms\n"
	if got := buf.String(); got != want {
		t.Errorf("console line:\n%q\nwant:\n%q", got, want)
	}
}
