package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(data), 0o644))
}

// TestInclude loads apps and mounts from included files: dirs relative
// to their own file, mounts naming apps of any file, files in pattern
// then name order, the main file and empty files skipped.
func TestInclude(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	must(t, os.MkdirAll("apps.d/blog", 0o755))
	writeFile(t, "gowsgi.yaml", "listeners: [\":8000\"]\ninclude: [\"apps.d/*.yaml\", \"*.yaml\", \"extra.yml\"]\n"+
		"apps:\n  main: {module: main}\nmounts:\n  /blog: blog\n")
	writeFile(t, "apps.d/blog.yaml", "apps:\n  blog: {module: blog, dir: blog}\nmounts:\n  /: main\n")
	writeFile(t, "apps.d/shop.yaml", "apps:\n  shop: {module: shop}\n")
	writeFile(t, "apps.d/empty.yaml", "\n")
	cfg, err := Load("gowsgi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range cfg.Apps {
		names = append(names, a.Name)
	}
	if want := []string{"main", "blog", "shop"}; !reflect.DeepEqual(names, want) {
		t.Errorf("apps = %q, want %q", names, want)
	}
	if got, want := appNamed(cfg, "blog").Dir, filepath.Join(root, "apps.d", "blog"); got != want {
		t.Errorf("blog dir = %q, want %q", got, want)
	}
	if got, want := appNamed(cfg, "shop").Dir, filepath.Join(root, "apps.d"); got != want {
		t.Errorf("shop dir = %q, want %q (its file's folder)", got, want)
	}
	if got := appNamed(cfg, "blog").Pos.String(); got != "apps.d/blog.yaml:2:3" {
		t.Errorf("blog pos = %s", got)
	}
	if len(cfg.Mounts) != 2 || cfg.Mounts[1].App != "main" || cfg.Mounts[1].Pos.File != "apps.d/blog.yaml" {
		t.Errorf("mounts = %+v", cfg.Mounts)
	}
	wantFiles := []string{filepath.Join(root, "apps.d/blog.yaml"), filepath.Join(root, "apps.d/empty.yaml"), filepath.Join(root, "apps.d/shop.yaml")}
	if !reflect.DeepEqual(cfg.Files, wantFiles) {
		t.Errorf("files = %q, want %q", cfg.Files, wantFiles)
	}
	wantInc := []string{filepath.Join(root, "apps.d/*.yaml"), filepath.Join(root, "*.yaml"), filepath.Join(root, "extra.yml")}
	if !reflect.DeepEqual(cfg.Include, wantInc) {
		t.Errorf("include = %q, want %q", cfg.Include, wantInc)
	}
}

// TestDeployConfigMapExample loads the config of
// examples/deploy/kubernetes-configmap.yaml laid out as the kubelet
// mounts a ConfigMap (its /app replaced by a temporary folder).
func TestDeployConfigMapExample(t *testing.T) {
	manifest, err := os.ReadFile("../examples/deploy/kubernetes-configmap.yaml")
	must(t, err)
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	must(t, yaml.NewDecoder(bytes.NewReader(manifest)).Decode(&cm))
	if cm.Kind != "ConfigMap" || cm.Data["gowsgi.yaml"] == "" {
		t.Fatalf("first document: kind %q, keys %d", cm.Kind, len(cm.Data))
	}
	app := t.TempDir()
	must(t, os.Mkdir(filepath.Join(app, "static"), 0o755))
	vol := t.TempDir()
	for name, data := range cm.Data {
		writeFile(t, filepath.Join(vol, "..2026_a", name), strings.ReplaceAll(data, "/app", app))
		must(t, os.Symlink("..data/"+name, filepath.Join(vol, name)))
	}
	must(t, os.Symlink("..2026_a", filepath.Join(vol, "..data")))
	t.Setenv("PORT", "") // empty: ${PORT:-8000} takes its default
	t.Setenv("WORKERS", "3")
	cfg, err := Load(filepath.Join(vol, "gowsgi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners[0].Addr != "0.0.0.0:8000" || appNamed(cfg, "app").Workers != 3 || appNamed(cfg, "assets") == nil || len(cfg.Mounts) != 2 {
		t.Errorf("listener %s, app %+v, assets %+v, mounts %+v", cfg.Listeners[0].Addr, appNamed(cfg, "app"), appNamed(cfg, "assets"), cfg.Mounts)
	}
}

// appNamed returns the app of cfg called name, or nil.
func appNamed(cfg *Config, name string) *App {
	for _, a := range cfg.Apps {
		if a.Name == name {
			return a
		}
	}
	return nil
}
