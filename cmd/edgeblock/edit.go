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

// editFile returns the blocklist file named by the config; fleet is true
// when the edit goes to the fleet instead (-fleet, or blocklist.source
// fleet).
func (c *editCmd) editFile(stderr io.Writer) (file string, fleet, ok bool) {
	cfg, err := proxy.LoadConfig(c.config)
	if err != nil {
		printProblems(stderr, err)
		return "", false, false
	}
	return cfg.Blocklist.File, c.fleet || cfg.FromFleet(), true
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
	file, toFleet, ok := c.editFile(stderr)
	if !ok {
		return 1
	}
	if toFleet {
		return runBlockFleet(c, stdout, stderr)
	}
	note := blocklist.NewNote(time.Now(), actor(), c.comment)
	var res blocklist.EditResult
	err := blocklist.EditFile(file, func(data []byte) (out []byte, err error) {
		out, res, err = blocklist.Block(file, data, c.args[0], c.args[1:], blocklist.BlockOptions{Replace: c.replace, Note: &note})
		return out, err
	})
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	switch res.Kind {
	case blocklist.Added:
		fmt.Fprintf(stdout, "added: %s (%s:%d)\n  note: %s\n", res.NewLine, file, res.Line, note.Line())
	case blocklist.Changed:
		fmt.Fprintf(stdout, "changed: %s (%s:%d)\n  old: %s\n  new: %s\n", res.Pattern, file, res.Line, res.OldLine, res.NewLine)
		for _, a := range res.Attrs {
			fmt.Fprintf(stdout, "  %s: %s\n", a.Key, a)
		}
		fmt.Fprintf(stdout, "  note: %s\n", note.Line())
	default:
		fmt.Fprintf(stdout, "unchanged: %s (%s:%d): the rule already says that; nothing written\n", res.NewLine, file, res.Line)
	}
	return 0
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
	file, toFleet, ok := c.editFile(stderr)
	if !ok {
		return 1
	}
	if toFleet {
		return runUnblockFleet(c, stdout, stderr)
	}
	if _, err := os.Stat(file); err != nil {
		fmt.Fprintf(stderr, "edgeblock: %v\n", err)
		return 1
	}
	now := time.Now()
	note := blocklist.NewNote(now, actor(), c.comment)
	var res blocklist.EditResult
	err := blocklist.EditFile(file, func(data []byte) (out []byte, err error) {
		out, res, err = blocklist.Unblock(file, data, c.args[0], &note, now)
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
