package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"

	"github.com/edgeblock/edgeblock/proxy/config"

	"github.com/edgeblock/edgeblock/blocklist"
)

// editCmd holds the flags and arguments of block and unblock.
type editCmd struct {
	config, comment string
	replace         bool
	// json prints the result as JSON (editJSON); admin is the admin
	// listener to ask whether the edit is in effect.
	json  bool
	admin string
	// fleet edits the fleet's published list (a new version) instead of
	// the file; implied by blocklist.source fleet.
	fleet bool
	// wait bounds how long a fleet edit waits for the edges to report it
	// applied.
	wait time.Duration
	args []string // HOST, then key=value arguments
}

// parseEdit parses the flags and arguments of block or unblock. Flags may
// come before or after the arguments (edgeblock block forum.example
// status=451 -comment T-42); after "--" everything is an argument.
func parseEdit(name string, args []string, stderr io.Writer) (*editCmd, bool) {
	c := &editCmd{}
	fs := newFlagSet(name, stderr)
	fs.StringVar(&c.config, "config", defaultConfig(), "configuration `file` (default: $"+configEnv+", else edgeblock.yaml)")
	fs.StringVar(&c.comment, "comment", "", "why: a ticket or reason, recorded in the file with who and when")
	fs.BoolVar(&c.fleet, "fleet", false, "edit the fleet's published list in Redis (a new version) instead of the file; the default with blocklist.source fleet")
	fs.DurationVar(&c.wait, "wait", defaultApplyWait, "with -fleet: how long to wait for every live edge to report the new version applied (exit 3 if one has not)")
	if name == "block" {
		fs.BoolVar(&c.replace, "replace", false, "rewrite an existing rule with only the given attributes, instead of merging them")
	}
	jsonFlag(fs, &c.json)
	fs.StringVar(&c.admin, "admin", "", "admin listener `address` of the running edge, asked whether the edit is in effect (default: listen.admin of the config)")
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return c, true
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			c.args = append(c.args, rest...)
			return c, true
		}
		c.args = append(c.args, rest[0])
		args = rest[1:]
	}
}

// actor returns who runs the command: SUDO_USER, else the invoking user.
func actor() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "uid" + strconv.Itoa(os.Getuid())
}

// editFile returns the config, whose blocklist.file is the file to edit;
// fleet is true when the edit goes to the fleet instead (-fleet, or
// blocklist.source fleet).
func (c *editCmd) editFile(stderr io.Writer) (cfg *config.Config, fleet, ok bool) {
	// A fleet edit needs only the fleet section (a fleet-only config).
	fc, ferr := config.LoadFleetConfig(c.config)
	if ferr == nil && fc.Fleet != nil && (c.fleet || fc.FromFleet()) {
		return fc, true, true
	}
	cfg, err := config.LoadConfig(c.config)
	if err != nil {
		printProblems(stderr, err)
		if ferr == nil && fc.Fleet != nil {
			fmt.Fprintf(stderr, "edgeblock: %s has a fleet section: to edit the fleet's list, give -fleet (the file edit needs the whole config)\n", c.config)
		}
		return nil, false, false
	}
	return cfg, c.fleet || cfg.FromFleet(), true
}

// edit returns the blocklist edit the command asks for, recorded with
// note: unblock removes the rule of the HOST argument, else its rule is
// set to the key=value arguments.
func (c *editCmd) edit(unblock bool, note *blocklist.Note) blocklist.Edit {
	e := blocklist.Edit{Unblock: unblock, Pattern: c.args[0], Replace: c.replace, Note: note}
	if !unblock {
		e.Args = c.args[1:]
	}
	return e
}

// guardRefusal adds to a drop-guard refusal of blocklist.ApplyEdit what
// was not done ("nothing written"), who would refuse the list ("the
// running edge") and where the allow-drop line goes; other errors are
// returned as they are.
func guardRefusal(err error, notDone, who, where string) error {
	var de *blocklist.DropError
	if errors.As(err, &de) {
		return fmt.Errorf("%w\n%s: %s would refuse this list and keep the old one; if the drop is meant, add the line %q to %s first (and take it out afterwards)",
			err, notDone, who, blocklist.AllowDropMarker, where)
	}
	return err
}

func runBlock(args []string, stdout, stderr io.Writer) int {
	return runEdit("block", args, stdout, stderr)
}

func runUnblock(args []string, stdout, stderr io.Writer) int {
	return runEdit("unblock", args, stdout, stderr)
}

// editUsage is each edit command's usage line.
var editUsage = map[string]string{
	"block":   "usage: edgeblock block -config FILE [-replace] [-comment TEXT] HOST [key=value ...]",
	"unblock": "usage: edgeblock unblock -config FILE [-comment TEXT] HOST",
}

// runEdit is block and unblock, of the file or of the fleet's published
// list: one path around blocklist.ApplyEdit, the one guarded edit.
func runEdit(command string, args []string, stdout, stderr io.Writer) int {
	unblock := command == "unblock"
	c, ok := parseEdit(command, args, stderr)
	if !ok {
		return 2
	}
	if len(c.args) < 1 || unblock && len(c.args) != 1 {
		fmt.Fprintln(stderr, editUsage[command])
		return 2
	}
	cfg, toFleet, ok := c.editFile(stderr)
	if !ok {
		return 1
	}
	if toFleet {
		return runEditFleet(c, unblock, stdout, stderr)
	}
	file := cfg.Blocklist.File
	if unblock {
		// block creates a missing list; there is nothing to unblock in one.
		if _, err := os.Stat(file); err != nil {
			fmt.Fprintf(stderr, "edgeblock: %v\n", err)
			return 1
		}
	}
	now := time.Now()
	note := blocklist.NewNote(now, actor(), c.comment)
	var res blocklist.EditResult
	var sum func() string
	err := blocklist.EditFile(file, func(data []byte) (out []byte, err error) {
		e := c.edit(unblock, &note)
		e.InPlace = true // each call gets a read of its own
		out, res, err = blocklist.ApplyEdit(file, data, e, cfg.Blocklist.MaxDrop, now)
		sum = nil
		if out != nil {
			sum = hashAsync(out) // while the file is written and synced
		}
		return out, guardRefusal(err, "nothing written", "the running edge", file)
	})
	if editFailed(err, stderr) {
		return 1
	}
	return c.fileEdited(cfg, command, res, note, sum, stdout, stderr)
}

// hashAsync starts hashing b (blocklist.SHA256Hex) and returns the
// function that waits for the result. b must not change meanwhile.
func hashAsync(b []byte) func() string {
	done := make(chan string, 1)
	go func() { done <- blocklist.SHA256Hex(b) }()
	return sync.OnceValue(func() string { return <-done })
}

// editFailed prints why an edit was not made, if it was not: a rule that
// is not there to remove in one line, other problems (parse errors, a
// drop-guard refusal) line by line.
func editFailed(err error, stderr io.Writer) bool {
	var noRule *blocklist.NoRuleError
	switch {
	case err == nil:
		return false
	case errors.As(err, &noRule):
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
	default:
		printProblems(stderr, err)
	}
	return true
}

// fileEdited finishes an edit of the file: it asks the running edge
// whether it is in effect and meanwhile records the edit in the edit
// history, and prints the result. sum returns the SHA-256 of what was
// written; it is nil when nothing was.
func (c *editCmd) fileEdited(cfg *config.Config, command string, res blocklist.EditResult, note blocklist.Note, sum func() string, stdout, stderr io.Writer) int {
	file := cfg.Blocklist.File
	kind := string(res.Kind)
	if command == "unblock" {
		kind = "removed"
	} else if kind == "" {
		kind = "unchanged"
	}
	var out *editJSON
	if c.json {
		e := newEditJSON(res, kind)
		e.File = file
		if kind != "unchanged" {
			e.Note = note.Line()
			if command == "unblock" {
				e.Note = note.UnblockLine(res.Pattern)
			}
		}
		out = &e
	} else if command == "unblock" {
		fmt.Fprintf(stdout, "removed: %s (was %s:%d)\n  note: %s\n", res.OldLine, file, res.Line, note.UnblockLine(res.Pattern))
	} else {
		printBlock(stdout, res, fmt.Sprintf("%s:%d", file, res.Line), note, "nothing written")
	}
	if kind != "unchanged" && sum != nil {
		// The edge applies the file at once when asked (reload=1): ask
		// first, so that neither the hash nor the history delays it.
		applied := make(chan edgeApplied, 1)
		go func() { applied <- askApplied(cfg, c.admin, res, note.At) }()
		if err := blocklist.RecordEdit(file, command, note, res, sum(), time.Now()); err != nil {
			fmt.Fprintf(stderr, "edgeblock: warning: the edit is written but not recorded in %s: %v\n", blocklist.HistoryPath(file), err)
		}
		(<-applied).report(stdout, out, adminAddr(cfg, c.admin))
	}
	if out != nil {
		writeJSON(stdout, out)
	}
	return 0
}

// printBlock writes what block did: the rule added, changed (old and new
// line, then each attribute) or unchanged. at says where the rule is
// ("blocklist.txt:7", "version 12, line 7"); nothing says what an
// unchanged rule did not cause ("nothing written").
func printBlock(w io.Writer, res blocklist.EditResult, at string, note blocklist.Note, nothing string) {
	switch res.Kind {
	case blocklist.Added:
		fmt.Fprintf(w, "added: %s (%s)\n  note: %s\n", res.NewLine, at, note.Line())
	case blocklist.Changed:
		fmt.Fprintf(w, "changed: %s (%s)\n  old: %s\n  new: %s\n", res.Pattern, at, res.OldLine, res.NewLine)
		for _, a := range res.Attrs {
			fmt.Fprintf(w, "  %s: %s\n", a.Key, a)
		}
		fmt.Fprintf(w, "  note: %s\n", note.Line())
	default:
		fmt.Fprintf(w, "unchanged: %s (%s): the rule already says that; %s\n", res.NewLine, at, nothing)
	}
}
