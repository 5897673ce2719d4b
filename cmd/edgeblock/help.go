package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/edgeblock/edgeblock/blocklist"
)

// command is one edgeblock command and its documentation: the one source
// of the usage, `edgeblock help CMD`, `CMD -h`, the shell completions and
// the man page. The flags are not listed here: they are read from the
// command's own FlagSet (flagsOf), so that a flag the command registers is
// always documented.
type command struct {
	name string // "check", or "fleet status" for a subcommand
	// args is the synopsis after the flags: "HOST [key=value ...]".
	args    string
	summary string // one line
	// desc is the description, paragraphs separated by blank lines.
	desc     string
	examples []string // command lines, each may be followed by "  # why"
	exits    []string // "0  ok", "1  ..."
	run      func(args []string, stdout, stderr io.Writer) int
	// hidden keeps a dispatcher ("fleet") out of the listings; its
	// subcommands are listed instead.
	hidden bool
}

// exitUsage is the exit code of a command line edgeblock cannot parse.
const exitUsage = "2  bad flags or arguments (the usage is printed to standard error)"

var commands []command

func init() {
	commands = []command{
		{name: "serve", summary: "run the proxy",
			desc: `Runs the proxy with the config FILE until SIGTERM or SIGINT. SIGHUP reloads the config, the blocklist and the page templates; SIGUSR1 reopens log.access_file. SIGTERM drains for timeouts.drain, then lets in-flight requests finish within timeouts.grace.

A bad or missing config, blocklist or template at start: it starts from the snapshot of the last applied state in the state directory; with no snapshot it prints every problem and exits 1.`,
			examples: []string{"edgeblock serve -config /etc/edgeblock/edgeblock.yaml", "EDGEBLOCK_CONFIG=/etc/edgeblock/edgeblock.yaml edgeblock serve -log-format text"},
			exits:    []string{"0  stopped by a signal", "1  not started: the problems are printed", exitUsage},
			run:      runServe},
		{name: "check", summary: "validate config, blocklist and templates; compare with the running list",
			desc: `Validates the config, the blocklist and the page templates and prints every problem with file:line and the field. Then it compares the list with the one in effect, asked of the running edge's admin listener (listen.admin, or -admin), else read from the snapshot in the state directory, and exits 1 if the running edge would refuse it (the drop guard, blocklist.max_drop).

Warnings (a route whose host a block rule covers, documentation placeholders) are printed but do not fail the check.

With -json it prints one object: ok, config, routes, blocklist, rules, sha256, warnings, problems, running (source, in_effect, dropped, total, refused) and, with -diff, changes (kind, rule, line, attrs).`,
			examples: []string{"edgeblock check -config /etc/edgeblock/edgeblock.yaml", "edgeblock check -diff  # what the file changes against the running edge", "edgeblock check -json | jq .problems"},
			exits:    []string{"0  valid (and the running edge would apply it)", "1  a problem, or the running edge would refuse the list; with -diff also when there is nothing to compare with", exitUsage},
			run:      runCheck},
		{name: "explain", args: "HOST", summary: "show what a visitor to HOST gets and why",
			desc: `Says which rule blocks HOST (with its file and line) or which route serves it, and what the visitor gets. It asks the running edge first (GET /explain on the admin listener, 0.5 s to connect) and says which answered; else it reads the files. When rules scoped to countries cover HOST it lists them with their scope, and -country CC gives the decision for a visitor from that country (default: a visitor of unknown country, as geo.unknown says).

With -json it prints the explanation object of the admin API's GET /explain with "source" added: input, host, invalid, rule, route, visitor, blocklist, config, at, country, scoped, source.`,
			examples: []string{"edgeblock explain forum.example", "edgeblock explain -country FR court.example", "edgeblock explain -json www.forum.example | jq .decision"},
			exits:    []string{"0  explained", "1  the config or list is bad", exitUsage},
			run:      runExplain},
		{name: "block", args: "HOST [key=value ...]", summary: "add a rule, or merge attributes into the rule with the same pattern",
			desc: `Adds a rule for HOST (a name, or *.name for a name and every name under it) to the blocklist file, or merges the given attributes into the rule with the same pattern; key= with an empty value removes an attribute. The edit records when, who (SUDO_USER, else the user) and -comment in an annotation line above the rule, and one line in the edit history FILE.history (see history). With -fleet, or blocklist.source fleet, it edits the fleet's published list instead, as a new version.

Rule attributes: ` + strings.Join(ruleAttrs(), ", ") + `.

Refused (nothing written, exit 1) when the result fails validation or the running edge's drop guard would refuse it. After writing, it asks the running edge (listen.admin) whether the change is in effect and says so: applied: true, the edge's error, or no edge answered.

With -json it prints one object: result (added, changed, unchanged, removed), rule, file (file mode) or version (fleet), line, old, new, attrs (key, old, new), note, and in file mode applied (true/false; absent when no edge was asked) and edge_error.`,
			examples: []string{
				`edgeblock block forum.example status=451 'reason=Court order' -comment TICKET-42`,
				`edgeblock block '*.spam.example' expires=2026-12-31T00:00:00Z`,
				`edgeblock block forum.example mode=report  # log only, do not block`,
				`edgeblock block -fleet forum.example -comment "incident 7"`},
			exits: []string{"0  written, or already so (unchanged); with -fleet, applied by every live edge", "1  refused: bad value, drop guard, lock, a divergent fleet store, or Redis", exitUsage, "3  -fleet: published, but not reported applied by every live edge within -wait"},
			run:   runBlock},
		{name: "unblock", args: "HOST", summary: "remove the rule with that pattern",
			desc: `Removes the rule whose pattern is HOST (*.name for a wildcard rule) and appends an unblock record with who, when and -comment. A name covered by another rule is not unblocked: the message names the rule that covers it. The drop guard applies: removing most block rules needs the line "#! allow-drop" in the list.

With -json it prints the same object as block.`,
			examples: []string{`edgeblock unblock forum.example -comment "court order lifted"`, `edgeblock unblock -fleet forum.example`},
			exits:    []string{"0  removed", "1  no such rule, or refused (drop guard, lock, a divergent fleet store, Redis)", exitUsage, "3  -fleet: published, but not reported applied by every live edge within -wait"},
			run:      runUnblock},
		{name: "publish", args: "BLOCKLIST", summary: "publish a list file to the fleet as a new version",
			desc: `Validates the list file and publishes it whole to the fleet's Redis as a new version (the GitOps path). Needs only the fleet: section of the config. Refused when it fails validation or the drop guard against the current version, when the store is divergent (see fleet reseed), or when it would replace a version it did not start from: with -base N, when version N is not the newest; without -base, when the list lacks rules the newest version has (they are named). -force replaces anyway and is recorded as forced.

It then waits up to -wait for every live edge to report the new version applied.`,
			examples: []string{"edgeblock publish -config fleet.yaml -comment 'PR #311' blocklist.txt", "edgeblock publish -config fleet.yaml -base 41 list.txt  # the version pull printed"},
			exits:    []string{"0  published (and applied by every live edge), or the newest version already has this content", "1  refused, or Redis unreachable", exitUsage, "3  published, but not reported applied by every live edge within -wait"},
			run:      runPublish},
		{name: "history", summary: "who changed the blocklist, when, why and what",
			desc: `In fleet mode (a fleet: section, or -fleet) it lists the fleet's newest versions: number, time, actor, comment, SHA-256 and the rules added (+), removed (-) and changed (~) against the version before.

In file mode it reads the edit history that block and unblock append to beside the list (BLOCKLIST.history, one JSON object per edit): every edit, newest first, even several within a second.

With -json it prints an array of objects: version (fleet), time, actor, comment, sha256, changes (kind, rule, attrs, by, comment).`,
			examples: []string{"edgeblock history -n 20", "edgeblock history -config fleet.yaml -json | jq '.[0]'", "edgeblock history -file  # the file's edit history even with a fleet section"},
			exits:    []string{"0  listed", "1  Redis unreachable, or the history cannot be read", exitUsage},
			run:      runHistory},
		{name: "rollback", args: "VERSION", summary: "publish an old version's list as a new version",
			desc:     `Publishes the list of an old fleet version as the new version (comment "rollback to version N: TEXT"). Needs only the fleet: section. The drop guard applies; -allow-drop N lets it drop up to N block rules, for undoing a mass block. The old version itself is not changed.`,
			examples: []string{"edgeblock rollback -config fleet.yaml 41", "edgeblock rollback -config fleet.yaml -allow-drop 5000 -comment 'undo mass block' 41"},
			exits:    []string{"0  published (or the newest version already has that content)", "1  refused (drop guard, validation, divergent store), no such version, or Redis", exitUsage, "3  published, but not reported applied by every live edge"},
			run:      runRollback},
		{name: "pull", summary: "write the fleet's current (or an old) list to a file",
			desc:     `Writes the list of the fleet's current version, or of -version N, to a file, atomically (default: blocklist.file of the config; -o - or none: standard output). Needs only the fleet: section.`,
			examples: []string{"edgeblock pull -config fleet.yaml -o -", "edgeblock pull -config fleet.yaml -version 41 -o v41.txt"},
			exits:    []string{"0  written", "1  no such version, Redis unreachable, or the file cannot be written", exitUsage},
			run:      runPull},
		{name: "fleet", args: "status|forget|reseed ...", summary: "the fleet's nodes", hidden: true, run: runFleet,
			exits: []string{"0  ok", "1  see the subcommand", exitUsage}},
		{name: "fleet status", summary: "the nodes' versions and heartbeats",
			desc: `Says whether the store is divergent (it does not hold the lists edges run: writes are refused until fleet reseed), lists versions that are corrupt or fail validation, and lists every node's last heartbeat: name, version, SHA-256, age, and DIVERGENT, BEHIND (older than the published version) or SILENT (no heartbeat for -silent). A node's heartbeat expires in Redis after fleet.heartbeat_expiry (24 hours) of silence, so a stopped node drops out of the list by itself; "fleet forget NODE" removes it at once.

With -json it prints one object: version, head, nodes (node, version, sha256, age_seconds, behind, silent, divergent), bad, divergence.`,
			examples: []string{"edgeblock fleet status -config fleet.yaml", "edgeblock fleet status -json | jq '.nodes[] | select(.behind)'"},
			exits:    []string{"0  every node current", "1  the store divergent, a node behind, silent or divergent, or Redis unreachable", exitUsage},
			run:      runFleetStatus},
		{name: "fleet forget", args: "NODE ...", summary: "remove retired nodes' heartbeats",
			desc:     `Removes the heartbeats of the named nodes, so that a retired node no longer shows in fleet status. A node that is still running reappears with its next heartbeat (every 5 s).`,
			examples: []string{"edgeblock fleet forget -config fleet.yaml edge-07"},
			exits:    []string{"0  forgotten", "1  no such node, or Redis unreachable", exitUsage},
			run:      runFleetForget},
		{name: "fleet reseed", summary: "restart a divergent store's history from the newest list an edge applied",
			desc:     `A store that lost data (restarted empty) or went back to an older dump is divergent: edges keep serving their lists and writers are refused. Reseed publishes the newest list any edge applied (the node reporting the highest version, with the copy of its list it saved in the store), or the list of -from (an edge's state directory, or a list file), as a new version numbered past every version a node reports and recorded as a reseed, which every edge applies. It names the rules that versions written on the divergent store have and the reseed does not carry over. On a store that is not divergent it refuses, unless -force.`,
			examples: []string{"edgeblock fleet reseed -config fleet.yaml", "edgeblock fleet reseed -config fleet.yaml -from /var/lib/edgeblock  # an edge's state directory"},
			exits:    []string{"0  reseeded and applied by every live edge", "1  the store is not divergent (without -force), no list to reseed from, nodes disagree, or Redis unreachable", exitUsage, "3  reseeded, but not reported applied by every live edge within -wait"},
			run:      runReseed},
		{name: "ca-root", summary: "print the internal CA's root certificate",
			desc:     `Prints the internal CA's root certificate in PEM (creating the CA if needed); tls.mode must be internal.`,
			examples: []string{"edgeblock ca-root > edgeblock-root.pem"},
			exits:    []string{"0  printed", "1  tls.mode is not internal, or the CA cannot be read", exitUsage},
			run:      runCARoot},
		{name: "demo", summary: "run a local demo",
			desc:     `Starts a local origin and edgeblock in front of it, with one proxied and a few blocked hostnames, and prints the curl lines to try.`,
			examples: []string{"edgeblock demo", "edgeblock demo -http 127.0.0.1:18080"},
			exits:    []string{"0  stopped", "1  a port is in use or the files cannot be written", exitUsage},
			run:      runDemo},
		{name: "help", args: "[COMMAND|TOPIC]", summary: "this help, a command's help, or a reference topic",
			desc:     `Without an argument, lists the commands. With a command (such as "check" or "fleet status"), prints its description, arguments, flags, examples and exit codes, as CMD -h does. With a topic, prints that reference topic.`,
			examples: []string{"edgeblock help block", "edgeblock help fleet status"},
			exits:    []string{"0  printed", "1  no such command or topic"},
			run:      runHelp},
		{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script",
			desc:     `Prints a completion script for the shell, generated from the same command table as the help.`,
			examples: []string{"edgeblock completion bash > /etc/bash_completion.d/edgeblock", "edgeblock completion zsh > \"${fpath[1]}/_edgeblock\"", "edgeblock completion fish > ~/.config/fish/completions/edgeblock.fish"},
			exits:    []string{"0  printed", exitUsage},
			run:      runCompletion},
		{name: "man", summary: "print the man page (roff)",
			desc:     `Prints the edgeblock(1) man page in roff, generated from the same command table as the help.`,
			examples: []string{"edgeblock man | man -l -", "edgeblock man > /usr/share/man/man1/edgeblock.1"},
			exits:    []string{"0  printed"},
			run:      runMan},
		{name: "version", summary: "print the version",
			desc:  `Prints the version, the revision and the Go version.`,
			exits: []string{"0  printed"},
			run:   runVersion},
	}
}

// ruleAttrs returns the rule attributes a blocklist line may carry.
func ruleAttrs() []string {
	return append(blocklist.AttrKeys(), "reason.TAG")
}

// configEnv names the environment variable that is the default of -config.
const configEnv = "EDGEBLOCK_CONFIG"

// defaultConfig returns the default of -config: $EDGEBLOCK_CONFIG, else
// edgeblock.yaml in the working directory.
func defaultConfig() string {
	if c := os.Getenv(configEnv); c != "" {
		return c
	}
	return "edgeblock.yaml"
}

// flagCapture is a standard error that records the FlagSet a command
// creates (newFlagSet), so that the help can list that command's flags
// without running it.
type flagCapture struct {
	io.Writer
	fs *flag.FlagSet
}

// newFlagSet returns the FlagSet of a command, writing to stderr, and
// hands it to a flagCapture.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	if c, ok := stderr.(*flagCapture); ok {
		c.fs = fs
	}
	return fs
}

// flagsOf returns the flags command c registers, by running it with -h
// and capturing its FlagSet; nil if it registers none.
func flagsOf(c *command) *flag.FlagSet {
	capture := &flagCapture{Writer: io.Discard}
	args := []string{"-h"}
	if c.run == nil || c.name == "help" || c.name == "completion" || c.name == "man" || c.name == "version" || c.hidden {
		return nil
	}
	c.run(args, io.Discard, capture)
	return capture.fs
}

// findCommand returns the command named by the start of args ("fleet",
// "status", ...) and how many args its name took; nil if none.
func findCommand(args []string) (*command, int) {
	if len(args) == 0 {
		return nil, 0
	}
	if len(args) > 1 {
		for i := range commands {
			if commands[i].name == args[0]+" "+args[1] {
				return &commands[i], 2
			}
		}
	}
	for i := range commands {
		if commands[i].name == args[0] {
			return &commands[i], 1
		}
	}
	return nil, 0
}

// wantsHelp reports whether args ask for help (-h, -help, --help before
// any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

// usage writes the list of commands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgeblock COMMAND [flags] [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(w, "\nedgeblock help COMMAND (or COMMAND -h) for a command's flags, examples and exit codes.\n")
	fmt.Fprintf(w, "-config defaults to $%s, else edgeblock.yaml.\n", configEnv)
}

// synopsis returns "edgeblock NAME [-flag X] ... ARGS".
func synopsis(c *command, fs *flag.FlagSet) string {
	parts := []string{"edgeblock", c.name}
	if fs != nil {
		fs.VisitAll(func(f *flag.Flag) {
			name, _ := flag.UnquoteUsage(f)
			if name == "" {
				parts = append(parts, "[-"+f.Name+"]")
			} else {
				parts = append(parts, "[-"+f.Name+" "+strings.ToUpper(name)+"]")
			}
		})
	}
	if c.args != "" {
		parts = append(parts, c.args)
	}
	return strings.Join(parts, " ")
}

// printHelp writes command c's help: synopsis, description, flags,
// examples and exit codes.
func printHelp(w io.Writer, c *command) {
	fs := flagsOf(c)
	fmt.Fprintf(w, "edgeblock %s: %s\n\nusage: %s\n", c.name, c.summary, synopsis(c, fs))
	if c.hidden {
		fmt.Fprintln(w, "\nsubcommands:")
		for _, s := range commands {
			if strings.HasPrefix(s.name, c.name+" ") {
				fmt.Fprintf(w, "  %-14s %s\n", s.name, s.summary)
			}
		}
	}
	if c.desc != "" {
		fmt.Fprintln(w)
		for p := range strings.SplitSeq(c.desc, "\n\n") {
			fmt.Fprintln(w, wrap(p, 78, ""))
			fmt.Fprintln(w)
		}
	}
	if c.args != "" && !c.hidden {
		fmt.Fprintf(w, "arguments:\n  %s\n\n", c.args)
	}
	if fs != nil {
		fmt.Fprintln(w, "flags:")
		fs.VisitAll(func(f *flag.Flag) {
			name, text := flag.UnquoteUsage(f)
			head := "  -" + f.Name
			if name != "" {
				head += " " + name
			}
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "-1" && !strings.Contains(text, "(default") {
				text += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(w, "%s\n%s\n", head, wrap(text, 78, "      "))
		})
		fmt.Fprintln(w)
	}
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "examples:")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
		fmt.Fprintln(w)
	}
	if len(c.exits) > 0 {
		fmt.Fprintln(w, "exit codes:")
		for _, e := range c.exits {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// wrap breaks text into lines of at most width, each starting with indent.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := indent
	for word := range strings.FieldsSeq(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}

// runHelp prints the usage and the reference topics, a command's help,
// or a reference topic (helpTopic). A name that is both a dispatcher
// ("fleet") and a topic gives the topic; "help fleet status" the command.
func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		fmt.Fprintln(stdout)
		listHelpTopics(stdout)
		return 0
	}
	if wantsHelp(args) {
		args = []string{"help"}
	}
	c, n := findCommand(args)
	if c != nil && n == len(args) && !c.hidden {
		printHelp(stdout, c)
		return 0
	}
	if len(args) == 1 {
		if text, ok := helpTopic(args[0]); ok {
			fmt.Fprint(stdout, text)
			return 0
		}
	}
	if c != nil && n == len(args) {
		printHelp(stdout, c)
		return 0
	}
	fmt.Fprintf(stderr, "edgeblock help: no command or topic %q; the commands:\n", strings.Join(args, " "))
	usage(stderr)
	return 1
}

// visible returns the commands listed to users, subcommands included.
func visible() []*command {
	var out []*command
	for i := range commands {
		if !commands[i].hidden {
			out = append(out, &commands[i])
		}
	}
	return out
}

// flagNames returns the names of c's flags, sorted.
func flagNames(c *command) []string {
	var out []string
	if fs := flagsOf(c); fs != nil {
		fs.VisitAll(func(f *flag.Flag) { out = append(out, f.Name) })
	}
	slices.Sort(out)
	return out
}
