package proxy

import (
	"fmt"
	"os"
	"testing"
)

// TestMain points tls.storage's default ($XDG_DATA_HOME/edgeblock) at a
// directory of this run, so that tests that leave tls.storage unset (and,
// in fleet mode, its local copy of the certificates) neither read nor
// write the user's and do not see each other's through it across runs.
func TestMain(m *testing.M) {
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
