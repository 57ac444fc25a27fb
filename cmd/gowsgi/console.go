package main

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// The console log format, for people at a terminal: durations with their
// unit, and multi-line fields (tracebacks, lists of config errors) as
// indented lines under their message instead of one line of \n escapes.

// multilineKey is where FormatPrepare puts an event's multi-line fields
// for FormatExtra; the field list never shows it.
const multilineKey = "\x00multiline"

// consoleWriter returns the ConsoleWriter of format console, writing to out.
func consoleWriter(out io.Writer) zerolog.ConsoleWriter {
	return zerolog.ConsoleWriter{
		Out:              out,
		TimeFormat:       time.TimeOnly,
		FieldsExclude:    []string{multilineKey},
		FormatPrepare:    takeMultiline,
		FormatExtra:      writeMultiline,
		FormatFieldValue: roundDuration,
	}
}

// consoleDurations makes Dur fields strings with a unit ("480.993114ms"),
// which roundDuration shortens. It is global in zerolog: call it only
// when the process logs in format console (JSON keeps its numbers).
func consoleDurations() {
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
}

// takeMultiline moves the event's string fields that span lines out of
// the field list, to multilineKey.
func takeMultiline(evt map[string]any) error {
	multi := map[string]string{}
	for k, v := range evt {
		if s, ok := v.(string); ok && k != zerolog.MessageFieldName && strings.Contains(strings.TrimRight(s, "\n"), "\n") {
			multi[k] = s
			delete(evt, k)
		}
	}
	if len(multi) > 0 {
		evt[multilineKey] = multi
	}
	return nil
}

// writeMultiline writes the fields takeMultiline moved, each as its name
// then its lines, indented, under the event's line.
func writeMultiline(evt map[string]any, buf *bytes.Buffer) error {
	multi, _ := evt[multilineKey].(map[string]string)
	names := make([]string, 0, len(multi))
	for k := range multi {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		buf.WriteString("\n  " + k + ":")
		for _, line := range strings.Split(strings.TrimRight(multi[k], "\n"), "\n") {
			buf.WriteString("\n    " + line)
		}
	}
	return nil
}

// roundDuration prints a field value, shortening a duration to three
// significant digits or so: "481ms", "989µs", "1.23s".
// (zerolog quotes "µs"; the quotes go with the rounding.)
func roundDuration(v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("%s", v)
	}
	raw := s
	if u, err := strconv.Unquote(s); err == nil {
		raw = u
	}
	d, err := time.ParseDuration(raw)
	if err != nil || !strings.Contains(raw, ".") {
		return s
	}
	switch {
	case d >= 100*time.Second:
		d = d.Round(time.Second)
	case d >= time.Second:
		d = d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(time.Millisecond)
	case d >= time.Microsecond:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}
