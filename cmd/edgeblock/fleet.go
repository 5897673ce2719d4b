package main

import (
	"bytes"
	"context"
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

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy"
	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// fleetTimeout bounds one fleet command's work against Redis.
const fleetTimeout = 30 * time.Second

// fleetCmd is a connection to the fleet named by a config file.
type fleetCmd struct {
	cfg   *proxy.Config
	store *fleet.Store
	close func() error
}

// openFleet loads the config and connects to its fleet's Redis. It prints
// the problem and returns false when the config is bad or has no fleet
// section. Only the fleet section (and blocklist.max_drop) must be valid
// (proxy.LoadFleetConfig): a config of only fleet: will do.
func openFleet(config string, stderr io.Writer) (*fleetCmd, bool) {
	cfg, err := proxy.LoadFleetConfig(config)
	if err != nil {
		printProblems(stderr, err)
		return nil, false
	}
	if cfg.Fleet == nil {
		fmt.Fprintf(stderr, "edgeblock: %s has no fleet section: fleet commands need fleet.redis.addr\n", config)
		return nil, false
	}
	rdb, err := fleet.NewClient(*cfg.Fleet)
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return nil, false
	}
	return &fleetCmd{cfg: cfg, store: fleet.NewStore(rdb, *cfg.Fleet), close: rdb.Close}, true
}

// current returns the newest version (Number 0 if none) and the list the
// edges apply: its list, or when it fails validation (published around
// the CLI, so edges refused it) the newest kept version that passes, the
// one edges stay on; nil if there is none.
func (c *fleetCmd) current(ctx context.Context) (fleet.Version, *blocklist.List, error) {
	v, err := c.store.Current(ctx)
	if errors.Is(err, fleet.ErrNoVersion) {
		return fleet.Version{}, nil, nil
	}
	if err != nil {
		return v, nil, err
	}
	if l, err := blocklist.Parse(proxy.FleetListName(v.Number), v.Content); err == nil {
		return v, l, nil
	}
	vs, err := c.store.History(ctx, 0)
	if err != nil {
		return v, nil, err
	}
	for _, old := range vs {
		if l, err := blocklist.Parse(proxy.FleetListName(old.Number), old.Content); err == nil {
			return v, l, nil
		}
	}
	return v, nil, nil
}

// guard is the edges' drop guard, applied before publishing next over the
// list in effect, so that what the CLI publishes is what edges apply.
func (c *fleetCmd) guard(next, cur *blocklist.List) error {
	if cur == nil {
		return nil
	}
	err := proxy.CheckDrop(next, cur, c.cfg.Blocklist.MaxDrop, time.Now())
	var de *proxy.DropError
	if errors.As(err, &de) {
		n, _ := proxy.FleetVersionOf(cur.File())
		return fmt.Errorf("not published: it would drop %d of %d block rules of version %d (%s), and edges would refuse it; if that is meant, add the line %q to it",
			de.Dropped, de.Total, n, dropShare(de), blocklist.AllowDropMarker)
	}
	return err
}

// publishWhole publishes content as the new version after checking it
// against the newest one, retrying when another writer publishes first.
// It returns the version, and false in the second result when the content
// was already the newest version's (nothing published).
func (c *fleetCmd) publishWhole(ctx context.Context, next *blocklist.List, content []byte, meta fleet.Meta) (fleet.Version, bool, error) {
	for attempt := 0; ; attempt++ {
		cur, curList, err := c.current(ctx)
		if err != nil {
			return fleet.Version{}, false, err
		}
		if cur.Number != 0 && bytes.Equal(cur.Content, content) {
			return cur, false, nil
		}
		if err := c.guard(next, curList); err != nil {
			return fleet.Version{}, false, err
		}
		v, err := c.store.Publish(ctx, content, meta, cur.Number)
		if errors.Is(err, fleet.ErrConflict) && attempt < 10 {
			continue // checked again against the version that won
		}
		return v, err == nil, err
	}
}

func runPublish(args []string, stdout, stderr io.Writer) int {
	var comment string
	fs, config, ok := flags("publish", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&comment, "comment", "", "why: a ticket or reason, recorded with the version")
	})
	if !ok {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: edgeblock publish -config FILE [-comment TEXT] BLOCKLIST")
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
	v, published, err := c.publishWhole(ctx, next, data, fleet.Meta{Actor: actor(), Comment: comment})
	if err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if !published {
		fmt.Fprintf(stdout, "unchanged: version %d already has this content (sha256 %s); nothing published\n", v.Number, v.SHA256)
		return 0
	}
	fmt.Fprintf(stdout, "published: version %d (sha256 %s, %d rules)\n", v.Number, v.SHA256, next.Len())
	return 0
}

// runBlockFleet is block -fleet: Block on the published list, as a new
// version, retried from a fresh read when another writer publishes first.
func runBlockFleet(c *editCmd, stdout, stderr io.Writer) int {
	f, ok := openFleet(c.config, stderr)
	if !ok {
		return 1
	}
	defer f.close()
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	note := blocklist.NewNote(time.Now(), actor(), c.comment)
	var res blocklist.EditResult
	v, err := f.store.Update(ctx, func(cur []byte) (out []byte, err error) {
		out, res, err = blocklist.Block("fleet", cur, c.args[0], c.args[1:], blocklist.BlockOptions{Replace: c.replace, Note: &note})
		if err == nil && res.Kind == "" {
			return cur, nil // as asked already: Update publishes nothing
		}
		return out, err
	}, fleet.Meta{Actor: note.By, Comment: c.comment})
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	if c.json {
		kind := string(res.Kind)
		if kind == "" {
			kind = "unchanged"
		}
		e := newEditJSON(res, kind)
		e.Version = v.Number
		if kind != "unchanged" {
			e.Note = note.Line()
		}
		writeJSON(stdout, e)
		return 0
	}
	printBlock(stdout, res, fmt.Sprintf("version %d, line %d", v.Number, res.Line), note, "nothing published")
	return 0
}

// runUnblockFleet is unblock -fleet. The drop guard applies: removing the
// last block rule needs the allow-drop line, as edges would refuse it.
func runUnblockFleet(c *editCmd, stdout, stderr io.Writer) int {
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
	v, err := f.store.Update(ctx, func(cur []byte) (out []byte, err error) {
		out, res, err = blocklist.Unblock("fleet", cur, c.args[0], &note, now)
		if err != nil {
			return nil, err
		}
		curList, perr := blocklist.Parse("fleet", cur)
		next, nerr := blocklist.Parse("fleet", out)
		if perr == nil && nerr == nil {
			err = f.guard(next, curList)
		}
		return out, err
	}, fleet.Meta{Actor: note.By, Comment: c.comment})
	var noRule *blocklist.NoRuleError
	if errors.As(err, &noRule) {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	if c.json {
		e := newEditJSON(res, "removed")
		e.Version, e.Note = v.Number, note.UnblockLine(res.Pattern)
		writeJSON(stdout, e)
		return 0
	}
	fmt.Fprintf(stdout, "removed: %s (version %d; was line %d)\n  note: %s\n", res.OldLine, v.Number, res.Line, note.UnblockLine(res.Pattern))
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
	_, config, ok := flags("history", args, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&n, "n", 10, "how many versions (edits in file mode) to show, newest first (0: all kept)")
		fs.BoolVar(&fileMode, "file", false, "the edit history of blocklist.file even when the config has a fleet section")
		jsonFlag(fs, &asJSON)
	})
	if !ok {
		return 2
	}
	if cfg, err := proxy.LoadFleetConfig(config); err == nil && (cfg.Fleet == nil || fileMode) {
		return fileHistory(config, n, asJSON, stdout, stderr)
	}
	c, ok := openFleet(config, stderr)
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
			fmt.Fprintf(stdout, "version %d  %s  by %s  sha256 %.12s%s\n", v.Number, v.Time.UTC().Format(time.RFC3339), v.Actor, v.SHA256, comment)
		}
		l, err := blocklist.Parse(proxy.FleetListName(v.Number), v.Content)
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
		if i+1 < len(vs) && vs[i+1].Number == v.Number-1 {
			prev, _ = blocklist.Parse(proxy.FleetListName(vs[i+1].Number), vs[i+1].Content)
		} else if v.Number == 1 {
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
func fileHistory(config string, n int, asJSON bool, stdout, stderr io.Writer) int {
	cfg, err := proxy.LoadFleetConfig(config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	file := cfg.Blocklist.File
	if file == "" {
		fmt.Fprintf(stderr, "edgeblock: %s has neither blocklist.file nor a fleet section: no history to show\n", config)
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
	l, err := blocklist.Parse(proxy.FleetListName(n), old.Content)
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
				l, err = blocklist.Parse(proxy.FleetListName(n), content)
				if err != nil {
					fmt.Fprintf(stderr, "edgeblock: %v\n", err)
					return 1
				}
				msg += fmt.Sprintf(" (allow-drop %d: drops %d of %d block rules)", allowDrop, dropped, total)
			}
		}
	}
	v, published, err := c.publishWhole(ctx, l, content, fleet.Meta{Actor: actor(), Comment: msg})
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
		v, err = c.store.Current(ctx)
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
	fmt.Fprintf(stdout, "pulled: version %d (sha256 %s) to %s\n", v.Number, v.SHA256, out)
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
		}
	}
	fmt.Fprintln(stderr, "usage: edgeblock fleet status|forget [flags] (edgeblock help fleet)")
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
	cur, err := c.store.CurrentNumber(ctx)
	if err == nil {
		var nodes []fleet.NodeStatus
		if nodes, err = c.store.Nodes(ctx, silent); err == nil {
			if asJSON {
				return printNodesJSON(stdout, cur, nodes)
			}
			return printNodes(stdout, cur, nodes)
		}
	}
	fmt.Fprintf(stderr, "edgeblock: %v\n", err)
	return 1
}

// nodeJSON is one node of fleet status -json.
type nodeJSON struct {
	Node       string  `json:"node"`
	Version    int64   `json:"version"`
	SHA256     string  `json:"sha256"`
	AgeSeconds float64 `json:"age_seconds"`
	Behind     bool    `json:"behind"`
	Silent     bool    `json:"silent"`
}

// fleetStatusJSON is the output of fleet status -json.
type fleetStatusJSON struct {
	Version int64      `json:"version"`
	Nodes   []nodeJSON `json:"nodes"`
	// Bad counts the nodes behind or silent; the exit code is 1 if > 0.
	Bad int `json:"bad"`
}

func printNodesJSON(w io.Writer, cur int64, nodes []fleet.NodeStatus) int {
	out := fleetStatusJSON{Version: cur, Nodes: []nodeJSON{}}
	for _, n := range nodes {
		out.Nodes = append(out.Nodes, nodeJSON{Node: n.Node, Version: n.Version, SHA256: n.SHA256,
			AgeSeconds: n.Age.Seconds(), Behind: n.Behind, Silent: n.Silent})
		if n.Behind || n.Silent {
			out.Bad++
		}
	}
	writeJSON(w, out)
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

// printNodes writes the node table and returns 1 if any node is behind
// or silent.
func printNodes(w io.Writer, cur int64, nodes []fleet.NodeStatus) int {
	fmt.Fprintf(w, "published version: %d\n", cur)
	if len(nodes) == 0 {
		fmt.Fprintln(w, "no node has sent a heartbeat")
		return 0
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tSHA256\tAGE\tSTATE")
	bad := 0
	for _, n := range nodes {
		var flags []string
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
	if bad > 0 {
		fmt.Fprintf(w, "%d of %d nodes behind or silent\n", bad, len(nodes))
		return 1
	}
	return 0
}
