package config

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOriginConfig(t *testing.T) {
	base := "listen:\n  http: :0\nblocklist:\n  file: b\n"
	cfg, err := ParseConfig("c.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Origins
	host, _ := os.Hostname()
	if o.MaxResponseHeaderBytes != 64<<10 || o.MaxConns != 256 || o.BodyIdleTimeout != 60*time.Second ||
		!slices.Equal(o.Upgrades, []string{"websocket"}) || (o.ViaName != host && o.ViaName != "edgeblock") {
		t.Errorf("defaults: %+v", o)
	}
	if got := hostnameOr("edgeblock", func() (string, error) { return "", errors.New("no") }); got != "edgeblock" {
		t.Errorf("hostnameOr without a host name = %q", got)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"origins:\n  max_conns: -1\n", "c.yaml:6: origins.max_conns: must not be negative"},
		{"origins:\n  max_response_header_bytes: -1\n", "c.yaml:6: origins.max_response_header_bytes: must not be negative"},
		{"origins:\n  body_idle_timeout: -1s\n", "c.yaml:6: origins.body_idle_timeout: must not be negative"},
		{"origins:\n  upgrades: [websocket, \"h2 c\"]\n", `c.yaml:6: origins.upgrades[1]: "h2 c" is not a protocol name`},
		{"origins:\n  via_name: \"edge 7\"\n", `c.yaml:6: origins.via_name: "edge 7": want an HTTP token`},
		{"  blocked_by: \"https://edge.example/>; rel=x\"\n", `c.yaml:5: blocklist.blocked_by: "https://edge.example/>; rel=x": a URL must not hold spaces`},
	} {
		_, err := ParseConfig("c.yaml", []byte(base+tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
}
