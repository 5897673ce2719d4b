package proxy

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeblock/edgeblock/proxy/reload"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/edgetest"
)

// editList edits the running environment's blocklist the way edgeblock
// block and unblock do (lock, re-read, rename), applying all of ops in one
// write.
func editList(t *testing.T, path string, ops ...func([]byte) ([]byte, error)) {
	t.Helper()
	err := blocklist.EditFile(path, func(data []byte) ([]byte, error) {
		for _, op := range ops {
			out, err := op(data)
			if err != nil {
				return nil, err
			}
			data = out
		}
		return data, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func blockOp(path, pattern string, note *blocklist.Note, args ...string) func([]byte) ([]byte, error) {
	return func(data []byte) ([]byte, error) {
		out, _, err := blocklist.ApplyEdit(path, data, blocklist.Edit{Pattern: pattern, Args: args, Note: note}, 0.5, time.Now())
		return out, err
	}
}

func unblockOp(path, pattern string, note *blocklist.Note) func([]byte) ([]byte, error) {
	return func(data []byte) ([]byte, error) {
		out, _, err := blocklist.ApplyEdit(path, data, blocklist.Edit{Unblock: true, Pattern: pattern, Note: note}, 0.5, time.Now())
		return out, err
	}
}

// lastAuditLine waits for the audit line that follows the n-th and returns
// it as logged.
func lastAuditLine(t *testing.T, e *testEnv, n int) string {
	t.Helper()
	var line string
	edgetest.WaitFor(t, 5*time.Second, "the audit line", func() bool {
		var lines []string
		for l := range strings.SplitSeq(e.logs.String(), "\n") {
			if strings.Contains(l, `"msg":"blocklist applied"`) {
				lines = append(lines, l)
			}
		}
		if len(lines) > n {
			line = lines[n]
			return true
		}
		return false
	})
	return line
}

// TestReloadAuditLine edits a running proxy's list as the block and
// unblock commands do, and checks that the reload's audit line names the
// rules added, removed and changed, attribute by attribute, with who made
// each change and why.
func TestReloadAuditLine(t *testing.T) {
	e := startReloadEnv(t, "forum.example policy=https://a.example/p\nold.example\nsame.example\n", "")
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	alice := blocklist.NewNote(at, "alice", "TICKET-42 court order")
	bob := blocklist.NewNote(at.Add(time.Minute), "bob", "")
	editList(t, e.list,
		blockOp(e.list, "Forum.Example", &alice, "status=451", "policy="),
		blockOp(e.list, "new.example", &bob, "reason=spam wave"),
		unblockOp(e.list, "old.example", &blocklist.Note{At: at, By: "carol", Comment: "false positive"}),
	)
	line := lastAuditLine(t, e, 1)
	for _, want := range []string{
		`"added_total":1,"removed_total":1,"changed_total":1`,
		`"added":[{"rule":"new.example","at":"2026-11-26T10:01:00Z","by":"bob"}]`,
		`"removed":[{"rule":"old.example","at":"2026-11-26T10:00:00Z","by":"carol","comment":"false positive"}]`,
		`"changed":[{"rule":"forum.example","policy":"https://a.example/p→(default)","status":"403→451","at":"2026-11-26T10:00:00Z","by":"alice","comment":"TICKET-42 court order"}]`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("audit line lacks %s:\n%s", want, line)
		}
	}
	if e.status("forum.example") != 451 {
		t.Error("the change did not apply")
	}

	// A hand edit of a rule under its old note: the change is listed, but
	// not attributed to the note's author.
	data, err := os.ReadFile(e.list)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	edgetest.WriteFile(t, e.list, strings.Replace(text, "forum.example status=451", "forum.example status=451 mode=report", 1))
	line = lastAuditLine(t, e, 2)
	if want := `"changed":[{"rule":"forum.example","mode":"block→report"}]`; !strings.Contains(line, want) {
		t.Errorf("audit line lacks %s:\n%s", want, line)
	}

	// Many changes at once: each list is bounded, the totals are not.
	var ops []func([]byte) ([]byte, error)
	for i := range reload.AuditLimit + 10 {
		ops = append(ops, blockOp(e.list, fmt.Sprintf("bulk%d.example", i), nil))
	}
	editList(t, e.list, ops...)
	line = lastAuditLine(t, e, 3)
	if !strings.Contains(line, fmt.Sprintf(`"added_total":%d,`, reload.AuditLimit+10)) ||
		strings.Count(line, `"rule":"bulk`) != reload.AuditLimit || !strings.Contains(line, `"removed":[],"changed":[]`) {
		t.Errorf("bulk audit line:\n%s", line)
	}
}
