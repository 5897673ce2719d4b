package fleet

import (
	"strconv"
	"strings"
)

// ListName is the name a fleet blocklist version is parsed and reported
// under, "fleet:v42": problems read "fleet:v42:7: ...", and GET /blocklist
// and the audit log name the version.
func ListName(n int64) string { return "fleet:v" + strconv.FormatInt(n, 10) }

// VersionOfListName returns the version a ListName names; false for any
// other name (a file's path).
func VersionOfListName(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, "fleet:v")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
