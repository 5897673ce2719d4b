package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/admin"
)

// jsonFlag defines -json. The JSON field names of each command are stable
// and documented in its help (edgeblock help CMD).
func jsonFlag(fs *flag.FlagSet, p *bool) {
	fs.BoolVar(p, "json", false, "print the result as one JSON document (field names in the description) instead of text")
}

// writeJSON writes v as indented JSON and a line break.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// editJSON is the output of block -json and unblock -json.
type editJSON struct {
	// Result is added, changed, unchanged or removed.
	Result string `json:"result"`
	Rule   string `json:"rule"`
	// File and Line say where the rule is (was, for removed); Version is
	// the fleet version written (0 in file mode).
	File    string                 `json:"file,omitempty"`
	Version int64                  `json:"version,omitempty"`
	Line    int                    `json:"line"`
	Old     string                 `json:"old,omitempty"`
	New     string                 `json:"new,omitempty"`
	Attrs   []blocklist.AttrChange `json:"attrs,omitempty"`
	Note    string                 `json:"note,omitempty"`
	// Applied is whether the running edge has the edit in effect: true,
	// false (EdgeError says why), or absent when no edge was asked.
	Applied   *bool  `json:"applied,omitempty"`
	EdgeError string `json:"edge_error,omitempty"`
}

// newEditJSON returns the JSON of an edit's result.
func newEditJSON(res blocklist.EditResult, kind string) editJSON {
	e := editJSON{Result: kind, Rule: res.Pattern, Line: res.Line, Old: res.OldLine, New: res.NewLine, Attrs: res.Attrs}
	if e.Rule == "" {
		e.Rule = res.NewLine
	}
	return e
}

// edgeApplied is what the running edge said about an edit: whether the
// changed rule is in effect.
type edgeApplied struct {
	asked   bool
	applied bool
	why     string
}

// edgeWait bounds the wait for the running edge to apply an edit: its
// watcher reads a change within a second (blocklist.debounce, capped).
var edgeWait = 5 * time.Second

// askApplied asks the edge at the admin address of cfg (or adminFlag)
// whether the edit res (made at since) is in effect: GET /blocklist/applied,
// the edge's own check that its /v1 writes use, which waits up to edgeWait
// for the rule as written (for an unblock: no rule of the pattern) and
// answers early when a reload since then failed.
func askApplied(cfg *config.Config, adminFlag string, res blocklist.EditResult, since time.Time) edgeApplied {
	addr := adminAddr(cfg, adminFlag)
	if addr == "" {
		return edgeApplied{why: "the admin listener is off in the config: no edge asked"}
	}
	// reload=1: the file is renamed into place, whole; the edge applies
	// it now instead of after its watcher's debounce.
	q := url.Values{"pattern": {res.Pattern}, "since": {since.UTC().Format(time.RFC3339Nano)}, "wait": {edgeWait.String()}, "reload": {"1"}}
	if res.Kind != blocklist.Removed {
		q.Set("rule", res.NewLine)
	}
	resp, err := adminGet(cfg, addr, "/blocklist/applied?"+q.Encode())
	if errors.Is(err, errCannotAsk) {
		return edgeApplied{why: err.Error()}
	}
	if err != nil {
		return edgeApplied{why: fmt.Sprintf("no edge answered at %s: %v", addr, err)}
	}
	defer resp.Body.Close()
	var a admin.Applied
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.SHA256 == "" {
		return edgeApplied{why: fmt.Sprintf("GET /blocklist/applied at %s: not an edgeblock answer (%v)", addr, err)}
	}
	if a.Applied {
		return edgeApplied{asked: true, applied: true}
	}
	return edgeApplied{asked: true, why: fmt.Sprintf("the edge at %s did not apply it: %s", addr, a.Pending)}
}

// report writes what the edge said, as a line of text or into e.
func (a edgeApplied) report(w io.Writer, e *editJSON, addr string) {
	if e != nil {
		if a.asked {
			e.Applied = &a.applied
		}
		e.EdgeError = a.why
		return
	}
	if a.applied {
		fmt.Fprintf(w, "  applied: true (the running edge at %s has it in effect)\n", addr)
	} else {
		fmt.Fprintf(w, "  applied: %s\n", a.why)
	}
}
