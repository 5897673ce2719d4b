package blocklist

import (
	"fmt"
	"math"
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
	n := 0
	for i := range l.all() {
		if l.blocks(l.at(i), now) {
			n++
		}
	}
	return n
}

// blocks reports whether r is a block-mode rule active at t.
func (l *List) blocks(r *rule, t time.Time) bool {
	return l.attrs[r.attrs].Mode == ModeBlock && !r.expiredAt(t.Unix(), uint32(t.Nanosecond()))
}

// GuardHorizon is how far ahead the drop guard looks. A block rule in
// effect counts as dropped by a new list not only when the new list
// removes it, switches it to report mode or has it expired already, but
// also when the new list ends its block sooner within the next
// GuardHorizon than the old list would: an expires= set (or moved) to at
// most GuardHorizon ahead is treated like a removal. Without
// it, a rule given expires= two seconds ahead would pass the guard and
// the list would block nothing two seconds later. A rule whose own
// expiry falls within the horizon in both lists is not dropped by the
// change: its end is the same either way.
const GuardHorizon = time.Hour

// DroppedBlocks compares l with old, the list in effect, and returns how
// many of old's block-mode rules active at now l drops, and how many old
// had. A rule is dropped when l has no block-mode rule of the same pattern
// that blocks at least as long as old's, looking GuardHorizon ahead: l
// removes it, switches it to report mode, lets it expire before now, or
// moves its expiry earlier, to now+GuardHorizon or before. A nil old
// has none.
func (l *List) DroppedBlocks(old *List, now time.Time) (dropped, total int) {
	if old == nil {
		return 0, 0
	}
	return l.dropped(old, now), old.BlockRules(now)
}

// dropped is the first result of DroppedBlocks. When l was built from old
// by Reparse it looks only at the rules of the lines that differ.
func (l *List) dropped(old *List, now time.Time) int {
	if old == nil || l == old {
		return 0
	}
	hSec, hNsec := splitTime(now.Add(GuardHorizon))
	drops := func(j int32) bool {
		r := old.at(j)
		if !old.blocks(r, now) {
			return false
		}
		i := l.index(old, r)
		return i < 0 || !l.blocks(l.at(i), now) || endsSooner(l.at(i), r, hSec, hNsec)
	}
	n := 0
	if l.ov != nil && l.ov.parent == old.id {
		seen := make(map[patternKey]bool, len(l.ov.touched))
		for _, k := range l.ov.touched {
			if j := old.find(k.name, k.wild, Scope{countries: k.countries, except: k.except}); j >= 0 && !seen[k] && drops(j) {
				n++
			}
			seen[k] = true
		}
		return n
	}
	for j := range old.all() {
		if drops(j) {
			n++
		}
	}
	return n
}

// splitTime returns t as Unix seconds and nanoseconds within the second.
func splitTime(t time.Time) (int64, uint32) {
	return t.Unix(), uint32(t.Nanosecond())
}

// endsSooner reports whether next stops applying before old does, both
// ends capped at the horizon (hSec, hNsec): a later end than the horizon,
// or none, is the horizon.
func endsSooner(next, old *rule, hSec int64, hNsec uint32) bool {
	if !next.expiredAt(hSec, hNsec) {
		return false // next applies through the horizon
	}
	if !old.expiredAt(hSec, hNsec) {
		return true // next ends within the horizon, old does not
	}
	return next.expSec < old.expSec || next.expSec == old.expSec && next.expNsec < old.expNsec
}

// DropError says that a list was refused because it would drop too many
// of the block-mode rules in effect (see CheckDrop).
type DropError struct {
	// File is the refused list's file.
	File string
	// Dropped of Total block rules in effect would no longer block.
	Dropped, Total int
	// MaxDrop is the blocklist.max_drop in force.
	MaxDrop float64
}

// Error says what would be dropped and how to apply the list anyway.
func (e *DropError) Error() string {
	return fmt.Sprintf("%s: would drop %d of %d block rules (%s): not applied unless the file has the line %q",
		e.File, e.Dropped, e.Total, e.Share(), AllowDropMarker)
}

// Share says how much is dropped against max_drop: "all of them" or
// "60% > max_drop 50%".
func (e *DropError) Share() string {
	if e.Dropped == e.Total {
		return "all of them"
	}
	return fmt.Sprintf("%s > max_drop %s", percent(float64(e.Dropped)/float64(e.Total)), percent(e.MaxDrop))
}

func percent(f float64) string {
	return fmt.Sprintf("%g%%", math.Round(f*1000)/10)
}

// CheckDrop is the drop guard. It returns a *DropError when next,
// replacing running (the list in effect), would drop all of running's
// active block-mode rules, or more than maxDrop of them (a share in
// (0, 1]), and next lacks the AllowDropMarker line; else nil. What counts
// as dropped is DroppedBlocks's, which looks GuardHorizon ahead of now. A
// nil running drops nothing. Edges run it on every reload and writers run
// it (through ApplyEdit) before writing, so that a writer never writes a
// list the edges would refuse.
func CheckDrop(next, running *List, maxDrop float64, now time.Time) error {
	if running == nil || next.AllowsDrop() {
		return nil
	}
	dropped := next.dropped(running, now)
	if dropped == 0 {
		return nil
	}
	total := running.BlockRules(now)
	if dropped == total || float64(dropped)/float64(total) > maxDrop {
		return &DropError{File: next.File(), Dropped: dropped, Total: total, MaxDrop: maxDrop}
	}
	return nil
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
	if k := r.Scope.Key(); k != "" {
		attrs = append(attrs, kv{k, r.Scope.countries}, kv{"unknown", r.Scope.unknown.String()})
	}
	if r.Publish {
		attrs = append(attrs, kv{"publish", "yes"})
	}
	attrs = append(attrs, kv{"notice", r.Notice})
	return formatLine(r.Pattern(), attrs, "")
}
