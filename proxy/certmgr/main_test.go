package certmgr

import (
	"os"
	"testing"

	"github.com/edgeblock/edgeblock/proxy/fleet"
)

// TestMain silences the Redis client's own messages (failed dials while a
// test's Redis is stopped), which go-redis prints to standard error, as
// the server does (fleet.SetClientLogger).
func TestMain(m *testing.M) {
	fleet.SetClientLogger(func(string) {})
	os.Exit(m.Run())
}
