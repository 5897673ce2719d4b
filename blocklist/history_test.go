package blocklist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSameSecondEditsAttributed: two edits of one rule by one actor within
// the same second each carry a note of their own, so the second change is
// attributed (HasNote) rather than taken for a hand edit under the first
// one's annotation. With notes truncated to the second, the two
// annotations were equal and the second change lost its who and when.
func TestSameSecondEditsAttributed(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 100e6, time.UTC)
	steps := []struct {
		args []string
		at   time.Time
	}{
		{[]string{"status=451"}, at},
		{[]string{"reason=again"}, at.Add(300 * time.Millisecond)},
		{[]string{"mode=report"}, at.Add(301 * time.Millisecond)},
	}
	data := []byte("forum.example\n")
	prev, err := Parse("l", data)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		note := NewNote(s.at, "alice", "")
		out, _, err := testBlock("l", data, "forum.example", s.args, blockOptions{Note: &note})
		if err != nil {
			t.Fatal(err)
		}
		next, err := Parse("l", out)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for c := range next.Changes(prev) {
			n++
			if !c.HasNote || !c.Note.At.Equal(s.at.Truncate(time.Millisecond)) || c.Note.By != "alice" {
				t.Errorf("step %d %v: change %+v not attributed to alice at %v", i, s.args, c, s.at)
			}
		}
		if n != 1 {
			t.Errorf("step %d: %d changes, want 1", i, n)
		}
		data, prev = out, next
	}
}

// TestHistoryAppendRead: entries come back in order, every one of many
// concurrent appends is kept whole, and a bad line is named by file:line.
func TestHistoryAppendRead(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "blocklist.txt")
	if err := os.WriteFile(list, []byte("a.example\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if es, err := ReadHistory(list); err != nil || len(es) != 0 {
		t.Fatalf("no history yet: %v, %v", es, err)
	}
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := HistoryEntry{Time: time.Now().UTC(), Actor: fmt.Sprintf("u%d", i), Command: "block", SHA256: "x",
				Changes: []HistoryChange{{Kind: Changed, Rule: "a.example", Line: "a.example status=451",
					Attrs: []AttrChange{{Key: "status", Old: "403", New: "451"}}}}}
			if err := AppendHistory(list, e); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	es, err := ReadHistory(list)
	if err != nil || len(es) != n {
		t.Fatalf("ReadHistory: %d entries, %v; want %d", len(es), err, n)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Actor] = true
		if len(e.Changes) != 1 || e.Changes[0].Attrs[0] != (AttrChange{"status", "403", "451"}) {
			t.Errorf("entry %+v did not come back whole", e)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct actors of %d", len(seen), n)
	}
	if fi, err := os.Stat(HistoryPath(list)); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("history file mode %v (%v), want the list's 0640", fi.Mode(), err)
	}
	f, _ := os.OpenFile(HistoryPath(list), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not json\n")
	f.Close()
	if _, err := ReadHistory(list); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("blocklist.txt.history:%d:", n+1)) {
		t.Errorf("bad line: error %v, want one naming line %d", err, n+1)
	}
}
