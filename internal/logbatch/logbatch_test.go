package logbatch

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// recorder records each write it gets.
type recorder struct {
	mu     sync.Mutex
	writes []string
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

// TestLinesGoOutTogetherWithinDelay: lines logged within the delay reach
// the output in one write, delay after the first; a warning goes out at
// once with the lines before it; Close writes what waits and later lines
// go straight out.
func TestLinesGoOutTogetherWithinDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &recorder{}
		w := New(out, 10*time.Millisecond)
		w.Write([]byte("a\n"))
		time.Sleep(4 * time.Millisecond)
		w.Write([]byte("b\n"))
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
		if got := out.got(); len(got) != 0 {
			t.Fatalf("written before the delay: %q", got)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if got := out.got(); strings.Join(got, "|") != "a\nb\n" {
			t.Fatalf("after the delay: %q, want one write of both lines", got)
		}

		w.Write([]byte("c\n"))
		w.WriteLevel(zerolog.ErrorLevel, []byte("error\n"))
		if got := out.got(); len(got) != 2 || got[1] != "c\nerror\n" {
			t.Fatalf("an error line: %q, want it written at once after c", got)
		}
		w.WriteLevel(zerolog.InfoLevel, []byte("d\n"))
		w.Close()
		w.Write([]byte("e\n"))
		want := []string{"a\nb\n", "c\nerror\n", "d\n", "e\n"}
		if got := out.got(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("writes %q, want %q", got, want)
		}
	})
}

// TestFullBatchGoesOutAtOnce: a batch never grows past maxBatch.
func TestFullBatchGoesOutAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &recorder{}
		w := New(out, time.Second)
		defer w.Close()
		line := append(bytes.Repeat([]byte("x"), 1023), '\n')
		for range maxBatch/len(line) + 1 {
			w.Write(line)
		}
		if got := out.got(); len(got) != 1 || len(got[0]) != maxBatch {
			t.Errorf("a full batch: %d writes, want one of %d bytes", len(got), maxBatch)
		}
	})
}
