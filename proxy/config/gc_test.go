package config

import (
	"strings"
	"testing"
)

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
