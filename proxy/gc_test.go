package proxy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/config"
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
		if got, from := memoryLimit(config.GCConfig{MemoryLimit: c.setting}, c.files); got != c.want {
			t.Errorf("memory_limit %q with %v: %d (%s), want %d", c.setting, c.files, got, from, c.want)
		}
	}
}
