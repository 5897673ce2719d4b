package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy"
)

// adminClient asks a running edge's admin listener. Connecting is bounded
// tightly, so that a command with no edge running falls back at once.
var adminClient = &http.Client{
	Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
		ResponseHeaderTimeout: 3 * time.Second,
		Proxy:                 nil,
	},
	Timeout: 60 * time.Second,
}

// adminAddr returns the address to reach the admin listener at: the flag,
// else listen.admin of the config with an unspecified host replaced by
// loopback; "" when the listener is off.
func adminAddr(cfg *proxy.Config, flagValue string) string {
	a := flagValue
	if a == "" {
		a = cfg.Listen.Admin
	}
	if a == "" || a == "off" {
		return ""
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// adminGet fetches path from the admin listener at addr and checks that
// an edgeblock answered.
func adminGet(addr, path string) (*http.Response, error) {
	resp, err := adminClient.Get("http://" + addr + path)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s (an edgeblock from before this command existed?)", path, resp.Status)
	}
	return resp, nil
}

// askExplain asks the running edge at addr what a visitor to host gets.
func askExplain(addr, host string) (*proxy.Explanation, error) {
	resp, err := adminGet(addr, "/explain?host="+url.QueryEscape(host))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var e proxy.Explanation
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return nil, fmt.Errorf("GET /explain: %w", err)
	}
	if e.Input == "" {
		return nil, errors.New("GET /explain: not an edgeblock answer")
	}
	return &e, nil
}

// runningList returns the list in effect: from the running edge's admin
// listener (GET /blocklist/rules) if one answers, else from the snapshot
// in stateDir. source says which, or why there is none.
func runningList(cfg *proxy.Config, adminFlag, stateDir string) (*blocklist.List, string) {
	var why []string
	if addr := adminAddr(cfg, adminFlag); addr != "" {
		l, err := fetchRunningList(addr)
		if err == nil {
			return l, fmt.Sprintf("the running edge at %s", addr)
		}
		why = append(why, fmt.Sprintf("no running edge answered at %s: %v", addr, err))
	} else {
		why = append(why, "the admin listener is off in the config")
	}
	if stateDir == "" {
		return nil, strings.Join(append(why, "no state directory"), "; ")
	}
	snap, err := proxy.ReadSnapshot(stateDir)
	if err != nil {
		return nil, strings.Join(append(why, "no snapshot: "+err.Error()), "; ")
	}
	l, err := blocklist.Parse(snap.Blocklist.Path, snap.Blocklist.Data)
	if err != nil {
		return nil, strings.Join(append(why, "snapshot: "+err.Error()), "; ")
	}
	return l, fmt.Sprintf("the snapshot in %s, written %s (%s)", stateDir, snap.WrittenAt.Format(time.RFC3339), strings.Join(why, "; "))
}

func fetchRunningList(addr string) (*blocklist.List, error) {
	resp, err := adminGet(addr, "/blocklist/rules")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	file := resp.Header.Get("X-Edgeblock-Blocklist-File")
	if file == "" {
		return nil, errors.New("GET /blocklist/rules: not an edgeblock answer")
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return blocklist.Parse(file+" (running)", data)
}

// printDiff prints the rules next adds, removes and changes against
// running: "+ line", "- line", "~ pattern: key old -> new, ...".
func printDiff(w io.Writer, next, running *blocklist.List, source string) {
	fmt.Fprintf(w, "diff against %s:\n", source)
	added, removed := next.Diff(running)
	for _, p := range added {
		r, _ := next.Lookup(p)
		fmt.Fprintf(w, "+ %s\n", r.Format())
	}
	for _, p := range removed {
		r, _ := running.Lookup(p)
		fmt.Fprintf(w, "- %s\n", r.Format())
	}
	changed := 0
	for r := range next.Rules() {
		old, ok := running.Lookup(r.Pattern())
		if !ok {
			continue
		}
		if c := ruleChanges(old, r); c != "" {
			fmt.Fprintf(w, "~ %s: %s\n", r.Pattern(), c)
			changed++
		}
	}
	fmt.Fprintf(w, "%d added, %d removed, %d changed\n", len(added), len(removed), changed)
}

// ruleChanges describes how the attributes of a rule changed, as
// "key old -> new" items; "" when they did not.
func ruleChanges(old, new blocklist.Rule) string {
	var out []string
	add := func(key, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s %q -> %q", key, a, b))
		}
	}
	add("policy", old.Policy, new.Policy)
	add("reason", old.Reason, new.Reason)
	add("status", fmt.Sprint(old.Status), fmt.Sprint(new.Status))
	add("mode", old.Mode.String(), new.Mode.String())
	exp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	add("expires", exp(old.Expires), exp(new.Expires))
	return strings.Join(out, ", ")
}
