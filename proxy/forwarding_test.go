package proxy

import (
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/config"
)

func TestClientAddr(t *testing.T) {
	cfg, err := config.ParseConfig("c.yaml", []byte("listen:\n  http: :0\nblocklist:\n  file: b\ntrusted_proxies: [10.0.0.0/8, \"2001:db8::/32\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ec := provision(cfg)
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tt := range []struct {
		name    string
		trusted bool
		xff     []string
		want    string
	}{
		{"untrusted peer: the peer, whatever it claims", false, []string{"203.0.113.9"}, "10.0.0.1"},
		{"trusted peer without a chain", true, nil, "10.0.0.1"},
		{"one hop", true, []string{"203.0.113.9"}, "203.0.113.9"},
		{"right-most untrusted wins over a forged left part", true, []string{"192.0.2.66, 203.0.113.9"}, "203.0.113.9"},
		{"trusted hops are skipped", true, []string{"203.0.113.9, 10.9.9.9", "10.8.8.8"}, "203.0.113.9"},
		{"all trusted: the left-most", true, []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"garbage ends the walk", true, []string{"203.0.113.9, garbage, 10.2.2.2"}, "10.2.2.2"},
		{"IPv6 and mapped IPv4", true, []string{"2001:db8::5, ::ffff:203.0.113.9"}, "203.0.113.9"},
		{"empty entries", true, []string{""}, "10.0.0.1"},
	} {
		if got := ec.clientAddr(peer, tt.trusted, tt.xff).String(); got != tt.want {
			t.Errorf("%s: clientAddr(%q) = %s, want %s", tt.name, tt.xff, got, tt.want)
		}
	}
}

func TestFilterUpgrade(t *testing.T) {
	allowed := []string{"websocket", "x-custom"}
	for _, tt := range []struct {
		upgrade  []string
		want     []string // nil: Upgrade and Connection removed
		wantConn bool
	}{
		{[]string{"websocket"}, []string{"websocket"}, true},
		{[]string{"WebSocket"}, []string{"WebSocket"}, true},
		{[]string{"h2c"}, nil, false},
		{[]string{"h2c, websocket"}, []string{"websocket"}, true},
		{[]string{"x-custom/2", "tls/1.2"}, []string{"x-custom/2"}, true},
		{[]string{"websocketx"}, nil, false},
	} {
		h := http.Header{"Upgrade": tt.upgrade, "Connection": {"Upgrade"}}
		filterUpgrade(h, allowed)
		if !slices.Equal(h["Upgrade"], tt.want) || (h.Get("Connection") != "") != tt.wantConn {
			t.Errorf("Upgrade %q: got Upgrade %q Connection %q", tt.upgrade, h["Upgrade"], h.Get("Connection"))
		}
	}
}

func TestViaLoop(t *testing.T) {
	for _, tt := range []struct {
		via  []string
		want bool
	}{
		{nil, false},
		{[]string{"1.1 cdn-a"}, false},
		{[]string{"1.1 cdn-a, 1.1 Edge-7 (edgeblock)"}, true},
		{[]string{"1.0 fred", "2 edge-7"}, true},
		{[]string{"1.1 edge-77"}, false},
		{[]string{"edge-7"}, false}, // a bare name is the protocol, not the receiver
	} {
		if got := viaLoop(http.Header{"Via": tt.via}, "edge-7"); got != tt.want {
			t.Errorf("viaLoop(%q) = %v, want %v", tt.via, got, tt.want)
		}
	}
}

func TestDropRoutingHeaders(t *testing.T) {
	h := http.Header{
		// Removed: host overrides, and managed headers spelled with '_'.
		"X-Host": {"a"}, "X-Forwarded-Server": {"a"}, "X-Original-Host": {"a"}, "X-Http-Host-Override": {"a"},
		"X-Original-Url": {"/a"}, "X-Rewrite-Url": {"/a"}, "X_forwarded_host": {"a"}, "X_FORWARDED_FOR": {"a"},
		"X_real_ip": {"a"}, "x_host": {"a"}, "True_client_ip": {"a"}, "X_request_id": {"a"},
		// Kept: application headers, with or without '_'.
		"X-Api-Key": {"k"}, "X_custom_thing": {"k"}, "X-Hostname-Hint": {"k"}, "Cookie": {"k"}, "X-Forwarded-Prefix": {"k"},
	}
	dropRoutingHeaders(h)
	var kept []string
	for k := range h {
		kept = append(kept, k)
	}
	slices.Sort(kept)
	if want := []string{"Cookie", "X-Api-Key", "X-Forwarded-Prefix", "X-Hostname-Hint", "X_custom_thing"}; !slices.Equal(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	clean := http.Header{"Accept": {"*/*"}, "User-Agent": {"x"}, "Cookie": {"a=b"}}
	if n := testing.AllocsPerRun(100, func() { dropRoutingHeaders(clean) }); n != 0 {
		t.Errorf("dropRoutingHeaders allocates %v times on headers without '_'", n)
	}
}
