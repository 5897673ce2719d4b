package problem

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPath(t *testing.T) {
	for _, tt := range []struct {
		p    Path
		want string
	}{
		{nil, ""},
		{Path{"redis"}, "redis"},
		{Path{"redis", "addrs", 1}, "redis.addrs[1]"},
		{Path{"routes", 0, "health", "headers"}, "routes[0].health.headers"},
		{Path{"a", 2, 3, "b"}, "a[2][3].b"},
		{Path{"redis", "addr"}.Under("fleet"), "fleet.redis.addr"},
		{Path{}.Under("origins", "passive"), "origins.passive"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestList(t *testing.T) {
	var l List
	l.Addf(Path{"passive", "unhealthy_statuses", 1}, "%d is not an HTTP status", 99)
	l.Addf(nil, "section-wide")
	if len(l) != 2 || l[0].String() != "passive.unhealthy_statuses[1]: 99 is not an HTTP status" || l[1].String() != "section-wide" {
		t.Errorf("List = %v", l)
	}
	// Under never shares the backing array of the section's path.
	root := make(Path, 1, 8)
	root[0] = "origins"
	a, b := Path{"x"}.Under(root...), Path{"y"}.Under(root...)
	if a.String() != "origins.x" || b.String() != "origins.y" {
		t.Errorf("Under shared memory: %v %v", a, b)
	}
}

func TestErr(t *testing.T) {
	var l List
	if l.Err("fleet") != nil {
		t.Error("an empty list is an error")
	}
	l.Addf(Path{"redis", "addr"}, "required")
	l.Addf(Path{"keep"}, "must be at least %d", 100)
	if got := l.Err("fleet").Error(); got != "fleet.redis.addr: required\nfleet.keep: must be at least 100" {
		t.Errorf("Err = %q", got)
	}
}

func TestFileError(t *testing.T) {
	dir := t.TempDir()
	_, err := os.ReadFile(filepath.Join(dir, "missing"))
	if got, want := FileError(err), filepath.Join(dir, "missing")+": no such file"; got != want {
		t.Errorf("FileError = %q, want %q", got, want)
	}
	if got := FileError(errors.New("plain")); got != "plain" {
		t.Errorf("FileError of a non-path error = %q", got)
	}
}
