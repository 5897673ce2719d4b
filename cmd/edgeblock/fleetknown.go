package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// knownEdges is what this machine's fleet writes last saw of a fleet's
// edges: the names of the live edges at the last write that had any. It
// outlives the store: after Redis restarts empty, the store knows no edge
// (heartbeats are gone with the rest), and this is what tells a write
// that no live edge applied it from a write to a fleet that never had
// one (see fleetCmd.noLiveEdge).
type knownEdges struct {
	Fleet string    `json:"fleet"` // mode, servers and prefix, for people reading the file
	Edges []string  `json:"edges"`
	Time  time.Time `json:"time"`
}

// knownEdgesFile is the file of the fleet cfg names, under the user's
// cache directory ($XDG_CACHE_HOME, else ~/.cache): one per fleet, named
// by a hash of its mode, servers and prefix. "" when there is no cache
// directory.
func knownEdgesFile(cfg fleet.Config) (string, string) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", ""
	}
	id := cfg.Redis.EffectiveMode() + " " + strings.Join(cfg.Redis.Servers(), ",") + " " + cfg.Prefix
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(dir, "edgeblock", "fleet-edges-"+hex.EncodeToString(sum[:8])+".json"), id
}

// rememberEdges records the live edges' names for cfg's fleet, if they
// differ from the record. It is best effort: a write's outcome does not
// depend on it, so a failure is only returned for the caller to print.
func rememberEdges(cfg fleet.Config, live []fleet.NodeStatus) error {
	path, id := knownEdgesFile(cfg)
	if path == "" || len(live) == 0 {
		return nil
	}
	var names []string
	for _, n := range live {
		names = append(names, n.Node)
	}
	slices.Sort(names)
	if k, err := readKnownEdges(cfg); err == nil && slices.Equal(k.Edges, names) && time.Since(k.Time) < time.Hour {
		return nil
	}
	b, _ := json.Marshal(knownEdges{Fleet: id, Edges: names, Time: time.Now().UTC()})
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("remember the fleet's edges: %w", err)
	}
	tmp := path + ".tmp" + fmt.Sprint(os.Getpid())
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("remember the fleet's edges: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("remember the fleet's edges: %w", err)
	}
	return nil
}

// readKnownEdges reads cfg's fleet's record; fs.ErrNotExist (wrapped)
// when this machine has none.
func readKnownEdges(cfg fleet.Config) (knownEdges, error) {
	path, _ := knownEdgesFile(cfg)
	if path == "" {
		return knownEdges{}, os.ErrNotExist
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return knownEdges{}, err
	}
	var k knownEdges
	if err := json.Unmarshal(b, &k); err != nil {
		return knownEdges{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(k.Edges) == 0 {
		return knownEdges{}, fmt.Errorf("%s: no edges: %w", path, os.ErrNotExist)
	}
	return k, nil
}

// noLiveEdge prints the outcome of a write that no live edge reported
// applied within the wait, and reports whether the write may count as
// done: only when no edge was ever known, neither to the store (a
// heartbeat, however old, that it still keeps) nor to this machine's
// earlier writes (knownEdges). A store that restarted empty knows no edge,
// and edges that reconnect later refuse what was written to it as
// divergent: that write is NOT APPLIED.
func (c *fleetCmd) noLiveEdge(nodes []fleet.NodeStatus, w io.Writer) bool {
	if len(nodes) > 0 {
		names := make([]string, 0, len(nodes))
		for _, n := range nodes {
			names = append(names, n.Node)
		}
		fmt.Fprintf(w, "  NOT APPLIED: no live edge applied it: none of the %d edges the store knows (%s) has sent a heartbeat in the last %v\n",
			len(nodes), strings.Join(names, ", "), fleet.LiveAfter)
		fmt.Fprintln(w, "  see `edgeblock fleet status`; the edges apply it when they reconnect")
		return false
	}
	k, err := readKnownEdges(*c.cfg.Fleet)
	switch {
	case err == nil:
		fmt.Fprintf(w, "  NOT APPLIED: no live edge applied it: the store knows no edge, but %s (%s) reported to it at this machine's write of %s:\n",
			strings.Join(k.Edges, ", "), plural(len(k.Edges), "edge"), k.Time.Local().Format(time.RFC3339))
		fmt.Fprintln(w, "  the store may have lost its data (restarted empty); edges that reconnect refuse a version written to it as divergent")
		fmt.Fprintln(w, "  see `edgeblock fleet status` when they return, and `edgeblock fleet reseed`")
		return false
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(w, "  applied: by no edge: no edge has ever reported to this store (nor to this machine's earlier writes)\n")
		return true
	default:
		fmt.Fprintf(w, "  NOT APPLIED: no live edge applied it, and whether edges ran before is unknown: %v\n", err)
		return false
	}
}

// plural is "1 edge" or "n edges".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
