// Command edgeblock is an edge reverse proxy that terminates TLS for many
// hostnames, forwards their traffic to origin servers, and serves an
// explanatory block page for hostnames on the operator's blocklist.
//
// Usage:
//
//	edgeblock serve   -config FILE     run the proxy
//	edgeblock check   -config FILE     validate config, blocklist and template
//	edgeblock explain -config FILE HOST   show what a visitor to HOST gets
//	edgeblock block   -config FILE [-fleet] [-replace] [-comment TEXT] HOST [key=value ...]   add a rule or merge attributes into it
//	edgeblock unblock -config FILE [-fleet] [-comment TEXT] HOST   remove a rule
//	edgeblock publish -config FILE [-comment TEXT] BLOCKLIST   publish a list to the fleet as a new version
//	edgeblock history -config FILE [-n N]   the fleet's versions with who, why and what changed
//	edgeblock rollback -config FILE [-comment TEXT] VERSION   publish an old version's list as a new version
//	edgeblock pull -config FILE [-o FILE]   write the fleet's current list to a file
//	edgeblock fleet status -config FILE   the nodes' versions and heartbeats
//	edgeblock ca-root -config FILE     print the internal CA's root certificate
//	edgeblock demo                     run a local demo
//	edgeblock version
//	edgeblock help [TOPIC]             the reference: config, blocklist, fleet, tls, ...
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/edgeblock/edgeblock/proxy/fleet"
)

type command struct {
	name, usage string
	run         func(args []string, stdout, stderr io.Writer) int
}

var commands = []command{
	{"serve", "serve -config FILE [-log-format json|text] [-log-level LEVEL]", runServe},
	{"check", "check -config FILE", runCheck},
	{"explain", "explain -config FILE HOST", runExplain},
	{"block", "block -config FILE [-fleet] [-replace] [-comment TEXT] HOST [policy=URL] [reason=TEXT] [status=403|451] [mode=block|report] [expires=DATE] (key= removes)", runBlock},
	{"unblock", "unblock -config FILE [-fleet] [-comment TEXT] HOST", runUnblock},
	{"publish", "publish -config FILE [-comment TEXT] BLOCKLIST", runPublish},
	{"history", "history -config FILE [-n N]", runHistory},
	{"rollback", "rollback -config FILE [-comment TEXT] VERSION", runRollback},
	{"pull", "pull -config FILE [-o FILE]", runPull},
	{"fleet", "fleet status -config FILE [-silent DURATION]", runFleet},
	{"ca-root", "ca-root -config FILE", runCARoot},
	{"demo", "demo [-http ADDR] [-admin ADDR] [-dir DIR]", runDemo},
	{"version", "version", runVersion},
}

func main() {
	// The Redis client's own chatter (failed dials) is off: fleet commands
	// report failures as errors, and serve routes it to its log.
	fleet.SetClientLogger(func(string) {})
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	if args[0] == "help" && len(args) > 1 {
		if text, ok := helpTopic(args[1]); ok {
			fmt.Fprint(stdout, text)
			return 0
		}
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		fmt.Fprintln(stdout)
		listHelpTopics(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "edgeblock: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage:")
	for _, c := range commands {
		fmt.Fprintf(w, "  edgeblock %s\n", c.usage)
	}
}
