// Command edgeblock is an edge reverse proxy that terminates TLS for many
// hostnames, forwards their traffic to origin servers, and serves an
// explanatory block page for hostnames on the operator's blocklist.
//
// Usage (edgeblock help prints it, edgeblock help CMD a command's flags,
// examples and exit codes):
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
//	edgeblock fleet forget -config FILE NODE   remove a retired node's heartbeat
//	edgeblock fleet reseed -config FILE [-from DIR|FILE]   restart a divergent store's history
//	edgeblock completion bash|zsh|fish   shell completion
//	edgeblock man                      the man page (roff)
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
	switch args[0] {
	case "-h", "-help", "--help":
		return runHelp(nil, stdout, stderr)
	}
	c, n := findCommand(args)
	if c == nil {
		fmt.Fprintf(stderr, "edgeblock: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if c.name != "help" && wantsHelp(args[n:]) {
		printHelp(stdout, c)
		return 0
	}
	return c.run(args[n:], stdout, stderr)
}
