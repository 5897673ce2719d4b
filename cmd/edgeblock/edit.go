package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy"
)

// editCmd holds the flags and arguments of block and unblock.
type editCmd struct {
	config, comment string
	replace         bool
	// fleet edits the fleet's published list (a new version) instead of
	// the file; implied by blocklist.source fleet.
	fleet bool
	args  []string // HOST, then key=value arguments
}

// parseEdit parses the flags and arguments of block or unblock. Flags may
// come before or after the arguments (edgeblock block forum.example
// status=451 -comment T-42); after "--" everything is an argument.
func parseEdit(name string, args []string, stderr io.Writer) (*editCmd, bool) {
	c := &editCmd{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "edgeblock.yaml", "configuration `file`")
	fs.StringVar(&c.comment, "comment", "", "why: a ticket or reason, recorded in the file with who and when")
	fs.BoolVar(&c.fleet, "fleet", false, "edit the fleet's published list in Redis (a new version) instead of the file; the default with blocklist.source fleet")
	if name == "block" {
		fs.BoolVar(&c.replace, "replace", false, "rewrite an existing rule with only the given attributes, instead of merging them")
	}
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
func (c *editCmd) editFile(stderr io.Writer) (cfg *proxy.Config, fleet, ok bool) {
	cfg, err := proxy.LoadConfig(c.config)
	if err != nil {
		printProblems(stderr, err)
		return nil, false, false
	}
	return cfg, c.fleet || cfg.FromFleet(), true
}

// guardEdit refuses an edit of the file that the running edge's drop guard
// would refuse (proxy.CheckDrop): written anyway, the file would sit on
// disk unapplied while the edge keeps the old list and alerts. It parses
// both versions, so it runs only for edits that can drop a block rule (an
// unblock, or a change of an existing rule).
func guardEdit(file string, old, next []byte, maxDrop float64) error {
	oldList, err := blocklist.Parse(file, old)
	if err != nil {
		return nil // the file was already bad: the edit's own parse reports the new one
	}
	nextList, err := blocklist.Parse(file, next)
	if err != nil {
		return err
	}
	if err := proxy.CheckDrop(nextList, oldList, maxDrop, time.Now()); err != nil {
		return fmt.Errorf("%w\nnothing written: the running edge would refuse this list and keep the old one; if the drop is meant, add the line %q to %s first (and take it out afterwards)",
			err, blocklist.AllowDropMarker, file)
	}
	return nil
}

func runBlock(args []string, stdout, stderr io.Writer) int {
	c, ok := parseEdit("block", args, stderr)
	if !ok {
		return 2
	}
	if len(c.args) < 1 {
		fmt.Fprintln(stderr, "usage: edgeblock block -config FILE [-replace] [-comment TEXT] HOST [key=value ...]")
		return 2
	}
	cfg, toFleet, ok := c.editFile(stderr)
	if !ok {
		return 1
	}
	if toFleet {
		return runBlockFleet(c, stdout, stderr)
	}
	file := cfg.Blocklist.File
	note := blocklist.NewNote(time.Now(), actor(), c.comment)
	var res blocklist.EditResult
	err := blocklist.EditFile(file, func(data []byte) (out []byte, err error) {
		out, res, err = blocklist.Block(file, data, c.args[0], c.args[1:], blocklist.BlockOptions{Replace: c.replace, Note: &note})
		if err == nil && res.Kind == blocklist.Changed {
			err = guardEdit(file, data, out, cfg.Blocklist.MaxDrop) // mode=report or a past expiry drops a block
		}
		return out, err
	})
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	printBlock(stdout, res, fmt.Sprintf("%s:%d", file, res.Line), note, "nothing written")
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

func runUnblock(args []string, stdout, stderr io.Writer) int {
	c, ok := parseEdit("unblock", args, stderr)
	if !ok {
		return 2
	}
	if len(c.args) != 1 {
		fmt.Fprintln(stderr, "usage: edgeblock unblock -config FILE [-comment TEXT] HOST")
		return 2
	}
	cfg, toFleet, ok := c.editFile(stderr)
	if !ok {
		return 1
	}
	if toFleet {
		return runUnblockFleet(c, stdout, stderr)
	}
	file := cfg.Blocklist.File
	if _, err := os.Stat(file); err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	now := time.Now()
	note := blocklist.NewNote(now, actor(), c.comment)
	var res blocklist.EditResult
	err := blocklist.EditFile(file, func(data []byte) (out []byte, err error) {
		out, res, err = blocklist.Unblock(file, data, c.args[0], &note, now)
		if err == nil {
			err = guardEdit(file, data, out, cfg.Blocklist.MaxDrop)
		}
		return out, err
	})
	var noRule *blocklist.NoRuleError
	if errors.As(err, &noRule) {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "removed: %s (was %s:%d)\n  note: %s\n", res.OldLine, file, res.Line, note.UnblockLine(res.Pattern))
	return 0
}
