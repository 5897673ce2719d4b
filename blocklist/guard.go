package blocklist

import (
	"strconv"
	"strings"
	"time"
)

// AllowDropMarker is the comment line that lets a list drop more block
// rules at once than a reader's guard allows (see List.AllowsDrop): a line
// holding only this text, white space around it aside. Being a comment, it
// means nothing to a parser that does not know it.
const AllowDropMarker = "#! allow-drop"

func isAllowDropMarker(line string) bool {
	return strings.TrimSpace(line) == AllowDropMarker
}

// AllowsDrop reports whether the file has the AllowDropMarker line: its
// author says that dropping many or all of the rules in effect is meant.
func (l *List) AllowsDrop() bool { return l.allowDrop }

// BlockRules returns how many rules of the list are in block mode and
// active at now.
func (l *List) BlockRules(now time.Time) int {
	t := now
	n := 0
	for i := range l.rules {
		if l.blocks(&l.rules[i], t) {
			n++
		}
	}
	return n
}

// blocks reports whether r is a block-mode rule active at t.
func (l *List) blocks(r *rule, t time.Time) bool {
	return l.attrs[r.attrs].Mode == ModeBlock && !r.expiredAt(t.Unix(), uint32(t.Nanosecond()))
}

// DroppedBlocks compares l with old, the list in effect, and returns how
// many of old's block-mode rules active at now l no longer has as an
// active block-mode rule (removed, switched to report mode, or expired),
// and how many old had. A nil old has none.
func (l *List) DroppedBlocks(old *List, now time.Time) (dropped, total int) {
	if old == nil {
		return 0, 0
	}
	t := now
	for i := range old.rules {
		r := &old.rules[i]
		if !old.blocks(r, t) {
			continue
		}
		total++
		n, ok := l.nodes[r.name]
		j := n.zone
		if r.wildcard {
			j = n.wild
		}
		if !ok || j < 0 || !l.blocks(&l.rules[j], t) {
			dropped++
		}
	}
	return dropped, total
}

// Format returns the rule as a blocklist line in normalized form, which
// Parse reads back to an equal rule: the pattern, then the attributes that
// differ from the defaults.
func (r Rule) Format() string {
	attrs := []kv{{"policy", r.Policy}, {"reason", r.Reason}}
	for tag, text := range r.Reasons.All() {
		attrs = append(attrs, kv{reasonPrefix + tag, text})
	}
	attrs = append(attrs, kv{"contact", r.Contact}, kv{"appeal", r.Appeal})
	if r.Status != 0 && r.Status != 403 {
		attrs = append(attrs, kv{"status", strconv.Itoa(r.Status)})
	}
	if r.Mode != ModeBlock {
		attrs = append(attrs, kv{"mode", r.Mode.String()})
	}
	if !r.Expires.IsZero() {
		attrs = append(attrs, kv{"expires", r.Expires.UTC().Format(time.RFC3339Nano)})
	}
	return formatLine(r.Pattern(), attrs, "")
}
