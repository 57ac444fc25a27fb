package host

import (
	"fmt"
	"strings"
	"testing"
)

// headOfSize is a GET request whose request line and headers, the final
// empty line included, are exactly n bytes.
func headOfSize(t *testing.T, n int) string {
	t.Helper()
	const start, end = "GET /nothing-mounted HTTP/1.1\r\nHost: x\r\nX-Pad: ", "\r\n\r\n"
	pad := n - len(start) - len(end)
	if pad < 1 {
		t.Fatalf("cannot make a request of %d bytes", n)
	}
	return start + strings.Repeat("p", pad) + end
}

// TestMaxHeaderBytesExact: limits.max_header_bytes is the largest request
// line + headers accepted, to the byte (net/http alone accepts 4096 more);
// below 8 KiB, min(limit + 4096, 8 KiB).
func TestMaxHeaderBytesExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		written string
		limit   int
	}{
		{"64KiB", 64 << 10},
		{"10000", 10000},
		{"8KiB", 8 << 10},
		{"6000", 8 << 10},
		{"4KiB", 8 << 10},
		{"1000", 1000 + 4096},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.written, func(t *testing.T) {
			t.Parallel()
			th := startHost(t, fmt.Sprintf(`
listeners: ["127.0.0.1:0"]
apps:
  files: {static: %s}
mounts:
  "/files": files
limits:
  max_header_bytes: %s
`, dir, tt.written))
			for _, n := range []int{tt.limit, tt.limit + 1} {
				want := "HTTP/1.1 404 " // the host's own answer: no mount
				if n > tt.limit {
					want = "HTTP/1.1 431 "
				}
				rc := th.dial()
				rc.send(headOfSize(t, n))
				line, err := rc.br.ReadString('\n')
				if !strings.HasPrefix(line, want) {
					t.Errorf("request line + headers of %d bytes: %q (%v), want %q", n, line, err, want)
				}
			}
		})
	}
}
