package router

import "testing"

func TestLookup(t *testing.T) {
	table := New([]Mount[string]{
		{Prefix: "/", Target: "root"},
		{Prefix: "/blog", Target: "blog"},
		{Prefix: "/blog/admin", Target: "admin"},
		{Prefix: "/caf\u00e9", Target: "cafe"},
		{Prefix: "/a b", Target: "space"},
		{Host: "example.com", Prefix: "/", Target: "site"},
		{Host: "example.com", Prefix: "/api", Target: "site-api"},
		{Host: "*.example.com", Prefix: "/", Target: "sub"},
		{Host: "*.deep.example.com", Prefix: "/", Target: "deep"},
		{Host: "only-api.test", Prefix: "/api", Target: "only-api"},
	})
	tests := []struct {
		name, host, path         string
		target, script, pathInfo string
	}{
		{"root", "localhost", "/", "root", "", "/"},
		{"root deep path", "localhost", "/x/y", "root", "", "/x/y"},
		{"exact prefix", "localhost", "/blog", "blog", "/blog", ""},
		{"trailing slash", "localhost", "/blog/", "blog", "/blog", "/"},
		{"below prefix", "localhost", "/blog/post/1", "blog", "/blog", "/post/1"},
		{"segment boundary", "localhost", "/blogx", "root", "", "/blogx"},
		{"longest prefix wins", "localhost", "/blog/admin/users", "admin", "/blog/admin", "/users"},
		{"longest prefix boundary", "localhost", "/blog/administrator", "blog", "/blog", "/administrator"},
		{"double slash kept", "localhost", "/blog//x", "blog", "/blog", "//x"},
		{"utf-8 path", "localhost", "/caf\u00e9/men\u00fc", "cafe", "/caf\u00e9", "/men\u00fc"},
		{"decoded space", "localhost", "/a b/c", "space", "/a b", "/c"},
		{"percent stays literal", "localhost", "/blog%2Fx", "root", "", "/blog%2Fx"},
		{"exact host", "example.com", "/x", "site", "", "/x"},
		{"exact host with port", "example.com:8080", "/x", "site", "", "/x"},
		{"exact host case-insensitive", "EXAMPLE.com", "/api/v1", "site-api", "/api", "/v1"},
		{"trailing dot host", "example.com.", "/", "site", "", "/"},
		{"wildcard host", "www.example.com", "/p", "sub", "", "/p"},
		{"wildcard host two levels", "a.b.example.com:443", "/p", "sub", "", "/p"},
		{"longest wildcard wins", "x.deep.example.com", "/", "deep", "", "/"},
		{"wildcard does not match apex", "deep.example.com", "/", "sub", "", "/"},
		{"host mount falls back to any host", "only-api.test", "/other", "root", "", "/other"},
		{"host mount prefix", "only-api.test", "/api/x", "only-api", "/api", "/x"},
		{"ipv6 host with port", "[::1]:8000", "/blog", "blog", "/blog", ""},
		{"empty host", "", "/", "root", "", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := table.Lookup(tt.host, tt.path)
			if !ok {
				t.Fatalf("Lookup(%q, %q): no match", tt.host, tt.path)
			}
			if m.Target != tt.target || m.ScriptName != tt.script || m.PathInfo != tt.pathInfo {
				t.Errorf("Lookup(%q, %q) = (%q, %q, %q), want (%q, %q, %q)", tt.host, tt.path,
					m.Target, m.ScriptName, m.PathInfo, tt.target, tt.script, tt.pathInfo)
			}
		})
	}
}

func TestLookupNoMatch(t *testing.T) {
	table := New([]Mount[string]{
		{Prefix: "/blog", Target: "blog"},
		{Host: "example.com", Prefix: "/", Target: "site"},
	})
	for _, c := range []struct{ host, path string }{
		{"localhost", "/"},
		{"localhost", "/blo"},
		{"localhost", "/blogger"},
		{"other.com", "/x"},
		{"sub.example.com", "/x"},
	} {
		if m, ok := table.Lookup(c.host, c.path); ok {
			t.Errorf("Lookup(%q, %q) matched %q, want no match", c.host, c.path, m.Target)
		}
	}
	var empty Table[string]
	if _, ok := empty.Lookup("x", "/"); ok {
		t.Error("zero Table matched")
	}
}

func BenchmarkLookup(b *testing.B) {
	table := New([]Mount[string]{
		{Prefix: "/", Target: "root"},
		{Prefix: "/blog", Target: "blog"},
		{Prefix: "/api/v1", Target: "api"},
		{Prefix: "/static", Target: "static"},
		{Host: "example.com", Prefix: "/", Target: "site"},
	})
	b.ReportAllocs()
	for b.Loop() {
		table.Lookup("localhost:8000", "/api/v1/users/42")
	}
}
