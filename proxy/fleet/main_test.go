package fleet

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The client's reconnect chatter (expected in the restart tests) would
	// bury test output; SetClientLogger is also what the server uses.
	SetClientLogger(func(string) {})
	os.Exit(m.Run())
}
