package proxy

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// TestMain points tls.storage's default ($XDG_DATA_HOME/edgeblock) at a
// directory of this run, so that tests that leave tls.storage unset (and,
// in fleet mode, its local copy of the certificates) neither read nor
// write the user's and do not see each other's through it across runs.
// It also silences the Redis client's own messages (failed dials while a
// test's Redis is stopped or failing over), which go-redis prints to
// standard error and which would bury the test output; the server does
// the same (fleet.SetClientLogger).
//
// Under -short, unless -parallel is given, every test marked parallel
// may start at once (the default is GOMAXPROCS): those tests spend their
// time waiting on their edge's configured timeouts, not on the CPU, and
// they take turns themselves (parallelTLS: one at a time; parallelPlain:
// three), so that `go test -short ./...` stays quick on a 2-core machine
// and a TLS test waiting for its turn holds no place a plain test could
// run in.
func TestMain(m *testing.M) {
	fleet.SetClientLogger(func(string) {})
	flag.Parse()
	if testing.Short() && !flagGiven("test.parallel") {
		flag.Set("test.parallel", "64")
	}
	dir, err := os.MkdirTemp("", "edgeblock-proxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_DATA_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
