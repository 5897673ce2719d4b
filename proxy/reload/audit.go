package reload

import (
	"encoding/json"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
)

// auditRule is one rule in the blocklist_reload audit line: a JSON object
// whose keys keep their order: "rule" (the pattern), for a changed rule
// each changed attribute as "old→new", then "at", "by" and "comment" when
// the file records who made the change.
type auditRule []string

// MarshalJSON writes the object with its keys in order.
func (a auditRule) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i := 0; i+1 < len(a); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(a[i])
		v, _ := json.Marshal(a[i+1])
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// String returns the JSON object, for the text log format.
func (a auditRule) String() string {
	b, _ := a.MarshalJSON()
	return string(b)
}

// auditChanges sorts the changes from prev to l by kind, keeping at most
// AuditLimit of each, and counts them all.
type auditChanges struct {
	added, removed, changed []auditRule
	totals                  map[blocklist.ChangeKind]int
}

func newAuditChanges(l, prev *blocklist.List) auditChanges {
	a := auditChanges{added: []auditRule{}, removed: []auditRule{}, changed: []auditRule{}, totals: map[blocklist.ChangeKind]int{}}
	for c := range l.Changes(prev) {
		a.totals[c.Kind]++
		dst := &a.added
		switch c.Kind {
		case blocklist.Removed:
			dst = &a.removed
		case blocklist.Changed:
			dst = &a.changed
		}
		if len(*dst) >= AuditLimit {
			continue
		}
		e := auditRule{"rule", c.Rule.Pattern()}
		for _, ch := range c.Attrs {
			e = append(e, ch.Key, ch.String())
		}
		if c.HasNote {
			e = append(e, "at", c.Note.At.UTC().Format(time.RFC3339), "by", c.Note.By)
			if c.Note.Comment != "" {
				e = append(e, "comment", c.Note.Comment)
			}
		}
		*dst = append(*dst, e)
	}
	return a
}
