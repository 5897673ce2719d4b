package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// fleetTimeout bounds one fleet command's work against Redis.
const fleetTimeout = 30 * time.Second

// fleetCmd is a connection to the fleet named by a config file.
type fleetCmd struct {
	cfg   *config.Config
	store *fleet.Store
	close func() error
}

// openFleet loads the config and connects to its fleet's Redis. It prints
// the problem and returns false when the config is bad or has no fleet
// section. Only the fleet section (and blocklist.max_drop) must be valid
// (proxy.LoadFleetConfig): a config of only fleet: will do.
func openFleet(configFile string, stderr io.Writer) (*fleetCmd, bool) {
	cfg, err := config.LoadFleetConfig(configFile)
	if err != nil {
		printProblems(stderr, err)
		return nil, false
	}
	if cfg.Fleet == nil {
		fmt.Fprintf(stderr, "edgeblock: %s has no fleet section: fleet commands need fleet.redis.addr\n", configFile)
		return nil, false
	}
	rdb, err := fleet.NewClient(*cfg.Fleet)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return nil, false
	}
	return &fleetCmd{cfg: cfg, store: reload.NewFleetStore(rdb, *cfg.Fleet), close: rdb.Close}, true
}

// defaultApplyWait is how long a fleet write waits by default for every
// live edge to report the new version applied (edges apply in well under
// a second, and beat at once when they have).
const defaultApplyWait = 3 * time.Second

// exitNotApplied is the exit code of a fleet write that was published
// but not reported applied by every live edge within -wait.
const exitNotApplied = 3

// waitApplied waits up to d for every live node (a heartbeat at most
// fleet.LiveAfter old) to report version v or a newer one, printing the
// outcome. It returns false when a live node has not applied it: it
// refused it (divergent, failing validation, the drop guard) or is slow;
// and when no node is live but edges were known (noLiveEdge). It records
// the live edges for noLiveEdge (rememberEdges).
func (c *fleetCmd) waitApplied(ctx context.Context, v fleet.Version, d time.Duration, w io.Writer) bool {
	deadline := time.Now().Add(d)
	remembered := false
	for {
		nodes, err := c.store.Nodes(ctx, fleet.LiveAfter)
		var latest int64
		if err == nil {
			latest, err = c.store.CurrentNumber(ctx)
		}
		if err != nil {
			fmt.Fprintf(w, "  applied: unknown (%v)\n", err)
			return false
		}
		var live, pending []fleet.NodeStatus
		for _, n := range nodes {
			if n.Silent {
				continue
			}
			live = append(live, n)
			// Applied: this version, or a later one the store holds; a
			// node on a number the store never reached runs a list from
			// before the store lost it.
			if n.Version < v.Number || (n.Version == v.Number && n.SHA256 != v.SHA256) || n.Version > latest ||
				(n.Version != v.Number && n.Divergence != "") {
				pending = append(pending, n)
			}
		}
		if len(live) > 0 && !remembered {
			remembered = true
			if err := rememberEdges(*c.cfg.Fleet, live); err != nil {
				fmt.Fprintf(w, "  note: %v\n", err)
			}
		}
		// The first version of an empty store: if edges ran a list
		// before (the store lost its data), their heartbeats come back
		// as they reconnect, and they will refuse it; wait for them.
		genesis := v.ParentNumber == 0 && v.Kind != fleet.KindReseed
		switch {
		case len(live) == 0 && genesis && !time.Now().After(deadline) && ctx.Err() == nil:
		case len(live) == 0:
			return c.noLiveEdge(nodes, w)
		case len(pending) == 0:
			fmt.Fprintf(w, "  applied: by all %d live edges\n", len(live))
			return true
		case time.Now().After(deadline) || ctx.Err() != nil || (!v.Kind.Explicit() && allDivergent(pending)):
			fmt.Fprintf(w, "  NOT APPLIED by %d of %d live edges:\n", len(pending), len(live))
			for _, n := range pending {
				why := ""
				if n.Divergence != "" {
					why = "; divergent: " + n.Divergence
				}
				fmt.Fprintf(w, "    %s runs version %d%s\n", n.Node, n.Version, why)
			}
			fmt.Fprintln(w, "  see `edgeblock fleet status`, and the edges' blocklist_reload log lines")
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allDivergent reports whether every node finds the store divergent:
// none of them will apply an edit.
func allDivergent(nodes []fleet.NodeStatus) bool {
	for _, n := range nodes {
		if n.Divergence == "" {
			return false
		}
	}
	return true
}

// printSkipped says which bad versions a write passed over, building on
// the last good one instead.
func printSkipped(w io.Writer, head fleet.Version, bad []fleet.Version) {
	if head.Repaired {
		fmt.Fprintf(w, "  note: version %d's content in the store is corrupt; built on the copy an edge running it saved (sha256 %.12s)\n", head.Number, head.SHA256)
	}
	for _, b := range bad {
		fmt.Fprintf(w, "  note: version %d skipped (%v); built on version %d, the newest good one\n", b.Number, b.Problem, head.Number)
	}
}

// current returns the head, the newest good version (Number 0 if none),
// and its list: the one edges apply.
func (c *fleetCmd) current(ctx context.Context) (fleet.Version, *blocklist.List, error) {
	v, _, err := c.store.Head(ctx)
	if errors.Is(err, fleet.ErrNoVersion) {
		return fleet.Version{}, nil, nil
	}
	if err != nil {
		return v, nil, err
	}
	l, err := blocklist.Parse(fleet.ListName(v.Number), v.Content)
	return v, l, err
}

// guard is the edges' drop guard, applied before publishing next over the
// list in effect, so that what the CLI publishes is what edges apply.
func (c *fleetCmd) guard(next, cur *blocklist.List) error {
	if cur == nil {
		return nil
	}
	err := blocklist.CheckDrop(next, cur, c.cfg.Blocklist.MaxDrop, time.Now())
	var de *blocklist.DropError
	if errors.As(err, &de) {
		n, _ := fleet.VersionOfListName(cur.File())
		return fmt.Errorf("not published: it would drop %d of %d block rules of version %d (%s), and edges would refuse it; if that is meant, add the line %q to it",
			de.Dropped, de.Total, n, dropShare(de), blocklist.AllowDropMarker)
	}
	return err
}

// replaceOptions say how publishWhole may replace the head.
type replaceOptions struct {
	// base is the version the caller started from (0: not said); a head
	// other than it is not replaced unless force.
	base int64
	// force replaces the head whatever it has that the content lacks.
	force bool
	// kind is recorded (KindEdit when "": force makes it KindForce).
	kind fleet.Kind
}

// publishWhole publishes content as the new version over the head (the
// newest good version), retrying when another writer publishes first.
// It refuses on a divergent store; it refuses to replace a head the
// caller did not start from (opts.base) or whose rules the content would
// remove, unless opts.force, naming those rules; and it applies the
// edges' drop guard. It returns the version, and false in the second
// result when the content was already the head's (nothing published).
func (c *fleetCmd) publishWhole(ctx context.Context, next *blocklist.List, content []byte, meta fleet.Meta, opts replaceOptions, stdout io.Writer) (fleet.Version, bool, error) {
	kind := opts.kind
	if kind == "" && opts.force {
		kind = fleet.KindForce
	}
	for attempt := 0; ; attempt++ {
		h, err := c.store.Check(ctx, fleet.LiveAfter)
		if err != nil {
			return fleet.Version{}, false, err
		}
		if err := h.Writable(); err != nil {
			return fleet.Version{}, false, err
		}
		head := h.Head
		if head.Number != 0 && bytes.Equal(head.Content, content) {
			return head, false, nil
		}
		var curList *blocklist.List
		if head.Number != 0 {
			curList, _ = blocklist.Parse(fleet.ListName(head.Number), head.Content)
		}
		if err := c.guard(next, curList); err != nil {
			return fleet.Version{}, false, err
		}
		removed := removedRules(next, curList)
		if kind == fleet.KindEdit || kind == "" {
			switch {
			case opts.base != 0 && opts.base != head.Number:
				return fleet.Version{}, false, fmt.Errorf("not published: you started from version %d, but version %d is the newest (by %s)%s; merge it into your list (edgeblock pull), or publish -force to replace it",
					opts.base, head.Number, orUnknown(head.Actor), removedText(removed))
			case opts.base == 0 && len(removed) > 0:
				return fleet.Version{}, false, fmt.Errorf("not published: it would replace version %d (by %s) and remove rules your list lacks%s; if you started from version %d, say so with -base %d; to replace it anyway, -force",
					head.Number, orUnknown(head.Actor), removedText(removed), head.Number, head.Number)
			}
		}
		// next is the list parsed from content: validated.
		w := fleet.Write{Expect: h.Number, Kind: kind, Validated: true}
		if head.Number != 0 {
			w.Base = &head
		}
		v, err := c.store.Commit(ctx, content, meta, w)
		if errors.Is(err, fleet.ErrConflict) && attempt < 10 {
			continue // checked again against the version that won
		}
		if err == nil {
			printSkipped(stdout, head, h.Bad)
			if len(removed) > 0 {
				fmt.Fprintf(stdout, "  replaced version %d%s\n", head.Number, removedText(removed))
			}
		}
		return v, err == nil, err
	}
}

// removedRules returns the patterns of cur that next lacks.
func removedRules(next, cur *blocklist.List) []string {
	if cur == nil {
		return nil
	}
	var out []string
	for c := range next.Changes(cur) {
		if c.Kind == blocklist.Removed {
			out = append(out, c.Rule.Pattern())
		}
	}
	return out
}

// removedText lists removed patterns for a message (at most 20).
func removedText(removed []string) string {
	if len(removed) == 0 {
		return ""
	}
	shown := removed[:min(len(removed), 20)]
	more := ""
	if len(removed) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(removed)-len(shown))
	}
	return fmt.Sprintf("; the replacement removes %d rules: %s%s", len(removed), strings.Join(shown, " "), more)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func runPublish(args []string, stdout, stderr io.Writer) int {
	var comment string
	var opts replaceOptions
	var wait time.Duration
	fs, config, ok := flags("publish", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&comment, "comment", "", "why: a ticket or reason, recorded with the version")
		fs.Int64Var(&opts.base, "base", 0, "the `version` your list started from (edgeblock pull prints it): refused if another is newest")
		fs.BoolVar(&opts.force, "force", false, "replace the newest version even if you did not start from it and your list lacks some of its rules (recorded as forced)")
		fs.DurationVar(&wait, "wait", defaultApplyWait, "how long to wait for every live edge to report the version applied (exit 3 if one has not)")
	})
	if !ok {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: edgeblock publish -config FILE [-comment TEXT] [-base VERSION | -force] BLOCKLIST")
		return 2
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	next, err := blocklist.Parse(file, data)
	if err != nil {
		printProblems(stderr, err)
		fmt.Fprintln(stderr, "edgeblock: not published: fix the problems above")
		return 1
	}
	c, ok := openFleet(config, stderr)
	if !ok {
		return 1
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	v, published, err := c.publishWhole(ctx, next, data, fleet.Meta{Actor: actor(), Comment: comment}, opts, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if !published {
		fmt.Fprintf(stdout, "unchanged: version %d already has this content (sha256 %s); nothing published\n", v.Number, v.SHA256)
		return 0
	}
	fmt.Fprintf(stdout, "published: version %d (sha256 %s, %d rules)\n", v.Number, v.SHA256, next.Len())
	if !c.waitApplied(ctx, v, wait, stdout) {
		return exitNotApplied
	}
	return 0
}

// runEditFleet is block -fleet and unblock -fleet: the guarded edit
// (blocklist.ApplyEdit) of the published list, as a new version, retried
// from a fresh read when another writer publishes first. The drop guard
// applies as on the edges: removing the last block rule needs the
// allow-drop line, as edges would refuse it.
func runEditFleet(c *editCmd, unblock bool, stdout, stderr io.Writer) int {
	f, ok := openFleet(c.config, stderr)
	if !ok {
		return 1
	}
	defer f.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	now := time.Now()
	note := blocklist.NewNote(now, actor(), c.comment)
	var res blocklist.EditResult
	r, err := f.store.UpdateResult(ctx, func(cur []byte) (out []byte, err error) {
		out, res, err = blocklist.ApplyEdit("fleet", cur, c.edit(unblock, &note), f.cfg.Blocklist.MaxDrop, now)
		if err == nil && out == nil {
			return cur, nil // as asked already: Update publishes nothing
		}
		return out, guardRefusal(err, "not published", "the edges", "the published list")
	}, fleet.Meta{Actor: note.By, Comment: c.comment})
	if editFailed(err, stderr) {
		return 1
	}
	kind, line := string(res.Kind), note.Line()
	switch {
	case unblock:
		kind, line = "removed", note.UnblockLine(res.Pattern)
	case kind == "":
		kind = "unchanged"
	}
	if c.json {
		e := newEditJSON(res, kind)
		e.Version = r.Number
		if kind != "unchanged" {
			e.Note = line
		}
		writeJSON(stdout, e)
		return f.reportWrite(ctx, r, c.wait, io.Discard)
	}
	if unblock {
		fmt.Fprintf(stdout, "removed: %s (version %d; was line %d)\n  note: %s\n", res.OldLine, r.Number, res.Line, line)
	} else {
		printBlock(stdout, res, fmt.Sprintf("version %d, line %d", r.Number, res.Line), note, "nothing published")
	}
	return f.reportWrite(ctx, r, c.wait, stdout)
}

// reportWrite prints what an edit skipped and whether the edges applied
// it, and returns the exit code.
func (f *fleetCmd) reportWrite(ctx context.Context, r fleet.Result, wait time.Duration, stdout io.Writer) int {
	if !r.Published {
		return 0
	}
	printSkipped(stdout, r.Base, r.Skipped)
	if !f.waitApplied(ctx, r.Version, wait, stdout) {
		return exitNotApplied
	}
	return 0
}

// historyJSON is one entry of history -json: a fleet version, or in file
// mode one edit from the edit history.
type historyJSON struct {
	Version int64     `json:"version,omitempty"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Comment string    `json:"comment,omitempty"`
	// Command is the edit in file mode (block, unblock).
	Command string `json:"command,omitempty"`
	SHA256  string `json:"sha256"`
	// Changes are the rules added, removed and changed against the
	// version before; null when that version is not kept.
	Changes []blocklist.HistoryChange `json:"changes"`
	// Rules is the version's rule count (fleet); Invalid, why edges
	// refuse it.
	Rules   int    `json:"rules,omitempty"`
	Invalid string `json:"invalid,omitempty"`
}

func runHistory(args []string, stdout, stderr io.Writer) int {
	var n int
	var asJSON, fileMode bool
	_, configFile, ok := flags("history", args, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&n, "n", 10, "how many versions (edits in file mode) to show, newest first (0: all kept)")
		fs.BoolVar(&fileMode, "file", false, "the edit history of blocklist.file even when the config has a fleet section")
		jsonFlag(fs, &asJSON)
	})
	if !ok {
		return 2
	}
	if cfg, err := config.LoadFleetConfig(configFile); err == nil && (cfg.Fleet == nil || fileMode) {
		return fileHistory(configFile, n, asJSON, stdout, stderr)
	}
	c, ok := openFleet(configFile, stderr)
	if !ok {
		return 1
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	// One more than shown: the version before the oldest shown, to
	// compare it with.
	vs, err := c.store.History(ctx, max(n, 0)+min(n, 1))
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if len(vs) == 0 && !asJSON {
		fmt.Fprintln(stdout, "no version published yet")
		return 0
	}
	shown := len(vs)
	if n > 0 {
		shown = min(n, len(vs))
	}
	out := []historyJSON{}
	for i, v := range vs[:shown] {
		h := historyJSON{Version: v.Number, Time: v.Time.UTC(), Actor: v.Actor, Comment: v.Comment, SHA256: v.SHA256}
		if !asJSON {
			comment := ""
			if v.Comment != "" {
				comment = "  " + strconv.Quote(v.Comment)
			}
			kind := ""
			if !v.Legacy && v.Kind.Explicit() {
				kind = "  " + string(v.Kind)
			}
			parent := ""
			if !v.Legacy && v.ParentNumber != 0 && v.ParentNumber != v.Number-1 {
				parent = fmt.Sprintf("  (builds on version %d)", v.ParentNumber)
			}
			fmt.Fprintf(stdout, "version %d  %s  by %s  sha256 %.12s%s%s%s\n", v.Number, v.Time.UTC().Format(time.RFC3339), v.Actor, v.SHA256, kind, comment, parent)
		}
		if v.Problem != nil {
			h.Invalid = v.Problem.Error()
			out = append(out, h)
			if !asJSON {
				fmt.Fprintf(stdout, "  BAD: %v (edges refuse it; writers build on the newest good version)\n", v.Problem)
			}
			continue
		}
		l, err := blocklist.Parse(fleet.ListName(v.Number), v.Content)
		if err != nil {
			h.Invalid = err.Error()
			out = append(out, h)
			if !asJSON {
				fmt.Fprintf(stdout, "  fails validation (edges refuse it): %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
			}
			continue
		}
		h.Rules = l.Len()
		var prev *blocklist.List
		pnum := v.Number - 1
		if !v.Legacy {
			pnum = v.ParentNumber
		}
		for _, p := range vs[i+1:] {
			if p.Number == pnum && p.Problem == nil {
				prev, _ = blocklist.Parse(fleet.ListName(p.Number), p.Content)
				break
			}
		}
		if prev == nil && (v.Number == 1 || (!v.Legacy && v.ParentNumber == 0)) {
			prev = mustParse("")
		}
		switch {
		case asJSON && prev != nil:
			h.Changes = blocklist.HistoryChanges(l, prev)
		case asJSON:
		case prev != nil:
			printChanges(stdout, l, prev)
		default:
			fmt.Fprintf(stdout, "  %d rules (the version before is not kept or fails validation)\n", l.Len())
		}
		out = append(out, h)
	}
	if asJSON {
		writeJSON(stdout, out)
	}
	return 0
}

// fileHistory prints the edit history of the config's blocklist file
// (blocklist.HistoryPath), newest first: every edit made with block and
// unblock, each with who, when, why and the rules it changed.
func fileHistory(configFile string, n int, asJSON bool, stdout, stderr io.Writer) int {
	cfg, err := config.LoadFleetConfig(configFile)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	file := cfg.Blocklist.File
	if file == "" {
		fmt.Fprintf(stderr, "edgeblock: %s has neither blocklist.file nor a fleet section: no history to show\n", configFile)
		return 1
	}
	es, err := blocklist.ReadHistory(file)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	slices.Reverse(es)
	if n > 0 && len(es) > n {
		es = es[:n]
	}
	if asJSON {
		out := []historyJSON{}
		for _, e := range es {
			out = append(out, historyJSON{Time: e.Time, Actor: e.Actor, Comment: e.Comment, Command: e.Command, SHA256: e.SHA256, Changes: e.Changes})
		}
		writeJSON(stdout, out)
		return 0
	}
	if len(es) == 0 {
		fmt.Fprintf(stdout, "no edit recorded in %s yet (block and unblock record theirs; hand edits are in the edge's audit log only)\n", blocklist.HistoryPath(file))
		return 0
	}
	for _, e := range es {
		comment := ""
		if e.Comment != "" {
			comment = "  " + strconv.Quote(e.Comment)
		}
		fmt.Fprintf(stdout, "%s  %s  by %s  sha256 %.12s%s\n", e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), e.Command, e.Actor, e.SHA256, comment)
		for _, c := range e.Changes {
			switch c.Kind {
			case blocklist.Added:
				fmt.Fprintf(stdout, "  + %s\n", c.Line)
			case blocklist.Removed:
				fmt.Fprintf(stdout, "  - %s\n", c.Line)
			default:
				attrs := make([]string, len(c.Attrs))
				for i, a := range c.Attrs {
					attrs[i] = a.Key + " " + a.String()
				}
				fmt.Fprintf(stdout, "  ~ %s: %s\n", c.Rule, strings.Join(attrs, ", "))
			}
		}
	}
	return 0
}

// mustParse parses a list known to be valid.
func mustParse(s string) *blocklist.List {
	l, err := blocklist.Parse("", []byte(s))
	if err != nil {
		panic(err)
	}
	return l
}

// printChanges writes the rules next adds, removes and changes against
// prev, indented, with who and why where the list records it.
func printChanges(w io.Writer, next, prev *blocklist.List) {
	n := 0
	for c := range next.Changes(prev) {
		n++
		why := ""
		if c.HasNote {
			why = "  (" + strings.TrimPrefix(c.Note.Line(), blocklist.NotePrefix) + ")"
		}
		switch c.Kind {
		case blocklist.Added:
			fmt.Fprintf(w, "  + %s%s\n", c.Rule.Format(), why)
		case blocklist.Removed:
			fmt.Fprintf(w, "  - %s%s\n", c.Rule.Format(), why)
		case blocklist.Changed:
			attrs := make([]string, len(c.Attrs))
			for i, a := range c.Attrs {
				attrs[i] = a.Key + " " + a.String()
			}
			fmt.Fprintf(w, "  ~ %s: %s%s\n", c.Rule.Pattern(), strings.Join(attrs, ", "), why)
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "  no rule changed")
	}
}

func runRollback(args []string, stdout, stderr io.Writer) int {
	var comment string
	allowDrop := -1
	fs, config, ok := flags("rollback", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&comment, "comment", "", "why: recorded with the new version")
		fs.IntVar(&allowDrop, "allow-drop", -1, "let the rollback drop up to `N` block rules of the current version, past blocklist.max_drop (to undo a mass block); "+
			"the new version then holds the line \"#! allow-drop\" so that edges apply it")
	})
	if !ok {
		return 2
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(fs.Arg(0), "v"), 10, 64)
	if fs.NArg() != 1 || err != nil || n < 1 {
		fmt.Fprintln(stderr, "usage: edgeblock rollback -config FILE [-comment TEXT] VERSION")
		return 2
	}
	c, ok := openFleet(config, stderr)
	if !ok {
		return 1
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	old, err := c.store.Get(ctx, n)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	l, err := blocklist.Parse(fleet.ListName(n), old.Content)
	if err != nil {
		printProblems(stderr, err)
		fmt.Fprintf(stderr, "edgeblock: version %d fails validation; not published\n", n)
		return 1
	}
	msg := fmt.Sprintf("rollback to version %d", n)
	if comment != "" {
		msg += ": " + comment
	}
	content := old.Content
	if allowDrop >= 0 {
		var cur *blocklist.List
		if _, cur, err = c.current(ctx); err != nil {
			fmt.Fprintf(stderr, "edgeblock: %v\n", err)
			return 1
		}
		if cur != nil {
			dropped, total := l.DroppedBlocks(cur, time.Now())
			if dropped > allowDrop {
				fmt.Fprintf(stderr, "edgeblock: not published: the rollback would drop %d of %d block rules, more than -allow-drop %d\n", dropped, total, allowDrop)
				return 1
			}
			if c.guard(l, cur) != nil && !l.AllowsDrop() {
				content = withAllowDrop(content)
				l, err = blocklist.Parse(fleet.ListName(n), content)
				if err != nil {
					fmt.Fprintf(stderr, "edgeblock: %v\n", err)
					return 1
				}
				msg += fmt.Sprintf(" (allow-drop %d: drops %d of %d block rules)", allowDrop, dropped, total)
			}
		}
	}
	v, published, err := c.publishWhole(ctx, l, content, fleet.Meta{Actor: actor(), Comment: msg}, replaceOptions{kind: fleet.KindRollback}, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if !published {
		fmt.Fprintf(stdout, "unchanged: version %d already has the content of version %d; nothing published\n", v.Number, n)
		return 0
	}
	fmt.Fprintf(stdout, "published: version %d with the content of version %d (sha256 %s, %d rules)\n", v.Number, n, v.SHA256, l.Len())
	if !bytes.Equal(content, old.Content) {
		fmt.Fprintf(stdout, "  the version holds the line %q, so that edges apply the drop; once \"edgeblock fleet status\" shows every node on version %d, take it out so that the guard protects the next edit:\n"+
			"  edgeblock pull -o list.txt && sed -i '/^#! allow-drop$/d' list.txt && edgeblock publish -comment 'guard back on' list.txt\n", blocklist.AllowDropMarker, v.Number)
	}
	if !c.waitApplied(ctx, v, defaultApplyWait, stdout) {
		return exitNotApplied
	}
	return 0
}

// withAllowDrop returns content with the allow-drop marker line at the top.
func withAllowDrop(content []byte) []byte {
	return append([]byte(blocklist.AllowDropMarker+"\n"), content...)
}

func runPull(args []string, stdout, stderr io.Writer) int {
	var out string
	var version int64
	_, config, ok := flags("pull", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "`file` to write, atomically (default: blocklist.file of the config; - or none: standard output)")
		fs.Int64Var(&version, "version", 0, "the version `N` to write, one of those kept (see history); default: the current one")
	})
	if !ok {
		return 2
	}
	c, ok := openFleet(config, stderr)
	if !ok {
		return 1
	}
	defer c.close()
	if out == "" {
		out = c.cfg.Blocklist.File
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	var v fleet.Version
	var err error
	if version > 0 {
		v, err = c.store.Get(ctx, version)
	} else {
		v, _, err = c.store.Head(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if out == "" || out == "-" {
		stdout.Write(v.Content)
		return 0
	}
	if err := blocklist.WriteFileAtomic(out, v.Content); err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "pulled: version %d (sha256 %s) to %s\n  publish your edit of it with: edgeblock publish -base %d %s\n", v.Number, v.SHA256, out, v.Number, out)
	return 0
}

// runFleet dispatches the fleet subcommands.
func runFleet(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return runFleetStatus(args[1:], stdout, stderr)
		case "forget":
			return runFleetForget(args[1:], stdout, stderr)
		case "reseed":
			return runReseed(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, "usage: edgeblock fleet status|forget|reseed [flags] (edgeblock help fleet)")
	return 2
}

func runFleetStatus(args []string, stdout, stderr io.Writer) int {
	var silent time.Duration
	var asJSON bool
	_, config, ok := flags("fleet status", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&silent, "silent", 30*time.Second, "a node whose last heartbeat is older is flagged silent (edges beat every 5s)")
		jsonFlag(fs, &asJSON)
	})
	if !ok {
		return 2
	}
	c, ok := openFleet(config, stderr)
	if !ok {
		return 1
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	h, err := c.store.Check(ctx, silent)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if asJSON {
		return printNodesJSON(stdout, &h)
	}
	return printHealth(stdout, &h)
}

// nodeJSON is one node of fleet status -json.
type nodeJSON struct {
	Node       string  `json:"node"`
	Version    int64   `json:"version"`
	SHA256     string  `json:"sha256"`
	AgeSeconds float64 `json:"age_seconds"`
	Behind     bool    `json:"behind"`
	Silent     bool    `json:"silent"`
	// Divergent says why the node's list is not what the store holds.
	Divergent string `json:"divergent,omitempty"`
	// Redis is how the node reaches Redis (mode, primary, failovers and
	// reconnects since it started); absent from nodes that do not say.
	Redis *fleet.RedisLink `json:"redis,omitempty"`
}

// fleetStatusJSON is the output of fleet status -json.
type fleetStatusJSON struct {
	Version int64 `json:"version"`
	// Head is the newest good version, below Version when newer ones
	// are corrupt or fail validation.
	Head  int64      `json:"head"`
	Nodes []nodeJSON `json:"nodes"`
	// Bad counts the nodes behind, silent or divergent; the exit code is
	// 1 if > 0 or Divergence is not empty.
	Bad int `json:"bad"`
	// Divergence says why the store is divergent (writes are refused).
	Divergence []string `json:"divergence"`
}

func printNodesJSON(w io.Writer, h *fleet.Health) int {
	out := fleetStatusJSON{Version: h.Number, Head: h.Head.Number, Nodes: []nodeJSON{}, Divergence: h.Divergence}
	if out.Divergence == nil {
		out.Divergence = []string{}
	}
	for _, n := range h.Nodes {
		out.Nodes = append(out.Nodes, nodeJSON{Node: n.Node, Version: n.Version, SHA256: n.SHA256,
			AgeSeconds: n.Age.Seconds(), Behind: n.Behind, Silent: n.Silent, Divergent: n.Divergent, Redis: n.Redis})
		if n.Behind || n.Silent || n.Divergent != "" {
			out.Bad++
		}
	}
	writeJSON(w, out)
	if len(out.Divergence) > 0 {
		return 1
	}
	return min(out.Bad, 1)
}

func runFleetForget(args []string, stdout, stderr io.Writer) int {
	fs, config, ok := flags("fleet forget", args, stderr, nil)
	if !ok {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: edgeblock fleet forget -config FILE NODE ...")
		return 2
	}
	c, ok := openFleet(config, stderr)
	if !ok {
		return 1
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	nodes, err := c.store.Nodes(ctx, time.Hour)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	known := map[string]bool{}
	for _, n := range nodes {
		known[n.Node] = true
	}
	for _, name := range fs.Args() {
		if !known[name] {
			fmt.Fprintf(stderr, "edgeblock: no node %q has a heartbeat (fleet status lists them); nothing forgotten\n", name)
			return 1
		}
	}
	if err := c.store.Forget(ctx, fs.Args()...); err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	for _, name := range fs.Args() {
		fmt.Fprintf(stdout, "forgotten: %s (it reappears with its next heartbeat if it is still running)\n", name)
	}
	return 0
}

// printHealth writes the store's state and the node table, and returns 1
// if the store is divergent, or any node is behind, silent or divergent.
func printHealth(w io.Writer, h *fleet.Health) int {
	code := 0
	fmt.Fprintf(w, "published version: %d\n", h.Number)
	if h.Head.Number != h.Number {
		fmt.Fprintf(w, "newest good version: %d (edges stay on it; writers build on it)\n", h.Head.Number)
	}
	for _, b := range h.Bad {
		fmt.Fprintf(w, "bad version %d: %v\n", b.Number, b.Problem)
	}
	if len(h.Divergence) > 0 {
		code = 1
		fmt.Fprintln(w, "STORE DIVERGENT: it does not hold the lists edges run; they keep serving them, and writes are refused:")
		for _, d := range h.Divergence {
			fmt.Fprintf(w, "  %s\n", d)
		}
		fmt.Fprintln(w, "  reseed it from the newest list an edge applied: edgeblock fleet reseed -config FILE")
	}
	if len(h.Nodes) == 0 {
		fmt.Fprintln(w, "no node has sent a heartbeat")
		return code
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tSHA256\tAGE\tSTATE")
	bad, divergent := 0, 0
	for _, n := range h.Nodes {
		var flags []string
		if n.Divergent != "" {
			flags = append(flags, "DIVERGENT")
			divergent++
		}
		if n.Behind {
			flags = append(flags, "BEHIND")
		}
		if n.Silent {
			flags = append(flags, "SILENT")
		}
		state := "ok"
		if len(flags) > 0 {
			state = strings.Join(flags, ",")
			bad++
		}
		fmt.Fprintf(tw, "%s\t%d\t%.12s\t%s\t%s\n", n.Node, n.Version, n.SHA256, n.Age.Round(100*time.Millisecond), state)
	}
	tw.Flush()
	for _, n := range h.Nodes {
		if l := n.Redis; l != nil {
			fmt.Fprintf(w, "%s: redis %s, primary %s, %d failovers, %d reconnects\n", n.Node, l.Mode, l.Primary, l.Failovers, l.Reconnects)
		}
	}
	if divergent > 0 {
		fmt.Fprintf(w, "%d of %d nodes divergent from the store\n", divergent, len(h.Nodes))
	}
	if bad > divergent {
		fmt.Fprintf(w, "%d of %d nodes behind or silent\n", bad-divergent, len(h.Nodes))
	}
	if bad > 0 {
		return 1
	}
	return code
}

// runReseed restarts the history of a divergent store from the newest
// list an edge applied: the edges' heartbeats name it and where its copy
// is (an edge that finds the store divergent saves a copy of its list
// there), or -from gives it (an edge's state directory, its snapshot, or
// a blocklist file). The new version is numbered past every version an
// edge reports and recorded as a reseed, which edges apply.
func runReseed(args []string, stdout, stderr io.Writer) int {
	var from, comment string
	var force bool
	var wait time.Duration
	_, config, ok := flags("fleet reseed", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "take the list from an edge's state `directory` (its snapshot) or a blocklist file, instead of the edges' heartbeats")
		fs.StringVar(&comment, "comment", "", "why: recorded with the version")
		fs.DurationVar(&wait, "wait", defaultApplyWait, "how long to wait for every live edge to report the reseed applied")
		fs.BoolVar(&force, "force", false, "reseed even when the store is not divergent (it then replaces newer versions no edge applied)")
	})
	if !ok {
		return 2
	}
	c, ok := openFleet(config, stderr)
	if !ok {
		return 1
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	h, err := c.store.Check(ctx, fleet.LiveAfter)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if len(h.Divergence) == 0 && !force {
		fmt.Fprintf(stderr, "edgeblock: the store is not divergent: nothing to reseed (see edgeblock fleet status); -force reseeds anyway, replacing versions no edge applied\n")
		return 1
	}
	// Numbering goes on past every version any node reports.
	floor := h.Number
	for _, n := range h.Nodes {
		floor = max(floor, n.Version)
	}
	var src fleet.Version // the list to reseed from: Number, SHA256, Content
	var srcName string
	if from != "" {
		if src, srcName, err = reseedFrom(from); err != nil {
			fmt.Fprintf(stderr, "edgeblock: %v\n", err)
			return 1
		}
		floor = max(floor, src.Number)
	} else {
		if src, srcName, err = c.newestApplied(ctx, &h); err != nil {
			fmt.Fprintf(stderr, "edgeblock: %v\n", err)
			return 1
		}
	}
	l, err := blocklist.Parse(srcName, src.Content)
	if err != nil {
		printProblems(stderr, err)
		fmt.Fprintln(stderr, "edgeblock: not reseeded: the list fails validation")
		return 1
	}
	if h.Head.Number != 0 && h.Head.SHA256 != src.SHA256 {
		// What the store holds now and the reseed does not carry over:
		// written while the store was divergent; say so.
		if cur, err := blocklist.Parse("store", h.Head.Content); err == nil {
			if lost := removedRules(l, cur); len(lost) > 0 {
				fmt.Fprintf(stdout, "  note: the store's version %d has %d rules the reseed does not carry over (written while it was divergent?): %s; block them again if they are meant\n",
					h.Head.Number, len(lost), strings.Join(lost[:min(20, len(lost))], " "))
			}
		}
	}
	msg := fmt.Sprintf("reseed from %s", srcName)
	if comment != "" {
		msg += ": " + comment
	}
	var v fleet.Version
	for attempt := 0; ; attempt++ {
		v, err = c.store.Commit(ctx, src.Content, fleet.Meta{Actor: actor(), Comment: msg},
			fleet.Write{Expect: h.Number, Base: &src, Kind: fleet.KindReseed, Floor: floor})
		if errors.Is(err, fleet.ErrConflict) && attempt < 10 {
			var ce *fleet.ConflictError
			errors.As(err, &ce)
			h.Number = ce.Current
			floor = max(floor, ce.Current)
			continue
		}
		break
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	var copies []string
	for _, n := range h.Nodes {
		if n.Copy != "" {
			copies = append(copies, n.SHA256)
		}
	}
	if err := c.store.DropCopies(ctx, copies...); err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v (the reseed is published)\n", err)
	}
	fmt.Fprintf(stdout, "reseeded: version %d from %s (sha256 %s, %d rules)\n", v.Number, srcName, v.SHA256, l.Len())
	if !c.waitApplied(ctx, v, wait, stdout) {
		return exitNotApplied
	}
	return 0
}

// newestApplied finds the newest list any node reports applied (the
// highest version number; nodes that disagree at it are an error) and
// its content: the copy the edge saved in the store, or the store's own
// version if it still holds that list.
func (c *fleetCmd) newestApplied(ctx context.Context, h *fleet.Health) (fleet.Version, string, error) {
	var best *fleet.NodeStatus
	for i := range h.Nodes {
		n := &h.Nodes[i]
		if n.Version <= 0 || n.SHA256 == "" {
			continue
		}
		switch {
		case best == nil || n.Version > best.Version:
			best = n
		case n.Version == best.Version && n.SHA256 != best.SHA256:
			return fleet.Version{}, "", fmt.Errorf("nodes %s and %s both run version %d with different lists (%.12s, %.12s): choose one with -from (the state directory of the edge whose list is right)",
				best.Node, n.Node, n.Version, best.SHA256, n.SHA256)
		}
	}
	if best == nil {
		return fleet.Version{}, "", errors.New("no node reports a list it applied: give the list with -from (an edge's state directory, or a blocklist file)")
	}
	src := fleet.Version{Number: best.Version, SHA256: best.SHA256}
	name := fmt.Sprintf("node %s's list (version %d)", best.Node, best.Version)
	content, err := c.store.ReadCopy(ctx, best.SHA256)
	if err != nil {
		v, gerr := c.store.Get(ctx, best.Version)
		if gerr != nil || v.SHA256 != best.SHA256 {
			return fleet.Version{}, "", fmt.Errorf("%s (sha256 %.12s): no copy of it in the store (%v): give it with -from (that edge's state directory)", name, best.SHA256, err)
		}
		content = v.Content
	}
	src.Content = content
	return src, name, nil
}

// reseedFrom reads the list to reseed from path: a state directory (its
// snapshot; the version it was applied as comes with it) or a blocklist
// file.
func reseedFrom(path string) (fleet.Version, string, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		snap, err := reload.ReadSnapshot(path)
		if err != nil {
			return fleet.Version{}, "", fmt.Errorf("-from %s: %w", path, err)
		}
		n, _ := fleet.VersionOfListName(snap.Blocklist.Path)
		return fleet.Version{Number: n, SHA256: snap.Blocklist.SHA256, Content: snap.Blocklist.Data},
			fmt.Sprintf("the snapshot in %s (%s)", path, snap.Blocklist.Path), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fleet.Version{}, "", fmt.Errorf("-from: %w", err)
	}
	sum := sha256.Sum256(data)
	return fleet.Version{SHA256: hex.EncodeToString(sum[:]), Content: data}, path, nil
}
