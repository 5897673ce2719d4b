package blocklist

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// HistorySuffix is appended to a list file's path to name its edit
// history: one JSON object (a HistoryEntry) per line, appended by every
// edit made through edgeblock (block, unblock). Unlike the annotations in
// the list, which keep only the latest edit of each rule, and the edge's
// audit log, which has one line per reload, it keeps every edit, in the
// order they were made.
const HistorySuffix = ".history"

// HistoryEntry is one edit of a list file, as recorded in its history.
// The JSON field names are stable.
type HistoryEntry struct {
	// Time is when the edit was written, in UTC with nanoseconds.
	Time time.Time `json:"time"`
	// Actor is who made it (as in the annotation); Comment is why (may be
	// empty).
	Actor   string `json:"actor"`
	Comment string `json:"comment,omitempty"`
	// Command is the edit: "block", "unblock".
	Command string `json:"command"`
	// SHA256 is the hash of the file the edit wrote.
	SHA256 string `json:"sha256"`
	// Changes are the rules the edit added, removed or changed.
	Changes []HistoryChange `json:"changes"`
}

// HistoryChange is one rule an edit added, removed or changed.
type HistoryChange struct {
	Kind ChangeKind `json:"kind"`
	// Rule is the pattern; Line the rule as written after the edit (before,
	// for a removed rule).
	Rule  string       `json:"rule"`
	Line  string       `json:"line"`
	Attrs []AttrChange `json:"attrs,omitempty"`
}

// MarshalJSON writes an AttrChange as {"key","old","new"}.
func (c AttrChange) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Key string `json:"key"`
		Old string `json:"old"`
		New string `json:"new"`
	}{c.Key, c.Old, c.New})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *AttrChange) UnmarshalJSON(b []byte) error {
	var v struct{ Key, Old, New string }
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = AttrChange{Key: v.Key, Old: v.Old, New: v.New}
	return nil
}

// HistoryChanges returns the changes from prev to next for a HistoryEntry.
func HistoryChanges(next, prev *List) []HistoryChange {
	out := []HistoryChange{}
	for c := range next.Changes(prev) {
		out = append(out, HistoryChange{Kind: c.Kind, Rule: c.Rule.Pattern(), Line: c.Rule.Format(), Attrs: c.Attrs})
	}
	return out
}

// HistoryPath returns the history file of the list at path: beside the
// list, or beside the symlink's target if the list is a symlink, as the
// edit lock.
func HistoryPath(path string) string {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path + HistorySuffix
}

// AppendHistory appends e to the history of the list at path, creating it
// with the list's permission bits (and, for root, its owner) if needed. The
// line is written with one write on a file opened for appending, so that
// concurrent edits never interleave their lines.
func AppendHistory(path string, e HistoryEntry) error {
	name := HistoryPath(path)
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	perm, uid, gid, owned := os.FileMode(0o644), 0, 0, false
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm() & 0o666
		uid, gid, owned = fileOwner(fi)
	}
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
	if err != nil {
		return fmt.Errorf("edit history: %w", err)
	}
	if owned && errors.Is(statErr, os.ErrNotExist) {
		f.Chown(uid, gid) // best effort: let the list's owner append too
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("edit history: %w", err)
	}
	return nil
}

// RecordEdit appends to the history of the list file an edit (command
// "block" or "unblock") by note's actor, whose result (ApplyEdit's) res
// says what changed, and which wrote the content whose SHA-256 is sum (in
// hex, as SHA256Hex returns it). The writers of the file (the block and
// unblock commands, the admin API) call it after the edit is written. It
// costs the one changed rule: the list is not parsed, and the caller
// hashes what it wrote when it suits it (the command, while the file is
// synced to disk).
func RecordEdit(file, command string, note Note, res EditResult, sum string, now time.Time) error {
	changes, err := EditChanges(res)
	if err != nil {
		return err
	}
	return AppendHistory(file, HistoryEntry{Time: now.UTC(), Actor: note.By, Comment: note.Comment,
		Command: command, SHA256: sum, Changes: changes})
}

// EditChanges returns the changes of an edit for a HistoryEntry, from its
// result: the one rule added, changed or removed (none when res.Kind is
// ""). They are what HistoryChanges says of the lists before and after.
func EditChanges(res EditResult) ([]HistoryChange, error) {
	out := []HistoryChange{}
	line := res.NewLine
	switch res.Kind {
	case "":
		return out, nil
	case Removed:
		line = res.OldLine
	}
	r, err := parseRule(line)
	if err != nil {
		return nil, fmt.Errorf("edit history: %v", err)
	}
	return append(out, HistoryChange{Kind: res.Kind, Rule: res.Pattern, Line: r.Format(), Attrs: res.Attrs}), nil
}

// SHA256Hex returns the SHA-256 of b in hex: a list's identity, as
// List.SHA256 reports it.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ReadHistory returns the entries of the history of the list at path,
// oldest first; none (and no error) if there is no history yet. A line
// that is not an entry is an error naming the file and line.
func ReadHistory(path string) ([]HistoryEntry, error) {
	name := HistoryPath(path)
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []HistoryEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e HistoryEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("%s:%d: not a history entry: %v", name, n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
