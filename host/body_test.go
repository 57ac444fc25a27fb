package host

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"

	"github.com/gowsgi/gowsgi/worker"
)

// patterned returns n bytes that differ for every seed and contain
// newlines, so that a body from another request or a stale slot shows.
func patterned(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		if r.IntN(50) == 0 {
			b[i] = '\n'
		} else {
			b[i] = byte('a' + r.IntN(26))
		}
	}
	return b
}

// TestBodySizes sends bodies around the sizes where the path changes:
// inline in the request frame (≤ 64 KiB), through the shared body area (≤
// worker.BodySlotSize), spooled to a file and sent through the socket
// (larger), to a single-threaded worker and to threaded ones, read with
// read(), read(n) and readline().
func TestBodySizes(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	sizes := []int{0, 1, worker.MinSharedBody - 1, worker.MinSharedBody, 300_000, worker.BodySlotSize - 1, worker.BodySlotSize, worker.BodySlotSize + 1, 2*worker.BodySlotSize + 3}
	paths := []string{"/echo", "/echo-sized", "/echo-lines", "/env/sub/echo", "/env/sub/echo-lines"}
	for _, size := range sizes {
		for _, p := range paths {
			t.Run(fmt.Sprintf("%s/%d", p, size), func(t *testing.T) {
				if err := postEcho(http.DefaultClient, th.URL+p, patterned(size, uint64(len(p)))); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestLargeBodiesConcurrently sends more large bodies at once than a
// worker has shared slots, each different: every response must be its own
// body, whichever way it went and however slots were reused.
func TestLargeBodiesConcurrently(t *testing.T) {
	t.Parallel()
	th := startHost(t, basicConfig)
	const clients, rounds = 12, 4
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for _, p := range []string{"/echo", "/env/sub/echo"} {
					if err := postEcho(http.DefaultClient, th.URL+p, patterned(200_000+c*1000+r, uint64(c*100+r))); err != nil {
						t.Errorf("client %d round %d %s: %v", c, r, p, err)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// postEcho posts body to an echo endpoint and checks that it comes back.
func postEcho(client *http.Client, url string, body []byte) error {
	resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return err
	case resp.StatusCode != 200:
		return fmt.Errorf("status %d", resp.StatusCode)
	case !bytes.Equal(got, body):
		return fmt.Errorf("%d bytes back of %d, not the same", len(got), len(body))
	}
	return nil
}
