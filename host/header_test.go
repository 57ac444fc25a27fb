package host

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestWriteHeader decodes FrameStart payloads into the response header.
func TestWriteHeader(t *testing.T) {
	tests := []struct {
		name    string
		head    string
		code    int
		want    http.Header
		wantErr bool
	}{
		{"plain", "200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n", 200,
			http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}}, false},
		{"names made canonical", "404 Not Found\r\ncontent-type: a\r\nX-FOO-bar: b\r\n", 404,
			http.Header{"Content-Type": {"a"}, "X-Foo-Bar": {"b"}}, false},
		{"repeated headers keep their order", "200 OK\r\nSet-Cookie: a=1\r\nX-A: x\r\nset-cookie: b=2\r\nSet-Cookie: c=3\r\n", 200,
			http.Header{"Set-Cookie": {"a=1", "b=2", "c=3"}, "X-A": {"x"}, "Content-Type": nil}, false},
		{"empty value", "204 No Content\r\nX-Empty: \r\n", 204, http.Header{"X-Empty": {""}, "Content-Type": nil}, false},
		{"hop-by-hop dropped, Connection: close kept", "200 OK\r\nKeep-Alive: 5\r\nTransfer-Encoding: chunked\r\nConnection: Close \r\n", 200,
			http.Header{"Connection": {"close"}, "Content-Type": nil}, false},
		{"the app's request ID dropped", "200 OK\r\nX-Request-ID: fake\r\n", 200, http.Header{"Content-Type": nil}, false},
		// No Content-Type: present but empty, so that net/http adds none.
		{"no headers", "200 OK", 200, http.Header{"Content-Type": nil}, false},
		{"malformed header", "200 OK\r\nNoColon\r\n", 0, nil, true},
		{"malformed status", "2x0 OK\r\n", 0, nil, true},
		{"short status", "20", 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			code, err := writeHeader(w, []byte(tt.head))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if code != tt.code || !reflect.DeepEqual(w.Header(), tt.want) {
				t.Errorf("got %d %v, want %d %v", code, w.Header(), tt.code, tt.want)
			}
		})
	}
}

// TestWriteHeaderValuesIndependent: headers decoded together share one
// array of values; adding to one must not change another.
func TestWriteHeaderValuesIndependent(t *testing.T) {
	w := httptest.NewRecorder()
	if _, err := writeHeader(w, []byte("200 OK\r\nX-A: a\r\nX-B: b\r\nX-C: c\r\n")); err != nil {
		t.Fatal(err)
	}
	w.Header().Add("X-A", "a2")
	w.Header()["X-B"] = append(w.Header()["X-B"], "b2")
	want := http.Header{"X-A": {"a", "a2"}, "X-B": {"b", "b2"}, "X-C": {"c"}, "Content-Type": nil}
	if !reflect.DeepEqual(w.Header(), want) {
		t.Errorf("got %v, want %v", w.Header(), want)
	}
}
