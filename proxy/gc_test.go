package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGCMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2Max, v2Set := file("v2max", "max\n"), file("v2set", "1073741824\n")
	v1Unlimited, v1Set := file("v1unl", "9223372036854771712\n"), file("v1set", "536870912\n")
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		setting string
		files   []string
		want    int64
	}{
		{"auto", []string{v2Set}, 1073741824 / 10 * 9},
		{"", []string{missing, v1Set}, 536870912 / 10 * 9},
		{"auto", []string{v2Max, v1Set}, 0}, // v2 says no limit: v1 files are not there on v2
		{"auto", []string{missing, v1Unlimited}, 0},
		{"auto", []string{missing}, 0},
		{"off", []string{v2Set}, 0},
		{"768MiB", []string{v2Set}, 768 << 20},
		{"2GiB", nil, 2 << 30},
		{"1000", nil, 1000},
		{"64 KiB", nil, 64 << 10},
	} {
		if got, from := (GCConfig{MemoryLimit: c.setting}).memoryLimit(c.files); got != c.want {
			t.Errorf("memory_limit %q with %v: %d (%s), want %d", c.setting, c.files, got, from, c.want)
		}
	}
}

func TestGCConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"gc:\n  memory_limit: lots\n", `c.yaml:6: gc.memory_limit: "lots": want auto, off, or a positive size`},
		{"gc:\n  memory_limit: -5MiB\n", `c.yaml:6: gc.memory_limit: "-5MiB"`},
		{"gc:\n  memory_limit: 5TiB\n", `gc.memory_limit: "5TiB"`},
		{"gc:\n  percent: -7\n", `c.yaml:6: gc.percent: -7: want a percentage`},
	} {
		_, err := ParseConfig("c.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\n"+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
	if _, err := ParseConfig("c.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\ngc:\n  memory_limit: 512MiB\n  percent: 200\n")); err != nil {
		t.Errorf("a good gc section: %v", err)
	}
}
