package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// TestPrintNodesRedis: fleet status says, for each node that reports it,
// how the node reaches Redis; nodes that do not say (older edges) get no
// line.
func TestPrintNodesRedis(t *testing.T) {
	nodes := []fleet.NodeStatus{
		{Heartbeat: fleet.Heartbeat{Node: "edge-1", Version: 3, Redis: &fleet.RedisLink{Mode: "sentinel", Primary: "10.0.0.5:6379", Failovers: 2, Reconnects: 3}}, Age: time.Second},
		{Heartbeat: fleet.Heartbeat{Node: "edge-2", Version: 3}, Age: time.Second},
	}
	var out bytes.Buffer
	if code := printHealth(&out, &fleet.Health{Number: 3, Nodes: nodes}); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	want := "edge-1: redis sentinel, primary 10.0.0.5:6379, 2 failovers, 3 reconnects\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	if strings.Contains(out.String(), "edge-2: redis") {
		t.Errorf("a node without a Redis link got a line:\n%s", out.String())
	}
	out.Reset()
	printNodesJSON(&out, &fleet.Health{Number: 3, Nodes: nodes})
	var st struct {
		Nodes []struct {
			Node  string
			Redis *fleet.RedisLink
		}
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 2 || st.Nodes[0].Redis == nil || *st.Nodes[0].Redis != *nodes[0].Redis || st.Nodes[1].Redis != nil {
		t.Errorf("JSON's redis links are not the nodes':\n%s", out.String())
	}
}
